"""Value the parties: lengthscale, one kernel pass, Shapley values (docs/cgm.md §5).

:func:`value_parties` wires the pure pieces: the lengthscale rule (§5.3), the
block-sum matrix of one kernel pass over T × T (§5.4), all coalition values by
array arithmetic, exact or permutation Shapley values (§5.5) and the summaries
of ``values.json``. Valuation after Tay, Xu, Foo, Low, "Incentivizing
Collaboration in Machine Learning via Synthetic Data Rewards" (AAAI 2022).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from data.checks import check_int
from data.devices import resolve_device
from data.seeding import Seed
from valuation.coalition import (
    coalition_key,
    coalition_values_from_blocks,
    mask_of,
    members_of,
    reference_value,
    v_with_pool,
)
from valuation.kernels import (
    BlockRowSums,
    check_chunk_size,
    check_lengthscale,
    kernel_block_row_sums,
    kernel_block_sums,
    resolve_precision,
)
from valuation.lengthscale import DEFAULT_CACHE_BYTES, find_lengthscale
from valuation.limits import MAX_EXACT_PARTIES
from valuation.result import PartyValues
from valuation.shapley import exact_shapley, permutation_shapley

logger = logging.getLogger(__name__)


class NonPositiveShapleyError(ValueError):
    """max φ ≤ 0: the normalised Shapley values α = φ / max φ are undefined."""


#: Relative tie tolerance of the stable coalitions C_i (docs/cgm.md §5.5).
TIE_RTOL = 1e-12


def normalised_shapley(phi: NDArray) -> NDArray[np.float64]:
    """α_i = φ_i / max_j φ_j (docs/cgm.md §5.5; not φ/Σφ, not the CGSV decay).

    Args:
        phi: (N,) Shapley values.

    Returns:
        (N,) float64 α, with max α = 1.

    Raises:
        NonPositiveShapleyError: if max φ ≤ 0.

    Example:
        >>> normalised_shapley(np.array([2.0, 1.0, -0.5])).tolist()
        [1.0, 0.5, -0.25]
    """
    phi = np.asarray(phi, dtype=np.float64)
    top = float(phi.max())
    if not top > 0:
        raise NonPositiveShapleyError(
            f"max Shapley value is {top!r} <= 0 (shapley = {phi.tolist()!r}); "
            "alpha = shapley / max(shapley) is undefined"
        )
    return phi / top


def _alpha(phi: NDArray, refuse: bool) -> NDArray[np.float64]:
    """α of `normalised_shapley`, or all zeros when max φ ≤ 0 and not ``refuse``."""
    if refuse or float(np.max(phi)) > 0:
        return normalised_shapley(phi)
    logger.warning(
        "max Shapley value is %r <= 0: alpha is recorded as 0 for every party",
        float(np.max(phi)),
    )
    return np.zeros(len(phi), dtype=np.float64)


def stable_coalitions(phi: NDArray) -> list[frozenset[int]]:
    """C_i = {j : φ_j ≤ φ_i + 1e-12·max_k|φ_k|}, i included (docs/cgm.md §5.5).

    Args:
        phi: (N,) Shapley values.

    Returns:
        N coalitions: the parties worth no more than i (rounding-level
        differences count as ties).

    Example:
        >>> [sorted(c) for c in stable_coalitions(np.array([0.3, 0.1, 0.3]))]
        [[0, 1, 2], [1], [0, 1, 2]]
    """
    phi = np.asarray(phi, dtype=np.float64)
    tol = TIE_RTOL * float(np.abs(phi).max())
    return [frozenset(np.flatnonzero(phi <= p + tol).tolist()) for p in phi]


def _check_features(
    party_features: Sequence[NDArray], candidate_features: NDArray
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64]]:
    if isinstance(party_features, np.ndarray) or not isinstance(
        party_features, Sequence
    ):
        raise TypeError(
            "Argument `party_features` must be a list of (n_i, d) arrays, got "
            f"{type(party_features).__name__}"
        )
    if len(party_features) == 0:
        raise ValueError("Argument `party_features` must hold at least one party")
    parties = [np.asarray(x, dtype=np.float64) for x in party_features]
    candidates = np.asarray(candidate_features, dtype=np.float64)
    if candidates.ndim != 2 or candidates.shape[0] == 0:
        raise ValueError(
            "Argument `candidate_features` must be a non-empty (n_G, d) array, got "
            f"shape {candidates.shape}"
        )
    d = candidates.shape[1]
    for i, x in enumerate(parties):
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(
                f"Argument `party_features[{i}]` must be (n_{i}, {d}) like "
                f"`candidate_features`, got shape {x.shape}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"Argument `party_features[{i}]` is empty (0 rows)")
        if not np.isfinite(x).all():
            raise ValueError(f"Argument `party_features[{i}]` contains NaN or inf")
    if not np.isfinite(candidates).all():
        raise ValueError("Argument `candidate_features` contains NaN or inf")
    return parties, candidates


def _check_options(
    n_parties: int,
    lengthscale: float | Literal["auto"],
    shapley: str,
    n_permutations: int,
    chunk_size: int,
    device: str,
    kernel_precision: str,
) -> None:
    if lengthscale != "auto":
        if isinstance(lengthscale, str):
            raise ValueError(
                f"Argument `lengthscale` must be 'auto' or a number > 0, got "
                f"{lengthscale!r}"
            )
        check_lengthscale(lengthscale)
    if shapley not in ("exact", "permutation"):
        raise ValueError(
            f"Argument `shapley` must be 'exact' or 'permutation', got {shapley!r}"
        )
    if shapley == "exact" and n_parties > MAX_EXACT_PARTIES:
        raise ValueError(
            f"Argument `shapley` is 'exact' but there are {n_parties} parties (at most "
            f"{MAX_EXACT_PARTIES}); use 'permutation'"
        )
    if shapley == "permutation":
        check_int("n_permutations", n_permutations, 2)
    check_chunk_size(chunk_size)
    resolve_precision(kernel_precision, resolve_device(device))


def _ordered(coalitions: set[frozenset[int]]) -> list[frozenset[int]]:
    return sorted(coalitions, key=lambda c: (len(c), sorted(c)))


def value_parties(
    party_features: Sequence[NDArray],
    candidate_features: NDArray,
    *,
    lengthscale: float | Literal["auto"] = "auto",
    shapley: Literal["exact", "permutation"] = "exact",
    n_permutations: int = 1000,
    seed: Seed = None,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
    features: str = "identity",
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    progress: bool = False,
    refuse_nonpositive: bool = True,
    return_row_sums: bool = False,
) -> PartyValues | tuple[PartyValues, BlockRowSums]:
    """Shapley values and the summaries of ``values.json`` (docs/cgm.md §5).

    Args:
        party_features: N arrays (n_i, d): the parties' feature vectors D_i.
        candidate_features: (n_G, d) feature vectors of the candidate pool G.
        lengthscale: ``"auto"`` (the rule of §5.3) or a fixed ℓ > 0.
        shapley: ``"exact"`` (N ≤ 16) or ``"permutation"``.
        n_permutations: random orders for ``"permutation"`` (≥ 2).
        seed: seeds the permutations (unused by ``"exact"``).
        chunk_size: rows/columns per kernel tile.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        features: name of the feature map, recorded in the result.
        cache_bytes: memory for the lengthscale rule's cached distances.
        progress: show progress bars.
        refuse_nonpositive: raise when max φ ≤ 0; when False, record φ with
            α = 0 for every party (α = φ / max φ is undefined) and leave the
            decision to the reward stage (docs/cgm.md §6.4).
        return_row_sums: also return K̄ and the per-row block sums R of the same
            kernel pass (`valuation.kernels.kernel_block_row_sums`; the values
            are bitwise those without it), for the sample stage (§7.2).

    Returns:
        The content of ``values.json``; with ``return_row_sums`` the pair
        (values, block and row sums).

    Raises:
        ValueError: on bad input (naming the argument).
        LengthscaleError: if the lengthscale rule fails (a ValueError).
        NonPositiveShapleyError: if max φ ≤ 0 and ``refuse_nonpositive`` (a
            ValueError).
        TypeError: if ``party_features`` is not a list of arrays.
        RuntimeError: if exact Shapley values break efficiency.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> parties = [rng.normal(size=(10, 2)) for _ in range(3)]
        >>> res = value_parties(parties, rng.normal(size=(40, 2)), lengthscale=1.0)
        >>> abs(sum(res.shapley) - res.v_grand) < 1e-12, round(max(res.alpha), 6)
        (True, 1.0)
    """
    parties, candidates = _check_features(party_features, candidate_features)
    n = len(parties)
    _check_options(
        n, lengthscale, shapley, n_permutations, chunk_size, device, kernel_precision
    )
    kernel_kw = {
        "chunk_size": chunk_size,
        "device": device,
        "kernel_precision": kernel_precision,
    }
    bracket: tuple[float, float] | None = None
    if lengthscale == "auto":
        ell, bracket = find_lengthscale(
            parties, candidates, cache_bytes=cache_bytes, progress=progress, **kernel_kw
        )
    else:
        ell = float(lengthscale)
    sizes = np.array([x.shape[0] for x in parties] + [candidates.shape[0]])
    sums: BlockRowSums | None = None
    if return_row_sums:  # the same pass and K̄ bit for bit, plus R
        sums = kernel_block_row_sums(
            [*parties, candidates], ell, progress=progress, **kernel_kw
        )
        kbar = sums.block_sums
    else:
        kbar = kernel_block_sums(
            [*parties, candidates], ell, progress=progress, **kernel_kw
        )

    grand = frozenset(range(n))
    stderr: NDArray[np.float64] | None = None
    if shapley == "exact":
        table = coalition_values_from_blocks(kbar, sizes)
        phi = exact_shapley(table)
        values_by_mask: Mapping[int, float] | NDArray[np.float64] = table
        alpha = _alpha(phi, refuse_nonpositive)
        stable = stable_coalitions(phi)
        keep = {members_of(mask) for mask in range(1, 1 << n)}
    else:
        phi, stderr = permutation_shapley(
            kbar, sizes, n_permutations, seed=seed, progress=progress
        )
        alpha = _alpha(phi, refuse_nonpositive)
        stable = stable_coalitions(phi)
        keep = {frozenset([i]) for i in range(n)} | {grand} | set(stable)
        masks = np.array([mask_of(c) for c in keep], dtype=np.int64)
        values_by_mask = dict(
            zip(
                masks.tolist(),
                coalition_values_from_blocks(kbar, sizes, masks),
                strict=True,
            )
        )

    def v(c: frozenset[int]) -> float:
        return float(values_by_mask[mask_of(c)])

    result = PartyValues(
        lengthscale=ell,
        n_parties=n,
        coalition_values={coalition_key(c): v(c) for c in _ordered(keep)},
        shapley=tuple(phi.tolist()),
        alpha=tuple(alpha.tolist()),
        v_single=tuple(v(frozenset([i])) for i in range(n)),
        v_grand=v(grand),
        v_stable_lower=tuple(v(c) for c in stable),
        v_max=tuple(v_with_pool(kbar, sizes).tolist()),
        v_reference=reference_value(kbar, sizes),
        lengthscale_bracket=bracket,
        shapley_method=shapley,
        party_sizes=tuple(int(s) for s in sizes[:n]),
        n_candidates=int(candidates.shape[0]),
        features=features,
        feature_dim=int(candidates.shape[1]),
        shapley_stderr=None if stderr is None else tuple(stderr.tolist()),
    )
    logger.info("valued %d parties: lengthscale %s, shapley %s", n, ell, result.shapley)
    return result if sums is None else (result, sums)
