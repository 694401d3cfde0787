"""The lengthscale rule of docs/cgm.md §5.3: the smallest ℓ with v_ℓ(D_i) ≥ 0 for all i.

valid(ℓ) ⇔ v_ℓ(D_i) ≥ 0 for every party i (only the N singletons are checked).
Bisection on [0.01, 1000] for 20 steps returns the final ``hi``: the most
discriminative kernel whose singleton values are all non-negative. Each step
needs only Σ_{D_i×D_i} k and Σ_{D_i×T} k (:class:`SingletonSums`).

:func:`find_lengthscale` returns bitwise the ℓ and bracket of that 20-step
bisection (``method="bisect"``, 22 passes over D_i × T) at the cost of about one
pass (``method="histogram"``, the default):

1. One pass over the D_i × T squared-distance tiles builds, per party, two
   histograms (the D_i × D_i tiles and the rest) with 2^7 log-spaced bins per
   octave, cut at exact float64 bit patterns, holding each bin's count and
   float64 sum of distances.
2. For any ℓ the histograms bound the exact sums Σ exp(−d²/(2ℓ²)) from below
   (Jensen at the bin mean) and above (the chord of the convex exponential),
   hence v_ℓ(D_i). A rounding-error bound of the bisection's own float
   arithmetic (exp, the float64 sums, the value formula) widens the interval; a
   sign is *certified* when the widened interval excludes 0, and then it is the
   sign the bisection computes.
3. The bisection is replayed on certified signs. Midpoints whose sign is not
   certified (and those reachable after them, a few at a time) are evaluated
   exactly by the same tiles and float operations as :meth:`SingletonSums.values`
   in one shared pass, and the replay continues, so every decision, and hence ℓ
   and the bracket, is the bisection's own. The final answer is produced by
   :func:`bisect_lengthscale` itself, fed these values.

Rule after Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning
via Synthetic Data Rewards" (AAAI 2022), as the authors' reference code runs it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from tqdm import tqdm

from valuation.coalition import coalition_values_from_sums
from valuation.kernels import (
    block_segments,
    centred_reference,
    check_chunk_size,
    check_lengthscale,
    squared_distance_tile,
    tile_size,
)

logger = logging.getLogger(__name__)


class LengthscaleError(ValueError):
    """The lengthscale rule of docs/cgm.md §5.3 has no answer for these features.

    The message says what to set instead (``value.lengthscale``).
    """


#: The bisection bracket and step count of docs/cgm.md §5.3 (normative).
LENGTHSCALE_LO = 0.01
LENGTHSCALE_HI = 1000.0
LENGTHSCALE_STEPS = 20

#: Default memory for cached squared distances D_i × T (float64: the CPU demo,
#: 5 × 800 party points against 14,000 reference points, needs 448 MB).
DEFAULT_CACHE_BYTES = 512 * 2**20


def bisect_lengthscale(
    singleton_values: Callable[[float], NDArray],
    *,
    lo: float = LENGTHSCALE_LO,
    hi: float = LENGTHSCALE_HI,
    n_steps: int = LENGTHSCALE_STEPS,
    progress: bool = False,
) -> tuple[float, tuple[float, float]]:
    """Smallest valid ℓ by bisection (docs/cgm.md §5.3).

    Args:
        singleton_values: ℓ ↦ (N,) values v_ℓ(D_i); ℓ is valid when all are ≥ 0.
        lo: lower end of the bracket (must be invalid).
        hi: upper end of the bracket (must be valid).
        n_steps: bisection steps.
        progress: show a progress bar.

    Returns:
        (ℓ, (lo, hi)): ℓ = the final ``hi`` and the final bracket.

    Raises:
        LengthscaleError: if ``hi`` is invalid (no ℓ ≤ hi makes every
            v(D_i) ≥ 0) or ``lo`` is already valid (the rule is undefined).

    Example:
        >>> ell, (lo, hi) = bisect_lengthscale(lambda ell: np.array([ell - 1.0]))
        >>> lo < 1.0 <= ell == hi, round(hi - lo, 10)  # (1000 − 0.01)/2^20
        (True, 0.0009536648)
    """
    v_hi = np.asarray(singleton_values(hi), dtype=np.float64)
    if not (v_hi >= 0).all():
        worst = int(np.argmin(v_hi))
        raise LengthscaleError(
            f"no ℓ ≤ {hi:g} makes v(D_i) ≥ 0 (party {worst}: v = {v_hi[worst]:.6g}); "
            "rescale features or set value.lengthscale"
        )
    if (np.asarray(singleton_values(lo)) >= 0).all():
        raise LengthscaleError(
            f"ℓ = {lo:g} is already valid for every party; the rule is undefined; "
            "set value.lengthscale"
        )
    for _ in tqdm(range(n_steps), disable=not progress, desc="lengthscale"):
        mid = (lo + hi) / 2.0
        if (np.asarray(singleton_values(mid)) >= 0).all():
            hi = mid
        else:
            lo = mid
    logger.info("lengthscale %s (bracket [%s, %s])", hi, lo, hi)
    return hi, (lo, hi)


class SingletonSums:
    """Σ_{D_i×D_i} k and Σ_{D_i×T} k for every party at any ℓ (docs/cgm.md §5.3).

    Holds the centred reference T on the device and, when they fit in
    ``cache_bytes``, the squared-distance tiles D_i × T, so each ℓ costs only the
    exponentials. Tiles never straddle a block, so the D_i × D_i part of the
    D_i × T sums is the tiles whose columns lie in block i.

    Args:
        party_features: N arrays (n_i, d).
        candidate_features: (n_G, d) pool G.
        chunk_size: rows/columns per tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        cache_bytes: memory allowed for cached squared distances.

    Raises:
        ValueError: on bad features, chunk size, device or precision.
    """

    def __init__(
        self,
        party_features: Sequence[NDArray],
        candidate_features: NDArray,
        *,
        chunk_size: int = 4096,
        device: str = "cpu",
        kernel_precision: str = "auto",
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        check_chunk_size(chunk_size)
        sizes, self._t, self._t_sq = centred_reference(
            [*party_features, candidate_features], device, kernel_precision, "features"
        )
        self.n_parties = len(sizes) - 1
        self.sizes = np.array(sizes, dtype=np.int64)
        self._dev = self._t.device
        self._segments = block_segments(sizes, tile_size(chunk_size, self._dev))
        itemsize = self._t.element_size()
        need = int(self.sizes[:-1].sum()) * self._t.shape[0] * itemsize
        self._cache: list[tuple[int, bool, Tensor]] | None = None
        if need <= cache_bytes:
            self._cache = list(self._tiles())
        elif cache_bytes > 0:  # 0: no cache asked for (the histogram method)
            logger.info(
                "lengthscale: %d bytes of distances exceed cache_bytes=%d; "
                "recomputing tiles at each step",
                need,
                cache_bytes,
            )

    def _tiles(self) -> Iterator[tuple[int, bool, Tensor]]:
        """(party i, columns in block i?, squared distances) over D_i × T tiles."""
        for i, r0, r1 in self._segments:
            if i >= self.n_parties:
                break
            xa, xa_sq = self._t[r0:r1], self._t_sq[r0:r1]
            for b, c0, c1 in self._segments:
                d2 = squared_distance_tile(xa, self._t[c0:c1], xa_sq, self._t_sq[c0:c1])
                if r0 == c0:
                    d2.fill_diagonal_(0.0)  # self-distances are 0 exactly
                yield i, b == i, d2

    def __call__(self, lengthscale: float) -> tuple[NDArray, NDArray]:
        """Unnormalised sums at ℓ.

        Args:
            lengthscale: ℓ > 0.

        Returns:
            (s, b): (N,) float64 Σ_{D_i×D_i} k and Σ_{D_i×T} k.
        """
        return self._sums_many([lengthscale])[0]

    def _sums_many(
        self, lengthscales: Sequence[float]
    ) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """(s, b) of :meth:`__call__` at several ℓ from one pass over the tiles.

        Each ℓ sees the same tiles, float operations and order of accumulation,
        so its sums do not depend on the other ℓ of the call.
        """
        invs = [1.0 / (2.0 * check_lengthscale(ell) ** 2) for ell in lengthscales]
        shape = (len(invs), self.n_parties)
        s = torch.zeros(shape, dtype=torch.float64, device=self._dev)
        b = torch.zeros(shape, dtype=torch.float64, device=self._dev)
        for i, own, d2 in self.tiles():
            for j, inv in enumerate(invs):
                total = torch.exp(d2 * -inv).sum(dtype=torch.float64)
                b[j, i] += total
                if own:
                    s[j, i] += total
        s_np, b_np = s.cpu().numpy(), b.cpu().numpy()
        return [(s_np[j], b_np[j]) for j in range(len(invs))]

    def values(self, lengthscale: float) -> NDArray[np.float64]:
        """Singleton values v_ℓ(D_i) = 2·Σ_{D_i×T} k/(n_i·n_T) − Σ_{D_i×D_i} k/n_i².

        Args:
            lengthscale: ℓ > 0.

        Returns:
            (N,) float64 values.
        """
        return self.values_many([lengthscale])[0]

    def tiles(self) -> Iterable[tuple[int, bool, Tensor]]:
        """(party i, columns in block i?, squared distances) over the D_i × T tiles.

        The cached tiles when they fit, else tiles recomputed now; the same
        values, in the same order, as every ℓ of :meth:`values` sees. The
        tiles must not be modified.
        """
        return self._cache if self._cache is not None else self._tiles()

    def tile_counts(self) -> tuple[NDArray[np.int64], int]:
        """Tiles per party and the most elements in one tile.

        Returns:
            ((N,) number of D_i × T tiles of each party, largest tile size).
        """
        rows = [(i, r1 - r0) for i, r0, r1 in self._segments if i < self.n_parties]
        n_cols = len(self._segments)
        counts = (
            np.bincount([i for i, _ in rows], minlength=self.n_parties).astype(np.int64)
            * n_cols
        )
        widest = max((c1 - c0 for _, c0, c1 in self._segments), default=0)
        tallest = max((r for _, r in rows), default=0)
        return counts, widest * tallest

    def values_many(self, lengthscales: Sequence[float]) -> list[NDArray[np.float64]]:
        """:meth:`values` at several ℓ from one pass over the tiles.

        Each ℓ gets bitwise what :meth:`values` returns at that ℓ alone: the same
        tiles, the same float operations, the same order of accumulation.

        Args:
            lengthscales: ℓ values, each > 0.

        Returns:
            One (N,) float64 array of v_ℓ(D_i) per ℓ.
        """
        n_t = float(self.sizes.sum())
        return [
            coalition_values_from_sums(self.sizes[:-1], b, s, n_t)
            for s, b in self._sums_many(lengthscales)
        ]

    @property
    def kernel_dtype(self) -> torch.dtype:
        """The dtype of the squared distances and kernel values."""
        return self._t.dtype

    @property
    def device(self) -> torch.device:
        """Where the tiles are computed."""
        return self._dev

    def max_squared_distance(self) -> float:
        """4·max‖t‖², above every squared distance of the tiles up to rounding."""
        return 4.0 * float(self._t_sq.max().item()) if self._t.shape[0] else 0.0


#: Histogram bins per octave of squared distance, as mantissa bits: 2^7 bins,
#: each [e, e·(1 + 2^-7)) at most (exact float64 bit patterns as edges). With
#: the bin means the bounds are second order in the width (about x²·2^-17 of a
#: kernel value k = e^{−x}); 2^6 bins already certified every query in 30 random
#: cases, 2^4 bins needed 0-3 exact evaluations each.
HISTOGRAM_BITS = 7
#: Octaves of bins below twice the largest possible squared distance; smaller
#: distances share one bin [0, e_0), larger ones (rounding only) an overflow bin.
HISTOGRAM_OCTAVES = 48
#: Most uncertified midpoints evaluated exactly in one shared pass.
EXACT_BATCH = 8

_U64 = float(np.finfo(np.float64).eps) / 2.0
_TINY64 = float(np.finfo(np.float64).tiny)
#: Relative widening of the histogram bounds for their own float64 arithmetic:
#: exp of the edges (≤ 745·u + 1 ulp), products and sums of ≤ 2^17 bins.
_BOUND_SLACK = 1e-10


@dataclass(frozen=True)
class DistanceHistograms:
    """Non-empty bins of the per-party squared-distance histograms (docs/cgm.md §5.3).

    Bin j holds ``count[j]`` squared distances of party ``party[j]``'s tiles,
    own block (D_i × D_i) or not, all in [lo[j], hi[j]] (hi = ∞ for the
    overflow bin) with exact mean in [mean_lo[j], mean_hi[j]].

    Attributes:
        party: (n_bins,) party index of each bin.
        own: (n_bins,) whether the bin counts D_i × D_i distances.
        count: (n_bins,) float64 counts (exact integers).
        lo: (n_bins,) left edges.
        hi: (n_bins,) right edges (∞ for the overflow bin).
        mean_lo: (n_bins,) lower bound of the mean distance in the bin.
        mean_hi: (n_bins,) upper bound of the mean distance in the bin.
        sizes: (N,) party sizes n_i.
        n_t: size of T.
        n_elements: (N,) distances in each party's tiles, n_i·n_T.
        sum_terms: (N,) most terms any float64 sum of a party's kernel
            values adds: one tile's elements plus the number of tiles.
        kernel_dtype: dtype of the squared distances and kernel values.
    """

    party: NDArray[np.int64]
    own: NDArray[np.bool_]
    count: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    mean_lo: NDArray[np.float64]
    mean_hi: NDArray[np.float64]
    sizes: NDArray[np.int64]
    n_t: int
    n_elements: NDArray[np.float64]
    sum_terms: NDArray[np.float64]
    kernel_dtype: torch.dtype


def _bit_edges(keys: NDArray[np.int64], shift: int) -> NDArray[np.float64]:
    """The float64 whose bit pattern is ``key << shift`` (bin edges, exact)."""
    return (np.asarray(keys, dtype=np.int64) << shift).view(np.float64)


def distance_histograms(
    sums: SingletonSums,
    *,
    bits: int = HISTOGRAM_BITS,
    octaves: int = HISTOGRAM_OCTAVES,
    progress: bool = False,
) -> DistanceHistograms:
    """One pass over the D_i × T tiles: the histograms of docs/cgm.md §5.3.

    A float64 d ≥ 0 goes to the bin of its bit pattern shifted right by
    52 − ``bits``: bins are exact half-open intervals [e_k, e_{k+1}) between
    float64 numbers, 2^bits per octave, so no rounding decides a bin. Each bin
    keeps its count and the float64 sum of its distances.

    Args:
        sums: the tiles (:meth:`SingletonSums.tiles`).
        bits: log2 of the bins per octave.
        octaves: octaves with bins below the largest possible distance.
        progress: show a progress bar over the tiles.

    Returns:
        The non-empty bins and what the error bounds need.
    """
    shift = 52 - bits
    top_distance = 2.0 * sums.max_squared_distance()  # an octave above any distance
    top = np.array([top_distance if top_distance > 0 else 1.0]).view(np.int64)[0]
    k_top = int(top >> shift) + 1
    k_low = max(k_top - (octaves << bits), 0)
    n_inner = k_top - k_low
    n_bins = n_inner + 2  # [0, e_low), the inner bins, [e_top, ∞)
    n = sums.n_parties
    counts = torch.zeros((n, 2, n_bins), dtype=torch.int64, device=sums.device)
    totals = torch.zeros((n, 2, n_bins), dtype=torch.float64, device=sums.device)
    n_tiles, tile_max = sums.tile_counts()
    for i, own, d2 in tqdm(
        sums.tiles(),
        total=int(n_tiles.sum()),
        disable=not progress,
        desc="lengthscale histograms",
    ):
        d = d2.reshape(-1).to(torch.float64)
        key = (d.view(torch.int64) >> shift).sub_(k_low - 1).clamp_(0, n_inner + 1)
        counts[i, int(own)] += torch.bincount(key, minlength=n_bins)
        totals[i, int(own)] += torch.bincount(key, weights=d, minlength=n_bins)
    counts_np, totals_np = counts.cpu().numpy(), totals.cpu().numpy()
    party, part, j = np.nonzero(counts_np)
    count = counts_np[party, part, j].astype(np.float64)
    edges = _bit_edges(np.arange(k_low, k_top + 1), shift)
    lo = np.where(j == 0, 0.0, edges[np.maximum(j - 1, 0)])
    hi = np.where(j <= n_inner, edges[np.minimum(j, n_inner)], np.inf)
    mean = totals_np[party, part, j] / count
    # A float64 sum of c non-negative terms, over t tiles, then one division:
    # relative error ≤ (c + t + 1)·u/(1 − (c + t + 1)·u).
    terms = count + n_tiles[party] + 1.0
    rel = 1.01 * terms * _U64
    mean_lo = np.clip(mean * (1.0 - rel), lo, hi)
    mean_hi = np.clip(mean * (1.0 + rel), lo, hi)
    sizes = sums.sizes[:-1]
    n_t = int(sums.sizes.sum())
    return DistanceHistograms(
        party=party.astype(np.int64),
        own=part.astype(bool),
        count=count,
        lo=lo,
        hi=hi,
        mean_lo=mean_lo,
        mean_hi=mean_hi,
        sizes=sizes,
        n_t=n_t,
        n_elements=(sizes * n_t).astype(np.float64),
        sum_terms=(tile_max + n_tiles).astype(np.float64),
        kernel_dtype=sums.kernel_dtype,
    )


def _bin_kernel_bounds(
    hist: DistanceHistograms, inv: float
) -> tuple[NDArray, NDArray, NDArray]:
    """Per bin: lower and upper bounds of Σ exp(−d·inv) and an upper bound of Σ k·x.

    exp(−d·inv) is convex and decreasing in d: for the bin's distances, Jensen
    at the mean gives the lower bound count·exp(−mean·inv) and the chord between
    the edges the upper bound count·(A − (A − C)·(mean − lo)/(hi − lo)),
    A = exp(−lo·inv), C = exp(−hi·inv). x = d·inv and k·x = x·e^{−x} ≤ 1/e.
    """
    a = np.exp(-hist.lo * inv)
    finite = np.isfinite(hist.hi)
    width = np.where(finite, hist.hi - hist.lo, 1.0)
    c = np.where(finite, np.exp(-np.where(finite, hist.hi, 0.0) * inv), 0.0)
    frac = np.where(
        finite & (width > 0),
        (hist.mean_lo - hist.lo) / np.where(width > 0, width, 1.0),
        0.0,
    )
    upper = hist.count * (a - (a - c) * np.clip(frac, 0.0, 1.0))
    lower = hist.count * np.exp(-hist.mean_hi * inv)
    kx = np.where(finite, np.where(finite, hist.hi, 0.0) * inv * a, 1.0)
    return lower, upper, hist.count * np.minimum(kx, np.exp(-1.0))


def _group_sum(hist: DistanceHistograms, own: bool | None, w: NDArray) -> NDArray:
    """Per-party sums of bin quantities over the own bins, the others, or all."""
    keep = np.ones_like(hist.own) if own is None else hist.own == own
    return np.bincount(hist.party[keep], weights=w[keep], minlength=len(hist.sizes))


def _computed_sum_error(
    hist: DistanceHistograms, upper: NDArray, kx: NDArray, n_elements: NDArray
) -> NDArray:
    """Bound on |computed − exact| for the float sums of :meth:`SingletonSums.__call__`.

    Each kernel value fl(exp(fl(d·fl(−inv)))) is within k·(3u·x + 8u) + tiny of
    k = exp(−d·inv) (u, tiny: unit roundoff and smallest normal of the kernel
    dtype), and a float64 sum of L non-negative terms in any order is within
    γ_L = L·u/(1 − L·u) of the exact sum of the terms.
    """
    finfo = torch.finfo(hist.kernel_dtype)
    u, tiny = finfo.eps / 2.0, finfo.tiny
    element = 3.0 * u * kx + 8.0 * u * upper + n_elements * tiny
    gamma = hist.sum_terms * _U64 / (1.0 - hist.sum_terms * _U64)
    return element + gamma * (upper + element)


def certified_signs(
    hist: DistanceHistograms, lengthscale: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Parties whose computed v_ℓ(D_i) is certainly ≥ 0, and certainly < 0.

    "Computed" means what :meth:`SingletonSums.values` returns in float
    arithmetic: the bounds on the exact sums are widened by
    :func:`_computed_sum_error` and by the rounding of the value formula
    (docs/cgm.md §5.3). A party with no points has v = 0 exactly (valid).

    Args:
        hist: the histograms.
        lengthscale: ℓ > 0.

    Returns:
        (sure_valid, sure_invalid): two (N,) boolean arrays, never both true.
    """
    inv = 1.0 / (2.0 * check_lengthscale(lengthscale) ** 2)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN stay uncertified
        lower, upper, kx = _bin_kernel_bounds(hist, inv)
    s_lo = _group_sum(hist, True, lower) * (1.0 - _BOUND_SLACK)
    s_hi = _group_sum(hist, True, upper) * (1.0 + _BOUND_SLACK)
    o_lo = _group_sum(hist, False, lower) * (1.0 - _BOUND_SLACK)
    o_hi = _group_sum(hist, False, upper) * (1.0 + _BOUND_SLACK)
    n_own = hist.sizes.astype(np.float64) ** 2
    s_hi = s_hi + n_own * _TINY64
    o_hi = o_hi + (hist.n_elements - n_own) * _TINY64
    b_hi = s_hi + o_hi
    err_s = _computed_sum_error(hist, s_hi, _group_sum(hist, True, kx), n_own)
    err_b = _computed_sum_error(hist, b_hi, _group_sum(hist, None, kx), hist.n_elements)
    n = np.maximum(hist.sizes, 1).astype(np.float64)
    c_o = 2.0 / (n * hist.n_t)
    c_s = c_o - 1.0 / n**2
    v_lo = np.where(c_s < 0, c_s * s_hi, c_s * s_lo) + c_o * o_lo
    v_hi = np.where(c_s < 0, c_s * s_lo, c_s * s_hi) + c_o * o_hi
    scale = c_o * (b_hi + err_b) + (s_hi + err_s) / n**2
    margin = c_o * err_b + err_s / n**2 + 16.0 * _U64 * scale
    empty = hist.sizes == 0
    sure_valid = empty | (v_lo - margin > 0)
    sure_invalid = ~empty & (v_hi + margin < 0)
    return sure_valid, sure_invalid


def _pending_lengthscales(
    decide: Callable[[float], bool | None],
    known: Callable[[float], bool],
    *,
    lo: float,
    hi: float,
    n_steps: int,
    cap: int,
) -> list[float]:
    """ℓ values the bisection may query whose computed validity is not yet known.

    Replays :func:`bisect_lengthscale` breadth first: a decided query has one
    successor, an undecided one both. ``hi`` is also pending when it may be
    invalid, since the error message then needs its exact values.

    Args:
        decide: ℓ ↦ validity (True/False) when certain, else None.
        known: ℓ ↦ whether the exact values at ℓ are already known.
        lo: lower end of the bracket.
        hi: upper end of the bracket.
        n_steps: bisection steps.
        cap: most ℓ values returned.

    Returns:
        Up to ``cap`` pending ℓ values, nearest the root of the replay first.
    """
    pending: list[float] = []

    def outcomes(ell: float) -> tuple[bool, ...]:
        sign = decide(ell)
        if sign is not None:
            return (sign,)
        if ell not in pending:
            pending.append(ell)
        return (True, False)

    hi_outcomes = outcomes(hi)
    if False in hi_outcomes and not known(hi) and hi not in pending:
        pending.append(hi)
    if True not in hi_outcomes:
        return pending[:cap]
    if False in outcomes(lo):
        queue = deque([(lo, hi, 0)])
        while queue and len(pending) < cap:
            a, b, step = queue.popleft()
            if step == n_steps:
                continue
            mid = (a + b) / 2.0
            for valid in outcomes(mid):
                queue.append((a, mid, step + 1) if valid else (mid, b, step + 1))
    return pending[:cap]


def histogram_lengthscale(
    sums: SingletonSums,
    *,
    bits: int = HISTOGRAM_BITS,
    octaves: int = HISTOGRAM_OCTAVES,
    batch: int = EXACT_BATCH,
    progress: bool = False,
) -> tuple[tuple[float, tuple[float, float]], int]:
    """Bitwise the result of ``bisect_lengthscale(sums.values)`` (docs/cgm.md §5.3).

    One histogram pass (:func:`distance_histograms`), then a replay of the
    bisection on certified signs (:func:`certified_signs`); the ℓ whose sign
    is not certified are evaluated exactly, ``batch`` per shared pass
    (:meth:`SingletonSums.values_many`). The result comes from
    :func:`bisect_lengthscale` fed the exact values where evaluated and sign
    vectors (±1) where certified.

    Args:
        sums: the singleton sums.
        bits: log2 of the histogram bins per octave.
        octaves: octaves with bins.
        batch: most ℓ evaluated exactly per pass.
        progress: show progress bars.

    Returns:
        ((ℓ, (lo, hi)), number of ℓ evaluated exactly).

    Raises:
        LengthscaleError: exactly as :func:`bisect_lengthscale`.
    """
    hist = distance_histograms(sums, bits=bits, octaves=octaves, progress=progress)
    exact: dict[float, NDArray[np.float64]] = {}
    signs: dict[float, tuple[NDArray, NDArray]] = {}

    def certified(ell: float) -> tuple[NDArray, NDArray]:
        if ell not in signs:
            signs[ell] = certified_signs(hist, ell)
        return signs[ell]

    def decide(ell: float) -> bool | None:
        if ell in exact:
            return bool((exact[ell] >= 0).all())
        sure_valid, sure_invalid = certified(ell)
        if sure_invalid.any():
            return False
        return True if sure_valid.all() else None

    while pending := _pending_lengthscales(
        decide,
        exact.__contains__,
        lo=LENGTHSCALE_LO,
        hi=LENGTHSCALE_HI,
        n_steps=LENGTHSCALE_STEPS,
        cap=batch,
    ):
        exact.update(zip(pending, sums.values_many(pending), strict=True))

    def singleton_values(ell: float) -> NDArray[np.float64]:
        if ell in exact:
            return exact[ell]
        sign = decide(ell)
        if sign is None:  # unreachable: the replay decided every query
            exact[ell] = sums.values(ell)
            return exact[ell]
        return np.where(certified(ell)[1], -1.0, 1.0)

    logger.info("lengthscale: %d of the bisection's ℓ evaluated exactly", len(exact))
    return bisect_lengthscale(singleton_values, progress=progress), len(exact)


def find_lengthscale(
    party_features: Sequence[NDArray],
    candidate_features: NDArray,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: bool = False,
    method: Literal["histogram", "bisect"] = "histogram",
) -> tuple[float, tuple[float, float]]:
    """The lengthscale of ``value.lengthscale = "auto"`` (docs/cgm.md §5.3).

    Both methods return bitwise the same ℓ and bracket: ``"bisect"`` evaluates
    the 22 ℓ of the bisection (22 passes over D_i × T); ``"histogram"`` makes
    one histogram pass and evaluates exactly only the ℓ whose sign its bounds
    cannot certify (:func:`histogram_lengthscale`).

    Args:
        party_features: N arrays (n_i, d), the parties' feature vectors.
        candidate_features: (n_G, d) feature vectors of the candidate pool G.
        chunk_size: rows/columns per kernel tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        cache_bytes: memory allowed for cached squared distances D_i × T
            (``"bisect"`` only: the histogram method reads each tile once).
        progress: show a progress bar.
        method: ``"histogram"`` (fast) or ``"bisect"`` (the plain reference).

    Returns:
        (ℓ, (lo, hi)): the smallest valid ℓ found and the final bracket.

    Raises:
        ValueError: on bad features or settings.
        LengthscaleError: on either failure of the rule.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(20, 2)) for _ in range(3)]
        >>> ell, (lo, hi) = find_lengthscale(parties, rng.normal(size=(100, 2)))
        >>> ell == hi and hi - lo < 1e-3
        True
    """
    if method not in ("histogram", "bisect"):
        raise ValueError(
            f"Argument `method` must be 'histogram' or 'bisect', got {method!r}"
        )
    sums = SingletonSums(
        party_features,
        candidate_features,
        chunk_size=chunk_size,
        device=device,
        kernel_precision=kernel_precision,
        cache_bytes=cache_bytes if method == "bisect" else 0,
    )
    if method == "bisect":
        return bisect_lengthscale(sums.values, progress=progress)
    return histogram_lengthscale(sums, progress=progress)[0]
