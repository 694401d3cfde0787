"""Squared-exponential kernel and its chunked sums (docs/cgm.md §5.1, §5.4).

k(x, y) = exp(−‖x − y‖² / (2ℓ²)), no output scale, so k(x, x) = 1. The chunked
sums run in torch (CPU or CUDA), centre the features on the reference mean
(translation-invariant kernel; less cancellation in ‖x‖² + ‖y‖² − 2x·y), clamp
squared distances at 0 and always accumulate in float64 (docs/cgm.md §5.4, §9.9).

Valuation after Tay, Xu, Foo, Low, "Incentivizing Collaboration in Machine
Learning via Synthetic Data Rewards" (AAAI 2022).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from tqdm import tqdm

from data.checks import check_positive, check_positive_int
from data.devices import resolve_device

logger = logging.getLogger(__name__)

#: Largest tile side on CPU: 512² tiles stay in cache and measured 2-4× faster
#: than 4096² tiles on one core; ``chunk_size`` remains the memory bound.
CPU_TILE = 512


def squared_distances(x: NDArray, y: NDArray) -> NDArray[np.float64]:
    """Pairwise squared Euclidean distances, clamped at 0.

    Args:
        x: (n, d) array.
        y: (m, d) array.

    Returns:
        (n, m) float64 array of ‖x_i − y_j‖².

    Example:
        >>> squared_distances(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]))
        array([[25.]])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d2, 0.0)


def rbf_kernel(x: NDArray, y: NDArray, lengthscale: float) -> NDArray[np.float64]:
    """SE kernel matrix k(x_i, y_j) = exp(−‖x_i − y_j‖² / (2ℓ²)) in float64.

    Args:
        x: (n, d) array.
        y: (m, d) array.
        lengthscale: ℓ > 0.

    Returns:
        (n, m) float64 kernel matrix.

    Raises:
        ValueError: if ``lengthscale`` is not > 0.

    Example:
        >>> k = rbf_kernel(np.zeros((1, 1)), np.ones((1, 1)), 1.0)
        >>> round(float(k[0, 0]), 12)  # e^{-1/2}
        0.606530659713
    """
    if not lengthscale > 0:
        raise ValueError(f"Argument `lengthscale` must be > 0, got {lengthscale!r}")
    return np.exp(-squared_distances(x, y) / (2.0 * lengthscale**2))


def resolve_precision(kernel_precision: str, device: torch.device) -> torch.dtype:
    """Kernel dtype: ``"auto"`` is float64 on CPU, float32 on CUDA (docs/cgm.md §5.4).

    Args:
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        device: where the kernel is evaluated.

    Returns:
        The torch dtype for kernel values (sums always accumulate in float64).

    Raises:
        ValueError: if ``kernel_precision`` is unknown.
    """
    if kernel_precision == "auto":
        return torch.float32 if device.type == "cuda" else torch.float64
    if kernel_precision == "float64":
        return torch.float64
    if kernel_precision == "float32":
        return torch.float32
    raise ValueError(
        "Argument `kernel_precision` must be 'auto', 'float64' or 'float32', "
        f"got {kernel_precision!r}"
    )


def check_lengthscale(lengthscale: float) -> float:
    """Validate a fixed lengthscale ℓ (a real number > 0).

    Args:
        lengthscale: ℓ.

    Returns:
        ℓ as a float.

    Raises:
        TypeError: if ``lengthscale`` is not a real number (a bool is refused).
        ValueError: if ``lengthscale`` is not finite and > 0.

    Example:
        >>> check_lengthscale(2)
        2.0
    """
    return check_positive("lengthscale", lengthscale)


def tile_size(chunk_size: int, device: torch.device) -> int:
    """Tile side actually used: ``chunk_size``, capped at :data:`CPU_TILE` on CPU.

    Args:
        chunk_size: the requested rows/columns per tile (a memory bound).
        device: where the kernel is evaluated.

    Returns:
        The tile side.

    Example:
        >>> tile_size(4096, torch.device("cpu")), tile_size(100, torch.device("cpu"))
        (512, 100)
    """
    return min(chunk_size, CPU_TILE) if device.type == "cpu" else chunk_size


def check_chunk_size(chunk_size: int) -> None:
    """Validate a tile size.

    Args:
        chunk_size: rows/columns per kernel tile.

    Raises:
        TypeError: if ``chunk_size`` is not an int.
        ValueError: if ``chunk_size`` < 1.
    """
    check_positive_int("chunk_size", chunk_size)


def squared_distance_tile(
    xa: Tensor, yb: Tensor, xa_sq: Tensor, yb_sq: Tensor
) -> Tensor:
    """Tile max(‖x‖² + ‖y‖² − 2x·y, 0) of squared distances, one allocation.

    Args:
        xa: (r, d) centred rows.
        yb: (c, d) centred columns, same dtype and device.
        xa_sq: (r,) squared norms of ``xa``.
        yb_sq: (c,) squared norms of ``yb``.

    Returns:
        (r, c) squared distances in the dtype of the inputs.
    """
    tile = xa @ yb.T
    return tile.mul_(-2.0).add_(xa_sq[:, None]).add_(yb_sq[None, :]).clamp_min_(0.0)


def kernel_tile(
    xa: Tensor, yb: Tensor, inv_two_l2: float, xa_sq: Tensor, yb_sq: Tensor
) -> Tensor:
    """Kernel tile exp(−max(‖x‖² + ‖y‖² − 2x·y, 0)·inv_two_l2), one allocation.

    Args:
        xa: (r, d) centred rows.
        yb: (c, d) centred columns, same dtype and device.
        inv_two_l2: 1/(2ℓ²).
        xa_sq: (r,) squared norms of ``xa``.
        yb_sq: (c,) squared norms of ``yb``.

    Returns:
        (r, c) kernel values in the dtype of the inputs.
    """
    return squared_distance_tile(xa, yb, xa_sq, yb_sq).mul_(-inv_two_l2).exp_()


def kernel_row_sums(
    x: NDArray,
    y: NDArray,
    lengthscale: float,
    *,
    center: NDArray | None = None,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
) -> NDArray[np.float64]:
    """Row sums s_i = Σ_j k(x_i, y_j), computed in tiles with float64 accumulation.

    Features are centred (on ``center``, e.g. the reference mean) before the
    distances are formed: the kernel is translation invariant, and centring
    reduces cancellation in ‖x‖² + ‖y‖² − 2x·y (docs/cgm.md §5.4).

    Args:
        x: (n, d) array.
        y: (m, d) array.
        lengthscale: ℓ > 0.
        center: (d,) vector subtracted from both; default the mean of ``y``.
        chunk_size: rows per tile (bounds memory at chunk_size² kernel values;
            capped at :data:`CPU_TILE` on CPU).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: dtype of kernel values (``"auto"``, ``"float64"``,
            ``"float32"``).

    Returns:
        (n,) float64 row sums.

    Raises:
        ValueError: on a bad lengthscale, chunk size or feature-dimension mismatch.

    Example:
        >>> kernel_row_sums(np.zeros((2, 1)), np.zeros((3, 1)), 1.0)
        array([3., 3.])
    """
    xt, yt, dev, inv = _prepare(
        x, y, lengthscale, center, chunk_size, device, kernel_precision
    )
    chunk_size = tile_size(chunk_size, dev)
    x_sq = (xt * xt).sum(1)
    y_sq = (yt * yt).sum(1)
    out = torch.zeros(xt.shape[0], dtype=torch.float64, device=dev)
    for i in range(0, xt.shape[0], chunk_size):
        xa = xt[i : i + chunk_size]
        for j in range(0, yt.shape[0], chunk_size):
            tile = kernel_tile(
                xa,
                yt[j : j + chunk_size],
                inv,
                x_sq[i : i + chunk_size],
                y_sq[j : j + chunk_size],
            )
            out[i : i + chunk_size] += tile.sum(1, dtype=torch.float64)
    return out.cpu().numpy()


def _prepare(
    x: NDArray,
    y: NDArray,
    lengthscale: float,
    center: NDArray | None,
    chunk_size: int,
    device: str,
    kernel_precision: str,
) -> tuple[Tensor, Tensor, torch.device, float]:
    lengthscale = check_lengthscale(lengthscale)
    check_chunk_size(chunk_size)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"Arguments `x` and `y` must be 2-D with equal feature dimension, got "
            f"{x.shape} and {y.shape}"
        )
    if center is not None:
        mu = np.asarray(center, dtype=np.float64)
    elif y.shape[0] > 0:
        mu = y.mean(0)
    else:
        mu = np.zeros(y.shape[1])
    dev = resolve_device(device)
    dtype = resolve_precision(kernel_precision, dev)
    xt = torch.from_numpy(x - mu).to(dev, dtype)
    yt = torch.from_numpy(y - mu).to(dev, dtype)
    return xt, yt, dev, 1.0 / (2.0 * lengthscale**2)


def check_blocks(blocks: Sequence[NDArray], name: str = "blocks") -> list[NDArray]:
    """Validate a list of (n_a, d) point blocks with one feature dimension d.

    Args:
        blocks: the blocks.
        name: argument name for messages.

    Returns:
        The blocks as float64 arrays.

    Raises:
        ValueError: on an empty list, a bad rank, mismatched d, NaN/inf or no rows.
    """
    arrays = [np.asarray(b, dtype=np.float64) for b in blocks]
    if not arrays:
        raise ValueError(f"Argument `{name}` must hold at least one block, got none")
    for a, arr in enumerate(arrays):
        if arr.ndim != 2 or arr.shape[1] != arrays[0].shape[1]:
            raise ValueError(
                f"Argument `{name}`[{a}] must be (n, {arrays[0].shape[-1]}) like "
                f"block 0, got shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"Argument `{name}`[{a}] contains NaN or inf")
    if sum(arr.shape[0] for arr in arrays) == 0:
        raise ValueError(f"Argument `{name}` holds no points")
    return arrays


def centred_reference(
    blocks: Sequence[NDArray],
    device: str,
    kernel_precision: str,
    name: str = "blocks",
) -> tuple[list[int], Tensor, Tensor]:
    """T = the blocks concatenated, centred, on the device (docs/cgm.md §5.4).

    Args:
        blocks: B arrays of shape (n_a, d) with one d (validated by
            :func:`check_blocks`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        name: argument name for messages.

    Returns:
        (sizes, t, t_sq): the block sizes, (n_T, d) centred T in the kernel dtype
        and its (n_T,) squared row norms.

    Raises:
        ValueError: on bad blocks, device or precision.
    """
    arrays = check_blocks(blocks, name)
    t = np.concatenate(arrays, axis=0)
    dev = resolve_device(device)
    dtype = resolve_precision(kernel_precision, dev)
    tt = torch.from_numpy(t - t.mean(axis=0)).to(dev, dtype)
    return [arr.shape[0] for arr in arrays], tt, (tt * tt).sum(1)


def block_segments(sizes: Sequence[int], chunk_size: int) -> list[tuple[int, int, int]]:
    """Row ranges (block, start, stop): each block cut into tiles of ≤ chunk_size.

    Args:
        sizes: block sizes, in the order the blocks are concatenated.
        chunk_size: largest tile.

    Returns:
        The ranges in order; none straddles a block.

    Example:
        >>> block_segments([3, 1], 2)
        [(0, 0, 2), (0, 2, 3), (1, 3, 4)]
    """
    segments = []
    offset = 0
    for a, n_a in enumerate(sizes):
        for start in range(offset, offset + n_a, chunk_size):
            segments.append((a, start, min(start + chunk_size, offset + n_a)))
        offset += n_a
    return segments


def kernel_block_sums(
    blocks: Sequence[NDArray],
    lengthscale: float,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
    progress: bool = False,
) -> NDArray[np.float64]:
    """Block sums K̄_ab = Σ_{x∈P_a} Σ_{y∈P_b} k(x, y) in one pass (docs/cgm.md §5.4).

    T is the concatenation of the blocks (parties, then the pool G), centred on
    its mean. Rows are cut into tiles that never straddle a block; for each row
    tile only the columns from the tile on (j ≥ i) are evaluated: the diagonal
    tile in full (k(x, x) = 1 exactly), the rest once and mirrored. Kernel values
    are float64 or float32 (``kernel_precision``); sums accumulate in float64.

    Args:
        blocks: B arrays of shape (n_a, d) with one d.
        lengthscale: ℓ > 0.
        chunk_size: rows and columns per tile (memory ≈ chunk_size² values;
            capped at :data:`CPU_TILE` on CPU).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"`` (float64 on CPU, float32 on CUDA),
            ``"float64"`` or ``"float32"``.
        progress: show a progress bar over row tiles.

    Returns:
        (B, B) symmetric float64 matrix K̄.

    Raises:
        ValueError: on bad blocks, lengthscale, chunk size, device or precision.

    Example:
        >>> kernel_block_sums([np.zeros((2, 1)), np.zeros((1, 1))], 1.0).tolist()
        [[4.0, 2.0], [2.0, 1.0]]
    """
    kbar, _ = _block_pass(
        blocks, lengthscale, chunk_size, device, kernel_precision, progress, False
    )
    return kbar


@dataclass(frozen=True)
class BlockRowSums:
    """Both outputs of :func:`kernel_block_row_sums` (docs/cgm.md §5.4, §7.2).

    Attributes:
        block_sums: (B, B) K̄, bitwise what :func:`kernel_block_sums` returns.
        row_sums: (n_T, B) float64 R, R[r, b] = Σ_{y∈P_b} k(x_r, y) for every
            row x_r of T (the blocks concatenated), so Σ_b R[r, b] = Σ_{y∈T} k.
        sizes: (B,) block sizes n_a, in block order.
    """

    block_sums: NDArray[np.float64]
    row_sums: NDArray[np.float64]
    sizes: tuple[int, ...]


def kernel_block_row_sums(
    blocks: Sequence[NDArray],
    lengthscale: float,
    *,
    chunk_size: int = 4096,
    device: str = "cpu",
    kernel_precision: str = "auto",
    progress: bool = False,
) -> BlockRowSums:
    """K̄ and every row's per-block sums R from the same one pass (docs/cgm.md §5.4).

    The tiles of :func:`kernel_block_sums`, K̄ accumulated exactly as there (so it
    is bitwise the same). Each tile also adds its row sums per column block to
    its rows and its column sums to its columns' entry of the row block; R costs
    one more reduction per tile and n_T × B float64 values (5 MB at n_T = 10⁵,
    B = 6). The sample stage starts from R instead of a second pass (§7.2).

    Args:
        blocks: B arrays of shape (n_a, d) with one d.
        lengthscale: ℓ > 0.
        chunk_size: rows and columns per tile (capped at :data:`CPU_TILE` on CPU).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        kernel_precision: ``"auto"``, ``"float64"`` or ``"float32"``.
        progress: show a progress bar over row tiles.

    Returns:
        K̄, R and the block sizes.

    Raises:
        ValueError: on bad blocks, lengthscale, chunk size, device or precision.

    Example:
        >>> out = kernel_block_row_sums([np.zeros((2, 1)), np.zeros((1, 1))], 1.0)
        >>> out.block_sums.tolist(), out.row_sums.tolist()
        ([[4.0, 2.0], [2.0, 1.0]], [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]])
    """
    kbar, rows = _block_pass(
        blocks, lengthscale, chunk_size, device, kernel_precision, progress, True
    )
    sizes = tuple(int(np.asarray(b).shape[0]) for b in blocks)
    return BlockRowSums(block_sums=kbar, row_sums=rows, sizes=sizes)


def _block_pass(
    blocks: Sequence[NDArray],
    lengthscale: float,
    chunk_size: int,
    device: str,
    kernel_precision: str,
    progress: bool,
    with_rows: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The one pass of :func:`kernel_block_sums`; R too when ``with_rows``.

    Returns:
        (K̄, R); R has shape (n_T, B) when ``with_rows``, else (0, B).
    """
    lengthscale = check_lengthscale(lengthscale)
    check_chunk_size(chunk_size)
    sizes, tt, t_sq = centred_reference(blocks, device, kernel_precision)
    dev = tt.device
    n_blocks = len(sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    inv = 1.0 / (2.0 * lengthscale**2)
    n_t = tt.shape[0]
    upper = torch.zeros((n_blocks, n_blocks), dtype=torch.float64, device=dev)
    diagonal = torch.zeros(n_blocks, dtype=torch.float64, device=dev)
    rows = torch.zeros(
        (n_t if with_rows else 0, n_blocks), dtype=torch.float64, device=dev
    )
    chunk_size = tile_size(chunk_size, dev)
    segments = block_segments(sizes, chunk_size)
    for a, r0, r1 in tqdm(segments, disable=not progress, desc="kernel blocks"):
        xa, xa_sq = tt[r0:r1], t_sq[r0:r1]
        # Self-distances are 0 exactly: zero them before exp so k(x, x) = 1.
        square = squared_distance_tile(xa, xa, xa_sq, xa_sq)
        square.fill_diagonal_(0.0)
        square = square.mul_(-inv).exp_()
        diagonal[a] += square.sum(dtype=torch.float64)
        if with_rows:
            rows[r0:r1, a] += square.sum(1, dtype=torch.float64)
        for c0 in range(r1, n_t, chunk_size):
            c1 = min(c0 + chunk_size, n_t)
            tile = kernel_tile(xa, tt[c0:c1], inv, xa_sq, t_sq[c0:c1])
            col_sums = tile.sum(0, dtype=torch.float64)
            if with_rows:  # the mirrored tile: its columns against block a
                rows[c0:c1, a] += col_sums
            # Per-block slices rather than index_add_, which is nondeterministic
            # on CUDA (and refused under torch.use_deterministic_algorithms).
            for b in range(int(np.searchsorted(offsets, c0, "right")) - 1, n_blocks):
                s0, s1 = max(c0, offsets[b]), min(c1, offsets[b + 1])
                if s0 >= c1:
                    break
                if s1 > s0:
                    upper[a, b] += col_sums[s0 - c0 : s1 - c0].sum()
                    if with_rows:
                        part = tile[:, s0 - c0 : s1 - c0]
                        rows[r0:r1, b] += part.sum(1, dtype=torch.float64)
    kbar = upper + upper.T + torch.diag(diagonal)
    return kbar.cpu().numpy(), rows.cpu().numpy()
