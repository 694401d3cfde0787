"""Distribution metrics of the ``evaluate`` stage (docs/cgm.md §8.1).

Each compares a party's data X = D_i ⊎ R_i (a subset of the reference T) with T in
feature space: the k-NN KL divergence estimator of Pérez-Cruz (2008), the squared
Wasserstein-2 distance between Gaussian fits, and the class imbalance of X.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnnKL:
    """The k-NN KL estimate D̂(X‖T), mean over k.

    Attributes:
        value: mean of D̂_k over the k values.
        per_k: D̂_k for each k.
        skipped: terms skipped because a distance was 0 (duplicates).
    """

    value: float
    per_k: tuple[float, ...]
    skipped: int


def _check_2d(name: str, a: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise ValueError(
            f"Argument `{name}` must be a finite 2-D array, got {arr.shape}"
        )
    return arr


def knn_kl_divergence(
    x: ArrayLike, t: ArrayLike, ks: tuple[int, ...] = (2, 3, 4, 5, 6)
) -> KnnKL:
    """k-NN estimate of D(X‖T) for X ⊂ T (Pérez-Cruz 2008; docs/cgm.md §8.1).

    D̂_k = (d/|X|) Σ_i log(ν_k(i)/ρ_k(i)) + log((n_T − 1)/(|X| − 1)), where ρ_k(i)
    and ν_k(i) are the distances from x_i to its k-th neighbour in X∖{x_i} and in
    T∖{x_i}. Every x_i has a copy in T, which is dropped (else ν would be 0); terms
    with a zero distance (duplicates) are skipped and counted.

    Args:
        x: (m, d) points, each also present in ``t``; m > max(ks).
        t: (n_T, d) reference points.
        ks: neighbour orders to average over.

    Returns:
        The estimate, its per-k values and the number of skipped terms.

    Raises:
        ValueError: on bad shapes or too few points.

    Example:
        >>> x = np.arange(8.0)[:, None]
        >>> round(knn_kl_divergence(x, x, ks=(2,)).value, 12)  # X = T: log-ratio 0
        0.0
    """
    x, t = _check_2d("x", x), _check_2d("t", t)
    if x.shape[1] != t.shape[1]:
        raise ValueError(f"`x` and `t` differ in dimension: {x.shape} vs {t.shape}")
    kmax = max(ks)
    if x.shape[0] <= kmax or t.shape[0] <= kmax:
        raise ValueError(f"need more than {kmax} points in `x` and `t`, got {len(x)}")
    m, d, n_t = x.shape[0], x.shape[1], t.shape[0]
    # k+1 neighbours: the first is x_i itself (its own copy), dropped.
    rho, _ = cKDTree(x).query(x, k=kmax + 1)
    nu, _ = cKDTree(t).query(x, k=kmax + 1)
    per_k, skipped = [], 0
    for k in ks:
        r, v = rho[:, k], nu[:, k]
        ok = (r > 0) & (v > 0)
        skipped += int((~ok).sum())
        mean_log = float(np.mean(np.log(v[ok] / r[ok]))) if ok.any() else 0.0
        per_k.append(d * mean_log + float(np.log((n_t - 1) / (m - 1))))
    if skipped:
        logger.warning("k-NN KL: skipped %d zero-distance terms (duplicates)", skipped)
    return KnnKL(float(np.mean(per_k)), tuple(per_k), skipped)


def gaussian_w2(x: ArrayLike, t: ArrayLike) -> float:
    """Squared W2 distance between Gaussian fits of X and T (docs/cgm.md §8.1).

    ‖μ_X − μ_T‖² + tr(Σ_X + Σ_T − 2(Σ_X Σ_T)^{1/2}), covariances with ddof = 1, the
    real part of ``scipy.linalg.sqrtm``.

    Args:
        x: (m, d) points, m ≥ 2.
        t: (n, d) points, n ≥ 2.

    Returns:
        The squared distance (≥ 0 up to rounding).

    Raises:
        ValueError: on bad shapes.

    Example:
        >>> x = np.array([[0.0], [2.0]])   # mean 1, variance 2
        >>> t = np.array([[3.0], [5.0]])   # mean 4, variance 2
        >>> round(gaussian_w2(x, t), 12)   # 3² + (2 + 2 − 2·2)
        9.0
    """
    x, t = _check_2d("x", x), _check_2d("t", t)
    if len(x) < 2 or len(t) < 2 or x.shape[1] != t.shape[1]:
        raise ValueError(
            f"need >= 2 points of equal dimension, got {x.shape}, {t.shape}"
        )
    cx = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
    ct = np.atleast_2d(np.cov(t, rowvar=False, ddof=1))
    root = np.real(scipy.linalg.sqrtm(cx @ ct))
    mean = float(np.sum((x.mean(0) - t.mean(0)) ** 2))
    return mean + float(np.trace(cx + ct - 2.0 * root))


def class_imbalance(y: ArrayLike, n_classes: int) -> float:
    """(1/C)·Σ_c p_c², p_c the fraction of class c (docs/cgm.md §8.1).

    Args:
        y: (m,) integer labels.
        n_classes: C, all classes of the pool (absent ones count with p_c = 0).

    Returns:
        1/C² for perfect balance, 1/C for a single class.

    Raises:
        ValueError: if ``y`` is empty or has labels outside [0, C).

    Example:
        >>> class_imbalance([0, 0, 1, 1], 2)
        0.25
    """
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"Argument `y` must hold labels in [0, {n_classes})")
    p = np.bincount(y, minlength=n_classes) / y.size
    return float(np.sum(p**2) / n_classes)
