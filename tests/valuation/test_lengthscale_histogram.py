"""The histogram replay of the lengthscale rule vs. the bisection (docs/cgm.md §5.3).

The claim is bitwise identity: ``find_lengthscale(method="histogram")`` returns
the very ℓ and bracket of ``bisect_lengthscale(SingletonSums.values)``, so these
tests compare with ``==``.
"""

from __future__ import annotations

import numpy as np
import pytest

from valuation.lengthscale import (
    LENGTHSCALE_HI,
    LENGTHSCALE_LO,
    LengthscaleError,
    SingletonSums,
    bisect_lengthscale,
    certified_signs,
    distance_histograms,
    find_lengthscale,
    histogram_lengthscale,
)
from valuation.lengthscale import _pending_lengthscales as pending_lengthscales


def _random_case(
    seed: int, dim: int, sizes: tuple[int, ...], n_pool: int, duplicates: bool = False
) -> tuple[list[np.ndarray], np.ndarray]:
    """Parties around random centres with random spreads; the pool around 0."""
    rng = np.random.default_rng(seed)
    parties = [
        rng.normal(rng.uniform(-1, 1, dim), rng.uniform(0.2, 1.0), (n, dim))
        for n in sizes
    ]
    pool = rng.normal(0.0, 1.0, (n_pool, dim))
    if duplicates:  # repeated rows within a party and party rows in the pool
        parties[0][1::2] = parties[0][0]
        pool[: len(parties[-1])] = parties[-1]
    return parties, pool


def _both(parties: list, pool: np.ndarray, **kwargs: object) -> tuple:
    old = find_lengthscale(parties, pool, method="bisect", **kwargs)
    new = find_lengthscale(parties, pool, method="histogram", **kwargs)
    return old, new


@pytest.mark.parametrize(
    ("dim", "sizes", "n_pool", "duplicates"),
    [
        (1, (30, 30, 30), 120, False),
        (2, (5, 40, 90), 150, False),
        (2, (25, 25), 60, True),
        (8, (50, 20, 35, 10), 200, False),
        (8, (1, 60, 30), 100, True),
    ],
)
@pytest.mark.parametrize("offset", [0, 1, 2])
def test_histogram_equals_bisection(
    seed: int, offset: int, dim: int, sizes: tuple, n_pool: int, duplicates: bool
) -> None:
    # Prepare
    parties, pool = _random_case(seed + offset, dim, sizes, n_pool, duplicates)
    # Execute
    old, new = _both(parties, pool, chunk_size=37)
    # Assert: the same ℓ and bracket, bit for bit.
    assert new == old


def test_histogram_equals_bisection_float32(seed: int) -> None:
    # Prepare: float32 kernel values widen the certified bounds by ~1e-5.
    parties, pool = _random_case(seed, 3, (40, 25, 30), 150)
    # Execute
    old, new = _both(parties, pool, chunk_size=50, kernel_precision="float32")
    # Assert
    assert new == old


@pytest.mark.parametrize(("bits", "batch"), [(0, 1), (0, 3), (1, 8)])
def test_coarse_histograms_fall_back_to_exact_values(
    seed: int, bits: int, batch: int
) -> None:
    # Prepare: 1-2 bins per octave leave many signs uncertified.
    parties, pool = _random_case(seed, 2, (30, 45, 20), 100)
    sums = SingletonSums(parties, pool, chunk_size=40)
    # Execute
    new, n_exact = histogram_lengthscale(sums, bits=bits, batch=batch)
    # Assert: exact evaluations were needed, and the result is still bitwise.
    assert n_exact > 0
    assert new == bisect_lengthscale(sums.values)


def _threshold(sums: SingletonSums, lo: float, hi: float, n_steps: int) -> float:
    """The validity threshold refined by further bisection on exact values."""
    for _ in range(n_steps):
        mid = (lo + hi) / 2.0
        if (sums.values(mid) >= 0).all():
            hi = mid
        else:
            lo = mid
    return hi


def test_knife_edge_midpoint(seed: int) -> None:
    # Prepare: rescale the features so that the validity threshold lands on the
    # final midpoint of the bisection: there v(D_i) ≈ 0 to rounding, below any
    # bound the histograms can certify.
    parties, pool = _random_case(seed, 2, (30, 30, 30), 90)
    sums = SingletonSums(parties, pool)
    ell, (lo, hi) = bisect_lengthscale(sums.values)
    scale = ell / _threshold(sums, lo, hi, 40)
    parties, pool = [p * scale for p in parties], pool * scale
    sums = SingletonSums(parties, pool)
    worst = sums.values(ell).min()
    # Execute
    new, n_exact = histogram_lengthscale(sums)
    # Assert: the case is a knife edge, the fallback ran, the answer is bitwise.
    assert abs(worst) < 1e-9
    assert n_exact >= 1
    assert new == bisect_lengthscale(sums.values)


def test_error_no_valid_lengthscale_same_message() -> None:
    # Prepare: the pool lies 1e5 away: no ℓ ≤ 1000 is valid.
    parties = [np.zeros((3, 1)), np.ones((3, 1)) * [[1.0], [2.0], [3.0]]]
    pool = np.full((10, 1), 1e5)
    # Execute
    with pytest.raises(LengthscaleError) as old:
        find_lengthscale(parties, pool, method="bisect")
    with pytest.raises(LengthscaleError) as new:
        find_lengthscale(parties, pool)
    # Assert: the same message, with the same worst party and value.
    assert str(new.value) == str(old.value)
    assert "no ℓ ≤ 1000" in str(new.value)


def test_error_lo_already_valid_same_message() -> None:
    # Prepare: identical points: k ≡ 1, every ℓ is valid.
    parties = [np.zeros((3, 2)), np.zeros((4, 2))]
    # Execute
    with pytest.raises(LengthscaleError) as old:
        find_lengthscale(parties, np.zeros((5, 2)), method="bisect")
    with pytest.raises(LengthscaleError) as new:
        find_lengthscale(parties, np.zeros((5, 2)))
    # Assert
    assert str(new.value) == str(old.value)
    assert "already valid" in str(new.value)


@pytest.mark.parametrize("cache_bytes", [0, 2**30])
def test_values_many_bitwise_values(seed: int, cache_bytes: int) -> None:
    # Prepare
    parties, pool = _random_case(seed, 4, (20, 35), 70)
    sums = SingletonSums(parties, pool, chunk_size=16, cache_bytes=cache_bytes)
    ells = [0.05, 0.7, 3.0, 900.0]
    # Execute
    many = sums.values_many(ells)
    # Assert: the same operations in the same order: identical floats.
    for ell, v in zip(ells, many, strict=True):
        np.testing.assert_array_equal(v, sums.values(ell))


@pytest.mark.parametrize("bits", [0, 7])
def test_certified_signs_are_the_computed_signs(seed: int, bits: int) -> None:
    # Prepare: ℓ spread over the bracket and packed around the threshold.
    parties, pool = _random_case(seed, 2, (25, 40, 15), 80, duplicates=True)
    sums = SingletonSums(parties, pool, chunk_size=32)
    hist = distance_histograms(sums, bits=bits)
    ell, _ = bisect_lengthscale(sums.values)
    ells = np.concatenate(
        [
            np.geomspace(LENGTHSCALE_LO, LENGTHSCALE_HI, 25),
            ell * (1 + np.linspace(-0.3, 0.3, 25)),
        ]
    )
    n_certified = 0
    for x in ells:
        # Execute
        sure_valid, sure_invalid = certified_signs(hist, float(x))
        v = sums.values(float(x))
        # Assert: a certified sign is the sign the bisection computes.
        assert not (sure_valid & sure_invalid).any()
        assert (v[sure_valid] >= 0).all()
        assert (v[sure_invalid] < 0).all()
        n_certified += int(sure_valid.all() or sure_invalid.any())
    # Assert: and the bounds are tight enough to decide most queries.
    assert n_certified >= (30 if bits == 0 else 45)


def test_pending_follows_the_bisection_breadth_first() -> None:
    # Prepare: nothing is certified.
    # Execute
    pending = pending_lengthscales(
        lambda ell: None, lambda ell: False, lo=0.0, hi=8.0, n_steps=3, cap=100
    )
    # Assert: hi, lo, then the dyadic midpoints level by level.
    assert pending == [8.0, 0.0, 4.0, 2.0, 6.0, 1.0, 3.0, 5.0, 7.0]


def test_pending_skips_certified_branches() -> None:
    # Prepare: valid ⇔ ℓ ≥ 2.5, certified except at ℓ = 3.
    def decide(ell: float) -> bool | None:
        return None if ell == 3.0 else ell >= 2.5

    # Execute
    pending = pending_lengthscales(
        decide, lambda ell: False, lo=0.0, hi=8.0, n_steps=5, cap=100
    )
    # Assert: only 3 and the midpoints after it that the certified path cannot
    # settle (none: both branches from 3 are certified).
    assert pending == [3.0]


def test_bad_method() -> None:
    with pytest.raises(ValueError, match="`method`"):
        find_lengthscale([np.zeros((2, 2))], np.ones((4, 2)), method="newton")


@pytest.mark.gpu
def test_histogram_equals_bisection_cuda(seed: int) -> None:
    # Prepare: float32 kernel values and CUDA bincounts (atomic, any order).
    parties, pool = _random_case(seed, 2, (200, 150, 300), 2000)
    # Execute
    old, new = _both(parties, pool, device="cuda")
    # Assert
    assert new == old
