"""The ``gan`` stage: synthetic candidates G (docs/cgm.md §3).

``gan.source = "train"`` trains the conditional GAN on the pooled party data with
Lightning and samples ``n_candidates`` labelled candidates; ``"file"`` reads the
user's candidates; ``"oracle"`` draws from the true gmm mixture. Writes
``gan/candidates.h5``, ``generator.ckpt`` (train only), ``samples.png`` and
``quality.json`` (copied into the manifest under ``metrics``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from data.h5 import read_h5, write_h5
from gan.quality import fid_kid, sample_grid_png
from gan.sampling import candidate_labels, class_frequencies, generate, oracle_sample
from gan.train import resolve_trainer_settings, train_gan
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.stages.common import read_pool
from rewards.classifiers import (
    Preprocessor,
    accuracy,
    fit_classifier,
    penultimate_features,
    predict,
)

logger = logging.getLogger(__name__)

TABLES = ("data", "gan")
MAX_QUALITY_ROWS = 10_000
MAX_FID_ROWS = 5_000


def _check_request(cfg: RunConfig, attrs: dict[str, Any]) -> None:
    g = cfg.gan
    if g.source == "oracle" and attrs["source"] != "gmm":
        raise UsageError(
            f'[gan] source: "oracle" needs a gmm pool, this pool is {attrs["source"]!r}'
        )
    if g.source == "train":
        try:
            resolve_trainer_settings(g.accelerator, g.devices, g.precision)
        except ValueError as e:
            raise UsageError(f"[gan] accelerator: {e}") from e


def _read_candidates_file(cfg: RunConfig, shape: tuple[int, ...], n_classes: int):
    path = Path(cfg.gan.candidates_file)
    try:
        data, _ = read_h5(path, names=None)
    except ValueError as e:
        raise UsageError(f"[gan] candidates_file: {e}") from e
    if "x" not in data:
        raise UsageError(f"[gan] candidates_file: {path}: dataset `x` is missing")
    x = np.asarray(data["x"])
    if x.ndim == len(shape) and len(shape) == 3 and x.shape[1:] == shape[1:]:
        x = x[:, None]  # (n, H, W) images get their channel axis
    if x.shape[1:] != shape:
        raise UsageError(
            f"[gan] candidates_file: {path}: per-sample shape {x.shape[1:]} differs "
            f"from the party data's {shape}"
        )
    if x.shape[0] < 2 or not np.isfinite(x).all():
        raise UsageError(
            f"[gan] candidates_file: {path}: needs >= 2 rows of finite values"
        )
    x = (x / 255.0 if x.dtype == np.uint8 else x).astype(np.float32)
    y = data.get("y")
    if y is not None:
        y = np.asarray(y).astype(np.int64)
        if y.shape != (x.shape[0],) or y.min() < 0 or y.max() >= n_classes:
            raise UsageError(
                f"[gan] candidates_file: {path}: `y` must hold one label in "
                f"[0, {n_classes}) per row"
            )
    return x, y


def measure_quality(
    real: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    *,
    epochs: int,
    seed: int,
) -> tuple[dict[str, float | None], tuple[torch.nn.Module, Preprocessor]]:
    """The quality figures of docs/cgm.md §3.4 with our own feature extractor E."""
    model, pre = fit_classifier(real[0], real[1], n_classes, epochs=epochs, seed=seed)
    xc, yc = cand[0][:MAX_QUALITY_ROWS], cand[1][:MAX_QUALITY_ROWS]
    q: dict[str, float] = {
        "real_test_acc": accuracy(model, pre.transform(test[0]), test[1]),
        "label_agreement": float(np.mean(predict(model, pre.transform(xc)) == yc)),
    }
    tstr, pre_s = fit_classifier(xc, yc, n_classes, epochs=epochs, seed=seed + 1)
    q["tstr_acc"] = accuracy(tstr, pre_s.transform(test[0]), test[1])

    def feature_fn(xb: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(penultimate_features(model, pre.transform(xb.numpy())))

    fake = cand[0][:MAX_FID_ROWS]
    q.update(fid_kid(real[0], fake, feature_fn, seed=seed))
    base = fid_kid(real[0], test[0], feature_fn, seed=seed)
    q["fid_real_baseline"] = base["fid"]
    q["kid_real_baseline"] = base["kid_mean"]
    return _finite_or_none(q), (model, pre)


def _finite_or_none(q: dict[str, Any]) -> dict[str, float | None]:
    """Figures as floats; a non-finite one (e.g. KID of degenerate features) is None."""
    out: dict[str, float | None] = {}
    for key, value in q.items():
        v = float(value)
        if not np.isfinite(v):
            logger.warning("quality figure %s is %s: recorded as null", key, v)
        out[key] = v if np.isfinite(v) else None
    return out


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Produce the candidate pool, its sample grid and its quality figures.

    Args:
        cfg: the run config (reads ``[gan]``).
        run_dir: the run folder.
        progress: show Lightning's progress bar.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing/stale pool, an impossible accelerator, or a bad
            candidates file.
    """
    g = cfg.gan
    pool = read_pool(run_dir)
    n_classes = pool.n_classes
    x_real, y_real = pool.pooled
    _check_request(cfg, pool.attrs)
    label_ss, z_ss, quality_ss = manifest.stage_seed(cfg.seed, "gan").spawn(3)
    seed = manifest.stage_int_seed(cfg.seed, "gan")
    inputs = dict(pool.inputs)
    if g.source == "file":
        x_cand, y_file = _read_candidates_file(cfg, x_real.shape[1:], n_classes)
        inputs["candidates_file"] = Path(g.candidates_file)
    t0 = manifest.begin(run_dir, "gan")
    outputs: dict[str, Path] = {}
    stats: dict[str, Any] = {}
    label_source = "generator"
    freqs = class_frequencies(y_real, n_classes)
    if g.source == "train":
        pl.seed_everything(seed, workers=True)
        module, trainer, train_stats = train_gan(
            x_real,
            y_real,
            n_classes=n_classes,
            epochs=g.epochs,
            seed=seed,
            batch_size=g.batch_size,
            width=g.width,
            accelerator=g.accelerator,
            devices=g.devices,
            precision=g.precision,
            progress=progress,
        )
        stats = train_stats.to_dict()
        if not trainer.is_global_zero:
            return outputs
        ckpt = paths.generator_ckpt(run_dir)
        tmp = ckpt.with_name(f".{ckpt.name}.tmp")
        trainer.save_checkpoint(tmp)
        os.replace(tmp, ckpt)
        outputs["generator"] = ckpt
        y_cand = candidate_labels(freqs, g.n_candidates, seed=label_ss)
        device = (
            "cuda" if torch.cuda.is_available() and g.accelerator != "cpu" else "cpu"
        )
        x_cand = generate(
            module,
            y_cand,
            seed=int(z_ss.generate_state(1)[0]),
            device=device,
            progress=progress,
        )
        generator = "cdcgan" if x_real.ndim == 4 else "cmlpgan"
    elif g.source == "oracle":
        y_cand = candidate_labels(freqs, g.n_candidates, seed=label_ss)
        x_cand = oracle_sample(
            pool.json_attr("gmm_means"), float(pool.attrs["gmm_var"]), y_cand, seed=z_ss
        )
        generator, label_source = "oracle", "oracle"
    else:
        generator = "file"
        y_cand, label_source = y_file, "file"
    quality: dict[str, float | None] = {}
    if y_cand is None or g.quality:
        qseed = int(quality_ss.generate_state(1)[0]) % (2**31)
        if y_cand is None:
            model, pre = fit_classifier(
                x_real, y_real, n_classes, epochs=g.quality_epochs, seed=qseed
            )
            y_cand = predict(model, pre.transform(x_cand)).astype(np.int64)
            label_source = "predicted"
        if g.quality:
            quality, _ = measure_quality(
                (x_real, y_real),
                pool.test,
                (x_cand, y_cand),
                n_classes,
                epochs=g.quality_epochs,
                seed=qseed,
            )
            logger.info("candidate quality: %s", quality)
    outputs["candidates"] = write_h5(
        paths.candidates(run_dir),
        {"x": x_cand.astype(np.float32), "y": np.asarray(y_cand, dtype=np.int64)},
        {
            "generator": generator,
            "n_candidates": len(x_cand),
            "label_source": label_source,
            "seed": cfg.seed,
        },
    )
    png = paths.gan_samples_png(run_dir)
    tmp_png = png.with_name(f".{png.name}.tmp")
    with tmp_png.open("wb") as f:
        sample_grid_png(
            f,
            x_cand,
            y_cand,
            n_classes=n_classes,
            real_x=x_real,
            title=f"{generator} candidates",
        )
    os.replace(tmp_png, png)
    outputs["samples"] = png
    # quality.json holds seeded figures only; timings go to the manifest
    outputs["quality"] = manifest.write_json(paths.gan_quality(run_dir), quality)
    metrics = {**quality, **{f"train_{k}": v for k, v in stats.items()}}
    manifest.finish(
        run_dir,
        "gan",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "stage_key": manifest.STAGE_KEY["gan"], "torch": seed},
        inputs=inputs,
        outputs=outputs,
        started=t0,
        metrics=metrics,
    )
    return outputs
