"""Coalition keys and coalition values of the kernel game (docs/cgm.md §5.1, §5.4).

For a non-empty multiset S of feature vectors and the reference T (all party data
plus the whole candidate pool), with the SE kernel k of lengthscale ℓ:

    S_X(S)  = (1/|S|²) Σ_{x∈S} Σ_{x'∈S} k(x, x')      (diagonal included)
    S_XY(S) = (2/(|S|·n_T)) Σ_{x∈S} Σ_{y∈T} k(x, y)
    v(S) = S_XY(S) − S_X(S),   v(∅) = 0,   v(C) = v(⊎_{i∈C} D_i).

All 2^N coalition values follow from the (N+1)×(N+1) block-sum matrix
K̄_ab = Σ_{x∈P_a} Σ_{y∈P_b} k(x, y) of one kernel pass (blocks P_1 … P_N the
parties, P_{N+1} = G the candidate pool) by array arithmetic (docs/cgm.md §5.4):

    v(C) = 2·Σ_{i∈C} b_i / (m_C·n_T) − Σ_{i,j∈C} K̄_ij / m_C²,   b_a = Σ_b K̄_ab.

Valuation after Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine
Learning via Synthetic Data Rewards" (AAAI 2022).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from data.checks import check_int, is_int
from valuation.kernels import kernel_row_sums

logger = logging.getLogger(__name__)

#: Largest N for which a full 2^N value table is built (2^24 float64 = 128 MiB).
MAX_BITMASK_PARTIES = 24

#: Coalitions evaluated per vectorised chunk: bounds memory at chunk × N² floats.
_MASK_CHUNK = 4096


class CoalitionValue(Protocol):
    """A game: the value v(C) of every coalition C, v(∅) included.

    An implementation defines v(∅) itself (for the kernel game v(∅) = 0); callers
    never assume it.
    """

    def __call__(self, coalition: frozenset[int]) -> float:
        """Value of ``coalition`` (a frozenset of party ids; may be empty)."""
        ...


def coalition_key(members: Iterable[int]) -> str:
    """The on-disk key of a coalition: sorted party ids joined by commas.

    This and :func:`parse_coalition_key` are the one pair of helpers that write
    and read keys (docs/interface.md §1, docs/interface.md ``values.json``).

    Args:
        members: distinct party ids ≥ 0 (any iterable of ints).

    Returns:
        The key, e.g. ``"0,2,3"``; the empty coalition gives ``""``.

    Raises:
        TypeError: if a member is not an int.
        ValueError: if a member is negative or repeated.

    Example:
        >>> coalition_key({3, 0, 2})
        '0,2,3'
    """
    ids = list(members)
    for m in ids:
        if not is_int(m):
            raise TypeError(f"Argument `members` must hold ints, got {m!r}")
        if m < 0:
            raise ValueError(f"Argument `members` must hold ids >= 0, got {m!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"Argument `members` has a repeated id: {sorted(ids)!r}")
    return ",".join(str(int(m)) for m in sorted(ids))


def parse_coalition_key(key: str) -> frozenset[int]:
    """Read a key written by :func:`coalition_key` (canonical form only).

    Args:
        key: sorted, distinct party ids joined by commas (``""`` for ∅).

    Returns:
        The coalition.

    Raises:
        TypeError: if ``key`` is not a string.
        ValueError: if ``key`` is not in canonical form.

    Example:
        >>> sorted(parse_coalition_key("0,2,3"))
        [0, 2, 3]
    """
    if not isinstance(key, str):
        raise TypeError(f"Argument `key` must be a str, got {key!r}")
    if key == "":
        return frozenset()
    parts = key.split(",")
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(
            f"Argument `key` must be party ids joined by commas, got {key!r}"
        )
    members = frozenset(int(p) for p in parts)
    if coalition_key(members) != key:
        raise ValueError(
            f"Argument `key` must list distinct ids in increasing order without "
            f"leading zeros, got {key!r} (canonical: {coalition_key(members)!r})"
        )
    return members


def mask_of(members: Iterable[int]) -> int:
    """Bitmask of a coalition (bit i set ⇔ party i is a member).

    Args:
        members: party ids ≥ 0.

    Returns:
        The bitmask.

    Example:
        >>> mask_of({0, 2})
        5
    """
    return sum(1 << int(i) for i in set(members))


def members_of(mask: int) -> frozenset[int]:
    """The coalition of a bitmask.

    Args:
        mask: bitmask ≥ 0.

    Returns:
        The set of party ids whose bit is set.

    Example:
        >>> sorted(members_of(5))
        [0, 2]
    """
    return frozenset(i for i in range(int(mask).bit_length()) if mask >> i & 1)


def value_of_set(s: NDArray, t: NDArray, lengthscale: float) -> float:
    """v(S) = S_XY(S) − S_X(S) computed directly from the points (docs/cgm.md §5.1).

    The slow, obvious implementation, used as the reference that the block-sum
    path is tested against.

    Args:
        s: (m, d) points of S (m = 0 gives v(∅) = 0).
        t: (n_T, d) reference points T.
        lengthscale: ℓ > 0.

    Returns:
        v(S) as a float.

    Raises:
        ValueError: on a bad lengthscale, empty ``t`` or mismatched shapes.

    Example:
        >>> t = np.array([[0.0], [1.0]])  # k(0, 1) = e^{-1/2} at ℓ = 1
        >>> round(value_of_set(t[:1], t, 1.0), 12)  # 2(1 + e^{-1/2})/2 − 1
        0.606530659713
    """
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(
            f"Argument `t` must be a non-empty (n, d) array, got {t.shape}"
        )
    if s.ndim != 2 or s.shape[1] != t.shape[1]:
        raise ValueError(
            f"Argument `s` must be (m, {t.shape[1]}) like `t`, got shape {s.shape}"
        )
    if s.shape[0] == 0:
        return 0.0
    center = t.mean(axis=0)
    row_t = kernel_row_sums(
        s, t, lengthscale, center=center, kernel_precision="float64"
    )
    row_s = kernel_row_sums(
        s, s, lengthscale, center=center, kernel_precision="float64"
    )
    m, n_t = s.shape[0], t.shape[0]
    return float(2.0 * row_t.sum() / (m * n_t) - row_s.sum() / m**2)


def check_block_sums(
    block_sums: NDArray, sizes: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Validate a block-sum matrix and its block sizes.

    Args:
        block_sums: (N+1, N+1) symmetric, finite K̄ (parties first, pool last).
        sizes: (N+1,) block sizes; parties ≥ 1, pool ≥ 0.

    Returns:
        ``(block_sums, sizes)`` as float64 and int64 arrays.

    Raises:
        ValueError: on a bad shape, non-finite or asymmetric K̄, or bad sizes.
    """
    kbar = np.asarray(block_sums, dtype=np.float64)
    n_sizes = np.asarray(sizes)
    if kbar.ndim != 2 or kbar.shape[0] != kbar.shape[1] or kbar.shape[0] < 2:
        raise ValueError(
            "Argument `block_sums` must be a square (N+1, N+1) matrix with N >= 1, "
            f"got shape {kbar.shape}"
        )
    if not np.isfinite(kbar).all():
        raise ValueError("Argument `block_sums` contains NaN or inf")
    # Symmetry holds exactly by construction (the lower triangle is mirrored).
    if not np.allclose(kbar, kbar.T, rtol=1e-12, atol=0.0):
        raise ValueError("Argument `block_sums` must be symmetric")
    if n_sizes.shape != (kbar.shape[0],) or not np.issubdtype(
        n_sizes.dtype, np.integer
    ):
        raise ValueError(
            f"Argument `sizes` must be {kbar.shape[0]} ints (parties, then the pool), "
            f"got {sizes!r}"
        )
    if (n_sizes[:-1] < 1).any() or n_sizes[-1] < 0:
        raise ValueError(
            f"Argument `sizes` must be >= 1 for parties and >= 0 for the pool, got "
            f"{n_sizes.tolist()!r}"
        )
    return kbar, n_sizes.astype(np.int64)


def coalition_values_from_sums(
    m: NDArray, sum_b: NDArray, sum_k: NDArray, n_t: float
) -> NDArray[np.float64]:
    """Coalition values 2·Σb/(m·n_T) − ΣK̄/m² from unnormalised sums (docs/cgm.md §5.4).

    Args:
        m: (...) coalition sizes m_C (0 for ∅).
        sum_b: (...) Σ_{i∈C} b_i = Σ_{x∈C, y∈T} k(x, y).
        sum_k: (...) Σ_{i,j∈C} K̄_ij = Σ_{x,x'∈C} k(x, x').
        n_t: reference size n_T.

    Returns:
        (...) float64 values, 0 where m = 0 (v(∅) = 0).

    Example:
        >>> coalition_values_from_sums(np.array([0, 2]), np.array([0, 6]),
        ...                            np.array([0, 3]), 4.0).tolist()
        [0.0, 0.75]
    """
    m = np.asarray(m, dtype=np.float64)
    safe = np.where(m > 0, m, 1.0)
    v = 2.0 * np.asarray(sum_b) / (safe * n_t) - np.asarray(sum_k) / safe**2
    return np.where(m > 0, v, 0.0)


def _indicator(masks: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    return ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)


def coalition_values_from_blocks(
    block_sums: NDArray, sizes: NDArray, masks: NDArray | None = None
) -> NDArray[np.float64]:
    """Coalition values from the block-sum matrix, array arithmetic (docs/cgm.md §5.4).

    With the indicator matrix I of the masks (I[c, i] = 1 ⇔ party i ∈ C_c):
    m = I n, Σb = I b, ΣK̄ = rowsum((I K̄) ∘ I); masks are processed in chunks,
    so memory stays bounded for N = 16 and beyond.

    Args:
        block_sums: (N+1, N+1) block-sum matrix K̄ (parties, then the pool G).
        sizes: (N+1,) block sizes (n_1 … n_N, n_G).
        masks: optional (M,) bitmasks; default all 0 … 2^N − 1.

    Returns:
        (M,) float64 values v(C) (default (2^N,) indexed by bitmask, entry 0 is
        v(∅) = 0).

    Raises:
        ValueError: on bad block sums, sizes or masks.

    Example:
        >>> k = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> v = coalition_values_from_blocks(k, np.array([1, 1, 1]))
        >>> np.round(v, 9).tolist()  # v({0}) = 2/(1·3) − 1 = −1/3
        [0.0, -0.333333333, -0.333333333, 0.166666667]
    """
    kbar, n_sizes = check_block_sums(block_sums, sizes)
    n = kbar.shape[0] - 1
    if masks is None:
        if n > MAX_BITMASK_PARTIES:
            raise ValueError(
                f"Argument `block_sums` has N = {n} parties; a full value table "
                f"supports at most {MAX_BITMASK_PARTIES} (pass `masks`)"
            )
        all_masks = np.arange(1 << n, dtype=np.int64)
    else:
        all_masks = np.asarray(masks, dtype=np.int64)
        if all_masks.ndim != 1 or (all_masks < 0).any() or (all_masks >> n).any():
            raise ValueError(
                f"Argument `masks` must be 1-D bitmasks in [0, 2^{n}), got {masks!r}"
            )
    k_pp = kbar[:n, :n]
    b = kbar[:n, :].sum(axis=1)
    n_party = n_sizes[:n].astype(np.float64)
    n_t = float(n_sizes.sum())
    out = np.empty(all_masks.shape[0], dtype=np.float64)
    for start in range(0, all_masks.shape[0], _MASK_CHUNK):
        chunk = all_masks[start : start + _MASK_CHUNK]
        ind = _indicator(chunk, n)
        sum_k = ((ind @ k_pp) * ind).sum(axis=1)
        out[start : start + _MASK_CHUNK] = coalition_values_from_sums(
            ind @ n_party, ind @ b, sum_k, n_t
        )
    return out


def v_with_pool(block_sums: NDArray, sizes: NDArray) -> NDArray[np.float64]:
    """v(D_i ⊎ G) for every party: its data plus the whole pool (docs/cgm.md §5.4).

    v(D_i ⊎ G) = 2(b_i + b_G)/(m·n_T) − (K̄_ii + 2K̄_iG + K̄_GG)/m², m = n_i + n_G.

    Args:
        block_sums: (N+1, N+1) block-sum matrix K̄ (parties, then the pool G).
        sizes: (N+1,) block sizes (n_1 … n_N, n_G).

    Returns:
        (N,) float64 values (``v_max`` of values.json).

    Raises:
        ValueError: on bad block sums or sizes.

    Example:
        >>> v_with_pool(np.ones((3, 3)), np.array([1, 1, 1])).tolist()
        [1.0, 1.0]
    """
    kbar, n_sizes = check_block_sums(block_sums, sizes)
    n = kbar.shape[0] - 1
    b = kbar.sum(axis=1)
    diag = np.diagonal(kbar)[:n]
    sum_k = diag + 2.0 * kbar[:n, n] + kbar[n, n]
    m = n_sizes[:n] + n_sizes[n]
    return coalition_values_from_sums(m, b[:n] + b[n], sum_k, float(n_sizes.sum()))


def reference_value(block_sums: NDArray, sizes: NDArray) -> float:
    """K̄_TT = Σ_{a,b} K̄_ab / n_T², the mean kernel value over T × T (docs/cgm.md §5.2).

    Args:
        block_sums: (N+1, N+1) block-sum matrix K̄.
        sizes: (N+1,) block sizes.

    Returns:
        K̄_TT (``v_reference`` of values.json; v(T) = K̄_TT).

    Raises:
        ValueError: on bad block sums or sizes.

    Example:
        >>> reference_value(np.eye(3), np.array([1, 1, 1]))  # 3 / 3²
        0.3333333333333333
    """
    kbar, n_sizes = check_block_sums(block_sums, sizes)
    return float(kbar.sum() / float(n_sizes.sum()) ** 2)


def value_table(value_fn: CoalitionValue, n_players: int) -> NDArray[np.float64]:
    """Bitmask value table of any game, for :func:`valuation.shapley.exact_shapley`.

    Args:
        value_fn: v(C) for a coalition C; called for all 2^N coalitions, ∅ included.
        n_players: N ≥ 1.

    Returns:
        (2^N,) float64 table with ``table[mask] = value_fn(members_of(mask))``.

    Raises:
        ValueError: if ``n_players`` is out of range.

    Example:
        >>> value_table(lambda c: float(len(c)), 2).tolist()
        [0.0, 1.0, 1.0, 2.0]
    """
    check_int("n_players", n_players, 1)
    if n_players > MAX_BITMASK_PARTIES:
        raise ValueError(
            f"Argument `n_players` must be an int in [1, {MAX_BITMASK_PARTIES}], "
            f"got {n_players!r}"
        )
    return np.array(
        [float(value_fn(members_of(mask))) for mask in range(1 << n_players)],
        dtype=np.float64,
    )
