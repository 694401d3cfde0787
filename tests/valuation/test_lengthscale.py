"""Tests of valuation/lengthscale.py (docs/cgm.md §5.3)."""

from __future__ import annotations

import numpy as np
import pytest

from valuation.coalition import value_of_set
from valuation.lengthscale import (
    LengthscaleError,
    SingletonSums,
    bisect_lengthscale,
    find_lengthscale,
)

STEP = 999.99 / 2**20  # final bracket width of 20 halvings of [0.01, 1000]


def _parties(seed: int, scale: float = 20.0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 1, size=(3, 2))
    parties = [rng.normal(m, 0.1, size=(20, 2)) * scale for m in means]
    pool = np.concatenate([rng.normal(m, 0.1, size=(70, 2)) for m in means]) * scale
    return parties, pool


def _direct_values(parties: list, pool: np.ndarray, ell: float) -> np.ndarray:
    t = np.concatenate([*parties, pool])
    return np.array([value_of_set(p, t, ell) for p in parties])


def test_bisection_known_answer() -> None:
    # Prepare: valid ⇔ ℓ ≥ 3.7 for the only party.
    # Execute
    ell, (lo, hi) = bisect_lengthscale(lambda ell: np.array([ell - 3.7, 1.0]))
    # Assert: the bracket holds the threshold and has the width of 20 steps;
    # rel 1e-9 covers the rounding of 20 midpoints.
    assert lo < 3.7 <= ell == hi
    assert hi - lo == pytest.approx(STEP, rel=1e-9)


def test_found_lengthscale_is_smallest_valid(seed: int) -> None:
    # Prepare
    parties, pool = _parties(seed)
    # Execute
    ell, (lo, hi) = find_lengthscale(parties, pool, chunk_size=25)
    # Assert: checked by direct recomputation of every v(D_i) (docs/cgm.md §5.3).
    assert ell == hi
    assert ell - lo == pytest.approx(STEP, rel=1e-9)  # rounding of 20 midpoints
    assert np.all(_direct_values(parties, pool, ell) >= 0)
    assert np.any(_direct_values(parties, pool, ell - STEP) < 0)
    assert np.any(_direct_values(parties, pool, ell * (1 - 1e-3)) < 0)


def test_cache_and_recompute_agree(seed: int) -> None:
    # Prepare
    parties, pool = _parties(seed)
    cached = SingletonSums(parties, pool, chunk_size=30)
    tiled = SingletonSums(parties, pool, chunk_size=30, cache_bytes=0)
    # Execute / Assert: same tiles, same order: identical sums.
    for ell in (0.5, 3.0):
        np.testing.assert_array_equal(cached.values(ell), tiled.values(ell))


def test_singleton_values_equal_direct(seed: int) -> None:
    # Prepare
    parties, pool = _parties(seed)
    sums = SingletonSums(parties, pool, chunk_size=17)
    # Execute / Assert: rel 1e-9 as for every coalition value (docs/cgm.md §5.4).
    np.testing.assert_allclose(
        sums.values(2.5), _direct_values(parties, pool, 2.5), rtol=1e-9
    )


def test_error_when_no_lengthscale_is_valid() -> None:
    # Prepare: the pool lies 1e5 away, so even ℓ = 1000 sees no overlap and
    # v(D_0) = 2·n_0/n_T − 1 < 0.
    parties = [np.zeros((3, 1)), np.ones((3, 1))]
    pool = np.full((10, 1), 1e5)
    # Execute / Assert
    with pytest.raises(
        LengthscaleError, match=r"no ℓ ≤ 1000 makes v\(D_i\) ≥ 0 \(party 0"
    ):
        find_lengthscale(parties, pool)


def test_error_when_lo_already_valid() -> None:
    # Prepare: identical points: k ≡ 1, v(D_i) = 2 − 1 = 1 at every ℓ.
    parties = [np.zeros((3, 2)), np.zeros((4, 2))]
    # Execute / Assert
    with pytest.raises(
        LengthscaleError, match=r"ℓ = 0.01 is already valid for every party"
    ):
        find_lengthscale(parties, np.zeros((5, 2)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"chunk_size": 0}, ValueError, "`chunk_size`"),
        ({"device": "npu"}, ValueError, "`device`"),
        ({"candidate_features": np.zeros((4, 3))}, ValueError, "`features`"),
        ({"candidate_features": np.full((4, 2), np.nan)}, ValueError, "NaN"),
    ],
)
def test_find_lengthscale_bad_input(kwargs: dict, error: type, match: str) -> None:
    args = {"party_features": [np.zeros((2, 2))], "candidate_features": np.ones((4, 2))}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        find_lengthscale(**args)
