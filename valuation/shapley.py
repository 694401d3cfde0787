"""Shapley values over party coalitions (docs/cgm.md §5.5; Tay et al., AAAI 2022).

Exact Shapley values come from a value table indexed by bitmask (bit i set means
party i is in the coalition), in O(N·2^N) vectorised work:

    φ_i = Σ_{S ⊆ N, i ∉ S} |S|!(N−|S|−1)!/N! · [v(S ⊎ {i}) − v(S)].

Permutation Shapley values average marginal contributions over seeded random
orders. For the kernel value of docs/cgm.md §5.1 the marginal contributions come from
running block sums (O(N) per step, no kernel work); any other game can use the
game-agnostic :func:`permutation_shapley_game`. This is the project's one Shapley
implementation: the cosine game of docs/cgsv.md §8 calls
:func:`exact_shapley` with its own value table.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from data.checks import check_int, check_positive_int
from data.seeding import Seed
from valuation.coalition import (
    MAX_BITMASK_PARTIES,
    check_block_sums,
    coalition_values_from_sums,
)

logger = logging.getLogger(__name__)

#: Anything :func:`numpy.random.default_rng` accepts (docs/interface.md §7).

#: Relative tolerance of the efficiency check Σφ = v(N) − v(∅) (docs/cgm.md §5.5).
EFFICIENCY_RTOL = 1e-9

#: Permutations evaluated per vectorised batch; fixed so results do not depend on
#: memory settings (the generator is consumed batch by batch in the same way).
_PERMUTATION_BATCH = 1024


def n_players_of_table(values: NDArray) -> int:
    """Number of players N of a bitmask value table of length 2^N.

    Args:
        values: (2^N,) value table.

    Returns:
        N.

    Raises:
        ValueError: if the table is not 1-D with a power-of-two length ≥ 2.

    Example:
        >>> n_players_of_table(np.zeros(8))
        3
    """
    values = np.asarray(values)
    size = values.shape[0] if values.ndim == 1 else 0
    if values.ndim != 1 or size < 2 or size & (size - 1):
        raise ValueError(
            "Argument `values` must be a 1-D table of length 2^N (N >= 1) indexed "
            f"by bitmask, got shape {values.shape}"
        )
    return size.bit_length() - 1


def popcounts(n_players: int) -> NDArray[np.int64]:
    """Number of members |S| of every bitmask S in 0 … 2^N − 1.

    Args:
        n_players: N ≥ 0.

    Returns:
        (2^N,) int64 array.

    Example:
        >>> popcounts(2).tolist()
        [0, 1, 1, 2]
    """
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(n_players):
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def shapley_weights(n_players: int) -> NDArray[np.float64]:
    """Shapley weights w(s) = s!(N−s−1)!/N! = 1/(N·C(N−1, s)) for s = 0 … N−1.

    Args:
        n_players: N ≥ 1.

    Returns:
        (N,) float64 weights.

    Example:
        >>> shapley_weights(3).tolist() == [1 / 3, 1 / 6, 1 / 3]
        True
    """
    return np.array(
        [1.0 / (n_players * math.comb(n_players - 1, s)) for s in range(n_players)],
        dtype=np.float64,
    )


def exact_shapley(values: NDArray) -> NDArray[np.float64]:
    """Exact Shapley values of a game given as a bitmask value table (docs/cgm.md §5.5).

    Args:
        values: (2^N,) float table; ``values[mask]`` is v of the coalition whose
            members are the set bits of ``mask``; ``values[0]`` is v(∅) (the
            caller defines it; it is never assumed).

    Returns:
        (N,) float64 Shapley values φ.

    Raises:
        ValueError: if the table has a bad shape, holds NaN/inf or N is too large.
        RuntimeError: if efficiency Σφ = v(N) − v(∅) fails to rel 1e-9 of max|v|.

    Example:
        >>> exact_shapley(np.array([0.0, 1.0, 2.0, 4.0])).tolist()  # v({0,1}) = 4
        [1.5, 2.5]
    """
    n = n_players_of_table(values)
    if n > MAX_BITMASK_PARTIES:
        raise ValueError(
            f"Argument `values` describes N = {n} players; exact Shapley supports at "
            f"most {MAX_BITMASK_PARTIES}"
        )
    table = np.asarray(values, dtype=np.float64)
    if not np.isfinite(table).all():
        raise ValueError("Argument `values` contains NaN or inf")
    masks = np.arange(table.shape[0], dtype=np.int64)
    weight_of_mask = shapley_weights(n)[np.minimum(popcounts(n), n - 1)]
    phi = np.empty(n, dtype=np.float64)
    for i in range(n):
        without_i = masks[(masks >> i) & 1 == 0]
        marginal = table[without_i | (1 << i)] - table[without_i]
        phi[i] = np.dot(weight_of_mask[without_i], marginal)
    _check_efficiency(phi, table[-1] - table[0], float(np.abs(table).max()))
    return phi


def _check_efficiency(phi: NDArray[np.float64], total: float, scale: float) -> None:
    # rel 1e-9 of the largest |v| (docs/cgm.md §5.5): Σφ may itself be near 0.
    if abs(float(phi.sum()) - total) > EFFICIENCY_RTOL * max(scale, 1e-300):
        raise RuntimeError(
            f"Shapley efficiency failed: sum(phi) = {phi.sum()!r} but "
            f"v(N) - v(empty) = {total!r}"
        )


def _check_n_permutations(n_permutations: int) -> None:
    check_int("n_permutations", n_permutations)
    if n_permutations < 2:
        raise ValueError(
            "Argument `n_permutations` must be >= 2 (the standard error needs two), "
            f"got {n_permutations!r}"
        )


def _permutation_batches(
    n_players: int, n_permutations: int, seed: Seed, progress: bool
) -> tqdm:
    rng = np.random.default_rng(seed)
    starts = range(0, n_permutations, _PERMUTATION_BATCH)

    def batches() -> Iterator[NDArray[np.int64]]:
        for start in starts:
            size = min(_PERMUTATION_BATCH, n_permutations - start)
            base = np.broadcast_to(np.arange(n_players), (size, n_players))
            yield rng.permuted(base, axis=1)

    return tqdm(batches(), total=len(starts), disable=not progress, desc="shapley")


def _mean_and_stderr(
    marginals: list[NDArray[np.float64]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    table = np.concatenate(marginals, axis=0)
    phi = table.mean(axis=0)
    stderr = table.std(axis=0, ddof=1) / math.sqrt(table.shape[0])
    return phi, stderr


def block_marginals(
    block_sums: NDArray, sizes: NDArray, permutations: NDArray
) -> NDArray[np.float64]:
    """Marginal contributions along given party orders, from running block sums.

    For each order π and step k, with C the first k parties of π and p = π_k,
    the running sums m_C = Σ_{j∈C} n_j, Σ_{j∈C} b_j and Σ_{i,j∈C} K̄_ij are
    updated in O(N) (docs/cgm.md §5.5): Σ K̄ grows by 2·Σ_{j∈C} K̄_pj + K̄_pp, where the
    vector r = Σ_{j∈C} K̄_{·j} is carried along.

    Args:
        block_sums: (N+1, N+1) block-sum matrix K̄ (parties, then the pool G).
        sizes: (N+1,) block sizes (n_1 … n_N, n_G).
        permutations: (P, N) int array, each row an order of 0 … N−1.

    Returns:
        (P, N) float64; entry [p, i] is v(C ⊎ {i}) − v(C) for i's predecessors C
        in order p.

    Raises:
        ValueError: on bad block sums, sizes or permutations.

    Example:
        >>> k = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> m = block_marginals(k, np.array([1, 1, 1]), np.array([[0, 1]]))
        >>> m.round(12).tolist()  # v({0}) = 2/3 − 1 = −1/3; v({0,1}) = 2/3 − 1/2
        [[-0.333333333333, 0.5]]
    """
    kbar, n_sizes = check_block_sums(block_sums, sizes)
    n = kbar.shape[0] - 1
    perms = np.asarray(permutations)
    if (
        perms.ndim != 2
        or perms.shape[1] != n
        or not np.array_equal(
            np.sort(perms, axis=1), np.broadcast_to(np.arange(n), perms.shape)
        )
    ):
        raise ValueError(
            f"Argument `permutations` must be (P, {n}) with each row an order of "
            f"0..{n - 1}, got shape {perms.shape}"
        )
    n_t = float(n_sizes.sum())
    k_pp = kbar[:n, :n]
    b = kbar[:n, :].sum(axis=1)
    n_party = n_sizes[:n]
    rows = np.arange(perms.shape[0])
    m = np.zeros(perms.shape[0])
    sum_b = np.zeros(perms.shape[0])
    sum_k = np.zeros(perms.shape[0])
    running = np.zeros((perms.shape[0], n))  # r = Σ_{j∈C} K̄_{·j}
    v_prev = np.zeros(perms.shape[0])  # v(∅) = 0 (docs/cgm.md §5.1)
    out = np.empty(perms.shape, dtype=np.float64)
    for step in range(n):
        p = perms[:, step]
        sum_k += 2.0 * running[rows, p] + k_pp[p, p]
        running += k_pp[:, p].T
        m += n_party[p]
        sum_b += b[p]
        v_new = coalition_values_from_sums(m, sum_b, sum_k, n_t)
        out[rows, p] = v_new - v_prev
        v_prev = v_new
    return out


def permutation_shapley(
    block_sums: NDArray,
    sizes: NDArray,
    n_permutations: int,
    *,
    seed: Seed = None,
    progress: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Permutation-sampling Shapley values of the kernel game (docs/cgm.md §5.5).

    Args:
        block_sums: (N+1, N+1) block-sum matrix K̄ (parties, then the pool G).
        sizes: (N+1,) block sizes (n_1 … n_N, n_G).
        n_permutations: number of seeded random orders, ≥ 2.
        seed: seed of the one generator that draws the orders.
        progress: show a progress bar.

    Returns:
        (φ, stderr): (N,) float64 mean marginal contributions and their standard
        errors std(ddof=1)/√P.

    Raises:
        ValueError: on bad block sums, sizes or ``n_permutations``.
        TypeError: if ``n_permutations`` is not an int.

    Example:
        >>> k = np.ones((3, 3))  # identical points: v(C) = 2 − 1 = 1 for C ≠ ∅
        >>> phi, se = permutation_shapley(k, np.array([1, 1, 1]), 4, seed=0)
        >>> float(phi.sum())  # the first party in each order gets 1
        1.0
    """
    kbar, n_sizes = check_block_sums(block_sums, sizes)
    _check_n_permutations(n_permutations)
    n = kbar.shape[0] - 1
    marginals = [
        block_marginals(kbar, n_sizes, perms)
        for perms in _permutation_batches(n, n_permutations, seed, progress)
    ]
    return _mean_and_stderr(marginals)


def permutation_shapley_game(
    value_fn: Callable[[frozenset[int]], float],
    n_players: int,
    n_permutations: int,
    *,
    seed: Seed = None,
    progress: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Permutation-sampling Shapley values of any game (game-agnostic form).

    Coalition values are memoised for the duration of the call; v(∅) is asked of
    ``value_fn`` (never assumed to be 0).

    Args:
        value_fn: v(C) for a coalition C (a frozenset of player ids).
        n_players: N ≥ 1.
        n_permutations: number of seeded random orders, ≥ 2.
        seed: seed of the one generator that draws the orders.
        progress: show a progress bar.

    Returns:
        (φ, stderr): (N,) float64 mean marginal contributions and their standard
        errors std(ddof=1)/√P.

    Raises:
        ValueError: on a bad ``n_players`` or ``n_permutations``.
        TypeError: if ``n_permutations`` is not an int.

    Example:
        >>> game = lambda c: float(sum(i + 1 for i in c))  # additive: φ_i = i + 1
        >>> phi, se = permutation_shapley_game(game, 2, 3, seed=0)
        >>> phi.tolist(), se.tolist()
        ([1.0, 2.0], [0.0, 0.0])
    """
    check_positive_int("n_players", n_players)
    _check_n_permutations(n_permutations)
    cache: dict[frozenset[int], float] = {}

    def value(members: frozenset[int]) -> float:
        if members not in cache:
            cache[members] = float(value_fn(members))
        return cache[members]

    marginals = []
    for perms in _permutation_batches(n_players, n_permutations, seed, progress):
        out = np.empty(perms.shape, dtype=np.float64)
        for row, order in enumerate(perms):
            members: frozenset[int] = frozenset()
            v_prev = value(members)
            for p in order.tolist():
                members = members | {p}
                v_new = value(members)
                out[row, p] = v_new - v_prev
                v_prev = v_new
        marginals.append(out)
    return _mean_and_stderr(marginals)
