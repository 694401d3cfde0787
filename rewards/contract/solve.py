"""Optimal contracts with models as rewards, the library of docs/contract.md.

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative Machine
Learning" (AAAI 2025), as its authors' reference solver computes it. A coordinator
offers a menu (m_i, t_i), "bring m_i data points, receive a model worth t_i in
expectation", to participants with private costs c_1 > … > c_K. `solve_contract`
runs the whole of docs/contract.md §1–§3:

1. reservation utilities f_i and m_i^res (§1, `rewards.contract.primitives`);
2. exact enumeration of n ~ Multinomial(N, p) and the weights W_i(n) (§1);
3. the first-moment problem FM from the pooling start, ``trust-constr`` with analytic
   derivatives, simplified or full constraint set (§2, `rewards.contract.solver`);
4. proportional rewards r_i(n) for every outcome and the checks (§3,
   `rewards.contract.recovery`);
5. the complete-information benchmark and welfare figures (§3,
   `rewards.contract.complete_info`).

Plots live in `pipeline.figures.contract`. Costs that are not strictly decreasing are
refused with a ValueError naming `costs` (never sorted: that would relabel the types).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from data.checks import check_int, check_positive
from rewards.contract.accuracy import (
    AccuracyModel,
    PowerLawAccuracy,
    SGBAccuracy,
    make_accuracy,
)
from rewards.contract.complete_info import CompleteInformation, complete_information
from rewards.contract.primitives import (
    DEFAULT_MAX_OUTCOMES,
    check_types,
    conditional_weights,
    enumerate_outcomes,
    outcome_probabilities,
    pooling_start,
    reservation_utilities,
)
from rewards.contract.recovery import (
    ContractChecks,
    RewardVerification,
    check_contract,
    recover_rewards,
)
from rewards.contract.solver import (
    CONSTRAINT_SETS,
    ConstraintSet,
    FirstMomentSolution,
    max_reward_values,
    solve_first_moment,
)

__all__ = [
    "AccuracyModel",
    "ContractResult",
    "PowerLawAccuracy",
    "SGBAccuracy",
    "binding_chain",
    "contract_report",
    "make_accuracy",
    "solve_contract",
]

logger = logging.getLogger(__name__)


def binding_chain(m: ArrayLike, costs: ArrayLike, f: ArrayLike) -> NDArray[np.float64]:
    """The t pinned by m through IR1 and the binding local IC (docs/contract.md §2).

    t_1 = c_1 m_1 + f_1 and t_{i+1} = t_i + c_{i+1}(m_{i+1} − m_i).

    Args:
        m: (K,) contributions.
        costs: (K,) costs.
        f: (K,) reservation utilities.

    Returns:
        (K,) t.

    Example:
        >>> binding_chain([10.0, 20.0], [2.0, 1.0], [1.0, 0.0]).round(9)  # 21, 21 + 10
        array([21., 31.])
    """
    m = np.asarray(m, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    t = np.empty_like(m)
    t[0] = c[0] * m[0] + float(np.asarray(f)[0])
    for i in range(1, m.size):
        t[i] = t[i - 1] + c[i] * (m[i] - m[i - 1])
    return t


@dataclass(frozen=True, eq=False)
class ContractResult:
    """Everything `contract.json` and the plots need (docs/contract.md §4).

    Per-type arrays have shape (K,); per-outcome arrays list outcomes in the order
    of `outcomes`. Values (t, f, u, …) are in value units v = V·a; ``rewards`` is
    in accuracy units.

    Attributes:
        costs: c.
        probs: p.
        n_participants: N.
        accuracy: the accuracy model a.
        value_scale: V.
        constraints: ``"simplified"`` or ``"full"``.
        outcomes: (n_outcomes, K) type counts n.
        outcome_probs: (n_outcomes,) P(n).
        weights: (K, n_outcomes) W_i(n).
        f: reservation utilities.
        m_res: reservation contributions.
        pooling_found: whether the pooling root m₀ exists (else the fallback start).
        m_start: the solver's starting m.
        t_start: the solver's starting t.
        m: optimal contributions.
        t: optimal promised reward values.
        t_bar: t̄_i(m).
        u: utilities t_i − c_i m_i.
        rent: information rents u_i − f_i.
        rewards: (K, n_outcomes) recovered r_i(n), 0 where n_i = 0.
        expected_value: E^FM = Σ_n P(n)·v(a(n·m)).
        solver: what trust-constr returned.
        checks: the §3 checks on the recovered rewards.
        complete_info: the benchmark, or None when not asked for.
    """

    costs: NDArray[np.float64]
    probs: NDArray[np.float64]
    n_participants: int
    accuracy: AccuracyModel
    value_scale: float
    constraints: str
    outcomes: NDArray[np.int64]
    outcome_probs: NDArray[np.float64]
    weights: NDArray[np.float64]
    f: NDArray[np.float64]
    m_res: NDArray[np.float64]
    pooling_found: bool
    m_start: NDArray[np.float64]
    t_start: NDArray[np.float64]
    m: NDArray[np.float64]
    t: NDArray[np.float64]
    t_bar: NDArray[np.float64]
    u: NDArray[np.float64]
    rent: NDArray[np.float64]
    rewards: NDArray[np.float64]
    expected_value: float
    solver: FirstMomentSolution
    checks: ContractChecks
    complete_info: CompleteInformation | None

    @property
    def n_types(self) -> int:
        """K."""
        return int(self.costs.size)

    @property
    def n_outcomes(self) -> int:
        """The number of enumerated outcomes."""
        return int(self.outcomes.shape[0])

    @property
    def expected_accuracy(self) -> float:
        """E^FM / V, the expected accuracy of the joint model."""
        return self.expected_value / self.value_scale

    @property
    def information_cost(self) -> float | None:
        """E^CI − E^FM, or None without the benchmark."""
        if self.complete_info is None:
            return None
        return self.complete_info.expected_value - self.expected_value

    @property
    def success(self) -> bool:
        """Solver success (scipy and violation ≤ 1e-8) and every check passed."""
        return self.solver.success and self.checks.all_passed

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of `contract.json` apart from the config (§4).

        Returns:
            A dict of plain floats, ints, bools, strings, lists and None.
        """
        ci = self.complete_info
        types = []
        for i in range(self.n_types):
            types.append(
                {
                    "type": i + 1,
                    "cost": float(self.costs[i]),
                    "prob": float(self.probs[i]),
                    "m": float(self.m[i]),
                    "t": float(self.t[i]),
                    "t_bar": float(self.t_bar[i]),
                    "f": float(self.f[i]),
                    "m_res": float(self.m_res[i]),
                    "u": float(self.u[i]),
                    "rent": float(self.rent[i]),
                    "m_ci": None if ci is None else float(ci.m[i]),
                    "u_ci": None if ci is None else float(ci.u[i]),
                }
            )
        solver = self.solver
        return {
            "constraints": self.constraints,
            "accuracy": self.accuracy.to_dict(),
            "value_scale": float(self.value_scale),
            "n_participants": self.n_participants,
            "n_types": self.n_types,
            "n_outcomes": self.n_outcomes,
            "pooling_start": {
                "found": self.pooling_found,
                "m": [float(v) for v in self.m_start],
                "t": [float(v) for v in self.t_start],
            },
            "types": types,
            "expected_value": float(self.expected_value),
            "expected_accuracy": float(self.expected_accuracy),
            "complete_info": None
            if ci is None
            else {
                "expected_value": float(ci.expected_value),
                "t": [float(v) for v in ci.t],
                "m": [float(v) for v in ci.m],
            },
            "information_cost": None
            if self.information_cost is None
            else float(self.information_cost),
            "solver": {
                "name": "trust-constr",
                "success": solver.success,
                "scipy_success": solver.scipy_success,
                "iterations": solver.iterations,
                "constr_violation": solver.constr_violation,
                "optimality": solver.optimality,
                "message": solver.message,
                "time_s": solver.time_s,
            },
            "checks": self.checks.to_dict(),
        }


def solve_contract(
    costs: ArrayLike,
    probs: ArrayLike,
    n_participants: int,
    *,
    accuracy: AccuracyModel | None = None,
    value_scale: float = 100.0,
    constraints: ConstraintSet = "simplified",
    objective_scale: float = 1e6,
    gtol: float = 1e-12,
    xtol: float = 1e-15,
    maxiter: int = 5000,
    complete_info: bool = True,
    max_outcomes: int = DEFAULT_MAX_OUTCOMES,
    m_start: ArrayLike | None = None,
    progress: bool = False,
) -> ContractResult:
    """Solve the optimal contract of docs/contract.md §1–§3 end to end.

    Args:
        costs: (K,) private costs, > 0 and strictly decreasing (type 1 the dearest).
        probs: (K,) priors, > 0, summing to 1 (± 1e-9).
        n_participants: N ≥ 1.
        accuracy: the accuracy model; defaults to ``SGBAccuracy()`` (a_opt = k = 1).
        value_scale: V > 0 in v(r) = V·r.
        constraints: ``"simplified"`` (the authors' set) or ``"full"`` (all-pairs IC).
        objective_scale: S > 0; trust-constr minimises −S·Φ.
        gtol: trust-constr gradient tolerance.
        xtol: trust-constr step tolerance.
        maxiter: trust-constr iteration limit.
        complete_info: also compute the complete-information benchmark.
        max_outcomes: refuse more than this many outcomes.
        m_start: (K,) override of the pooling start; t follows from the IC/IR1 chain.
            Refused where a ≡ 0 for every outcome (e.g. m = 0).
        progress: show a tqdm bar in the benchmark.

    Returns:
        The `ContractResult`; ``result.success`` is False when the solver did not
        converge or a check failed (a warning is logged; the result is kept).

    Raises:
        ValueError: for a bad argument, naming it and the value received.
        TypeError: for an argument of the wrong type.

    Example:
        >>> res = solve_contract([0.02, 0.01], [0.5, 0.5], 2, complete_info=False)
        >>> res.success, res.n_outcomes  # outcomes (0, 2), (1, 1), (2, 0)
        (True, 3)
    """
    c, p = check_types(costs, probs)
    n = check_int("n_participants", n_participants, 1)
    acc = SGBAccuracy() if accuracy is None else accuracy
    if not isinstance(acc, AccuracyModel):
        raise TypeError(f"Argument `accuracy` must be an AccuracyModel, got {acc!r}")
    v_scale = check_positive("value_scale", value_scale)
    s_scale = check_positive("objective_scale", objective_scale)
    g_tol = check_positive("gtol", gtol)
    x_tol = check_positive("xtol", xtol)
    n_iter = check_int("maxiter", maxiter, 1)
    if constraints not in CONSTRAINT_SETS:
        raise ValueError(
            f"Argument `constraints` must be one of {CONSTRAINT_SETS}, "
            f"got {constraints!r}"
        )
    if not isinstance(complete_info, bool):
        raise TypeError(
            f"Argument `complete_info` must be a bool, got {complete_info!r}"
        )

    if m_start is not None:
        m0 = np.asarray(m_start, dtype=np.float64)
        if m0.shape != c.shape or not np.all(np.isfinite(m0)) or np.any(m0 < 0):
            raise ValueError(
                f"Argument `m_start` must be {c.size} finite values ≥ 0, "
                f"got {m_start!r}"
            )

    outcomes = enumerate_outcomes(n, c.size, max_outcomes=max_outcomes)
    probs_n = outcome_probabilities(outcomes, p)
    weights = conditional_weights(outcomes, probs_n)
    f, m_res = reservation_utilities(c, acc, v_scale)

    root = pooling_start(c, f, n, acc, v_scale)
    found = root is not None
    if m_start is None:
        if root is None:
            logger.warning(
                "No pooling contract exists (v(a(N·m)) < c_1·m + f_1 for all m); "
                "starting at m = 2·x0/N"
            )
            root = 2.0 * acc.zero_crossing / n
        m0 = np.full(c.size, root)
    t0 = binding_chain(m0, c, f)

    sol = solve_first_moment(
        costs=c,
        f=f,
        outcomes=outcomes,
        outcome_probs=probs_n,
        weights=weights,
        accuracy=acc,
        value_scale=v_scale,
        m_start=m0,
        t_start=t0,
        constraints=constraints,
        objective_scale=s_scale,
        gtol=g_tol,
        xtol=x_tol,
        maxiter=n_iter,
    )
    t_bar = max_reward_values(sol.m, outcomes, weights, acc, v_scale)
    rewards = recover_rewards(outcomes, sol.m, sol.t, t_bar, acc)
    checks = check_contract(
        outcomes=outcomes,
        weights=weights,
        rewards=rewards,
        m=sol.m,
        t=sol.t,
        costs=c,
        f=f,
        accuracy=acc,
        value_scale=v_scale,
    )
    if not checks.all_passed:
        logger.warning("Contract checks failed: %s", checks.worst_slack)
    u = sol.t - c * sol.m
    ci = (
        complete_information(
            outcomes, probs_n, c, f, m_res, acc, v_scale, progress=progress
        )
        if complete_info
        else None
    )
    return ContractResult(
        costs=c,
        probs=p,
        n_participants=n,
        accuracy=acc,
        value_scale=v_scale,
        constraints=constraints,
        outcomes=outcomes,
        outcome_probs=probs_n,
        weights=weights,
        f=f,
        m_res=m_res,
        pooling_found=found,
        m_start=m0,
        t_start=t0,
        m=sol.m,
        t=sol.t,
        t_bar=t_bar,
        u=u,
        rent=u - f,
        rewards=rewards,
        expected_value=float(v_scale * probs_n @ acc.value(outcomes @ sol.m)),
        solver=sol,
        checks=checks,
        complete_info=ci,
    )


def contract_report(
    result: ContractResult, verification: RewardVerification
) -> dict[str, Any]:
    """The content of ``contract.json`` apart from ``config`` (docs/contract.md §4).

    :meth:`ContractResult.to_dict`, then ``welfare`` (E^FM, E^CI, the information
    cost and rents), ``verification`` and ``success``: the solver converged, every
    check passed and the per-outcome verification holds.

    Args:
        result: the solved contract.
        verification: :func:`rewards.contract.recovery.verify_rewards` of ``result``.

    Returns:
        A JSON-ready dict.
    """
    body = result.to_dict()
    ci = result.complete_info
    body["welfare"] = {
        "expected_value_fm": result.expected_value,
        "expected_value_ci": None if ci is None else ci.expected_value,
        "information_cost": result.information_cost,
        "information_rent": [float(r) for r in result.rent],
    }
    body["verification"] = verification.to_dict()
    body["success"] = result.success and verification.holds
    return body
