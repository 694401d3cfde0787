"""Tests of valuation/mmd.py (docs/cgm.md §5.2, §8.1)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from valuation.kernels import rbf_kernel
from valuation.mmd import (
    biased_mmd2_from_sums,
    kernel_sum,
    mmd2_biased,
    mmd2_unbiased,
    unbiased_mmd2_from_sums,
)


def _naive_unbiased(x: np.ndarray, y: np.ndarray, ell: float) -> float:
    m, n = len(x), len(y)
    kxx = sum(
        rbf_kernel(x[i : i + 1], x[j : j + 1], ell)[0, 0]
        for i in range(m)
        for j in range(m)
        if i != j
    )
    kyy = sum(
        rbf_kernel(y[i : i + 1], y[j : j + 1], ell)[0, 0]
        for i in range(n)
        for j in range(n)
        if i != j
    )
    kxy = rbf_kernel(x, y, ell).sum()
    return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)


def test_biased_mmd_of_identical_samples_is_zero(seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=(20, 3))
    # atol 1e-14: three O(1) terms cancel.
    assert mmd2_biased(x, x, 1.0) == pytest.approx(0.0, abs=1e-14)


def test_biased_mmd_hand_computed() -> None:
    # Prepare: X = {0}, Y = {0, 2}, ℓ = 1: 1 + (2 + 2e^{-2})/4 − 2(1 + e^{-2})/2.
    x, y = np.array([[0.0]]), np.array([[0.0], [2.0]])
    expected = 1 + (2 + 2 * math.exp(-2)) / 4 - (1 + math.exp(-2))
    # Execute / Assert: rel 1e-12, a few float operations.
    assert mmd2_biased(x, y, 1.0) == pytest.approx(expected, rel=1e-12)


def test_mmd_grows_with_mean_shift(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(60, 2))
    # Execute
    biased = [mmd2_biased(x, y + s, 1.0) for s in (0.0, 0.5, 1.0, 2.0)]
    unbiased = [mmd2_unbiased(x, y + s, 1.0) for s in (0.0, 0.5, 1.0, 2.0)]
    # Assert
    assert np.all(np.diff(biased) > 0)
    assert np.all(np.diff(unbiased) > 0)


def test_unbiased_equals_naive_unequal_sizes(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(12, 2)) + 0.3
    # Execute / Assert: rel 1e-12 covers summation order.
    assert mmd2_unbiased(x, y, 0.8) == pytest.approx(
        _naive_unbiased(x, y, 0.8), rel=1e-12
    )


def test_from_sums_match_array_versions(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(5, 2))
    sums = (kernel_sum(x, x, 1.0), kernel_sum(y, y, 1.0), kernel_sum(x, y, 1.0))
    # Execute / Assert: identical sums, identical arithmetic.
    assert biased_mmd2_from_sums(*sums, 9, 5) == mmd2_biased(x, y, 1.0)
    assert unbiased_mmd2_from_sums(*sums, 9, 5) == mmd2_unbiased(x, y, 1.0)


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (mmd2_biased, {"x": np.zeros((0, 2))}, "`x`"),
        (mmd2_unbiased, {"x": np.zeros((1, 2))}, "`x`"),
        (mmd2_unbiased, {"y": np.zeros((1, 2))}, "`y`"),
        (mmd2_biased, {"y": np.zeros((3, 3))}, "`x` and `y`"),
        (mmd2_biased, {"x": np.full((2, 2), np.nan)}, "`x` contains NaN"),
        (mmd2_biased, {"lengthscale": -1.0}, "`lengthscale`"),
    ],
)
def test_mmd_bad_input(fn: Callable, kwargs: dict, match: str) -> None:
    args = {"x": np.zeros((3, 2)), "y": np.ones((4, 2)), "lengthscale": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fn(**args)
