"""Limits a stage checks before it deletes its old manifest (docs/interface.md §4.5).

The config loader checks each key on its own; the limits here depend on the data a
stage reads (its sample shape, its row counts) and on this machine (its memory).
Each check raises :class:`~pipeline.errors.UsageError` with one line naming the
key to change, so a request that cannot fit is refused before any work starts and
before the previous run's files are touched.

The memory figures are lower estimates of the largest arrays a stage holds at
once, not of a whole process: a refusal is certain to be right, a pass is not a
promise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from data.devices import resolve_device
from pipeline.config import GanConfig, ValueConfig
from pipeline.errors import UsageError
from valuation.features import resolve_feature_kind
from valuation.kernels import resolve_precision, tile_size

__all__ = [
    "check_gan_request",
    "check_value_request",
    "format_bytes",
    "gan_bytes",
    "physical_memory",
    "refuse_over",
    "value_bytes",
]

#: Bytes per float32 and per int64 value.
_F32, _I64 = 4, 8


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX, or name unknown
        return None


def format_bytes(n: float) -> str:
    """A byte count in binary units, three significant figures.

    Example:
        >>> format_bytes(8 * 10**12), format_bytes(24 * 2**30), format_bytes(512)
        ('7.28 TiB', '24 GiB', '512 B')
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    k = 0 if n < 1024 else min(int(math.log(n, 1024)), len(units) - 1)
    return f"{n / 1024**k:.3g} {units[k]}"


def refuse_over(
    key: str, what: str, need: float, limit: int | None, where: str, fix: str
) -> None:
    """Raise UsageError when ``need`` bytes exceed ``limit`` (None: unknown, pass).

    Args:
        key: ``table.key`` the message starts with.
        what: the arrays, e.g. ``"1000 candidates of shape (2,)"``.
        need: the estimate in bytes.
        limit: the memory available in bytes.
        where: whose memory, e.g. ``"this machine's"``.
        fix: what to change, e.g. ``"lower gan.n_candidates"``.

    Raises:
        UsageError: ``[table] key: <what> would need X, more than <where> Y; <fix>``.
    """
    if limit is not None and need > limit:
        table, _, name = key.partition(".")
        raise UsageError(
            f"[{table}] {name}: {what} would need {format_bytes(need)}, more than "
            f"{where} {format_bytes(limit)}; {fix}"
        )


def gan_bytes(n_candidates: int, sample_shape: Sequence[int]) -> int:
    """Lower estimate of the gan stage's candidate arrays (docs/interface.md §4.5).

    Three float32 copies of x (generated, measured for quality, cast for the
    file) and the int64 labels.

    Example:
        >>> gan_bytes(10, (2,))  # 10 × (3·4·2 + 8)
        320
    """
    return n_candidates * (3 * _F32 * math.prod(sample_shape) + _I64)


def check_gan_request(
    g: GanConfig,
    sample_shape: Sequence[int],
    *,
    n_rows: int | None = None,
    memory: int | None = None,
) -> None:
    """Refuse ``gan.n_candidates`` whose arrays cannot fit in memory.

    Also refuses a training ``gan.batch_size`` above the pooled rows (the GAN drops
    the last incomplete batch, so it would never see a batch).

    Args:
        g: the ``[gan]`` table.
        sample_shape: the pool's sample shape.
        n_rows: the pooled rows the GAN would train on (``None``: not checked).
        memory: bytes available (default: :func:`physical_memory`).

    Raises:
        UsageError: naming ``gan.batch_size`` or ``gan.n_candidates``, the figure
            and the limit.
    """
    if g.source == "train" and n_rows is not None and g.batch_size > n_rows:
        raise UsageError(
            f"[gan] batch_size: {g.batch_size} is more than the {n_rows} pooled "
            "rows; lower gan.batch_size"
        )
    if g.source == "file":  # the file's own rows are read, n_candidates is unused
        return
    refuse_over(
        "gan.n_candidates",
        f"{g.n_candidates} candidates of shape {tuple(sample_shape)}",
        gan_bytes(g.n_candidates, sample_shape),
        physical_memory() if memory is None else memory,
        "this machine's",
        "lower gan.n_candidates",
    )


def value_bytes(n_rows: int, input_dim: int, feature_dim: int) -> int:
    """Lower estimate of the value stage's feature arrays (docs/interface.md §4.5).

    The float32 samples the map is fitted on (n × D), then the features: float32
    as returned and as the written reference, float64 as checked and centred for
    the kernel (n × d × (4 + 4 + 8 + 8)).

    Example:
        >>> value_bytes(10, 784, 8)  # 10 × (4·784 + 24·8)
        33280
    """
    return n_rows * (_F32 * input_dim + 24 * feature_dim)


def check_value_request(
    v: ValueConfig,
    n_rows: int,
    sample_shape: Sequence[int],
    *,
    memory: int | None = None,
    gpu_memory: int | None = None,
) -> None:
    """Refuse a ``[value]`` request the data or the machine cannot satisfy.

    Checks, in order: ``value.device`` exists; ``value.features`` suits the sample
    shape; PCA's ``value.feature_dim`` is at most min(rows, D); the feature arrays
    fit in memory; on CUDA one kernel tile of ``value.chunk_size``² values fits in
    the GPU's memory.

    Args:
        v: the ``[value]`` table.
        n_rows: rows of T (all parties plus all candidates).
        sample_shape: the samples' shape.
        memory: host bytes available (default: :func:`physical_memory`).
        gpu_memory: GPU bytes available (default: the device's total memory).

    Raises:
        UsageError: one line naming the key to change.
    """
    try:
        dev = resolve_device(v.device)
    except ValueError as e:
        raise UsageError(f"[value] device: {e}") from e
    try:
        kind = resolve_feature_kind(v.features, tuple(sample_shape), v.feature_dim)
    except ValueError as e:
        raise UsageError(f"[value] features: {e}") from e
    input_dim = math.prod(sample_shape)
    if kind == "pca" and v.feature_dim > min(n_rows, input_dim):
        raise UsageError(
            f"[value] feature_dim: expected at most min(rows, D) = "
            f"{min(n_rows, input_dim)} for PCA on this data ({n_rows} rows of "
            f"dimension D = {input_dim}), got {v.feature_dim}"
        )
    d = input_dim if kind == "identity" else v.feature_dim
    key, fix = (
        ("value.features", 'lower gan.n_candidates or use value.features = "pca"')
        if kind == "identity"
        else ("value.feature_dim", "lower value.feature_dim")
    )
    refuse_over(
        key,
        f"{kind} features of {n_rows} rows × d = {d}",
        value_bytes(n_rows, input_dim, d),
        physical_memory() if memory is None else memory,
        "this machine's",
        fix,
    )
    if dev.type == "cuda":
        side = min(tile_size(v.chunk_size, dev), n_rows)
        item = torch.finfo(resolve_precision(v.kernel_precision, dev)).bits // 8
        if gpu_memory is None:
            gpu_memory = torch.cuda.get_device_properties(dev).total_memory
        refuse_over(
            "value.chunk_size",
            f"a kernel tile of {side} × {side} values (with its distances)",
            2 * side * side * item,
            gpu_memory,
            "the GPU's",
            "lower value.chunk_size",
        )
