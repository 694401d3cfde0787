"""The lengthscale rule of docs/cgm.md §5.3: the smallest ℓ with v_ℓ(D_i) ≥ 0 for all i.

valid(ℓ) ⇔ v_ℓ(D_i) ≥ 0 for every party i (only the N singletons are checked).
Bisection on [0.01, 1000] for 20 steps returns the final ``hi``: the most
discriminative kernel whose singleton values are all non-negative. Each step
needs only Σ_{D_i×D_i} k and Σ_{D_i×T} k; the squared distances D_i × T are
computed once and cached when they fit in ``cache_bytes``, else recomputed in
tiles at every step.

Rule after Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine Learning
via Synthetic Data Rewards" (AAAI 2022), as the authors' reference code runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

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
        else:
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
        inv = 1.0 / (2.0 * check_lengthscale(lengthscale) ** 2)
        s = torch.zeros(self.n_parties, dtype=torch.float64, device=self._dev)
        b = torch.zeros(self.n_parties, dtype=torch.float64, device=self._dev)
        tiles = self._cache if self._cache is not None else self._tiles()
        for i, own, d2 in tiles:
            total = torch.exp(d2 * -inv).sum(dtype=torch.float64)
            b[i] += total
            if own:
                s[i] += total
        return s.cpu().numpy(), b.cpu().numpy()

    def values(self, lengthscale: float) -> NDArray[np.float64]:
        """Singleton values v_ℓ(D_i) = 2·Σ_{D_i×T} k/(n_i·n_T) − Σ_{D_i×D_i} k/n_i².

        Args:
            lengthscale: ℓ > 0.

        Returns:
            (N,) float64 values.
        """
        s, b = self(lengthscale)
        n_t = float(self.sizes.sum())
        return coalition_values_from_sums(self.sizes[:-1], b, s, n_t)


def find_lengthscale(
    party_features: Sequence[NDArray],
    candidate_features: NDArray,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: bool = False,
) -> tuple[float, tuple[float, float]]:
    """The lengthscale of ``value.lengthscale = "auto"`` (docs/cgm.md §5.3).

    Args:
        party_features: N arrays (n_i, d), the parties' feature vectors.
        candidate_features: (n_G, d) feature vectors of the candidate pool G.
        chunk_size: rows/columns per kernel tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        cache_bytes: memory allowed for cached squared distances D_i × T.
        progress: show a progress bar.

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
    sums = SingletonSums(
        party_features,
        candidate_features,
        chunk_size=chunk_size,
        device=device,
        kernel_precision=kernel_precision,
        cache_bytes=cache_bytes,
    )
    return bisect_lengthscale(sums.values, progress=progress)
