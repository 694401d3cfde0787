"""The ``contract`` stage: optimal contracts, models as rewards (docs/contract.md §4).

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative
Machine Learning" (AAAI 2025). The stage has no upstream and is not part of ``all``.
It solves the first-moment problem for the ``[contract]`` table, recovers the reward
r_i(n) of every type for every outcome n, verifies them (no reward above the joint
model for any n; IR and IC for every type) and writes ``contract/contract.json``,
``menu.png``, ``rewards.png``, ``contributions.png`` and the manifest last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from pipeline import manifest, paths
from pipeline.config import ContractConfig, RunConfig
from pipeline.errors import UsageError
from pipeline.figures.contract import plot_contributions, plot_menu, plot_rewards
from pipeline.figures.save import save_figure
from rewards.contract.accuracy import AccuracyModel
from rewards.contract.recovery import verify_rewards
from rewards.contract.solve import (
    ContractResult,
    contract_report,
    make_accuracy,
    solve_contract,
)

logger = logging.getLogger(__name__)

TABLES = ("contract",)
PLOTS: dict[str, Callable[[ContractResult], Figure]] = {
    "menu": plot_menu,
    "rewards": plot_rewards,
    "contributions": plot_contributions,
}


def _accuracy(c: ContractConfig) -> AccuracyModel:
    """The accuracy model of ``[contract] accuracy``, refused as a UsageError."""
    try:
        if c.accuracy == "sgb":
            return make_accuracy("sgb", a_opt=c.a_opt, k=c.k)
        return make_accuracy(
            "powerlaw", a_max=c.a_max, kappa=c.kappa, exponent=c.exponent
        )
    except ValueError as e:
        keys = "a_opt, k" if c.accuracy == "sgb" else "a_max, kappa, exponent"
        raise UsageError(f"[contract] {keys}: {e}") from e


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Solve the contract of ``[contract]`` and write its files.

    Args:
        cfg: the run config (reads ``[contract]``).
        run_dir: the run folder.
        progress: show the benchmark's progress bar.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on an SGB or power-law curve the accuracy model refuses.
    """
    c = cfg.contract
    accuracy = _accuracy(c)
    t0 = manifest.begin(run_dir, "contract")
    result = solve_contract(
        c.costs,
        c.probs,
        c.n_participants,
        accuracy=accuracy,
        value_scale=c.value_scale,
        constraints=c.constraints,
        objective_scale=c.objective_scale,
        gtol=c.gtol,
        xtol=c.xtol,
        maxiter=c.maxiter,
        complete_info=c.complete_info,
        max_outcomes=c.max_outcomes,
        progress=progress,
    )
    verification = verify_rewards(
        outcomes=result.outcomes,
        weights=result.weights,
        rewards=result.rewards,
        m=result.m,
        costs=result.costs,
        f=result.f,
        accuracy=result.accuracy,
        value_scale=result.value_scale,
    )
    body = {
        "config": cfg.tables(*TABLES)["contract"],
        **contract_report(result, verification),
    }
    if not body["success"]:
        logger.warning(
            "contract not verified (contract.json records success false): solver "
            "success %s (%s); worst check slacks %s; per-outcome verification %s",
            result.solver.success,
            result.solver.message,
            result.checks.worst_slack,
            verification.holds,
        )
    logger.info(
        "m %s, t %s, E[v(a)] %.4f, information cost %s; trust-constr %d iterations "
        "in %.3f s",
        [round(float(v), 3) for v in result.m],
        [round(float(v), 4) for v in result.t],
        result.expected_value,
        body["welfare"]["information_cost"],
        result.solver.iterations,
        result.solver.time_s,
    )
    outputs = {
        "contract": manifest.write_json(
            paths.stage_file(run_dir, "contract", "contract.json"), body
        )
    }
    for name, draw in PLOTS.items():
        path = paths.stage_file(run_dir, "contract", f"{name}.png")
        outputs[name] = save_figure(draw(result), path)
    manifest.finish(
        run_dir,
        "contract",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed},
        inputs={},
        outputs=outputs,
        started=t0,
        metrics={
            "success": body["success"],
            "expected_value": result.expected_value,
            "information_cost": result.information_cost,
            "iterations": result.solver.iterations,
            "solver_time_s": result.solver.time_s,
        },
    )
    return outputs
