"""The ``sample`` stage: each party's reward file (docs/cgm.md §7).

Weighted sampling of synthetic candidates per party until v(D_i ⊎ R_i) reaches
r_i, written as ``sample/party_<i>.h5`` (THE reward file of docs/interface.md).
A party the reward stage excluded (φ_i ≤ 0, docs/cgm.md §6.4) gets a file with no
rows and ``stop_reason = "excluded"``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.inputs import party_seeds, read_pool, read_reward_inputs, sampler_settings
from pipeline.reward_files import (
    check_export,
    guard,
    write_exports,
    write_guard,
    write_reward_file,
)
from rewards.cgm.sampling import sample_parties_except

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
    sc = cfg.sample
    pool = read_pool(run_dir) if sc.min_distance != 0 or sc.export else None
    keep, used = guard(sc.min_distance, pool, cand["x"])  # docs/cgm.md §8.5
    check_export(sc.export, pool)
    t0 = manifest.begin(run_dir, "sample")
    results = sample_parties_except(
        rewards.get("excluded", []),  # φ_i ≤ 0 get nothing (docs/cgm.md §6.4)
        [feats[f"party_{i}"] for i in range(n)],
        feats["candidates"][keep],
        feats["reference"],
        values.lengthscale,
        rewards["reward_values"],
        inv_temp=cfg.sample.inv_temp,
        seeds=seeds,
        sums=up.sums.select(keep),  # the value stage's pass (docs/cgm.md §7.2)
        progress=progress,
        **sampler_settings(cfg, n),
    )
    # back to the rows of gan/candidates.h5
    results = [
        dataclasses.replace(r, candidate_index=keep[r.candidate_index]) for r in results
    ]
    outputs = {}
    outputs["guard"] = write_guard(
        paths.stage_file(run_dir, "sample", "guard.json"),
        cfg.sample.min_distance, used, keep, len(cand["x"]),
    )  # fmt: skip
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
    if sc.export:
        outputs |= write_exports(
            run_dir, results, cand, pool, sc.export, with_own=sc.export_with_own
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
        inputs={**up.inputs, **(pool.inputs if pool else {})},
        outputs=outputs,
        started=t0,
        metrics={"parties": summary, "guard_removed": len(cand["x"]) - len(keep)},
    )
    return outputs
