"""The Nash bargaining solution (NBS) over K gradient vectors, docs/nash.md §2.

Player k has gradient g_k ∈ R^D; G is the K×D matrix with rows g_k and M = GGᵀ. The
NBS direction is d ∝ Gᵀα, where α > 0 solves M α = 1/α (elementwise), so that every
player gains g_kᵀGᵀα = 1/α_k > 0. Following Zeng et al., "Fairness-Aware
Meta-Learning via Nash Bargaining" (NeurIPS 2024), and the bargaining game of Navon
et al., "Multi-Task Learning as a Bargaining Game" (ICML 2022), α is the unique
minimiser on α > 0 of the strictly convex

    f(α) = ½ αᵀMα − Σ_k log α_k,   ∇f = Mα − 1/α,   ∇²f = M + diag(α⁻²),

which is found here by damped Newton in float64 on the normalised M̃ = M/‖M‖_F. When
0 ∈ conv{g_k} (Gordan's alternative: no common improving direction exists) f is
unbounded below and the solver reports failure instead of returning an arbitrary α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Convergence tolerance on relres(a) = max_k |a_k (M̃a)_k − 1| (docs/nash.md §2 step 1).
RELRES_TOL = 1e-10
#: relres accepted when Newton stalls at float precision (docs/nash.md §2 step 4).
RELRES_STALL_TOL = 1e-6
#: Newton iteration limit (docs/nash.md §2).
MAX_ITERATIONS = 100
#: Armijo constant of the backtracking line search (docs/nash.md §2 step 3).
ARMIJO_C = 1e-4
#: Smallest step length tried by the line search (docs/nash.md §2 step 3).
MIN_STEP = 1e-12
#: A step with max_k |s p_k / a_k| below this is negligible (docs/nash.md §2 step 4).
NEGLIGIBLE_STEP = 1e-12
#: An iterate above this: f is unbounded below, 0 ∈ conv{g_k} (docs/nash.md §2 step 5).
UNBOUNDED_ALPHA = 1e8


@dataclass(frozen=True)
class NbsResult:
    """Outcome of :func:`nbs`.

    Attributes:
        alpha: (K,) float64 bargaining weights α > 0 solving GGᵀα = 1/α, or ``None``
            when the solver failed.
        success: whether ``alpha`` is a solution.
        residual: relres = max_k |a_k (M̃a)_k − 1| at the last iterate (scale-free;
            NaN when M is degenerate).
        iterations: Newton iterations taken.
        reason: ``"converged"``, ``"stalled (accepted)"`` or ``"max iterations
            (accepted)"`` on success; on failure ``"degenerate"``, ``"singular"``,
            ``"stalled"``, ``"unbounded: 0 in convex hull"`` or ``"max iterations"``.
    """

    alpha: NDArray[np.float64] | None
    success: bool
    residual: float
    iterations: int
    reason: str


def nbs_objective(a: NDArray[np.float64], m: NDArray[np.float64]) -> float:
    """f(a) = ½ aᵀMa − Σ_k log a_k (docs/nash.md §2, "Characterisation").

    Args:
        a: (K,) float64, a > 0.
        m: (K, K) float64 Gram matrix M.

    Returns:
        f(a) as a float.

    Example:
        >>> round(nbs_objective(np.array([1.0]), np.array([[2.0]])), 9)  # ½·2 − log 1
        1.0
    """
    return float(0.5 * a @ m @ a - np.sum(np.log(a)))


def relative_residual(a: NDArray[np.float64], m: NDArray[np.float64]) -> float:
    """relres(a) = max_k |a_k (Ma)_k − 1|, the scale-free residual of docs/nash.md §2.

    Args:
        a: (K,) float64.
        m: (K, K) float64.

    Returns:
        relres(a); 0 exactly when Ma = 1/a.

    Example:
        >>> a = np.array([0.5, 0.5])
        >>> round(relative_residual(a, np.eye(2) * 4.0), 9)  # 0.5·2 − 1
        0.0
    """
    return float(np.max(np.abs(a * (m @ a) - 1.0)))


def _result(
    a: NDArray[np.float64] | None,
    nf: float,
    success: bool,
    residual: float,
    iterations: int,
    reason: str,
) -> NbsResult:
    alpha = a / math.sqrt(nf) if (success and a is not None) else None
    return NbsResult(alpha, success, residual, iterations, reason)


def _newton_direction(
    a: NDArray[np.float64], m: NDArray[np.float64], grad: NDArray[np.float64]
) -> NDArray[np.float64] | None:
    """Newton step p = −(M̃ + diag(a⁻²))⁻¹ ∇f(a), or None when the solve fails."""
    hess = m + np.diag(1.0 / (a * a))
    try:
        p = -np.linalg.solve(hess, grad)
    except np.linalg.LinAlgError:
        return None
    return p if np.all(np.isfinite(p)) else None


def objective_change(
    a: NDArray[np.float64],
    step: NDArray[np.float64],
    m: NDArray[np.float64],
    ma: NDArray[np.float64],
) -> float:
    """f(a + step) − f(a), evaluated without cancellation.

    f(a + δ) − f(a) = δᵀMa + ½ δᵀMδ − Σ_k log1p(δ_k/a_k). Subtracting two values of f
    loses everything below ~1e-16·|f|, so near the optimum (where the decrease is
    ~relres²) the Armijo test of docs/nash.md §2 step 3 would fail at float precision
    and stall Newton on well-conditioned problems; this form keeps full relative
    accuracy.

    Args:
        a: (K,) float64 current iterate, a > 0.
        step: (K,) float64 δ with a + δ > 0.
        m: (K, K) float64.
        ma: (K,) float64, M a.

    Returns:
        The change of f.

    Example:
        >>> m = np.array([[2.0]])
        >>> a, d = np.array([1.0]), np.array([0.5])
        >>> bool(np.isclose(objective_change(a, d, m, m @ a),
        ...                 nbs_objective(a + d, m) - nbs_objective(a, m)))
        True
    """
    return float(step @ ma + 0.5 * step @ m @ step - np.sum(np.log1p(step / a)))


def _backtrack(
    a: NDArray[np.float64],
    p: NDArray[np.float64],
    m: NDArray[np.float64],
    ma: NDArray[np.float64],
    slope: float,
) -> float | None:
    """Armijo backtracking s = 1, ½, ¼, … ≥ 1e-12 (docs/nash.md §2 step 3).

    Returns:
        The first s with a + sp > 0 and f(a + sp) ≤ f(a) + 1e-4·s·∇fᵀp, or None.
    """
    s = 1.0
    while s >= MIN_STEP:
        trial = s * p
        if np.all(a + trial > 0) and (
            objective_change(a, trial, m, ma) <= ARMIJO_C * s * slope
        ):
            return s
        s *= 0.5
    return None


def nbs(g: ArrayLike) -> NbsResult:
    """Nash bargaining weights α of K gradients: GGᵀα = 1/α (docs/nash.md §2).

    Damped Newton on f(a) = ½ aᵀM̃a − Σ log a with M̃ = GGᵀ/‖GGᵀ‖_F, started at
    a = 1/√trace(M̃)·1; α = a/√‖GGᵀ‖_F then solves the unnormalised system, so
    nbs(cG).alpha = nbs(G).alpha / c. The rows need not be linearly independent. When
    no direction improves every player (0 ∈ conv{g_k}) the iterate diverges and the
    result is a failure with reason ``"unbounded: 0 in convex hull"``.

    Args:
        g: (K, D) gradients, one row per player (converted to float64).

    Returns:
        An :class:`NbsResult`; ``alpha`` is None unless ``success``.

    Raises:
        ValueError: if ``g`` is not 2-D with K ≥ 1 rows and D ≥ 1 columns.

    Example:
        >>> r = nbs(np.array([[1.0, 0.0], [0.0, 2.0]]))  # orthogonal: α_k = 1/‖g_k‖
        >>> r.success, np.round(r.alpha, 12).tolist()
        (True, [1.0, 0.5])
    """
    gm = np.asarray(g, dtype=np.float64)
    if gm.ndim != 2 or gm.shape[0] < 1 or gm.shape[1] < 1:
        raise ValueError(f"Argument `g` must be (K, D) with K, D >= 1, got {gm.shape}")
    m_raw = gm @ gm.T
    nf = float(np.linalg.norm(m_raw))
    if not (math.isfinite(nf) and nf > 0.0):
        return NbsResult(None, False, math.nan, 0, "degenerate")
    m = m_raw / nf
    # trace(M̃) ≥ ‖M̃‖_F = 1 for a Gram matrix, so the start below is finite.
    a = np.full(gm.shape[0], 1.0 / math.sqrt(float(np.trace(m))))
    for it in range(MAX_ITERATIONS):
        ma = m @ a
        res = float(np.max(np.abs(a * ma - 1.0)))
        if res <= RELRES_TOL:
            return _result(a, nf, True, res, it, "converged")
        grad = ma - 1.0 / a
        p = _newton_direction(a, m, grad)
        if p is None:
            return _result(None, nf, False, res, it, "singular")
        s = _backtrack(a, p, m, ma, float(grad @ p))
        if s is None or float(np.max(np.abs(s * p / a))) <= NEGLIGIBLE_STEP:
            ok = res <= RELRES_STALL_TOL
            return _result(
                a, nf, ok, res, it, "stalled (accepted)" if ok else "stalled"
            )
        a = a + s * p
        if not np.all(np.isfinite(a)) or float(np.max(a)) > UNBOUNDED_ALPHA:
            return _result(None, nf, False, res, it + 1, "unbounded: 0 in convex hull")
    res = relative_residual(a, m)
    ok = res <= RELRES_STALL_TOL
    reason = "max iterations (accepted)" if ok else "max iterations"
    return _result(a, nf, ok, res, MAX_ITERATIONS, reason)
