"""The ``reward`` stage: ρ-Shapley fair reward values (docs/cgm.md §6).

Reads ``value/values.json`` and writes ``reward/rewards.json``: the LP over
(log v*, ρ) when ``reward.rho = "auto"``, else v* for the fixed ρ. A party with
φ_i ≤ 0 is excluded or stops the run, as ``reward.nonpositive`` says (§6.4).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from rewards.cgm.allocation import allocate
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
        UsageError: on a missing/stale value stage, no party with a positive
            Shapley value, a Shapley value ≤ 0 under ``reward.nonpositive =
            "fail"``, or an infeasible LP (the message names the parties).
    """
    r = cfg.reward
    manifest.require(run_dir, "value", ["values"])
    values = PartyValues.from_dict(manifest.read_json(paths.values(run_dir)))
    _check_nonpositive(values.shapley, r.nonpositive)
    try:
        allocation = allocate(
            values.alpha,
            values.v_single,
            values.v_stable_lower,
            values.v_max,
            rho=r.rho,
            condition=r.condition,
            nonpositive=r.nonpositive,
        )
    except ValueError as e:  # InfeasibleRewardError included
        raise UsageError(f"reward: {e}") from e
    for i in allocation.excluded:
        logger.warning(
            "party %d has Shapley value %.6g <= 0: no synthetic reward, its reward "
            'value is its own v(D_%d) = %.6g (reward.nonpositive = "exclude"; '
            "docs/cgm.md §6.4)",
            i,
            values.shapley[i],
            i,
            values.v_single[i],
        )
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


def _check_nonpositive(shapley: tuple[float, ...], rule: str) -> None:
    """Refuse max φ ≤ 0 always, and any φ_i ≤ 0 under ``"fail"`` (docs/cgm.md §6.4)."""
    if max(shapley) <= 0:
        raise UsageError(
            f"reward: no party has a positive Shapley value (shapley = "
            f"{[round(p, 6) for p in shapley]}), so alpha = shapley / max(shapley) "
            "is undefined and no party can be rewarded; check that the parties' "
            'data resemble the candidates, and use value.lengthscale = "auto" '
            "or a larger lengthscale"
        )
    bad = [i for i, p in enumerate(shapley) if p <= 0]
    if bad and rule == "fail":
        i = bad[0]
        raise UsageError(
            f"reward: party {i} has Shapley value {shapley[i]:.6g} <= 0 and "
            'reward.nonpositive = "fail"; set reward.nonpositive = "exclude" to '
            "give such parties no synthetic reward (docs/cgm.md §6.4)"
        )
