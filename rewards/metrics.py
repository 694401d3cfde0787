"""Fairness and performance metrics shared by the `fl` and `evaluate` stages.

- fairness(M) = Pearson(acc^SA, acc^M) over the parties (docs/cgsv.md §7, after Xu
  et al., NeurIPS 2021); ``None`` when either vector has zero variance.
- performance(M) = max_i acc_i^M (docs/cgsv.md §7).
- mean ± standard error over a sweep, ignoring undefined correlations
  (docs/cgm.md §8.3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)


def _as_vector(name: str, a: ArrayLike) -> np.ndarray:
    v = np.asarray(a, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"Argument `{name}` must be 1-D, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"Argument `{name}` must be finite, got {v.tolist()}")
    return v


def pearson_or_none(a: ArrayLike, b: ArrayLike) -> float | None:
    """Pearson correlation of two vectors, or ``None`` when it is undefined.

    A vector with zero variance (or fewer than two entries) has no correlation: the
    function logs a warning and returns ``None``, which the stages write as JSON
    ``null`` (docs/cgsv.md §7, docs/cgm.md §8.1).

    Args:
        a: (n,) finite numbers.
        b: (n,) finite numbers.

    Returns:
        The correlation in [−1, 1] (float64), or ``None``.

    Raises:
        ValueError: if ``a`` or ``b`` is not 1-D and finite, or their lengths differ.

    Example:
        >>> round(pearson_or_none([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 6)  # 5/√(2·12.67)
        0.993399
        >>> pearson_or_none([1.0, 1.0], [0.0, 1.0]) is None
        True
    """
    x = _as_vector("a", a)
    y = _as_vector("b", b)
    if x.shape != y.shape:
        raise ValueError(
            f"Arguments `a` and `b` must have equal length, got {x.size} and {y.size}"
        )
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        logger.warning(
            "Pearson correlation undefined (zero variance or < 2 entries): a=%s, b=%s",
            x.tolist(),
            y.tolist(),
        )
        return None
    xc = x - x.mean()
    yc = y - y.mean()
    r = float(xc @ yc / math.sqrt(float(xc @ xc) * float(yc @ yc)))
    return min(1.0, max(-1.0, r))


def fairness(acc_standalone: ArrayLike, acc_method: ArrayLike) -> float | None:
    """Collaborative fairness: Pearson(acc^SA, acc^M) over parties (docs/cgsv.md §7).

    Args:
        acc_standalone: (N,) final test accuracies of the Standalone models.
        acc_method: (N,) final test accuracies of the parties' models under method M.

    Returns:
        The correlation, or ``None`` (with a warning) when undefined.

    Raises:
        ValueError: on non-finite input or unequal lengths.

    Example:
        >>> round(fairness([0.5, 0.6, 0.7], [0.8, 0.85, 0.9]), 6)  # a line: r = 1
        1.0
    """
    return pearson_or_none(acc_standalone, acc_method)


def reward_fairness(acc_standalone: ArrayLike, importance: ArrayLike) -> float | None:
    """Allocation fairness: Pearson(acc^SA, r) over the parties (our addition).

    docs/cgsv.md §7 measures fairness on the final accuracies of the rewarded models.
    When per-layer top-k keeps nearly all of u_N's norm, those models differ by a few
    test rows and the Pearson is noise; the importance r (which sets each party's
    share q_i) shows whether the *allocation* follows contribution.

    Args:
        acc_standalone: (N,) final test accuracies of the Standalone models.
        importance: (N,) final CGSV importance coefficients r.

    Returns:
        The correlation, or ``None`` (with a warning) when undefined.

    Raises:
        ValueError: on non-finite input or unequal lengths.

    Example:
        >>> round(reward_fairness([0.5, 0.6, 0.7], [0.1, 0.3, 0.6]), 4)
        0.9934
    """
    return pearson_or_none(acc_standalone, importance)


def performance(acc_method: ArrayLike) -> float:
    """Performance: the best party's final accuracy, max_i acc_i (docs/cgsv.md §7).

    Args:
        acc_method: (N,) final test accuracies, N ≥ 1.

    Returns:
        max_i acc_i.

    Raises:
        ValueError: if ``acc_method`` is empty or not finite.

    Example:
        >>> performance([0.5, 0.9, 0.7])
        0.9
    """
    v = _as_vector("acc_method", acc_method)
    if v.size == 0:
        raise ValueError("Argument `acc_method` must not be empty")
    return float(v.max())


def mean_and_se(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error of the defined entries of ``values`` (docs/cgm.md §8.3).

    ``None`` entries (undefined correlations) are dropped. The standard error is
    std(ddof=1)/√m over the m kept entries; it is ``None`` when m < 2.

    Args:
        values: numbers or ``None``.

    Returns:
        (mean, se); (None, None) when no entry is defined.

    Example:
        >>> mean, se = mean_and_se([1.0, None, 3.0])  # mean 2, std √2, se √2/√2
        >>> round(mean, 6), round(se, 6)
        (2.0, 1.0)
    """
    kept = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return None, None
    mean = float(kept.mean())
    if kept.size < 2:
        return mean, None
    return mean, float(kept.std(ddof=1) / math.sqrt(kept.size))
