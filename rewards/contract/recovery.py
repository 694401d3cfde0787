"""From first moments to rewards, and the checks of docs/contract.md §3.

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative Machine
Learning" (AAAI 2025). Proportional assignment: for every outcome n with n_i ≥ 1 a
type-i participant receives a model of accuracy r_i(n) = (t_i/t̄_i)·a(n·m), e.g. the
joint model degraded to that accuracy. Then E_{W_i}[v(r_i)] = t_i, so IR and IC carry
over from FM to the original problem (P).

The checks are computed from the recovered r_i(n) over all outcomes, never from t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rewards.contract.accuracy import AccuracyModel

__all__ = [
    "ContractChecks",
    "RewardVerification",
    "check_contract",
    "recover_rewards",
    "reward_expectations",
    "verify_rewards",
]

CHECK_NAMES: tuple[str, ...] = ("feasible", "first_moment", "ir", "ic", "monotone")


def recover_rewards(
    outcomes: NDArray,
    m: NDArray,
    t: NDArray,
    t_bar: NDArray,
    accuracy: AccuracyModel,
) -> NDArray[np.float64]:
    """Proportional rewards r_i(n) = (t_i/t̄_i)·a(n·m) (docs/contract.md §3).

    The ratio is clipped to [0, 1]: a reward can never beat the joint model, even when
    the solver leaves t_i a rounding error above t̄_i (the first-moment check still
    measures any such gap). r_i(n) = 0 where n_i = 0 or t̄_i = 0.

    Args:
        outcomes: (n_outcomes, K) type counts.
        m: (K,) contributions.
        t: (K,) promised expected reward values.
        t_bar: (K,) t̄_i(m).
        accuracy: the accuracy model a.

    Returns:
        (K, n_outcomes) float64 accuracies r_i(n).

    Example:
        >>> from rewards.contract.accuracy import PowerLawAccuracy
        >>> acc = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)
        >>> r = recover_rewards(np.array([[1, 1]]), np.array([100.0, 300.0]),
        ...                     np.array([25.0, 50.0]), np.array([50.0, 50.0]), acc)
        >>> r.round(9)
        array([[0.25],
               [0.5 ]])
    """
    t_bar = np.asarray(t_bar, dtype=np.float64)
    safe = np.where(t_bar > 0, t_bar, 1.0)
    ratio = np.where(t_bar > 0, np.clip(np.asarray(t) / safe, 0.0, 1.0), 0.0)
    joint = accuracy.value(outcomes @ m)  # (n_outcomes,)
    present = (outcomes >= 1).T  # (K, n_outcomes)
    return np.where(present, ratio[:, None] * joint[None, :], 0.0)


def reward_expectations(
    rewards: NDArray, weights: NDArray, value_scale: float
) -> NDArray[np.float64]:
    """E_{W_i}[v(r_i)] = Σ_n W_i(n)·V·r_i(n), one value per type.

    Args:
        rewards: (K, n_outcomes) r_i(n).
        weights: (K, n_outcomes) W_i(n).
        value_scale: V.

    Returns:
        (K,) expected reward values.

    Example:
        >>> w = np.array([[0.5, 0.5]])
        >>> reward_expectations(np.array([[0.2, 0.4]]), w, 100.0).round(9)
        array([30.])
    """
    return value_scale * np.sum(weights * rewards, axis=1)


@dataclass(frozen=True)
class ContractChecks:
    """The five checks of docs/contract.md §3 and their worst slacks.

    A slack ≥ 0 means the check holds exactly; a check passes when its worst slack is
    ≥ −tolerance (tolerance 1e-6·V, in value units; for monotonicity of m, in data
    points).

    Attributes:
        feasible: 0 ≤ v(r_i(n)) ≤ v(a(n·m)) for every n and every i with n_i ≥ 1.
        first_moment: |E_{W_i}[v(r_i)] − t_i| ≤ tolerance.
        ir: E_{W_i}[v(r_i)] − c_i m_i ≥ f_i − tolerance.
        ic: for all ordered pairs (i, j), type i prefers its own contract.
        monotone: m and t non-decreasing in the type index.
        worst_slack: name → worst slack of that check.
        tolerance: the tolerance used.
    """

    feasible: bool
    first_moment: bool
    ir: bool
    ic: bool
    monotone: bool
    worst_slack: dict[str, float]
    tolerance: float

    @property
    def all_passed(self) -> bool:
        """True when every check passes."""
        return all(getattr(self, name) for name in CHECK_NAMES)

    def to_dict(self) -> dict[str, object]:
        """The checks as a JSON-ready dict, with ``worst_slack`` and ``tolerance``."""
        out: dict[str, object] = {
            name: bool(getattr(self, name)) for name in CHECK_NAMES
        }
        out["worst_slack"] = {k: float(v) for k, v in self.worst_slack.items()}
        out["tolerance"] = float(self.tolerance)
        return out


def _reward_values(
    outcomes: NDArray,
    weights: NDArray,
    rewards: NDArray,
    m: NDArray,
    costs: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """What both §3 checks read off the recovered rewards.

    Returns:
        ``(present, joint, values, expect, mimic)``: the (K, n_outcomes) mask n_i ≥ 1,
        the (1, n_outcomes) v(a(n·m)), the (K, n_outcomes) v(r_i(n)), the (K,)
        E_{W_i}[v(r_i)] and the (K, K) ``mimic[i, j]`` = E_{W_j}[v(r_j)] − c_i m_j,
        type i's utility from contract j.
    """
    present = (np.asarray(outcomes) >= 1).T
    joint = value_scale * accuracy.value(outcomes @ m)[None, :]
    values = value_scale * rewards
    expect = reward_expectations(rewards, weights, value_scale)
    mimic = expect[None, :] - costs[:, None] * m[None, :]
    return present, joint, values, expect, mimic


def check_contract(
    *,
    outcomes: NDArray,
    weights: NDArray,
    rewards: NDArray,
    m: NDArray,
    t: NDArray,
    costs: NDArray,
    f: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
    tolerance: float | None = None,
) -> ContractChecks:
    """Run the checks of docs/contract.md §3 on the recovered rewards.

    Args:
        outcomes: (n_outcomes, K) type counts.
        weights: (K, n_outcomes) W_i(n).
        rewards: (K, n_outcomes) recovered r_i(n).
        m: (K,) contributions.
        t: (K,) promised expected reward values.
        costs: (K,) costs.
        f: (K,) reservation utilities.
        accuracy: the accuracy model a.
        value_scale: V.
        tolerance: defaults to 1e-6·V (docs/contract.md §3).

    Returns:
        The `ContractChecks`.
    """
    tol = 1e-6 * value_scale if tolerance is None else float(tolerance)
    present, joint, values, expect, mimic = _reward_values(
        outcomes, weights, rewards, m, costs, accuracy, value_scale
    )
    feasible = np.where(present, np.minimum(values, joint - values), np.inf)
    own = np.diag(mimic)
    off = ~np.eye(costs.size, dtype=bool)
    slack = {
        "feasible": float(feasible.min()),
        "first_moment": float(-np.max(np.abs(expect - t))),
        "ir": float(np.min(own - f)),
        "ic": float(np.min((own[:, None] - mimic)[off])),
        "monotone": float(min(np.diff(m).min(), np.diff(t).min())),
    }
    passed = {name: slack[name] >= -tol for name in CHECK_NAMES}
    return ContractChecks(**passed, worst_slack=slack, tolerance=tol)


@dataclass(frozen=True)
class RewardVerification:
    """Per-outcome and per-type view of the §3 checks, as the stage records it.

    Attributes:
        n_outcomes: outcomes n checked (all enumerated ones).
        n_rewards: pairs (i, n) with n_i ≥ 1, i.e. rewards actually handed out.
        n_above_joint: pairs with v(r_i(n)) > v(a(n·m)) + tolerance.
        n_negative: pairs with v(r_i(n)) < −tolerance.
        max_excess: max over pairs of v(r_i(n)) − v(a(n·m)); ≤ 0 when no reward beats
            the joint model.
        expected_values: (K,) E_{W_i}[v(r_i)] from the recovered rewards.
        ir_slack: (K,) E_{W_i}[v(r_i)] − c_i m_i − f_i.
        ic_slack: (K,) min over j ≠ i of type i's gain from its own contract over
            contract j.
        tolerance: 1e-6·V unless given.
    """

    n_outcomes: int
    n_rewards: int
    n_above_joint: int
    n_negative: int
    max_excess: float
    expected_values: NDArray[np.float64]
    ir_slack: NDArray[np.float64]
    ic_slack: NDArray[np.float64]
    tolerance: float

    @property
    def holds(self) -> bool:
        """No reward above the joint model or below 0, and IR/IC for every type."""
        tol = self.tolerance
        return (
            self.n_above_joint == 0
            and self.n_negative == 0
            and bool(np.all(self.ir_slack >= -tol))
            and bool(np.all(self.ic_slack >= -tol))
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (lists of floats, ints, a bool)."""
        return {
            "holds": self.holds,
            "n_outcomes": self.n_outcomes,
            "n_rewards": self.n_rewards,
            "n_above_joint": self.n_above_joint,
            "n_negative": self.n_negative,
            "max_excess": float(self.max_excess),
            "expected_values": [float(v) for v in self.expected_values],
            "ir_slack": [float(v) for v in self.ir_slack],
            "ic_slack": [float(v) for v in self.ic_slack],
            "tolerance": float(self.tolerance),
        }


def verify_rewards(
    *,
    outcomes: NDArray,
    weights: NDArray,
    rewards: NDArray,
    m: NDArray,
    costs: NDArray,
    f: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
    tolerance: float | None = None,
) -> RewardVerification:
    """Count, outcome by outcome, rewards above the joint model; IR/IC per type (§3).

    Everything is computed from the recovered r_i(n), never from t: this is the
    stage's own record that (P)'s feasibility holds for every outcome n and IR and
    IC hold for every type.

    Args:
        outcomes: (n_outcomes, K) type counts.
        weights: (K, n_outcomes) W_i(n).
        rewards: (K, n_outcomes) recovered r_i(n).
        m: (K,) contributions.
        costs: (K,) costs.
        f: (K,) reservation utilities.
        accuracy: the accuracy model a.
        value_scale: V.
        tolerance: defaults to 1e-6·V (docs/contract.md §3).

    Returns:
        The `RewardVerification`.

    Example:
        >>> from rewards.contract.accuracy import PowerLawAccuracy
        >>> acc = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)
        >>> out = np.array([[1, 1]])
        >>> r = np.array([[0.25], [0.5]])  # joint model a(400) = 0.5
        >>> v = verify_rewards(outcomes=out, weights=np.ones((2, 1)), rewards=r,
        ...     m=np.array([100.0, 300.0]), costs=np.array([0.1, 0.05]),
        ...     f=np.zeros(2), accuracy=acc, value_scale=100.0)
        >>> v.n_rewards, v.n_above_joint, round(v.max_excess, 9)
        (2, 0, 0.0)
        >>> v.ir_slack.round(9).tolist()
        [15.0, 35.0]
    """
    tol = 1e-6 * value_scale if tolerance is None else float(tolerance)
    present, joint, values, expect, mimic = _reward_values(
        outcomes, weights, rewards, m, costs, accuracy, value_scale
    )
    excess = np.where(present, values - joint, -np.inf)
    own = np.diag(mimic)
    gain = np.where(np.eye(costs.size, dtype=bool), np.inf, own[:, None] - mimic)
    return RewardVerification(
        n_outcomes=int(present.shape[1]),
        n_rewards=int(present.sum()),
        n_above_joint=int(np.sum(present & (values - joint > tol))),
        n_negative=int(np.sum(present & (values < -tol))),
        max_excess=float(excess.max()),
        expected_values=expect,
        ir_slack=own - f,
        ic_slack=gain.min(axis=1),
        tolerance=tol,
    )
