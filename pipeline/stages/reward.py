"""The ``reward`` stage: ρ-Shapley fair reward values (docs/cgm.md §6).

Reads ``value/values.json`` and writes ``reward/rewards.json``: the LP over
(log v*, ρ) when ``reward.rho = "auto"``, else v* for the fixed ρ.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from rewards.cgm.allocation import fixed_rho, solve_rho
from valuation.result import PartyValues

logger = logging.getLogger(__name__)

TABLES = ("data", "gan", "value", "reward")


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Compute every party's reward value r_i = α_i^ρ · v*.

    Args:
        cfg: the run config (reads ``[reward]``).
        run_dir: the run folder.
        progress: unused (the stage takes milliseconds).

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing/stale value stage, a negative Shapley value, or an
            infeasible LP (the message names the conflicting parties).
    """
    r = cfg.reward
    manifest.require(run_dir, "value", ["values"])
    values = PartyValues.from_dict(manifest.read_json(paths.values(run_dir)))
    args = (values.alpha, values.v_single, values.v_stable_lower, values.v_max)
    try:
        if r.rho == "auto":
            allocation = solve_rho(*args, condition=r.condition)
        else:
            allocation = fixed_rho(*args, r.rho, condition=r.condition)
    except ValueError as e:  # InfeasibleRewardError included
        raise UsageError(f"reward: {e}") from e
    t0 = manifest.begin(run_dir, "reward")
    logger.info(
        "rho = %.4f, v* = %.6g, reward values %s",
        allocation.rho,
        allocation.v_star,
        [round(v, 6) for v in allocation.reward_values],
    )
    out = {"rewards": manifest.write_json(paths.rewards(run_dir), allocation.to_dict())}
    manifest.finish(
        run_dir,
        "reward",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed},
        inputs={"values": paths.values(run_dir)},
        outputs=out,
        started=t0,
        metrics={"rho": allocation.rho, "v_star": allocation.v_star},
    )
    return out
