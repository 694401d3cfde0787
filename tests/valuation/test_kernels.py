"""Tests of valuation/kernels.py (docs/cgm.md §5.1, §5.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from valuation.kernels import (
    block_segments,
    kernel_block_sums,
    kernel_row_sums,
    rbf_kernel,
    squared_distances,
)


def _naive_block_sums(blocks: list[np.ndarray], ell: float) -> np.ndarray:
    return np.array([[rbf_kernel(a, b, ell).sum() for b in blocks] for a in blocks])


def test_rbf_kernel_known_answer() -> None:
    # Prepare: points at distance 2 with ℓ = 2: k = exp(−4/8).
    x, y = np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]])
    # Execute / Assert: rel 1e-15, one exp.
    assert rbf_kernel(x, y, 2.0)[0, 0] == pytest.approx(math.exp(-0.5), rel=1e-15)
    assert rbf_kernel(x, x, 2.0)[0, 0] == 1.0  # no output scale


def test_block_sums_hand_computed() -> None:
    # Prepare: blocks {0, 1} and {3} on the line, ℓ = 1.
    blocks = [np.array([[0.0], [1.0]]), np.array([[3.0]])]
    k = {d: math.exp(-(d**2) / 2) for d in (0, 1, 2, 3)}
    expected = [[2 + 2 * k[1], k[3] + k[2]], [k[3] + k[2], 1.0]]
    # Execute
    kbar = kernel_block_sums(blocks, 1.0)
    # Assert: rel 1e-14 covers a few float operations.
    np.testing.assert_allclose(kbar, expected, rtol=1e-14)


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 4096])
def test_block_sums_equal_naive_float64(seed: int, chunk_size: int) -> None:
    # Prepare: uneven blocks, one empty, tiles that straddle column blocks.
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, 3)) + 5.0 for n in (7, 12, 0, 3, 20)]
    # Execute
    kbar = kernel_block_sums(blocks, 0.9, chunk_size=chunk_size)
    # Assert: float64 throughout; rel 1e-12 covers summation order.
    np.testing.assert_allclose(kbar, _naive_block_sums(blocks, 0.9), rtol=1e-12)
    np.testing.assert_array_equal(kbar, kbar.T)


def test_block_sums_float32_close_to_float64(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, 4)) for n in (30, 50, 80)]
    # Execute
    k32 = kernel_block_sums(blocks, 1.0, kernel_precision="float32", chunk_size=32)
    k64 = kernel_block_sums(blocks, 1.0, kernel_precision="float64")
    # Assert: float32 kernel values, float64 sums: ~1e-7 relative per value.
    np.testing.assert_allclose(k32, k64, rtol=1e-5)


def test_block_sums_translation_invariant(seed: int) -> None:
    # Prepare: centring on T's mean keeps digits for far-off features.
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, 2)) for n in (10, 15)]
    shifted = [b + 1e4 for b in blocks]
    # Execute
    kbar = kernel_block_sums(shifted, 0.5)
    # Assert: rel 1e-9: the shift costs ~1e4·eps of absolute position.
    np.testing.assert_allclose(kbar, _naive_block_sums(blocks, 0.5), rtol=1e-9)


def test_row_sums_equal_naive(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(11, 3)), rng.normal(size=(17, 3))
    # Execute
    rows = kernel_row_sums(x, y, 1.2, chunk_size=4)
    # Assert: rel 1e-12 covers summation order.
    np.testing.assert_allclose(rows, rbf_kernel(x, y, 1.2).sum(1), rtol=1e-12)


def test_squared_distances_clamped() -> None:
    x = np.array([[1e8, 1.0]])
    assert squared_distances(x, x)[0, 0] >= 0.0


def test_block_segments_never_straddle() -> None:
    assert block_segments([3, 0, 2], 2) == [(0, 0, 2), (0, 2, 3), (2, 3, 5)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lengthscale": 0.0}, ValueError, "`lengthscale`"),
        ({"lengthscale": float("nan")}, ValueError, "`lengthscale`"),
        ({"lengthscale": True}, TypeError, "`lengthscale`"),
        ({"lengthscale": "1"}, TypeError, "`lengthscale`"),
        ({"chunk_size": 0}, ValueError, "`chunk_size`"),
        ({"device": "tpu"}, ValueError, "`device`"),
        ({"kernel_precision": "float16"}, ValueError, "`kernel_precision`"),
        ({"blocks": []}, ValueError, "`blocks`"),
        (
            {"blocks": [np.zeros((2, 2)), np.zeros((2, 3))]},
            ValueError,
            r"`blocks`\[1\]",
        ),
        ({"blocks": [np.zeros((0, 2))]}, ValueError, "no points"),
        ({"blocks": [np.full((2, 2), np.inf)]}, ValueError, "NaN or inf"),
    ],
)
def test_block_sums_bad_input(kwargs: dict, error: type, match: str) -> None:
    args = {"blocks": [np.zeros((2, 2))], "lengthscale": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        kernel_block_sums(**args)


@pytest.mark.gpu
def test_block_sums_cuda_float64_equal_cpu(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, 8)) for n in (100, 200, 300)]
    # Execute
    k_gpu = kernel_block_sums(blocks, 1.0, device="cuda", kernel_precision="float64")
    k_cpu = kernel_block_sums(blocks, 1.0, device="cpu")
    # Assert: both float64; rel 1e-12 covers summation order.
    np.testing.assert_allclose(k_gpu, k_cpu, rtol=1e-12)
