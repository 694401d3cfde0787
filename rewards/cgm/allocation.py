"""ρ-Shapley fair reward values and the (v*, ρ) LP of docs/cgm.md §6.

Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning via Synthetic
Data Rewards" (AAAI 2022), §4, after Sim et al. (ICML 2020): party i's reward value
is r_i = α_i^ρ · v*, where α_i = φ_i / max_j φ_j is the *normalised Shapley value*
(not the CGSV decay of docs/cgsv.md). With ``reward.rho = "auto"`` the pair
(u = log v*, ρ) solves a two-variable LP that is linear in log space (§6.1); with a
fixed ρ, v* is the largest attainable value (§6.2). :func:`allocate` applies the
rule for parties with φ_i ≤ 0 (§6.4): they are left out of the LP and keep v(D_i).
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
Nonpositive = Literal["exclude", "fail"]

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
        excluded: parties with α_i ≤ 0, left out of the LP; their r_i is v(D_i)
            (docs/cgm.md §6.4). Written to JSON only when not empty.
    """

    condition: str
    rho: float
    v_star: float
    reward_values: tuple[float, ...]
    lower_bound: tuple[float, ...]
    v_max: tuple[float, ...]
    rho_interval: tuple[float, float]
    violations: tuple[str, ...]
    excluded: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form with the keys of ``rewards.json``."""
        out = {
            "condition": self.condition,
            "rho": self.rho,
            "v_star": self.v_star,
            "reward_values": list(self.reward_values),
            "lower_bound": list(self.lower_bound),
            "v_max": list(self.v_max),
            "rho_interval": list(self.rho_interval),
            "violations": list(self.violations),
        }
        if self.excluded:
            out["excluded"] = list(self.excluded)
        return out


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


def allocate(
    alpha: ArrayLike,
    v_single: ArrayLike,
    v_stable_lower: ArrayLike,
    v_max: ArrayLike,
    *,
    rho: float | Literal["auto"] = "auto",
    condition: Condition = "stable",
    nonpositive: Nonpositive = "exclude",
) -> RewardAllocation:
    """Reward values of every party, with the rule for α_i ≤ 0 (docs/cgm.md §6.4).

    With ``nonpositive="exclude"`` a party with α_i ≤ 0 (φ_i ≤ 0) gets r_i = v(D_i)
    (no synthetic reward) and is left out of the LP (or of v* for a fixed ρ), which
    runs on the others with their α unchanged (α = φ / max φ is defined while
    max φ > 0). With ``"fail"``, or when no α_i ≤ 0, this is `solve_rho` (``rho =
    "auto"``) or `fixed_rho` on all parties.

    Args:
        alpha: (N,) α_i = φ_i / max φ, at most 1.
        v_single: (N,) v(D_i).
        v_stable_lower: (N,) v(C_i).
        v_max: (N,) v(D_i ⊎ G).
        rho: ``"auto"`` (the LP of §6.1) or a fixed ρ ∈ [0, 1] (§6.2).
        condition: which incentive condition gives the lower bounds.
        nonpositive: ``"exclude"`` or ``"fail"`` (α_i ≤ 0 is then a ValueError).

    Returns:
        The allocation over all N parties; ``excluded`` lists the parties left out,
        and party numbers in messages and ``violations`` are the original ones.

    Raises:
        ValueError: on a bad option, no α_i > 0, an α_i ≤ 0 under ``"fail"``, or the
            errors of `solve_rho` / `fixed_rho`.
        InfeasibleRewardError: if the LP over the included parties has no solution.

    Example:
        >>> res = allocate([1.0, -0.5, 0.25], [0.2, 0.05, 0.1], [0.3, 0.05, 0.5],
        ...                [1.0, 0.4, 0.5])
        >>> res.excluded, round(res.rho, 9), [round(r, 9) for r in res.reward_values]
        ((1,), 0.5, [1.0, 0.05, 0.5])
    """
    if nonpositive not in ("exclude", "fail"):
        raise ValueError(
            f"Argument `nonpositive` must be 'exclude' or 'fail', got {nonpositive!r}"
        )
    a = _vector("alpha", alpha)
    keep = np.flatnonzero(a > 0)
    if nonpositive == "fail" or keep.size == a.shape[0]:
        if rho == "auto":
            return solve_rho(
                alpha, v_single, v_stable_lower, v_max, condition=condition
            )
        return fixed_rho(
            alpha, v_single, v_stable_lower, v_max, rho, condition=condition
        )
    if keep.size == 0:
        raise ValueError(
            f"Argument `alpha` has no entry > 0 (got {a.tolist()!r}): no party has a "
            "positive Shapley value"
        )
    single = _vector("v_single", v_single)
    stable = _vector("v_stable_lower", v_stable_lower)
    vmax = _vector("v_max", v_max)
    if not a.shape == single.shape == stable.shape == vmax.shape:
        raise ValueError(
            "Arguments `alpha`, `v_single`, `v_stable_lower` and `v_max` must have "
            f"one entry per party, got lengths {a.shape[0]}, {single.shape[0]}, "
            f"{stable.shape[0]} and {vmax.shape[0]}"
        )
    sub = (a[keep], single[keep], stable[keep], vmax[keep])
    try:
        if rho == "auto":
            part = solve_rho(*sub, condition=condition)
        else:
            part = fixed_rho(*sub, rho, condition=condition)
    except InfeasibleRewardError as e:
        iv = _remap(e.interval, keep)
        raise InfeasibleRewardError(_infeasible_message(iv, condition), iv) from e
    r = single.copy()
    r[keep] = part.reward_values
    low = stable if condition == "stable" else single
    return RewardAllocation(
        condition=condition,
        rho=part.rho,
        v_star=part.v_star,
        reward_values=tuple(float(x) for x in r),
        lower_bound=tuple(float(x) for x in low),
        v_max=tuple(float(x) for x in vmax),
        rho_interval=part.rho_interval,
        violations=_violations(
            np.asarray(part.reward_values), low[keep], condition, keep
        ),
        excluded=tuple(int(i) for i in np.flatnonzero(a <= 0)),
    )


def _remap(iv: RhoInterval, ids: NDArray) -> RhoInterval:
    """The interval with its pairs renumbered from the included parties to all."""

    def pair(p: tuple[int, int] | None) -> tuple[int, int] | None:
        return None if p is None else (int(ids[p[0]]), int(ids[p[1]]))

    return RhoInterval(
        iv.rho_lo,
        iv.rho_hi,
        pair(iv.lo_pair),
        pair(iv.hi_pair),
        pair(iv.equal_alpha_pair),
    )


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


def _violations(
    r: NDArray, low: NDArray, condition: str, ids: NDArray | None = None
) -> tuple[str, ...]:
    name = "v(C_i)" if condition == "stable" else "v(D_i)"
    ids = np.arange(r.shape[0]) if ids is None else ids
    return tuple(
        f"party {ids[k]}: r = {r[k]:.6g} < {name} = {low[k]:.6g}"
        for k in range(r.shape[0])
        if r[k] < low[k] - _VIOLATION_RTOL * abs(low[k])
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
    "Nonpositive",
    "RewardAllocation",
    "RhoInterval",
    "allocate",
    "fixed_rho",
    "reward_values",
    "rho_interval",
    "solve_rho",
]
