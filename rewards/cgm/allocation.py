"""ρ-Shapley fair reward values and the (v*, ρ) LP of docs/cgm.md §6.

Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning via Synthetic
Data Rewards" (AAAI 2022), §4, after Sim et al. (ICML 2020): party i's reward value
is r_i = α_i^ρ · v*, where α_i = φ_i / max_j φ_j is the *normalised Shapley value*
(not the CGSV decay of docs/cgsv.md). With ``reward.rho = "auto"`` the pair
(u = log v*, ρ) solves a two-variable LP that is linear in log space (§6.1); with a
fixed ρ, v* is the largest attainable value (§6.2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog

from data.checks import check_interval, check_positive

logger = logging.getLogger(__name__)

Condition = Literal["stable", "individual"]

# A lower bound ≤ 0 has no logarithm; the reference code and docs/cgm.md §6.1 use 1e-7.
_LOWER_FLOOR = 1e-7
# Weight of ρ in the objective u + 0.001·ρ (docs/cgm.md §6.1).
_RHO_WEIGHT = 1e-3
# r_i is compared with lower_i up to rounding of exp/log at a binding LP constraint.
_VIOLATION_RTOL = 1e-9


class InfeasibleRewardError(ValueError):
    """The LP of docs/cgm.md §6.1 has no solution; the one-line message names the pairs.

    Attributes:
        interval: the closed-form interval (with the pairs that set its ends).
    """

    def __init__(self, message: str, interval: RhoInterval) -> None:
        super().__init__(message)
        self.interval = interval


@dataclass(frozen=True)
class RhoInterval:
    """Closed-form feasible ρ interval of the LP (docs/cgm.md §6.1).

    A pair ``(i, j)`` means "party i's lower bound vs party j's v_max": the
    constraint log lower_i − ρ·log α_i ≤ log v_max_j − ρ·log α_j.

    Attributes:
        rho_lo: ρ_lo = max(0, max over pairs with α_j < α_i).
        rho_hi: ρ_hi = min(1, min over pairs with α_j > α_i).
        lo_pair: the pair that sets ρ_lo, or None when the bound ρ ≥ 0 does.
        hi_pair: the pair that sets ρ_hi, or None when the bound ρ ≤ 1 does.
        equal_alpha_pair: a pair with α_i = α_j (i = j included) and
            lower_i > v_max_j, which no ρ can satisfy; None if there is none.
    """

    rho_lo: float
    rho_hi: float
    lo_pair: tuple[int, int] | None
    hi_pair: tuple[int, int] | None
    equal_alpha_pair: tuple[int, int] | None

    @property
    def feasible(self) -> bool:
        """Whether some ρ ∈ [0, 1] satisfies every constraint."""
        return self.rho_lo <= self.rho_hi and self.equal_alpha_pair is None


@dataclass(frozen=True)
class RewardAllocation:
    """The content of ``reward/rewards.json`` (docs/interface.md, docs/cgm.md §6.2).

    Attributes:
        condition: ``"stable"`` or ``"individual"``: which lower bound was used.
        rho: ρ ∈ [0, 1].
        v_star: v* > 0, the reward value of the top party (α = 1).
        reward_values: r_i = α_i^ρ · v*, one per party.
        lower_bound: the condition's lower bounds (v(C_i) or v(D_i)), as given.
        v_max: v(D_i ⊎ G), the attainable bounds.
        rho_interval: (ρ_lo, ρ_hi) of the closed form.
        violations: one string per party whose r_i is below its lower bound.
    """

    condition: str
    rho: float
    v_star: float
    reward_values: tuple[float, ...]
    lower_bound: tuple[float, ...]
    v_max: tuple[float, ...]
    rho_interval: tuple[float, float]
    violations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form with the keys of ``rewards.json``."""
        return {
            "condition": self.condition,
            "rho": self.rho,
            "v_star": self.v_star,
            "reward_values": list(self.reward_values),
            "lower_bound": list(self.lower_bound),
            "v_max": list(self.v_max),
            "rho_interval": list(self.rho_interval),
            "violations": list(self.violations),
        }


def reward_values(alpha: ArrayLike, rho: float, v_star: float) -> NDArray[np.float64]:
    """ρ-Shapley fair reward values r_i = α_i^ρ · v* (docs/cgm.md §6).

    Args:
        alpha: (N,) normalised Shapley values α_i = φ_i / max φ, in (0, 1].
        rho: ρ ∈ [0, 1].
        v_star: v* > 0.

    Returns:
        (N,) float64 reward values.

    Raises:
        ValueError: if an α_i is not in (0, 1], ρ is not in [0, 1] or v* is not > 0.

    Example:
        >>> reward_values([1.0, 0.25], 0.5, 2.0).round(9)  # 0.25^0.5 · 2 = 1
        array([2., 1.])
    """
    a = _alpha_vector(alpha)
    rho = check_interval("rho", rho, 0, 1)
    v_star = check_positive("v_star", v_star)
    return a**rho * v_star


def rho_interval(alpha: ArrayLike, lower: ArrayLike, v_max: ArrayLike) -> RhoInterval:
    """Closed-form feasible interval [ρ_lo, ρ_hi] of the LP, with its binding pairs.

    Over all pairs (i, j) the constraint is ρ·(log α_j − log α_i) ≤ log v_max_j −
    log lower_i (docs/cgm.md §6.1). Lower bounds ≤ 0 are replaced by 1e-7 as in the LP.

    Args:
        alpha: (N,) α_i ∈ (0, 1].
        lower: (N,) lower bounds (v(C_i) or v(D_i)).
        v_max: (N,) attainable bounds v(D_i ⊎ G) > 0.

    Returns:
        The interval and the pairs that set its ends.

    Raises:
        ValueError: on bad shapes or values (see `solve_rho`).

    Example:
        >>> iv = rho_interval([1.0, 0.25], [0.3, 0.5], [1.0, 0.5])
        >>> round(iv.rho_hi, 12), iv.hi_pair  # log(1/0.5) / log(1/0.25) = 1/2
        (0.5, (1, 0))
    """
    a, low, vmax = _check_inputs(alpha, lower, v_max)
    return _interval(*_logs(a, low, vmax))


def solve_rho(
    alpha: ArrayLike,
    v_single: ArrayLike,
    v_stable_lower: ArrayLike,
    v_max: ArrayLike,
    *,
    condition: Condition = "stable",
) -> RewardAllocation:
    """Solve the (u = log v*, ρ) LP of docs/cgm.md §6.1 with HiGHS.

    maximise u + 0.001·ρ subject to log lower_i ≤ u + ρ·log α_i ≤ log v_max_i for
    every party i and 0 ≤ ρ ≤ 1; then v* = e^u and r_i = α_i^ρ·v*. A lower bound
    ≤ 0 is replaced by 1e-7 so that its log exists.

    Args:
        alpha: (N,) α_i = φ_i / max φ in (0, 1] (normalised Shapley values).
        v_single: (N,) v(D_i), the lower bounds of ``"individual"``.
        v_stable_lower: (N,) v(C_i), the lower bounds of ``"stable"``.
        v_max: (N,) v(D_i ⊎ G) > 0.
        condition: which incentive condition gives the lower bounds.

    Returns:
        The allocation (ρ, v*, r and the closed-form interval).

    Raises:
        ValueError: on a bad condition, shapes or non-finite values, or any
            α_i ≤ 0 or v_max_i ≤ 0 (checked before solving, naming the party).
        InfeasibleRewardError: if no (u, ρ) satisfies the constraints.
        RuntimeError: if HiGHS fails for another reason.

    Example:
        >>> res = solve_rho([1.0, 0.25], [0.2, 0.1], [0.3, 0.5], [1.0, 0.5])
        >>> round(res.rho, 9), round(res.v_star, 9)  # ρ = log 2 / log 4, v* = 1
        (0.5, 1.0)
    """
    lower = _lower_for(condition, v_single, v_stable_lower)
    a, low, vmax = _check_inputs(alpha, lower, v_max)
    la, ll, lv = _logs(a, low, vmax)
    interval = _interval(la, ll, lv)
    n = a.shape[0]
    # Rows 0..N-1: u + ρ·log α_i ≤ log v_max_i;
    # rows N..2N-1: −u − ρ·log α_i ≤ −log lower_i.
    a_ub = np.concatenate(
        [np.column_stack([np.ones(n), la]), -np.column_stack([np.ones(n), la])]
    )
    b_ub = np.concatenate([lv, -ll])
    res = linprog(
        c=np.array([-1.0, -_RHO_WEIGHT]),
        A_ub=a_ub,
        b_ub=b_ub,
        bounds=[(None, None), (0.0, 1.0)],
        method="highs",
    )
    if res.status == 2:
        raise InfeasibleRewardError(_infeasible_message(interval, condition), interval)
    if res.status != 0:
        raise RuntimeError(
            f"linprog(method='highs') failed: status {res.status}, {res.message}"
        )
    u, rho = float(res.x[0]), float(np.clip(res.x[1], 0.0, 1.0))
    return _allocation(condition, rho, math.exp(u), a, low, vmax, interval)


def fixed_rho(
    alpha: ArrayLike,
    v_single: ArrayLike,
    v_stable_lower: ArrayLike,
    v_max: ArrayLike,
    rho: float,
    *,
    condition: Condition = "stable",
) -> RewardAllocation:
    """Rewards for a fixed ρ (docs/cgm.md §6.2): v* = min_i v_max_i / α_i^ρ.

    v* is the largest value that keeps every r_i = α_i^ρ·v* attainable. Parties
    whose lower bound then fails are listed in ``violations`` and in a warning;
    this is not an error (ρ sweeps must run).

    Args:
        alpha: (N,) α_i = φ_i / max φ in (0, 1] (normalised Shapley values).
        v_single: (N,) v(D_i).
        v_stable_lower: (N,) v(C_i).
        v_max: (N,) v(D_i ⊎ G) > 0.
        rho: ρ ∈ [0, 1].
        condition: which lower bound the violations are checked against.

    Returns:
        The allocation.

    Raises:
        ValueError: on a bad ρ, condition, shapes or values (see `solve_rho`).

    Example:
        >>> res = fixed_rho([1.0, 0.25], [0.1, 0.1], [0.2, 0.2], [1.0, 0.5], 0.5)
        >>> round(res.v_star, 9), [round(r, 9) for r in res.reward_values]
        (1.0, [1.0, 0.5])
    """
    rho = check_interval("rho", rho, 0, 1)
    lower = _lower_for(condition, v_single, v_stable_lower)
    a, low, vmax = _check_inputs(alpha, lower, v_max)
    v_star = float(np.min(vmax / a**rho))
    result = _allocation(
        condition, rho, v_star, a, low, vmax, _interval(*_logs(a, low, vmax))
    )
    violations = result.violations
    if violations:
        logger.warning(
            "fixed rho = %s violates the %s lower bound of %d part%s: %s",
            rho,
            condition,
            len(violations),
            "y" if len(violations) == 1 else "ies",
            "; ".join(violations),
        )
    return result


def _logs(a: NDArray, low: NDArray, vmax: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Logs of α, of lower (a bound ≤ 0 floored at 1e-7) and of v_max (§6.1)."""
    return np.log(a), np.log(np.maximum(low, _LOWER_FLOOR)), np.log(vmax)


def _allocation(
    condition: str,
    rho: float,
    v_star: float,
    a: NDArray,
    low: NDArray,
    vmax: NDArray,
    interval: RhoInterval,
) -> RewardAllocation:
    """r_i = α_i^ρ·v* and the violations of the condition's lower bounds (§6)."""
    r = a**rho * v_star
    return RewardAllocation(
        condition=condition,
        rho=rho,
        v_star=v_star,
        reward_values=tuple(float(x) for x in r),
        lower_bound=tuple(float(x) for x in low),
        v_max=tuple(float(x) for x in vmax),
        rho_interval=(interval.rho_lo, interval.rho_hi),
        violations=_violations(r, low, condition),
    )


def _interval(la: NDArray, ll: NDArray, lv: NDArray) -> RhoInterval:
    """Closed form over the pair matrix; element (i, j) is lower_i vs v_max_j."""
    diff = la[None, :] - la[:, None]  # log α_j − log α_i
    num = lv[None, :] - ll[:, None]  # log v_max_j − log lower_i
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = num / diff
    hi_vals = np.where(diff > 0, ratio, np.inf)
    lo_vals = np.where(diff < 0, ratio, -np.inf)
    rho_hi, hi_pair = 1.0, None
    if hi_vals.min() < 1.0:
        i, j = np.unravel_index(np.argmin(hi_vals), hi_vals.shape)
        rho_hi, hi_pair = float(hi_vals[i, j]), (int(i), int(j))
    rho_lo, lo_pair = 0.0, None
    if lo_vals.max() > 0.0:
        i, j = np.unravel_index(np.argmax(lo_vals), lo_vals.shape)
        rho_lo, lo_pair = float(lo_vals[i, j]), (int(i), int(j))
    bad_equal = np.argwhere((diff == 0) & (num < 0))
    equal_pair = None
    if bad_equal.size:
        equal_pair = (int(bad_equal[0, 0]), int(bad_equal[0, 1]))
    return RhoInterval(rho_lo, rho_hi, lo_pair, hi_pair, equal_pair)


def _infeasible_message(iv: RhoInterval, condition: str) -> str:
    fix = "enlarge the candidate pool (gan.n_candidates) to raise v_max"
    if condition == "stable":
        fix += ', or use the weaker condition "individual"'
    if iv.equal_alpha_pair is not None and iv.rho_lo <= iv.rho_hi:
        i, j = iv.equal_alpha_pair
        whose = "its own v_max" if i == j else f"party {j}'s v_max (equal α)"
        return (
            f"LP infeasible: party {i}'s lower bound exceeds {whose} for every ρ; {fix}"
        )
    if iv.rho_lo <= iv.rho_hi:
        lo, hi = iv.rho_lo, iv.rho_hi
        return f"LP infeasible (HiGHS) although ρ ∈ [{lo:.4g}, {hi:.4g}]; {fix}"

    def _why(pair: tuple[int, int] | None, bound: str) -> str:
        if pair is None:
            return f"(the bound {bound})"
        return f"(party {pair[0]}'s lower bound vs party {pair[1]}'s v_max)"

    return (
        f"LP infeasible: ρ ≥ {iv.rho_lo:.4g} {_why(iv.lo_pair, 'ρ ≥ 0')} but "
        f"ρ ≤ {iv.rho_hi:.4g} {_why(iv.hi_pair, 'ρ ≤ 1')}; {fix}"
    )


def _violations(r: NDArray, low: NDArray, condition: str) -> tuple[str, ...]:
    name = "v(C_i)" if condition == "stable" else "v(D_i)"
    return tuple(
        f"party {i}: r = {r[i]:.6g} < {name} = {low[i]:.6g}"
        for i in range(r.shape[0])
        if r[i] < low[i] - _VIOLATION_RTOL * abs(low[i])
    )


def _lower_for(
    condition: str, v_single: ArrayLike, v_stable_lower: ArrayLike
) -> NDArray[np.float64]:
    if condition not in ("stable", "individual"):
        raise ValueError(
            f"Argument `condition` must be 'stable' or 'individual', got {condition!r}"
        )
    single = _vector("v_single", v_single)
    stable = _vector("v_stable_lower", v_stable_lower)
    if single.shape != stable.shape:
        raise ValueError(
            "Arguments `v_single` and `v_stable_lower` must have one entry per party, "
            f"got lengths {single.shape[0]} and {stable.shape[0]}"
        )
    return stable if condition == "stable" else single


def _vector(name: str, x: ArrayLike) -> NDArray[np.float64]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Argument `{name}` must be a vector of numbers, got {x!r}"
        ) from e
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty 1-D vector, got shape {arr.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"Argument `{name}` must be finite, got {arr[i]!r} for party {i}"
        )
    return arr


def _alpha_vector(alpha: ArrayLike) -> NDArray[np.float64]:
    a = _vector("alpha", alpha)
    for i, ai in enumerate(a):
        if not 0.0 < ai <= 1.0:
            raise ValueError(
                "Argument `alpha` must lie in (0, 1] (α = φ / max φ; a negative "
                f"Shapley value cannot enter the LP), got {ai!r} for party {i}"
            )
    return a


def _check_inputs(
    alpha: ArrayLike, lower: ArrayLike, v_max: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    a = _alpha_vector(alpha)
    low = _vector("lower", lower)
    vmax = _vector("v_max", v_max)
    if not a.shape == low.shape == vmax.shape:
        raise ValueError(
            "Arguments `alpha`, lower bounds and `v_max` must have one entry per "
            f"party, got lengths {a.shape[0]}, {low.shape[0]} and {vmax.shape[0]}"
        )
    for i, vi in enumerate(vmax):
        if not vi > 0:
            raise ValueError(f"Argument `v_max` must be > 0, got {vi!r} for party {i}")
    return a, low, vmax


__all__ = [
    "InfeasibleRewardError",
    "RewardAllocation",
    "RhoInterval",
    "fixed_rho",
    "reward_values",
    "rho_interval",
    "solve_rho",
]
