"""Tests of `kernel_block_row_sums`: K̄ and R from one pass (docs/cgm.md §5.4, §7.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valuation.api import value_parties
from valuation.kernels import kernel_block_row_sums, kernel_block_sums, rbf_kernel


def _blocks(seed: int, sizes: tuple[int, ...] = (7, 12, 0, 3, 20)) -> list:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 3)) + 5.0 for n in sizes]


def _naive_row_sums(blocks: list[np.ndarray], ell: float) -> np.ndarray:
    """R[r, b] = Σ_{y∈P_b} k(x_r, y) from the full float64 numpy kernel matrix."""
    t = np.concatenate(blocks)
    return np.stack([rbf_kernel(t, b, ell).sum(1) for b in blocks], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 4096])
def test_row_sums_and_block_sums_equal_naive(seed: int, chunk_size: int) -> None:
    # Prepare: uneven blocks, one empty; small tiles straddle column blocks.
    blocks = _blocks(seed)
    ell = 0.9
    naive = _naive_row_sums(blocks, ell)
    offsets = np.cumsum([0, *(len(b) for b in blocks)])
    naive_kbar = np.stack(
        [naive[offsets[a] : offsets[a + 1]].sum(0) for a in range(len(blocks))]
    )
    # Execute
    out = kernel_block_row_sums(blocks, ell, chunk_size=chunk_size)
    # Assert: float64 throughout; rel 1e-12 covers summation order.
    assert out.row_sums.shape == (offsets[-1], len(blocks))
    assert out.sizes == (7, 12, 0, 3, 20)
    np.testing.assert_allclose(out.row_sums, naive, rtol=1e-12)
    np.testing.assert_allclose(out.block_sums, naive_kbar, rtol=1e-12)
    t = np.concatenate(blocks)  # Σ_b R[r, b] = Σ_{y∈T} k(x_r, y)
    np.testing.assert_allclose(
        out.row_sums.sum(1), rbf_kernel(t, t, ell).sum(1), rtol=1e-12
    )


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 4096])
def test_block_sums_bitwise_those_of_kernel_block_sums(
    seed: int, chunk_size: int, precision: str
) -> None:
    # Prepare
    blocks = _blocks(seed)
    kw = {"chunk_size": chunk_size, "kernel_precision": precision}
    # Execute
    with_rows = kernel_block_row_sums(blocks, 1.3, **kw).block_sums
    plain = kernel_block_sums(blocks, 1.3, **kw)
    # Assert: the same accumulation, so the same bits (values.json unchanged).
    assert with_rows.tobytes() == plain.tobytes()


def test_value_parties_bitwise_unchanged_by_row_sums(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    parties = [rng.normal(size=(n, 2)) for n in (10, 14, 9)]
    cand = rng.normal(size=(60, 2))
    kw = {"lengthscale": 0.8, "chunk_size": 7}
    # Execute
    plain = value_parties(parties, cand, **kw)
    values, sums = value_parties(parties, cand, return_row_sums=True, **kw)
    # Assert: every field bit for bit; R has one row per point of T.
    assert values == plain
    assert sums.row_sums.shape == (10 + 14 + 9 + 60, 4)


@pytest.mark.gpu
def test_row_sums_cuda_deterministic_and_close_to_cpu(seed: int) -> None:
    # Prepare
    blocks = _blocks(seed, (300, 500, 0, 2000))
    kw = {"chunk_size": 256, "device": "cuda", "kernel_precision": "float64"}
    # Execute
    first = kernel_block_row_sums(blocks, 1.1, **kw)
    second = kernel_block_row_sums(blocks, 1.1, **kw)
    cpu = kernel_block_row_sums(blocks, 1.1, chunk_size=256)
    plain = kernel_block_sums(blocks, 1.1, **kw)
    # Assert: no atomics, so bit for bit twice; float64 matches the CPU to rel 1e-12.
    assert torch.cuda.is_available()
    assert first.row_sums.tobytes() == second.row_sums.tobytes()
    assert first.block_sums.tobytes() == plain.tobytes()
    np.testing.assert_allclose(first.row_sums, cpu.row_sums, rtol=1e-12)
