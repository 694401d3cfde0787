"""The complete-information benchmark of docs/contract.md §3.

Wang, Wu, Liu, Low, "Paid with Models: Optimal Contract Design for Collaborative Machine
Learning" (AAAI 2025). If types were observable, the coordinator would give everyone
the full model r = a(X) and extract all surplus, v(a(X)) − c_j m_j = f_j. For each
outcome n the joint data size X*(n) is then the largest root X ≥ 0 of

  h(X) = V·a(X)·A(n) − B(n) − X,  A(n) = Σ_j n_j/c_j,  B(n) = Σ_j n_j f_j/c_j,

and a root ≥ Σ_j n_j m_j^res always exists. The aggregate follows the reference:
E^CI = Σ_n P(n)·v(a(X*(n))), t_i^CI = E^CI, m_i^CI = (E^CI − f_i)/c_i, u_i^CI = f_i.

All outcomes are solved at once: a per-outcome log grid locates the last sign change of
h, then a vectorised bisection refines it (chunked, so memory stays bounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from rewards.contract.accuracy import AccuracyModel

__all__ = ["CompleteInformation", "complete_information", "joint_sizes_complete_info"]

_GRID_POINTS = 128  # per-outcome log grid: steps < 14 % wide while hi/lo < 1e7
_BISECTIONS = 60  # 2⁻⁶⁰ of a bracket of ratio < 2 is below float precision
_CHUNK = 16384  # outcomes per chunk: _CHUNK × _GRID_POINTS floats ≈ 17 MB


@dataclass(frozen=True)
class CompleteInformation:
    """The complete-information contract, aggregated as the reference does (§3).

    Attributes:
        joint_sizes: (n_outcomes,) X*(n).
        expected_value: E^CI = Σ_n P(n)·V·a(X*(n)).
        t: (K,) t_i^CI = E^CI.
        m: (K,) m_i^CI = (E^CI − f_i)/c_i.
        u: (K,) u_i^CI = f_i.
    """

    joint_sizes: NDArray[np.float64]
    expected_value: float
    t: NDArray[np.float64]
    m: NDArray[np.float64]
    u: NDArray[np.float64]


def _surplus(
    x: NDArray,
    slope: NDArray,
    offset: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
) -> NDArray[np.float64]:
    """h(X) = V·a(X)·A − B − X, broadcast over outcomes."""
    return value_scale * accuracy.value(x) * slope - offset - x


def joint_sizes_complete_info(
    outcomes: NDArray,
    costs: NDArray,
    f: NDArray,
    m_res: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
    *,
    progress: bool = False,
) -> NDArray[np.float64]:
    """X*(n), the largest root of h for every outcome (docs/contract.md §3).

    Args:
        outcomes: (n_outcomes, K) type counts.
        costs: (K,) costs c_j.
        f: (K,) reservation utilities f_j.
        m_res: (K,) reservation contributions m_j^res.
        accuracy: the accuracy model a.
        value_scale: V.
        progress: show a tqdm bar over chunks.

    Returns:
        (n_outcomes,) float64 X*; Σ_j n_j m_j^res where h has no larger root.

    Example:
        >>> from rewards.contract.accuracy import PowerLawAccuracy
        >>> acc = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)
        >>> # one type, c = 1/8, f = 0: X = 800·(1 − 10/√X), roots 152.8 and 400
        >>> joint_sizes_complete_info(np.array([[1]]), np.array([0.125]), np.zeros(1),
        ...                           np.zeros(1), acc, 100.0).round(9)
        array([400.])
    """
    n = np.asarray(outcomes, dtype=np.float64)
    slope_all = n @ (1.0 / costs)
    offset_all = n @ (f / costs)
    floor_all = n @ m_res
    x_star = np.empty(n.shape[0])
    steps = np.linspace(0.0, 1.0, _GRID_POINTS)
    for start in tqdm(range(0, n.shape[0], _CHUNK), disable=not progress):
        sl = slice(start, start + _CHUNK)
        slope, offset, floor = slope_all[sl], offset_all[sl], floor_all[sl]
        lo = np.maximum(floor, accuracy.zero_crossing)
        # h < 0 beyond V·sup(a)·A, since a < sup(a) and B ≥ 0
        hi = np.maximum(value_scale * accuracy.supremum * slope + 1.0, lo * (1 + 1e-9))
        grid = lo[:, None] * (hi / lo)[:, None] ** steps[None, :]
        h = _surplus(grid, slope[:, None], offset[:, None], accuracy, value_scale)
        change = (h[:, :-1] >= 0) & (h[:, 1:] < 0)
        has_root = change.any(axis=1)
        last = change.shape[1] - 1 - np.argmax(change[:, ::-1], axis=1)
        rows = np.arange(grid.shape[0])
        left, right = grid[rows, last], grid[rows, last + 1]
        for _ in range(_BISECTIONS):
            mid = 0.5 * (left + right)
            positive = _surplus(mid, slope, offset, accuracy, value_scale) >= 0
            left = np.where(positive, mid, left)
            right = np.where(positive, right, mid)
        x_star[sl] = np.where(has_root, left, floor)
    return x_star


def complete_information(
    outcomes: NDArray,
    outcome_probs: NDArray,
    costs: NDArray,
    f: NDArray,
    m_res: NDArray,
    accuracy: AccuracyModel,
    value_scale: float,
    *,
    progress: bool = False,
) -> CompleteInformation:
    """The complete-information benchmark over all outcomes (docs/contract.md §3).

    Averaging runs over all n, including types absent from n (whose m_j(n) is
    hypothetical), as the reference does.

    Args:
        outcomes: (n_outcomes, K) type counts.
        outcome_probs: (n_outcomes,) P(n).
        costs: (K,) costs.
        f: (K,) reservation utilities.
        m_res: (K,) reservation contributions.
        accuracy: the accuracy model a.
        value_scale: V.
        progress: show a tqdm bar.

    Returns:
        The `CompleteInformation` benchmark.
    """
    x_star = joint_sizes_complete_info(
        outcomes, costs, f, m_res, accuracy, value_scale, progress=progress
    )
    e_ci = float(outcome_probs @ (value_scale * accuracy.value(x_star)))
    return CompleteInformation(
        joint_sizes=x_star,
        expected_value=e_ci,
        t=np.full(costs.size, e_ci),
        m=(e_ci - f) / costs,
        u=np.asarray(f, dtype=np.float64).copy(),
    )
