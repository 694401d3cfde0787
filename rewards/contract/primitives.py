"""Primitives of the contract problem: types, outcomes, weights, reservation (§1).

docs/contract.md §1, after Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract
Design for Collaborative Machine Learning" (AAAI 2025):

- the type counts n ~ Multinomial(N, p), enumerated exactly over all C(N+K−1, K−1)
  compositions of N into K parts, with P(n) from log-factorials;
- the conditional weights W_i(n) = P(n)·1[n_i ≥ 1] / Σ_{n': n'_i ≥ 1} P(n');
- the reservation utility f_i = max(0, max_m [v(a(m)) − c_i m]) and its maximiser;
- the pooling start m₀ of the solver (§2).

Costs are **refused** unless strictly decreasing (type 1 is the dearest): the IC
chain of §2 relies on that order, and sorting silently would relabel the types.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import gammaln

from data.checks import check_int
from rewards.contract.accuracy import AccuracyModel

__all__ = [
    "DEFAULT_MAX_OUTCOMES",
    "check_types",
    "conditional_weights",
    "count_outcomes",
    "enumerate_outcomes",
    "outcome_probabilities",
    "pooling_start",
    "reservation_utilities",
]

DEFAULT_MAX_OUTCOMES = 2_000_000
_PROB_SUM_TOL = 1e-9  # docs/contract.md §1: Σp = 1 ± 1e-9
_RESERVATION_UPPER = 1e9  # docs/contract.md §1: scan [x₀, 10⁹]
_GRID_POINTS = 2000  # log-grid resolution of the root scans (ratio ≈ 1.01 per step)


def check_types(costs: ArrayLike, probs: ArrayLike) -> tuple[NDArray, NDArray]:
    """Validate the type costs and priors (docs/contract.md §1, §4).

    Args:
        costs: (K,) private marginal costs, finite, > 0 and strictly decreasing
            (type 1 is the dearest), K ≥ 2.
        probs: (K,) priors p_i > 0 with Σp = 1 (± 1e-9).

    Returns:
        ``(costs, probs)`` as float64 arrays.

    Raises:
        ValueError: naming ``costs`` or ``probs`` and the value received.

    Example:
        >>> check_types([0.2, 0.1], [0.5, 0.5])[0]
        array([0.2, 0.1])
    """
    c = np.asarray(costs, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(
            f"Argument `costs` must be a 1-D list of K ≥ 2 costs, got {costs!r}"
        )
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"Argument `costs` must be finite and > 0, got {c.tolist()!r}")
    if np.any(np.diff(c) >= 0):
        raise ValueError(
            "Argument `costs` must be strictly decreasing (type 1 the dearest); "
            f"got {c.tolist()!r}. Reorder the types and their `probs` to match."
        )
    if p.shape != c.shape:
        raise ValueError(
            f"Argument `probs` must have one entry per cost ({c.size}), got {probs!r}"
        )
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(f"Argument `probs` must be finite and > 0, got {p.tolist()!r}")
    if abs(p.sum() - 1.0) > _PROB_SUM_TOL:
        raise ValueError(
            f"Argument `probs` must sum to 1 (± 1e-9), got {p.tolist()!r} "
            f"(sum {p.sum()!r})"
        )
    return c, p


def count_outcomes(n_participants: int, n_types: int) -> int:
    """Number of type-count vectors, C(N + K − 1, K − 1) (docs/contract.md §1).

    Args:
        n_participants: N ≥ 1.
        n_types: K ≥ 1.

    Returns:
        The number of compositions of N into K non-negative parts.

    Example:
        >>> count_outcomes(10, 5)
        1001
    """
    n = check_int("n_participants", n_participants, 1)
    k = check_int("n_types", n_types, 1)
    return math.comb(n + k - 1, k - 1)


def enumerate_outcomes(
    n_participants: int, n_types: int, *, max_outcomes: int = DEFAULT_MAX_OUTCOMES
) -> NDArray[np.int64]:
    """All type-count vectors n with Σn = N, lexicographic (docs/contract.md §1).

    Built column by column without a Python loop over outcomes: the compositions of r
    into k parts are the first part i = 0..r followed by those of r − i into k − 1.

    Args:
        n_participants: N ≥ 1.
        n_types: K ≥ 1.
        max_outcomes: refuse more outcomes than this (the only scaling bottleneck).

    Returns:
        (C(N+K−1, K−1), K) int64 array.

    Raises:
        ValueError: if N < 1, K < 1 or the count exceeds ``max_outcomes``.

    Example:
        >>> enumerate_outcomes(2, 2).tolist()
        [[0, 2], [1, 1], [2, 0]]
    """
    n = check_int("n_participants", n_participants, 1)
    k = check_int("n_types", n_types, 1)
    limit = check_int("max_outcomes", max_outcomes, 1)
    total = count_outcomes(n, k)
    if total > limit:
        raise ValueError(
            f"Argument `n_participants`={n} with {k} types gives {total} outcomes, "
            f"more than `max_outcomes`={limit}"
        )
    # table[r]: compositions of r into j parts, grown one part at a time.
    table = [np.array([[r]], dtype=np.int64) for r in range(n + 1)]
    for _ in range(k - 1):
        table = [
            np.concatenate(
                [
                    np.column_stack([np.full(len(table[r - i]), i), table[r - i]])
                    for i in range(r + 1)
                ]
            )
            for r in range(n + 1)
        ]
    return table[n]


def outcome_probabilities(outcomes: ArrayLike, probs: ArrayLike) -> NDArray[np.float64]:
    """Multinomial probabilities P(n) from log-factorials (docs/contract.md §1).

    Args:
        outcomes: (n_outcomes, K) non-negative integer counts, all with the same sum N.
        probs: (K,) priors.

    Returns:
        (n_outcomes,) float64 array of P(n).

    Example:
        >>> p = outcome_probabilities([[0, 2], [1, 1], [2, 0]], [0.5, 0.5])
        >>> p.round(12).tolist()
        [0.25, 0.5, 0.25]
    """
    n = np.asarray(outcomes, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    total = n.sum(axis=1)
    log_p = gammaln(total + 1) - gammaln(n + 1).sum(axis=1) + n @ np.log(p)
    return np.exp(log_p)


def conditional_weights(
    outcomes: ArrayLike, outcome_probs: ArrayLike
) -> NDArray[np.float64]:
    """W_i(n) = P(n)·1[n_i ≥ 1] / Σ_{n': n'_i ≥ 1} P(n') (docs/contract.md §1).

    This is the paper's conditioning, not the size-biased P(n)·n_i/(N p_i).

    Args:
        outcomes: (n_outcomes, K) counts.
        outcome_probs: (n_outcomes,) P(n).

    Returns:
        (K, n_outcomes) float64 array; each row sums to 1.

    Example:
        >>> conditional_weights([[0, 2], [1, 1], [2, 0]], [0.25, 0.5, 0.25]).round(4)
        array([[0.    , 0.6667, 0.3333],
               [0.3333, 0.6667, 0.    ]])
    """
    present = (np.asarray(outcomes) >= 1).T  # (K, n_outcomes)
    mass = present * np.asarray(outcome_probs, dtype=np.float64)[None, :]
    return mass / mass.sum(axis=1, keepdims=True)


def _last_sign_change(values: NDArray[np.float64]) -> int | None:
    """Index g of the last step with values[g] ≥ 0 > values[g + 1], or None."""
    steps = np.flatnonzero((values[:-1] >= 0) & (values[1:] < 0))
    return int(steps[-1]) if steps.size else None


def reservation_utilities(
    costs: ArrayLike, accuracy: AccuracyModel, value_scale: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Outside options f_i = max(0, max_m [V·a(m) − c_i m]) and maximisers (§1).

    The maximiser is the last sign change of V·a'(m) − c_i on a log grid over
    [x₀, 10⁹], refined with ``brentq``; f_i = 0 and m_i^res = 0 when no interior
    optimum beats staying out.

    Args:
        costs: (K,) costs c_i > 0.
        accuracy: the accuracy model a.
        value_scale: V > 0 in v(r) = V·r.

    Returns:
        ``(f, m_res)``, two (K,) float64 arrays.

    Example:
        >>> from rewards.contract.accuracy import SGBAccuracy
        >>> f, m_res = reservation_utilities([0.02, 1.0], SGBAccuracy(), 100.0)
        >>> round(float(m_res[0]), 2), round(float(f[0]), 3), round(float(f[1]), 9)
        (715.64, 55.256, 0.0)
    """
    c = np.asarray(costs, dtype=np.float64)
    x0 = accuracy.zero_crossing
    grid = np.geomspace(x0 * (1 + 1e-9), _RESERVATION_UPPER, _GRID_POINTS)
    slope = value_scale * accuracy.derivative(grid)
    f = np.zeros_like(c)
    m_res = np.zeros_like(c)
    for i, ci in enumerate(c):
        g = _last_sign_change(slope - ci)
        if g is None:
            continue

        def marginal(m: float, ci: float = ci) -> float:
            return float(value_scale * accuracy.derivative(m) - ci)

        m_star = brentq(marginal, grid[g], grid[g + 1], xtol=1e-12, rtol=1e-15)
        gain = float(value_scale * accuracy.value(m_star) - ci * m_star)
        if gain > 0:
            f[i], m_res[i] = gain, m_star
    return f, m_res


def pooling_start(
    costs: ArrayLike,
    f: ArrayLike,
    n_participants: int,
    accuracy: AccuracyModel,
    value_scale: float,
) -> float | None:
    """The pooling contribution m₀ that starts the solver (docs/contract.md §2).

    m₀ is the largest root of V·a(N·m) − c_1 m − f_1 on (0, (V·a_sup + 1)/c_1], found
    by a log-grid scan and ``brentq``: every type brings m₀ and gets the full joint
    model, which the dearest type accepts exactly at its reservation utility.

    Args:
        costs: (K,) costs; only c_1 is used.
        f: (K,) reservation utilities; only f_1 is used.
        n_participants: N.
        accuracy: the accuracy model a.
        value_scale: V.

    Returns:
        m₀, or None when V·a(N·m) never reaches c_1 m + f_1 (no pooling contract).

    Example:
        >>> from rewards.contract.accuracy import SGBAccuracy
        >>> m0 = pooling_start([1.0, 0.4], [0.0, 0.0], 10, SGBAccuracy(), 100.0)
        >>> round(m0, 3)  # Scenario 2 of §5 pools every type at 69.053
        69.053
    """
    c1 = float(np.asarray(costs, dtype=np.float64)[0])
    f1 = float(np.asarray(f, dtype=np.float64)[0])
    upper = (value_scale * accuracy.supremum + 1.0) / c1
    lower = accuracy.zero_crossing / n_participants
    grid = np.geomspace(lower, upper, _GRID_POINTS)

    def surplus(m: NDArray | float) -> NDArray:
        return (
            value_scale * accuracy.value(n_participants * np.asarray(m)) - c1 * m - f1
        )

    g = _last_sign_change(surplus(grid))
    if g is None:
        return None
    return float(brentq(lambda m: float(surplus(m)), grid[g], grid[g + 1], xtol=1e-13))
