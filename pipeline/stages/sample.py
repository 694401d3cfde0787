"""The ``sample`` stage: each party's reward file (docs/cgm.md §7).

Weighted sampling of synthetic candidates per party until v(D_i ⊎ R_i) reaches
r_i, written as ``sample/party_<i>.h5`` (THE reward file of docs/interface.md).
A party the reward stage excluded (φ_i ≤ 0, docs/cgm.md §6.4) gets a file with no
rows and ``stop_reason = "excluded"``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from data.h5 import write_h5
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.inputs import party_seeds, read_reward_inputs, sampler_settings
from rewards.cgm.sampling import SamplingResult, sample_parties_except
from valuation.result import PartyValues

logger = logging.getLogger(__name__)

TABLES = ("data", "gan", "value", "reward", "sample")


def sample_seeds(cfg: RunConfig, n_parties: int) -> list[int]:
    """Per-party integer seeds from the stage seed (or ``sample.seed``) spawned N times.

    Each party's generator is ``np.random.default_rng(seed_i)``; the integers are
    recorded in the manifest and in the reward files' ``seed`` attribute.
    """
    s = cfg.sample.seed
    root = (
        manifest.stage_seed(cfg.seed, "sample")
        if s == "auto"
        else np.random.SeedSequence(s)
    )
    return party_seeds(root, n_parties)


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Sample every party's reward set and write its reward file.

    Args:
        cfg: the run config (reads ``[sample]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing or stale upstream stage.
    """
    up = read_reward_inputs(run_dir)
    values, rewards, feats, cand = up.values, up.rewards, up.features, up.candidates
    n = values.n_parties
    seeds = sample_seeds(cfg, n)
    t0 = manifest.begin(run_dir, "sample")
    results = sample_parties_except(
        rewards.get("excluded", []),  # φ_i ≤ 0 get nothing (docs/cgm.md §6.4)
        [feats[f"party_{i}"] for i in range(n)],
        feats["candidates"],
        feats["reference"],
        values.lengthscale,
        rewards["reward_values"],
        inv_temp=cfg.sample.inv_temp,
        seeds=seeds,
        progress=progress,
        **sampler_settings(cfg, n),
    )
    outputs = {}
    for i, res in enumerate(results):
        outputs[f"party_{i}"] = write_reward_file(
            paths.reward_file(run_dir, i),
            i,
            res,
            cand,
            feats["candidates"],
            values=values,
            target=rewards["reward_values"][i],
            inv_temp=cfg.sample.inv_temp,
            seed=seeds[i],
        )
    summary = [
        {
            "party": i,
            "n_rewards": r.n_rewards,
            "achieved": r.achieved_value,
            "target": rewards["reward_values"][i],
            "stop_reason": r.stop_reason,
        }
        for i, r in enumerate(results)
    ]
    for row in summary:
        logger.info("party %(party)d: %(n_rewards)d rewards, %(stop_reason)s", row)
    manifest.finish(
        run_dir,
        "sample",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "sample_seed": cfg.sample.seed, "party_seeds": seeds},
        inputs=up.inputs,
        outputs=outputs,
        started=t0,
        metrics={"parties": summary},
    )
    return outputs


def write_reward_file(
    path: Path,
    party_id: int,
    res: SamplingResult,
    cand: dict[str, np.ndarray],
    cand_features: np.ndarray,
    *,
    values: PartyValues,
    target: float,
    inv_temp: float,
    seed: int,
) -> Path:
    """Write one reward file with every dataset and attribute of docs/interface.md."""
    idx = res.candidate_index
    return write_h5(
        path,
        {
            "x": cand["x"][idx],
            "y": cand["y"][idx].astype(np.int64),
            "features": cand_features[idx],
            "candidate_index": idx.astype(np.int64),
            "value_trace": res.value_trace.astype(np.float64),
        },
        {
            "party_id": party_id,
            "shapley": float(values.shapley[party_id]),
            "alpha": float(values.alpha[party_id]),
            "reward_value": float(target),
            "achieved_value": res.achieved_value,
            "inv_temp": float(inv_temp) if math.isfinite(inv_temp) else np.inf,
            "seed": seed,
            "lengthscale": float(values.lengthscale),
            "stop_reason": res.stop_reason,
            "start_value": res.start_value,
            "best_value": res.best_value,
            "n_rewards": res.n_rewards,
        },
    )
