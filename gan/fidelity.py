"""Column fidelity of synthetic rows against real rows (docs/cgm.md §3.6).

Plain numpy formulas, each checked against scipy or an obvious loop in the tests:

- :func:`ks_statistic`: the two-sample Kolmogorov–Smirnov statistic
  sup_t |F_real(t) − F_fake(t)| (continuous columns);
- :func:`tv_distance`: total-variation distance ½ Σ_k |p_k − q_k| between category
  frequencies (categorical columns);
- :func:`correlation_difference`: mean over column pairs of |ρ_real − ρ_fake|
  (Pearson, on the encoded entries that vary in both sets);
- :func:`std_ratios`: per-column std_fake / std_real (a collapse sign);
- :func:`table_fidelity`: all of them per column of a table layout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

STD_EPS = 1e-12
"""A column whose real std is at most this is constant: no ratio, no correlation."""


def ks_statistic(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sample KS statistic D = sup_t |F_a(t) − F_b(t)| (ties handled exactly).

    Both empirical CDFs are evaluated at every observed value (right-continuous),
    which is where the supremum is attained.

    Args:
        a: (n,) real values, n ≥ 1.
        b: (m,) synthetic values, m ≥ 1.

    Returns:
        D in [0, 1].

    Example:
        >>> ks_statistic([0, 1, 2, 3], [2, 3, 4, 5])
        0.5
    """
    x = np.sort(np.asarray(a, dtype=np.float64).ravel())
    y = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if x.size == 0 or y.size == 0:
        raise ValueError("Arguments `a` and `b` need >= 1 value each")
    t = np.concatenate([x, y])
    fx = np.searchsorted(x, t, side="right") / x.size
    fy = np.searchsorted(y, t, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def tv_distance(p: ArrayLike, q: ArrayLike) -> float:
    """Total-variation distance ½ Σ_k |p_k − q_k| of two count or frequency vectors.

    Each vector is normalised to sum 1 first.

    Example:
        >>> tv_distance([3, 1], [1, 1])
        0.25
    """
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    if pa.shape != qa.shape or pa.sum() <= 0 or qa.sum() <= 0:
        raise ValueError(
            f"Arguments `p` and `q` must be equal-length with positive sums, got "
            f"shapes {pa.shape} and {qa.shape}"
        )
    return float(0.5 * np.abs(pa / pa.sum() - qa / qa.sum()).sum())


def _corr(x: NDArray[np.float64]) -> NDArray[np.float64]:
    xc = x - x.mean(axis=0)
    cov = xc.T @ xc
    d = np.sqrt(np.diag(cov))
    return cov / np.outer(d, d)


def correlation_difference(real: ArrayLike, fake: ArrayLike) -> float:
    """Mean over column pairs i < j of |corr_real(i, j) − corr_fake(i, j)|.

    Only columns with std > 1e-12 in both sets take part; with fewer than two such
    columns the difference is 0 (nothing to compare) — unless a column varies in the
    real rows but not in the synthetic ones, which is scored as a full mismatch
    (|ρ_real| for each of its pairs).

    Args:
        real: (n, D) real rows.
        fake: (m, D) synthetic rows.

    Returns:
        A number in [0, 2].

    Example:
        >>> r = [[0, 0], [1, 1], [2, 2]]
        >>> round(correlation_difference(r, [[0, 2], [1, 1], [2, 0]]), 6)
        2.0
    """
    r = np.asarray(real, dtype=np.float64)
    f = np.asarray(fake, dtype=np.float64)
    r = r.reshape(len(r), -1)
    f = f.reshape(len(f), -1)
    if r.shape[1] != f.shape[1]:
        raise ValueError(
            f"Arguments `real` and `fake` must have equal widths, got {r.shape[1]} "
            f"and {f.shape[1]}"
        )
    live = r.std(axis=0) > STD_EPS
    if live.sum() < 2:
        return 0.0
    r, f = r[:, live], f[:, live]
    cr = _corr(r)
    flat = f.std(axis=0) <= STD_EPS
    with np.errstate(invalid="ignore", divide="ignore"):
        cf = _corr(f)
    cf[flat, :] = 0.0
    cf[:, flat] = 0.0
    iu = np.triu_indices(r.shape[1], k=1)
    return float(np.mean(np.abs(cr[iu] - cf[iu])))


def std_ratios(real: ArrayLike, fake: ArrayLike) -> NDArray[np.float64]:
    """Per-column std_fake / std_real (ddof 0) over the columns that vary in real.

    Example:
        >>> std_ratios([[0, 5], [2, 5]], [[0, 0], [1, 0]]).tolist()
        [0.5]
    """
    r = np.asarray(real, dtype=np.float64)
    f = np.asarray(fake, dtype=np.float64)
    sr, sf = r.reshape(len(r), -1).std(axis=0), f.reshape(len(f), -1).std(axis=0)
    live = sr > STD_EPS
    return sf[live] / sr[live]


def table_fidelity(
    real: NDArray, fake: NDArray, layout: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Per-column fidelity of encoded table rows (docs/cgm.md §3.6).

    Continuous columns: KS statistic and std ratio; categorical columns: TV distance
    of the category frequencies (the arg-max of each one-hot span). Pairwise
    correlation difference on all encoded entries.

    Args:
        real: (n, width) encoded real rows.
        fake: (m, width) encoded synthetic rows.
        layout: :func:`gan.ctgan_data.table_layout` of the schema.

    Returns:
        ``ks`` (name → D), ``tv`` (name → TV), ``std_ratio`` (name → ratio),
        ``median_ks``, ``median_tv``, ``median_std_ratio`` (``None`` when there is no
        such column) and ``corr_diff``.
    """
    ks, tv, ratio = {}, {}, {}
    for c in layout:
        s, k = c["start"], c["size"]
        if c["kind"] == "continuous":
            ks[c["name"]] = ks_statistic(real[:, s], fake[:, s])
            sr = float(np.std(real[:, s]))
            if sr > STD_EPS:
                ratio[c["name"]] = float(np.std(fake[:, s])) / sr
        else:
            p = np.bincount(real[:, s : s + k].argmax(axis=1), minlength=k)
            q = np.bincount(fake[:, s : s + k].argmax(axis=1), minlength=k)
            tv[c["name"]] = tv_distance(p, q)

    def median(d: dict[str, float]) -> float | None:
        return float(np.median(list(d.values()))) if d else None

    return {
        "ks": ks,
        "tv": tv,
        "std_ratio": ratio,
        "median_ks": median(ks),
        "median_tv": median(tv),
        "median_std_ratio": median(ratio),
        "corr_diff": correlation_difference(real, fake),
    }
