"""MMD² estimators with the SE kernel, unequal sample sizes (docs/cgm.md §5.2, §8.1).

With k_xx = Σ_{x,x'∈X} k, k_yy = Σ_{y,y'∈Y} k, k_xy = Σ_{x∈X,y∈Y} k (all pairs,
diagonals included), |X| = m and |Y| = n:

    biased:   MMD_b² = k_xx/m² + k_yy/n² − 2·k_xy/(mn)
    unbiased: MMD_u² = (k_xx − m)/(m(m−1)) + (k_yy − n)/(n(n−1)) − 2·k_xy/(mn)

(the diagonal of the SE kernel is k(x, x) = 1, so removing it subtracts m and n;
MMD_u² may be < 0). As in torchmetrics, small ``*_from_sums`` functions hold the
formulas and the array functions only compute the three sums, so a caller can
cache k_yy of a large reference. Gretton et al., "A Kernel Two-Sample Test"
(JMLR 2012); used as in Tay et al. (AAAI 2022).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from valuation.kernels import kernel_row_sums

logger = logging.getLogger(__name__)


def kernel_sum(
    x: NDArray,
    y: NDArray,
    lengthscale: float,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "float64",
) -> float:
    """Σ_{x∈X} Σ_{y∈Y} k(x, y) in tiles, accumulated in float64.

    Args:
        x: (m, d) points.
        y: (n, d) points.
        lengthscale: ℓ > 0.
        chunk_size: rows per tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.

    Returns:
        The sum.

    Raises:
        ValueError: on a bad lengthscale, chunk size or shapes.

    Example:
        >>> kernel_sum(np.zeros((2, 1)), np.zeros((3, 1)), 1.0)
        6.0
    """
    rows = kernel_row_sums(
        x,
        y,
        lengthscale,
        chunk_size=chunk_size,
        device=device,
        kernel_precision=kernel_precision,
    )
    return float(rows.sum())


def biased_mmd2_from_sums(
    k_xx: float, k_yy: float, k_xy: float, m: int, n: int
) -> float:
    """MMD_b² = k_xx/m² + k_yy/n² − 2·k_xy/(mn) (diagonals included).

    Args:
        k_xx: Σ over X × X.
        k_yy: Σ over Y × Y.
        k_xy: Σ over X × Y.
        m: |X| ≥ 1.
        n: |Y| ≥ 1.

    Returns:
        The biased estimate (≥ 0 up to rounding for a p.d. kernel).

    Raises:
        ValueError: if ``m`` or ``n`` < 1.

    Example:
        >>> biased_mmd2_from_sums(4.0, 1.0, 0.0, 2, 1)  # 4/4 + 1/1 − 0
        2.0
    """
    _check_sizes(m, n, 1)
    return float(k_xx / m**2 + k_yy / n**2 - 2.0 * k_xy / (m * n))


def unbiased_mmd2_from_sums(
    k_xx: float, k_yy: float, k_xy: float, m: int, n: int
) -> float:
    """MMD_u² with the unit diagonals k(x, x) = 1 removed (docs/cgm.md §8.1).

    Args:
        k_xx: Σ over X × X, diagonal included.
        k_yy: Σ over Y × Y, diagonal included.
        k_xy: Σ over X × Y.
        m: |X| ≥ 2.
        n: |Y| ≥ 2.

    Returns:
        The unbiased estimate (may be < 0).

    Raises:
        ValueError: if ``m`` or ``n`` < 2.

    Example:
        >>> unbiased_mmd2_from_sums(4.0, 4.0, 4.0, 2, 2)  # identical points: 1 + 1 − 2
        0.0
    """
    _check_sizes(m, n, 2)
    return float(
        (k_xx - m) / (m * (m - 1)) + (k_yy - n) / (n * (n - 1)) - 2.0 * k_xy / (m * n)
    )


def _check_sizes(
    m: int, n: int, least: int, names: tuple[str, str] = ("m", "n")
) -> None:
    for name, size in zip(names, (m, n), strict=True):
        if size < least:
            raise ValueError(
                f"Argument `{name}` must have size >= {least}, got {size!r}"
            )


def _check_xy(x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            "Arguments `x` and `y` must be 2-D with equal feature dimension, got "
            f"{x.shape} and {y.shape}"
        )
    for name, arr in (("x", x), ("y", y)):
        if not np.isfinite(arr).all():
            raise ValueError(f"Argument `{name}` contains NaN or inf")
    return x, y


def _sums(
    x: NDArray, y: NDArray, lengthscale: float, chunk_size: int, device: str
) -> tuple[float, float, float]:
    kw = {"chunk_size": chunk_size, "device": device, "kernel_precision": "float64"}
    return (
        kernel_sum(x, x, lengthscale, **kw),
        kernel_sum(y, y, lengthscale, **kw),
        kernel_sum(x, y, lengthscale, **kw),
    )


def mmd2_biased(
    x: NDArray,
    y: NDArray,
    lengthscale: float,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
) -> float:
    """Biased MMD_b²(X, Y) with the SE kernel (docs/cgm.md §5.2), float64.

    Args:
        x: (m, d) points, m ≥ 1.
        y: (n, d) points, n ≥ 1.
        lengthscale: ℓ > 0.
        chunk_size: rows per tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        MMD_b².

    Raises:
        ValueError: on bad shapes, NaN/inf, too few points or a bad lengthscale.

    Example:
        >>> x, y = np.zeros((1, 1)), np.ones((1, 1))
        >>> round(mmd2_biased(x, y, 1.0), 12)  # 1 + 1 − 2e^{-1/2}
        0.786938680575
    """
    x, y = _check_xy(x, y)
    _check_sizes(x.shape[0], y.shape[0], 1, ("x", "y"))
    k_xx, k_yy, k_xy = _sums(x, y, lengthscale, chunk_size, device)
    return biased_mmd2_from_sums(k_xx, k_yy, k_xy, x.shape[0], y.shape[0])


def mmd2_unbiased(
    x: NDArray,
    y: NDArray,
    lengthscale: float,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
) -> float:
    """Unbiased MMD_u²(X, Y) with the SE kernel, unequal sizes (docs/cgm.md §8.1).

    Args:
        x: (m, d) points, m ≥ 2.
        y: (n, d) points, n ≥ 2.
        lengthscale: ℓ > 0.
        chunk_size: rows per tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        MMD_u² (may be < 0).

    Raises:
        ValueError: on bad shapes, NaN/inf, too few points or a bad lengthscale.

    Example:
        >>> x = np.array([[0.0], [0.0]])
        >>> y = np.array([[1.0], [1.0]])
        >>> round(mmd2_unbiased(x, y, 1.0), 12)  # 1 + 1 − 2e^{-1/2}
        0.786938680575
    """
    x, y = _check_xy(x, y)
    _check_sizes(x.shape[0], y.shape[0], 2, ("x", "y"))
    k_xx, k_yy, k_xy = _sums(x, y, lengthscale, chunk_size, device)
    return unbiased_mmd2_from_sums(k_xx, k_yy, k_xy, x.shape[0], y.shape[0])
