"""The ``gan`` stage: synthetic candidates G (docs/cgm.md §3).

``gan.source = "train"`` trains the conditional GAN on the pooled party data with
Lightning (``gan.model``: dcgan, mlp or ctgan) and samples ``n_candidates`` labelled
candidates; ``"file"`` reads the user's candidates; ``"oracle"`` draws from the true gmm
mixture. Writes ``gan/candidates.h5``, ``generator.ckpt`` (train only),
``samples.png``, ``quality.json`` (copied into the manifest under ``metrics``) and,
for tables, ``fidelity.png``. The quality gate (docs/cgm.md §3.6) runs before any
output is written: with ``gan.quality_gate = "fail"`` a failed gate exits 2, the
stage has no manifest and ``value`` refuses to run.
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
from gan.sampling import candidate_labels, class_frequencies, generate
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.figures.gan import (
    label_and_measure,
    write_fidelity_png,
    write_samples_png,
)
from pipeline.gan_model import (
    GENERATOR_NAME,
    apply_gate,
    check_request,
    train_generator,
)
from pipeline.gmm_oracle import oracle_candidates
from pipeline.inputs import read_pool

logger = logging.getLogger(__name__)

TABLES = ("data", "gan")


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Produce the candidate pool, its sample grid and its quality figures.

    Raises:
        UsageError: on a missing/stale pool, an impossible accelerator or model,
            more candidates than memory holds, a bad candidates file, or a failed
            quality gate (``gan.quality_gate = "fail"``, before any output).
    """
    g = cfg.gan
    pool = read_pool(run_dir)
    n_classes = pool.n_classes
    x_real, y_real = pool.pooled
    schema = pool.schema
    model = check_request(g, pool.attrs, x_real.shape, schema)  # before begin
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
        module, trainer, train_stats = train_generator(
            g, model, (x_real, y_real), n_classes, schema, seed=seed, progress=progress
        )
        stats = train_stats.to_dict()
        if not trainer.is_global_zero:
            return outputs
        y_cand = candidate_labels(freqs, g.n_candidates, seed=label_ss)
        cuda = torch.cuda.is_available() and g.accelerator != "cpu"
        x_cand = generate(
            module,
            y_cand,
            seed=int(z_ss.generate_state(1)[0]),
            progress=progress,
            device="cuda" if cuda else "cpu",
        )
        generator = GENERATOR_NAME[model]
    elif g.source == "oracle":
        x_cand, y_cand = oracle_candidates(pool, freqs, g.n_candidates, label_ss, z_ss)
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
    gate, failed = apply_gate(g, x_real, x_cand, quality, pool.test[1], schema)
    if failed:  # before any output: the stage is left unfinished, value refuses
        raise UsageError(failed)
    if g.source == "train":
        with atomic_path(paths.generator_ckpt(run_dir)) as tmp:
            trainer.save_checkpoint(tmp)
        outputs["generator"] = paths.generator_ckpt(run_dir)
    outputs["candidates"] = write_h5(
        paths.candidates(run_dir),
        {"x": x_cand.astype(np.float32), "y": np.asarray(y_cand, dtype=np.int64)},
        {"generator": generator, "n_candidates": len(x_cand)}
        | {"label_source": label_source, "seed": cfg.seed},
    )
    outputs["samples"] = write_samples_png(
        paths.gan_samples_png(run_dir), (x_cand, y_cand), x_real, n_classes, generator
    )
    if schema is not None:  # tables: per-column fidelity in quality.json
        outputs["fidelity"] = write_fidelity_png(
            paths.stage_file(run_dir, "gan", "fidelity.png"), gate, generator
        )
        quality, gate = {**quality, **gate}, {}
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
        metrics={**quality, **({"quality_gate": gate} if gate else {})}
        | {f"train_{k}": v for k, v in stats.items()},
    )
    return outputs
