"""Splits of a training pool into parties (docs/cgm.md §2.3, docs/cgsv.md §4).

One implementation serves the ``pool`` stage (``data.split``) and the ``fl`` stage
(``fl.split``). Every split returns, per party, int64 row indices into the pool.

- ``equaldisjoint`` / ``unequal``: the class-proportion matrices of Tay et al.
  (AAAI 2022), allocated exactly with integer arithmetic (largest remainder).
- ``uniform`` / ``powerlaw`` / ``classimbalance``: Xu et al. (NeurIPS 2021).
- ``dirichlet``: per-class Dirichlet shares.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from data.checks import check_int, check_positive, check_positive_int
from data.seeding import Seed, as_seed_sequence

logger = logging.getLogger(__name__)

SplitKind = Literal[
    "equaldisjoint", "unequal", "uniform", "powerlaw", "classimbalance", "dirichlet"
]
SPLITS: tuple[str, ...] = (
    "equaldisjoint",
    "unequal",
    "uniform",
    "powerlaw",
    "classimbalance",
    "dirichlet",
)

# Class-proportion matrices in thousandths (rows: parties, columns: classes), so the
# allocation n_ij = ⌊p_ij·P⌋ is exact integer arithmetic.
_P5_EQUALDISJOINT = np.full((5, 5), 10) + np.diag(np.full(5, 950))
_P5_UNEQUAL = np.array(
    [
        [200, 200, 200, 200, 200],
        [200, 200, 200, 200, 200],
        [580, 390, 10, 10, 10],
        [10, 200, 580, 200, 10],
        [10, 10, 10, 390, 580],
    ]
)
_P10_EQUALDISJOINT = np.full((5, 10), 5)
for _i in range(5):
    _P10_EQUALDISJOINT[_i, 2 * _i : 2 * _i + 2] = 480
_P10_UNEQUAL = np.array(
    [
        [100] * 10,
        [100] * 10,
        [290, 290, 195, 195, 5, 5, 5, 5, 5, 5],
        [5, 5, 100, 100, 290, 290, 100, 100, 5, 5],
        [5, 5, 5, 5, 5, 5, 195, 195, 290, 290],
    ]
)
_MATRICES = {
    ("equaldisjoint", 5): _P5_EQUALDISJOINT,
    ("unequal", 5): _P5_UNEQUAL,
    ("equaldisjoint", 10): _P10_EQUALDISJOINT,
    ("unequal", 10): _P10_UNEQUAL,
}
# Matrices over the 4 income × sex cells of Adult (cells group-major: Female ≤50K,
# Female >50K, Male ≤50K, Male >50K; docs/cgm.md §2.6). Only with ``strata``: a pool
# of 4 classes keeps refusing the paper splits. Five parties over four cells cannot
# be disjoint: in equaldisjoint party 5 holds a balanced mix.
_P4_EQUALDISJOINT = np.vstack(
    [np.full((4, 4), 15) + np.diag(np.full(4, 940)), np.full((1, 4), 250)]
)
_P4_UNEQUAL = np.array(
    [
        [250, 250, 250, 250],
        [250, 250, 250, 250],
        [580, 390, 15, 15],
        [15, 385, 585, 15],
        [15, 15, 390, 580],
    ]
)
_CELL_MATRICES = {("equaldisjoint", 4): _P4_EQUALDISJOINT, ("unequal", 4): _P4_UNEQUAL}
POWERLAW_A = 1.65911332899


def proportion_matrix(kind: str, n_parties: int, n_classes: int) -> NDArray[np.float64]:
    """The paper's class-proportion matrix p (rows sum to 1).

    Args:
        kind: ``equaldisjoint`` or ``unequal``.
        n_parties: must be 5.
        n_classes: 5 or 10.

    Returns:
        (5, C) float64 matrix.

    Raises:
        ValueError: for any other N or C.

    Example:
        >>> proportion_matrix("unequal", 5, 5)[2].tolist()
        [0.58, 0.39, 0.01, 0.01, 0.01]
    """
    return _matrix_thousandths(kind, n_parties, n_classes) / 1000.0


def _matrix_thousandths(
    kind: str, n_parties: int, n_classes: int, *, cells: bool = False
) -> NDArray[np.int64]:
    key = (kind, n_classes)
    table = _MATRICES | _CELL_MATRICES if cells else _MATRICES
    if n_parties != 5 or key not in table:
        what = "cells" if cells else "classes"
        ks = " or ".join(str(k) for k in sorted({k for _, k in table}))
        raise ValueError(
            f"split {kind!r} exists only for n_parties = 5 and {ks} {what}, got "
            f"n_parties = {n_parties} and {n_classes} {what}; use 'dirichlet' or "
            "'classimbalance'"
        )
    return table[key].astype(np.int64)


def matrix_counts(
    p_thousandths: NDArray[np.int64], party_size: int
) -> NDArray[np.int64]:
    """Exact allocation n_ij = ⌊p_ij·P⌋ plus largest remainders (ties → lower class).

    Args:
        p_thousandths: (N, C) proportions in thousandths (rows sum to 1000).
        party_size: P.

    Returns:
        (N, C) int64 counts; each row sums to P.

    Example:
        >>> matrix_counts(np.array([[500, 250, 250]]), 2).tolist()  # tie → class 1
        [[1, 1, 0]]
    """
    scaled = p_thousandths.astype(np.int64) * int(party_size)
    counts, rem = np.divmod(scaled, 1000)
    for i in range(counts.shape[0]):
        left = int(party_size - counts[i].sum())
        # stable sort on −remainder: ties keep the lower class first
        order = np.argsort(-rem[i], kind="stable")
        counts[i, order[:left]] += 1
    return counts


def _matrix_split(
    y: NDArray[np.int64],
    kind: str,
    n_parties: int,
    n_classes: int,
    party_size: int | Literal["auto"],
    rng: np.random.Generator,
    *,
    cells: bool = False,
) -> list[NDArray[np.int64]]:
    p = _matrix_thousandths(kind, n_parties, n_classes, cells=cells)
    available = np.bincount(y, minlength=n_classes)
    if party_size == "auto":
        col = p.sum(0)
        size = int(np.min(available * 1000 // np.maximum(col, 1)))
        while size > 0 and np.any(matrix_counts(p, size).sum(0) > available):
            size -= 1
        if size < 1:
            raise ValueError(f"split {kind!r}: no party_size fits the data")
    else:
        size = int(party_size)
    counts = matrix_counts(p, size)
    need = counts.sum(0)
    for j in range(n_classes):
        if need[j] > available[j]:
            raise ValueError(
                f"split {kind!r} with party_size {size} needs {need[j]} rows of class "
                f"{j} but the training pool has {available[j]}; lower party_size"
            )
    parties: list[list[NDArray[np.int64]]] = [[] for _ in range(n_parties)]
    for j in range(n_classes):
        rows = rng.permutation(np.flatnonzero(y == j))
        start = 0
        for i in range(n_parties):
            parties[i].append(rows[start : start + counts[i, j]])
            start += counts[i, j]
    return [np.concatenate(rows).astype(np.int64) for rows in parties]


def powerlaw_sizes(m: int, n_parties: int) -> NDArray[np.int64]:
    """Shard sizes of the ``powerlaw`` split (they grow linearly with the party).

    Args:
        m: pool size M.
        n_parties: N.

    Returns:
        (N,) sizes summing to M.

    Example:
        >>> powerlaw_sizes(3000, 5).tolist()
        [70, 335, 600, 864, 1131]
    """
    lo, hi = 0.01 ** (1.0 / POWERLAW_A), 0.99 ** (1.0 / POWERLAW_A)
    b = np.linspace(lo, hi, n_parties)
    sizes = np.floor(m * b / b.sum()).astype(np.int64)
    sizes[-1] = m - sizes[:-1].sum()
    return sizes


def classimbalance_classes(n_parties: int, n_classes: int) -> NDArray[np.int64]:
    """c_i = ⌊1 + (C−1)(i−1)/(N−1) + 1e-9⌋ for parties i = 1..N.

    Example:
        >>> classimbalance_classes(5, 10).tolist()
        [1, 3, 5, 7, 10]
    """
    i = np.arange(n_parties)
    return np.floor(1 + (n_classes - 1) * i / (n_parties - 1) + 1e-9).astype(np.int64)


def _classimbalance(
    y: NDArray[np.int64], n_parties: int, n_classes: int, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    size = y.size // n_parties
    out = []
    for c_i in classimbalance_classes(n_parties, n_classes):
        per = np.full(c_i, size // c_i)
        per[-1] += size - per.sum()
        rows = []
        for c in range(c_i):
            pool = np.flatnonzero(y == c)
            if pool.size == 0:
                raise ValueError(
                    f"split 'classimbalance' needs rows of class {c}, the pool has none"
                )
            rows.append(rng.choice(pool, size=per[c], replace=True))
        out.append(np.concatenate(rows).astype(np.int64))
    return out


def _dirichlet(
    y: NDArray[np.int64],
    n_parties: int,
    n_classes: int,
    alpha: float,
    rng: np.random.Generator,
) -> list[NDArray[np.int64]]:
    min_rows = max(1, min(10, y.size // (2 * n_parties)))
    for _ in range(100):
        parties: list[list[NDArray[np.int64]]] = [[] for _ in range(n_parties)]
        for j in range(n_classes):
            rows = rng.permutation(np.flatnonzero(y == j))
            # α = ∞ is the limit of equal shares (rng.dirichlet would give NaN)
            q = (
                np.full(n_parties, 1.0 / n_parties)
                if np.isinf(alpha)
                else rng.dirichlet(np.full(n_parties, alpha))
            )
            if not np.isfinite(q).all():
                break  # an α too small for the sampler: a failed draw
            cuts = np.floor(np.cumsum(q) * rows.size).astype(np.int64)[:-1]
            for i, part in enumerate(np.split(rows, cuts)):
                parties[i].append(part)
        else:
            out = [np.concatenate(p).astype(np.int64) for p in parties]
            if min(len(p) for p in out) >= min_rows:
                return out
    fix = "lower n_parties" if np.isinf(alpha) else "raise dirichlet_alpha"
    raise ValueError(
        f"dirichlet_alpha = {alpha}: 100 draws each left a party with fewer than "
        f"{min_rows} rows; {fix}"
    )


def split_indices(
    y: NDArray,
    n_parties: int,
    kind: str,
    *,
    party_size: int | Literal["auto"] = "auto",
    n_classes: int | None = None,
    dirichlet_alpha: float = 0.5,
    seed: Seed = None,
    strata: NDArray | None = None,
) -> list[NDArray[np.int64]]:
    """Split a pool into parties; returns row indices into ``y`` per party.

    Args:
        y: (M,) int labels of the training pool.
        n_parties: N ≥ 2.
        kind: one of ``SPLITS``.
        party_size: P, or ``"auto"`` (matrix splits: the largest feasible P;
            others: the whole pool).
        n_classes: C (default ``max(y) + 1``).
        dirichlet_alpha: concentration of the ``dirichlet`` split.
        seed: seeds the split and the final per-party shuffle.
        strata: (M,) int cell ids 0..K-1 (e.g. Adult's income × group cells):
            the matrix splits allocate over these instead of ``y`` (with the
            4-cell matrices too); the other splits ignore them.

    Returns:
        N int64 index arrays (disjoint except for ``classimbalance``, which draws
        with replacement), each shuffled.

    Raises:
        ValueError: on a bad argument or a split impossible for the data (the
            message says which party or class).

    Example:
        >>> parts = split_indices(np.repeat(np.arange(2), 5), 2, "uniform", seed=0)
        >>> [len(p) for p in parts]
        [5, 5]
    """
    y = np.asarray(y, dtype=np.int64)
    check_int("n_parties", n_parties, 2)
    if kind not in SPLITS:
        raise ValueError(f"Argument `kind` must be one of {SPLITS}, got {kind!r}")
    if party_size != "auto":
        check_positive_int("party_size", party_size)
    check_positive("dirichlet_alpha", dirichlet_alpha, allow_inf=True)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    split_ss, shuffle_ss = as_seed_sequence(seed).spawn(2)
    rng = np.random.default_rng(split_ss)
    if kind in ("equaldisjoint", "unequal") and strata is not None:
        cells = np.asarray(strata, dtype=np.int64)
        k = int(cells.max()) + 1
        parts = _matrix_split(cells, kind, n_parties, k, party_size, rng, cells=True)
    elif kind in ("equaldisjoint", "unequal"):
        parts = _matrix_split(y, kind, n_parties, n_classes, party_size, rng)
    else:
        base = np.arange(y.size)
        if party_size != "auto":
            if n_parties * party_size > y.size:
                raise ValueError(
                    f"split {kind!r}: n_parties × party_size = "
                    f"{n_parties * party_size} exceeds the {y.size} pool rows"
                )
            base = np.sort(rng.permutation(y.size)[: n_parties * party_size])
        parts = [
            base[p]
            for p in _shard(y[base], n_parties, kind, n_classes, dirichlet_alpha, rng)
        ]
    for i, p in enumerate(parts):
        if p.size == 0:
            raise ValueError(
                f"split {kind!r} leaves party {i} empty ({y.size} rows for "
                f"{n_parties} parties)"
            )
    shuffle = np.random.default_rng(shuffle_ss)
    return [shuffle.permutation(p).astype(np.int64) for p in parts]


def _shard(
    y: NDArray[np.int64],
    n_parties: int,
    kind: str,
    n_classes: int,
    alpha: float,
    rng: np.random.Generator,
) -> list[NDArray[np.int64]]:
    if kind == "uniform":
        return list(np.array_split(rng.permutation(y.size), n_parties))
    if kind == "powerlaw":
        sizes = powerlaw_sizes(y.size, n_parties)
        return list(np.split(rng.permutation(y.size), np.cumsum(sizes)[:-1]))
    if kind == "classimbalance":
        return _classimbalance(y, n_parties, n_classes, rng)
    return _dirichlet(y, n_parties, n_classes, alpha, rng)
