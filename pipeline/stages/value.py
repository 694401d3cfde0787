"""The ``value`` stage: features, lengthscale, coalition and Shapley values.

docs/cgm.md §4–§5: one feature map fitted on parties and candidates, applied to
both; v(S) = S_XY − S_X against T = all party data ⊎ all candidates; all 2^N
coalition values from one block-sum kernel pass; exact (or permutation) Shapley.
Writes ``value/features.h5``, ``value/values.json``, ``value/kernel_sums.h5`` (the
pass's sums the sample stage starts from, §7.2) and the autoencoder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from data.atomic import atomic_path
from data.h5 import CANDIDATES, read_h5, write_h5
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.inputs import read_pool
from pipeline.limits import check_value_request
from valuation.api import value_parties
from valuation.autoencoder import AutoencoderMap
from valuation.features import PcaMap, featurise
from valuation.lengthscale import LengthscaleError

logger = logging.getLogger(__name__)

TABLES = ("data", "gan", "value")


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Value every party against the reference.

    Args:
        cfg: the run config (reads ``[value]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing/stale upstream, candidates of another shape, a
            request the data or memory cannot satisfy (checked before the old
            manifest is removed), or a failure of the lengthscale rule (the
            message says what to set).
    """
    v = cfg.value
    pool = read_pool(run_dir)
    manifest.require(run_dir, "gan", ["candidates"])
    cand, _ = read_h5(paths.candidates(run_dir), CANDIDATES)
    party_x = [x for x, _ in pool.parties]
    if cand["x"].shape[1:] != party_x[0].shape[1:]:
        raise UsageError(
            f"{paths.candidates(run_dir)}: candidate shape {cand['x'].shape[1:]} "
            f"differs from the party data's {party_x[0].shape[1:]}"
        )
    n_rows = sum(len(x) for x in party_x) + len(cand["x"])
    check_value_request(v, n_rows, cand["x"].shape[1:])  # docs/interface.md §4.5
    seed = manifest.stage_int_seed(cfg.seed, "value")
    t0 = manifest.begin(run_dir, "value")
    pl.seed_everything(seed, workers=True)
    fmap, party_f, cand_f = featurise(
        party_x,
        cand["x"],
        v.features,
        feature_dim=v.feature_dim,
        ae_epochs=v.ae_epochs,
        seed=seed,
        device=v.device,
        progress=progress,
    )
    try:
        values, sums = value_parties(
            party_f,
            cand_f,
            lengthscale=v.lengthscale,
            shapley=v.shapley,
            n_permutations=v.permutations,
            seed=manifest.stage_seed(cfg.seed, "value"),
            chunk_size=v.chunk_size,
            device=v.device,
            kernel_precision=v.kernel_precision,
            features=fmap.kind,
            progress=progress,
            refuse_nonpositive=False,  # φ ≤ 0: docs/cgm.md §6.4
            return_row_sums=True,  # R of the same pass for sample (§7.2)
        )
    except LengthscaleError as e:
        raise UsageError(f"[value] lengthscale: {e}") from e
    except ValueError as e:
        raise UsageError(f"[value] features: {e}") from e
    outputs: dict[str, Path] = {}
    groups = {}
    if isinstance(fmap, PcaMap):
        groups["feature_map"] = fmap.to_arrays()
    if isinstance(fmap, AutoencoderMap):
        with atomic_path(paths.autoencoder_ckpt(run_dir)) as tmp:
            fmap.save(str(tmp))
        outputs["autoencoder"] = paths.autoencoder_ckpt(run_dir)
    datasets = {f"party_{i}": f for i, f in enumerate(party_f)}
    datasets["candidates"] = cand_f
    datasets["reference"] = np.concatenate([*party_f, cand_f]).astype(np.float32)
    datasets["test"] = fmap.transform(pool.test[0])  # privacy baseline (§8.5)
    outputs["features"] = write_h5(
        paths.features(run_dir),
        datasets,
        {
            "features": fmap.kind,
            "feature_dim": fmap.feature_dim,
            "n_parties": len(party_f),
            "seed": cfg.seed,
        },
        groups=groups,
    )
    logger.info(
        "lengthscale %.4g; shapley %s; alpha %s",
        values.lengthscale,
        [round(p, 6) for p in values.shapley],
        [round(a, 4) for a in values.alpha],
    )
    outputs["values"] = manifest.write_json(paths.values(run_dir), values.to_dict())
    n_own = sum(len(f) for f in party_f)  # R's candidate rows follow the parties'
    outputs["kernel_sums"] = write_h5(
        paths.kernel_sums(run_dir),
        {"row_sums": sums.row_sums[n_own:], "block_sums": sums.block_sums},
        {
            "lengthscale": values.lengthscale,
            "n_parties": len(party_f),
            "kernel_precision": v.kernel_precision,
            "seed": cfg.seed,
        },
    )
    manifest.finish(
        run_dir,
        "value",
        config=cfg.tables(*TABLES),
        seed={
            "root": cfg.seed,
            "stage_key": manifest.STAGE_KEY["value"],
            "torch": seed,
        },
        inputs={**pool.inputs, "candidates": paths.candidates(run_dir)},
        outputs=outputs,
        started=t0,
        metrics={
            "lengthscale": values.lengthscale,
            "alpha": list(values.alpha),
            "features": fmap.kind,
            "feature_dim": fmap.feature_dim,
        },
    )
    return outputs
