"""Privacy measures of reward files and the privacy guard (docs/cgm.md §8).

Synthetic rewards are meant to leak less than shared data; these functions measure
how close the reward rows lie to the real training rows they were fitted on:

- `dcr`: the distance to the closest record (DCR) of each reward row to the real
  training rows, against the same distance for held-out real rows (the baseline);
- `near_copy_threshold` and `near_copy_share`: the share of reward rows closer to a
  training row than the 1st percentile of real-to-real nearest-neighbour distances;
- `membership_auc`: a distance-based membership-inference AUC, training rows
  (members) against held-out rows (non-members), each scored by minus its distance
  to the closest reward row (0.5 = no leak, 1.0 = every member is found);
- `min_distance_mask`: the guard `sample.min_distance`, which keeps the candidates
  at distance ≥ the guard from every training row.

Every distance is Euclidean, in whatever space the rows are given (feature space or
data space), computed in float64 by `nearest_distances` in row chunks, so memory is
O(chunk_size × n_y) and the cost scales like the kernel sums of the value stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from data.checks import check_finite, check_interval, check_positive_int

__all__ = [
    "dcr",
    "guard_candidates",
    "membership_auc",
    "min_distance_mask",
    "near_copy_share",
    "near_copy_threshold",
    "nearest_distances",
    "privacy_measures",
]


def _as_rows(name: str, value: Any, min_rows: int = 1) -> NDArray[np.float64]:
    """Return ``value`` as a finite (n, d) float64 array with n ≥ ``min_rows``.

    Raises:
        TypeError: if ``value`` is not a real numeric array (bool, complex, object
            and strings are refused).
        ValueError: if it is not 2-D, has fewer than ``min_rows`` rows or no
            columns, or holds nan or ±inf.
    """
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind not in "iuf":
        raise TypeError(
            f"Argument `{name}` must be a real numeric array, got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"Argument `{name}` must be 2-D (rows, features), got shape {arr.shape}"
        )
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise ValueError(
            f"Argument `{name}` must have >= {min_rows} row(s) and >= 1 column, "
            f"got shape {arr.shape}"
        )
    out = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"Argument `{name}` must be finite (no nan or inf)")
    return out


def _same_width(names: tuple[str, ...], *arrays: NDArray) -> None:
    """Refuse arrays whose number of columns differs, naming them."""
    widths = [a.shape[1] for a in arrays]
    if len(set(widths)) > 1:
        pairs = ", ".join(f"`{n}` has {w}" for n, w in zip(names, widths, strict=True))
        raise ValueError(f"Arguments must have the same number of columns: {pairs}")


def _nearest(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    chunk_size: int,
    exclude_self: bool,
) -> NDArray[np.float64]:
    """`nearest_distances` on checked float64 arrays."""
    # Shifting both sides by the mean of y leaves distances unchanged and keeps the
    # norms small, which bounds the cancellation error of ‖a‖² + ‖b‖² − 2ab.
    centre = y.mean(axis=0)
    xc = x - centre
    yc = y - centre
    y_sq = np.einsum("ij,ij->i", yc, yc)  # (n_y,)
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], chunk_size):
        block = xc[start : start + chunk_size]  # (c, d)
        sq = np.einsum("ij,ij->i", block, block)[:, None] + y_sq[None, :]
        sq -= 2.0 * (block @ yc.T)  # (c, n_y) squared distances, up to rounding
        rows = np.arange(block.shape[0])
        if exclude_self:
            sq[rows, start + rows] = np.inf
        best = np.argmin(sq, axis=1)  # (c,)
        # Recompute the chosen pair directly, so a copy gives exactly 0.
        diff = block - yc[best]
        out[start : start + block.shape[0]] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def nearest_distances(
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int = 4096,
    exclude_self: bool = False,
) -> NDArray[np.float64]:
    """Euclidean distance from each row of ``x`` to its nearest row of ``y``.

    Computed in chunks of ``chunk_size`` rows of ``x`` with the expansion
    ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b in float64 after centring both sides on the
    mean of ``y``; the nearest row is the argmin of that expansion and its
    distance is then recomputed directly as ‖a − b‖, so an exact copy gives 0.
    Memory is O(chunk_size × n_y).

    Args:
        x: (n_x, d) query rows.
        y: (n_y, d) reference rows.
        chunk_size: rows of ``x`` per block.
        exclude_self: leave-one-out for ``x`` and ``y`` the same rows: row i of
            ``x`` ignores row i of ``y`` (by index, so a duplicate elsewhere in
            ``y`` still counts). Needs n_x = n_y ≥ 2.

    Returns:
        (n_x,) float64 distances.

    Raises:
        TypeError: if an array is not numeric or ``chunk_size`` not an int.
        ValueError: if an array is empty, not 2-D or not finite, the widths
            differ, ``chunk_size`` < 1, or ``exclude_self`` with n_x ≠ n_y or
            fewer than 2 rows.

    Example:
        >>> nearest_distances([[0.0], [1.0], [5.0]], [[0.5], [4.0]]).round(3)
        array([0.5, 0.5, 1. ])
        >>> pts = [[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]
        >>> nearest_distances(pts, pts, exclude_self=True).round(3)
        array([5., 1., 1.])
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    xa = _as_rows("x", x)
    ya = _as_rows("y", y)
    _same_width(("x", "y"), xa, ya)
    if exclude_self and (xa.shape[0] != ya.shape[0] or xa.shape[0] < 2):
        raise ValueError(
            "exclude_self=True needs `x` and `y` with the same >= 2 rows, got "
            f"{xa.shape[0]} and {ya.shape[0]}"
        )
    return _nearest(xa, ya, chunk_size, bool(exclude_self))


def dcr(
    reward: ArrayLike,
    train: ArrayLike,
    holdout: ArrayLike,
    *,
    chunk_size: int = 4096,
) -> dict[str, float]:
    """Distance to the closest record of reward rows, against the held-out baseline.

    Each reward row's distance to its nearest training row is summarised by its
    median and 5th percentile; the baseline is the same for held-out real rows
    (drawn from the same distribution but not trained on). A ratio well below 1
    means the rewards sit closer to the training rows than fresh real data does.

    Args:
        reward: (n_r, d) reward rows.
        train: (n_train, d) real training rows (pooled, or one party's).
        holdout: (n_h, d) held-out real rows.
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        ``{"reward_median", "reward_p5", "holdout_median", "holdout_p5",
        "ratio"}``; ``ratio`` = reward_median / holdout_median, nan when
        holdout_median is 0.

    Raises:
        TypeError, ValueError: as `nearest_distances`.

    Example:
        >>> out = dcr([[0.1], [2.0]], [[0.0], [2.0]], [[1.0], [3.0]])
        >>> round(out["reward_median"], 3), round(out["holdout_median"], 3)
        (0.05, 1.0)
        >>> round(out["ratio"], 3)
        0.05
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    r = _as_rows("reward", reward)
    t = _as_rows("train", train)
    h = _as_rows("holdout", holdout)
    _same_width(("reward", "train", "holdout"), r, t, h)
    return _summary(
        _nearest(r, t, chunk_size, False), _nearest(h, t, chunk_size, False)
    )


def near_copy_threshold(
    train: ArrayLike,
    *,
    quantile: float = 0.01,
    chunk_size: int = 4096,
) -> float:
    """The ``quantile`` of real-to-real nearest-neighbour distances within ``train``.

    Each training row's distance to its nearest other training row
    (leave-one-out by index), then the ``quantile`` of those (linear
    interpolation). With the default 0.01 this is the near-copy threshold and
    the guard ``sample.min_distance = "auto"``. Duplicate training rows can
    make it 0, and then nothing is closer than it.

    Args:
        train: (n_train, d) real training rows, n_train ≥ 2.
        quantile: in [0, 1].
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        The threshold, ≥ 0.

    Raises:
        TypeError: if ``quantile`` is not a number (or as `nearest_distances`).
        ValueError: if ``quantile`` is outside [0, 1] or ``train`` has < 2 rows.

    Example:
        >>> round(near_copy_threshold([[0.0], [1.0], [3.0], [7.0]], quantile=0.0), 3)
        1.0
        >>> round(near_copy_threshold([[0.0], [1.0], [3.0], [7.0]], quantile=1.0), 3)
        4.0
    """
    q = check_interval("quantile", quantile, 0.0, 1.0)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    t = _as_rows("train", train, min_rows=2)
    return float(np.quantile(_nearest(t, t, chunk_size, True), q))


def _check_distance(name: str, value: Any) -> float:
    """Return ``value`` as a finite float ≥ 0 (a distance threshold)."""
    out = check_finite(name, value)
    if out < 0:
        raise ValueError(f"Argument `{name}` must be >= 0, got {value!r}")
    return out


def near_copy_share(
    reward: ArrayLike,
    train: ArrayLike,
    threshold: float,
    *,
    chunk_size: int = 4096,
) -> float:
    """Share of reward rows strictly closer than ``threshold`` to a training row.

    Args:
        reward: (n_r, d) reward rows.
        train: (n_train, d) real training rows.
        threshold: a distance ≥ 0, usually `near_copy_threshold` of ``train``.
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        The share in [0, 1].

    Raises:
        TypeError: if ``threshold`` is not a number (or as `nearest_distances`).
        ValueError: if ``threshold`` is negative or not finite.

    Example:
        >>> round(near_copy_share([[0.0], [0.2], [5.0], [1.0]], [[0.0], [1.0]], 0.1), 3)
        0.5
    """
    threshold = _check_distance("threshold", threshold)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    r = _as_rows("reward", reward)
    t = _as_rows("train", train)
    _same_width(("reward", "train"), r, t)
    return float(np.mean(_nearest(r, t, chunk_size, False) < threshold))


def _mann_whitney_auc(pos: NDArray[np.float64], neg: NDArray[np.float64]) -> float:
    """P(pos > neg) + ½·P(pos = neg) over all pairs (ROC AUC, ties counted half)."""
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")  # neg < pos
    not_above = np.searchsorted(neg_sorted, pos, side="right")  # neg <= pos
    ties = (not_above - below).sum(dtype=np.float64)
    wins = below.sum(dtype=np.float64) + 0.5 * ties
    return float(wins / (pos.size * neg.size))


def membership_auc(
    train_members: ArrayLike,
    holdout: ArrayLike,
    reward: ArrayLike,
    *,
    chunk_size: int = 4096,
) -> float:
    """Distance-based membership-inference AUC of the reward rows.

    An attacker holding the reward rows scores a real row by minus its distance
    to the closest reward row; the AUC is that of training rows (members)
    against held-out rows (non-members), by the Mann–Whitney U formula with
    ties counted half. 0.5 means the rewards do not tell members apart; 1.0
    means every member lies closer to a reward row than every non-member.

    Args:
        train_members: (n_m, d) real rows the rewards were fitted on.
        holdout: (n_h, d) real rows from the same distribution, not fitted on.
        reward: (n_r, d) reward rows.
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        The AUC in [0, 1].

    Raises:
        TypeError, ValueError: as `nearest_distances`.

    Example:
        >>> round(membership_auc([[0.0], [1.0]], [[3.0], [0.0]], [[0.0], [1.0]]), 3)
        0.75
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    m = _as_rows("train_members", train_members)
    h = _as_rows("holdout", holdout)
    r = _as_rows("reward", reward)
    _same_width(("train_members", "holdout", "reward"), m, h, r)
    score_m = -_nearest(m, r, chunk_size, False)
    score_h = -_nearest(h, r, chunk_size, False)
    return _mann_whitney_auc(score_m, score_h)


def min_distance_mask(
    candidates: ArrayLike,
    train: ArrayLike,
    min_distance: float,
    *,
    chunk_size: int = 4096,
) -> NDArray[np.bool_]:
    """Which candidates lie at distance ≥ ``min_distance`` from every training row.

    The privacy guard ``sample.min_distance``: candidates outside the mask are
    removed before sampling. ``min_distance = 0`` keeps every candidate.

    Args:
        candidates: (n_c, d) candidate rows.
        train: (n_train, d) real training rows.
        min_distance: the guard, a distance ≥ 0.
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        (n_c,) bool mask, True for a kept candidate.

    Raises:
        TypeError: if ``min_distance`` is not a number (or as `nearest_distances`).
        ValueError: if ``min_distance`` is negative or not finite.

    Example:
        >>> min_distance_mask([[0.0], [0.5], [2.0]], [[0.0], [1.0]], 0.5)
        array([False,  True,  True])
    """
    min_distance = _check_distance("min_distance", min_distance)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    c = _as_rows("candidates", candidates)
    t = _as_rows("train", train)
    _same_width(("candidates", "train"), c, t)
    if min_distance == 0:
        return np.ones(c.shape[0], dtype=bool)
    return _nearest(c, t, chunk_size, False) >= min_distance


def _summary(d_reward: NDArray[np.float64], d_holdout: NDArray[np.float64]) -> dict:
    """DCR summary of reward distances against held-out distances (as `dcr`)."""
    r_med, h_med = float(np.median(d_reward)), float(np.median(d_holdout))
    return {
        "reward_median": r_med,
        "reward_p5": float(np.percentile(d_reward, 5)),
        "holdout_median": h_med,
        "holdout_p5": float(np.percentile(d_holdout, 5)),
        "ratio": r_med / h_med if h_med > 0 else float("nan"),
    }


def privacy_measures(
    parties: Sequence[ArrayLike],
    holdout: ArrayLike,
    rewards: Sequence[ArrayLike | None],
    *,
    quantile: float = 0.01,
    chunk_size: int = 4096,
) -> dict[str, Any]:
    """Every privacy measure of every party's reward rows, in one space.

    The pooled training rows are the parties' rows together. For each party i
    with a non-empty reward R_i: its DCR against the pooled rows (`dcr`), its
    DCR against each other party j's rows (reward rows' median distance to
    D_j over the held-out rows' median distance to D_j), the share of near
    copies (`near_copy_share` at the pooled `near_copy_threshold`) and the
    membership-inference AUC of the pooled rows against the held-out rows
    (`membership_auc`). Every distance is computed once: the distances to the
    pooled rows are the minimum over the parties' blocks.

    Args:
        parties: N arrays (n_j, d) of real training rows.
        holdout: (n_h, d) held-out real rows (the baseline, never trained on).
        rewards: N arrays (n_r, d) of reward rows, or None / 0 rows for a party
            that received none (its measures are None).
        quantile: the near-copy quantile (0.01 = the 1st percentile).
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        ``{"near_copy_threshold": float, "parties": [per party: {"n_rewards",
        "dcr" (as `dcr`), "dcr_ratio_by_party" (list, None at i),
        "near_copy_share", "mia_auc"}]}``.

    Raises:
        TypeError, ValueError: as `nearest_distances`; also if ``rewards`` does
            not hold one entry per party.

    Example:
        >>> parts = [[[0.0], [1.0]], [[4.0], [5.0]]]
        >>> out = privacy_measures(parts, [[2.0], [3.0]], [[[0.0]], None])
        >>> p0 = out["parties"][0]
        >>> p0["n_rewards"], p0["near_copy_share"], p0["mia_auc"]
        (1, 1.0, 0.5)
        >>> out["parties"][1]["dcr"] is None
        True
    """
    q = check_interval("quantile", quantile, 0.0, 1.0)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    ps = [_as_rows(f"parties[{j}]", p) for j, p in enumerate(parties)]
    h = _as_rows("holdout", holdout)
    if len(rewards) != len(ps):
        raise ValueError(
            f"Argument `rewards` must hold one entry per party ({len(ps)}), "
            f"got {len(rewards)}"
        )
    pooled = np.concatenate(ps)
    _same_width(("pooled parties", "holdout"), pooled, h)
    threshold = float(np.quantile(_nearest(pooled, pooled, chunk_size, True), q))
    # the held-out baseline: distance of each held-out row to each party, then pooled
    h_by_party = np.stack([_nearest(h, p, chunk_size, False) for p in ps])
    h_pooled = h_by_party.min(axis=0)
    out = []
    for i, r in enumerate(rewards):
        r_arr = None if r is None else np.asarray(r)
        if r_arr is None or r_arr.shape[0] == 0:
            out.append(
                {"n_rewards": 0, "dcr": None, "dcr_ratio_by_party": None}
                | {"near_copy_share": None, "mia_auc": None}
            )
            continue
        ra = _as_rows(f"rewards[{i}]", r_arr)
        _same_width(("rewards", "pooled parties"), ra, pooled)
        r_by_party = np.stack([_nearest(ra, p, chunk_size, False) for p in ps])
        r_pooled = r_by_party.min(axis=0)
        ratios = [
            None if j == i else _summary(r_by_party[j], h_by_party[j])["ratio"]
            for j in range(len(ps))
        ]
        members = -_nearest(pooled, ra, chunk_size, False)
        non_members = -_nearest(h, ra, chunk_size, False)
        out.append(
            {
                "n_rewards": int(ra.shape[0]),
                "dcr": _summary(r_pooled, h_pooled),
                "dcr_ratio_by_party": ratios,
                "near_copy_share": float(np.mean(r_pooled < threshold)),
                "mia_auc": _mann_whitney_auc(members, non_members),
            }
        )
    return {"near_copy_threshold": threshold, "parties": out}


def guard_candidates(
    candidates: ArrayLike,
    train: ArrayLike,
    min_distance: float | str,
    *,
    quantile: float = 0.01,
    chunk_size: int = 4096,
) -> tuple[NDArray[np.int64], float]:
    """The privacy guard ``sample.min_distance`` (docs/cgm.md §8.5).

    Rows are flattened (an image becomes its pixel vector), so the distances are
    those of the data space. ``"auto"`` resolves to `near_copy_threshold` of the
    training rows at ``quantile``; 0 keeps every candidate without computing a
    distance.

    Args:
        candidates: (n_c, ...) candidate rows.
        train: (n_train, ...) real training rows (every party's).
        min_distance: a distance ≥ 0, or ``"auto"``.
        quantile: the quantile of ``"auto"``.
        chunk_size: rows per block of `nearest_distances`.

    Returns:
        (indices of the kept candidates in increasing order, the distance used).

    Raises:
        TypeError, ValueError: as `min_distance_mask`, or on a string other than
            ``"auto"``.

    Example:
        >>> keep, used = guard_candidates([[0.0], [0.5], [2.0]], [[0.0], [1.0]], 0.5)
        >>> keep.tolist(), used
        ([1, 2], 0.5)
        >>> guard_candidates([[0.0], [6.0]], [[0.0], [1.0], [3.5]], "auto")[0].tolist()
        [1]
    """
    c = np.asarray(candidates)
    t = np.asarray(train)
    c = c.reshape(c.shape[0], -1) if c.ndim > 2 else c
    t = t.reshape(t.shape[0], -1) if t.ndim > 2 else t
    if isinstance(min_distance, str):
        if min_distance != "auto":
            raise ValueError(
                f'Argument `min_distance` must be a number >= 0 or "auto", '
                f"got {min_distance!r}"
            )
        used = near_copy_threshold(t, quantile=quantile, chunk_size=chunk_size)
    else:
        used = _check_distance("min_distance", min_distance)
    mask = min_distance_mask(c, t, used, chunk_size=chunk_size)
    return np.flatnonzero(mask).astype(np.int64), float(used)
