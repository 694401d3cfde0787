"""The ``gan`` stage: synthetic candidates G (docs/cgm.md §3).

``gan.source = "train"`` trains the conditional GAN on the pooled party data with
Lightning and samples ``n_candidates`` labelled candidates; ``"file"`` reads the
user's candidates; ``"oracle"`` draws from the true gmm mixture. Writes
``gan/candidates.h5``, ``generator.ckpt`` (train only), ``samples.png`` and
``quality.json`` (copied into the manifest under ``metrics``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from data.atomic import atomic_path
from data.h5 import write_h5
from data.sources import load_candidates
from gan.sampling import candidate_labels, class_frequencies, generate, oracle_sample
from gan.train import resolve_trainer_settings, train_gan
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.figures.gan import label_and_measure, write_samples_png
from pipeline.inputs import read_pool
from pipeline.limits import check_gan_request

logger = logging.getLogger(__name__)

TABLES = ("data", "gan")


def _check_request(cfg: RunConfig, attrs: dict[str, Any], shape: tuple) -> None:
    g = cfg.gan
    check_gan_request(g, shape[1:], n_rows=shape[0])  # before manifest.begin
    if g.source == "oracle" and attrs["source"] != "gmm":
        raise UsageError(
            f'[gan] source: "oracle" needs a gmm pool, this pool is {attrs["source"]!r}'
        )
    if g.source == "train":
        try:
            resolve_trainer_settings(g.accelerator, g.devices, g.precision)
        except ValueError as e:
            raise UsageError(f"[gan] accelerator: {e}") from e


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Produce the candidate pool, its sample grid and its quality figures.

    Raises:
        UsageError: on a missing/stale pool, an impossible accelerator, more
            candidates than memory holds, or a bad candidates file.
    """
    g = cfg.gan
    pool = read_pool(run_dir)
    n_classes = pool.n_classes
    x_real, y_real = pool.pooled
    _check_request(cfg, pool.attrs, x_real.shape)
    label_ss, z_ss, quality_ss = manifest.stage_seed(cfg.seed, "gan").spawn(3)
    seed = manifest.stage_int_seed(cfg.seed, "gan")
    inputs = dict(pool.inputs)
    if g.source == "file":
        try:
            shape = x_real.shape[1:]
            x_cand, y_file = load_candidates(g.candidates_file, shape, n_classes)
        except ValueError as e:
            raise UsageError(f"[gan] candidates_file: {e}") from e
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
        with atomic_path(paths.generator_ckpt(run_dir)) as tmp:
            trainer.save_checkpoint(tmp)
        outputs["generator"] = paths.generator_ckpt(run_dir)
        y_cand = candidate_labels(freqs, g.n_candidates, seed=label_ss)
        cuda = torch.cuda.is_available() and g.accelerator != "cpu"
        x_cand = generate(
            module,
            y_cand,
            seed=int(z_ss.generate_state(1)[0]),
            progress=progress,
            device="cuda" if cuda else "cpu",
        )
        generator = "cdcgan" if x_real.ndim == 4 else "cmlpgan"
    elif g.source == "oracle":
        y_cand = candidate_labels(freqs, g.n_candidates, seed=label_ss)
        means, var = pool.json_attr("gmm_means"), float(pool.attrs["gmm_var"])
        x_cand = oracle_sample(means, var, y_cand, seed=z_ss)
        generator, label_source = "oracle", "oracle"
    else:
        generator = "file"
        y_cand, label_source = y_file, "file"
    if y_cand is None:
        label_source = "predicted"
    y_cand, quality = label_and_measure(
        (x_real, y_real),
        pool.test,
        x_cand,
        y_cand,
        n_classes,
        measure=g.quality,
        epochs=g.quality_epochs,
        seed=int(quality_ss.generate_state(1)[0]) % (2**31),
    )
    outputs["candidates"] = write_h5(
        paths.candidates(run_dir),
        {"x": x_cand.astype(np.float32), "y": np.asarray(y_cand, dtype=np.int64)},
        {"generator": generator, "n_candidates": len(x_cand)}
        | {"label_source": label_source, "seed": cfg.seed},
    )
    outputs["samples"] = write_samples_png(
        paths.gan_samples_png(run_dir), (x_cand, y_cand), x_real, n_classes, generator
    )
    # quality.json holds seeded figures only; timings go to the manifest
    outputs["quality"] = manifest.write_json(paths.gan_quality(run_dir), quality)
    manifest.finish(
        run_dir,
        "gan",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "stage_key": manifest.STAGE_KEY["gan"], "torch": seed},
        inputs=inputs,
        outputs=outputs,
        started=t0,
        metrics={**quality, **{f"train_{k}": v for k, v in stats.items()}},
    )
    return outputs
