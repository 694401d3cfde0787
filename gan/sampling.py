"""Candidate labels and candidate samples of docs/cgm.md §3.3 (Tay et al., AAAI 2022).

- :func:`largest_remainder_counts` and :func:`candidate_labels`: labels following the
  pooled class frequencies π_c, n_c by largest-remainder rounding of π_c·n_G, then a
  seeded permutation.
- :func:`generate`: the trained generator in eval mode, latents from a seeded CPU
  ``torch.Generator``, output in the data space (float32, the data's layout).
- :func:`oracle_sample`: the exact gmm mixture, x = μ_y + √var·ε
  (``gan.source = "oracle"``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from data.checks import check_int, check_positive_int
from data.seeding import Seed
from gan.module import GANModule

logger = logging.getLogger(__name__)

_DECIMALS = 9


def _check_labels(labels: ArrayLike, n_classes: int) -> NDArray[np.int64]:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"Argument `labels` must be a non-empty 1-D array, got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Argument `labels` must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(
            f"Argument `labels` must lie in [0, {n_classes}), "
            f"got labels in [{lo}, {hi}]"
        )
    return arr.astype(np.int64, copy=False)


def largest_remainder_counts(weights: ArrayLike, n: int) -> NDArray[np.int64]:
    """Split n into integer counts proportional to ``weights`` (largest remainder).

    q_c = π_c·n with π = weights/Σweights; n_c = ⌊q_c⌋, then the n − Σ⌊q_c⌋ leftover
    units go one each to the classes with the largest fractional parts (ties → lower
    class).

    Args:
        weights: (C,) non-negative numbers with a positive sum (frequencies or counts).
        n: the total, ≥ 1.

    Returns:
        (C,) int64 counts summing to n.

    Raises:
        ValueError: on negative, non-finite or all-zero weights, or n < 1.

    Example:
        >>> largest_remainder_counts([0.5, 0.25, 0.25], 10).tolist()  # 5, 2.5, 2.5
        [5, 3, 2]
    """
    w = np.asarray(weights, dtype=np.float64)
    n = check_int("n", n, 1)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"Argument `weights` must be a non-empty 1-D array, got {w!r}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"Argument `weights` must be finite, >= 0 and not all 0, got {w.tolist()!r}"
        )
    # Rounding to 1e-9 snaps float noise (≪ 1e-9 for n < 1e6), so quotas and
    # fractional parts that are equal in exact arithmetic compare equal here too.
    quota = np.round(w * n / w.sum(), _DECIMALS)
    counts = np.floor(quota).astype(np.int64)
    leftover = n - int(counts.sum())
    frac = np.round(quota - counts, _DECIMALS)
    # Stable sort on −fraction keeps the lower class first among equal fractions.
    order = np.argsort(-frac, kind="stable")
    counts[order[:leftover]] += 1
    return counts


def candidate_labels(
    class_frequencies: ArrayLike, n: int, *, seed: Seed
) -> NDArray[np.int64]:
    """Labels of n candidates following the pooled class frequencies (docs/cgm.md §3.3).

    Args:
        class_frequencies: (C,) π_c (or class counts), non-negative, positive sum.
        n: number of candidates n_G ≥ 1.
        seed: seed of the permutation (``np.random.default_rng(seed)``).

    Returns:
        (n,) int64 labels in [0, C): class c appears exactly
        ``largest_remainder_counts(class_frequencies, n)[c]`` times, in seeded order.

    Raises:
        ValueError: on bad frequencies or n < 1.

    Example:
        >>> np.bincount(candidate_labels([0.5, 0.25, 0.25], 10, seed=0)).tolist()
        [5, 3, 2]
    """
    counts = largest_remainder_counts(class_frequencies, n)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    return rng.permutation(labels)


def generate(
    module: GANModule,
    labels: ArrayLike,
    *,
    seed: int,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> NDArray[np.float32]:
    """Generate one sample per label with a trained GAN (docs/cgm.md §3.3).

    All latents are drawn at once from ``torch.Generator().manual_seed(seed)`` on the
    CPU, so the result depends on neither ``batch_size`` nor ``device`` (beyond float
    rounding). G runs in eval mode under ``no_grad``; the module's mode and device are
    restored afterwards.

    Args:
        module: a trained (or checkpoint-loaded) :class:`~gan.module.GANModule`.
        labels: (n,) integer labels in [0, C).
        seed: seed of the latent generator.
        batch_size: rows per forward pass (1,024 in the spec).
        device: where G runs (``"cpu"``, ``"cuda"``, a ``torch.device``).
        progress: show a tqdm bar over batches.

    Returns:
        (n, *sample_shape) float32 samples in the data space.

    Raises:
        ValueError: on labels out of range or a bad batch size.
        TypeError: on non-integer labels.
    """
    y = _check_labels(labels, module.n_classes)
    seed = check_int("seed", seed, 0)
    batch_size = check_positive_int("batch_size", batch_size)
    z_all = torch.randn(
        y.shape[0],
        module.latent_dim,
        generator=torch.Generator().manual_seed(int(seed)),
    )
    y_all = torch.from_numpy(y)
    was_training = module.training
    old_device = next(module.parameters()).device
    module.eval()
    module.to(device)
    out = np.empty((y.shape[0], *module.sample_shape), dtype=np.float32)
    try:
        with torch.no_grad():
            starts = range(0, y.shape[0], batch_size)
            for s in tqdm(starts, disable=not progress, desc="generate"):
                z = z_all[s : s + batch_size].to(module.device)
                yb = y_all[s : s + batch_size].to(module.device)
                out[s : s + batch_size] = module(z, yb).float().cpu().numpy()
    finally:
        module.to(old_device)
        module.train(was_training)
    return out


def oracle_sample(
    means: ArrayLike, var: float, labels: ArrayLike, *, seed: Seed
) -> NDArray[np.float32]:
    """Exact samples of the gmm mixture: x = μ_y + √var·ε (docs/cgm.md §2.1, §3).

    Args:
        means: (C, D) component means μ_c (the pool's ``gmm_means``).
        var: the isotropic component variance (``gmm_var`` = 1/200), ≥ 0.
        labels: (n,) integer labels in [0, C).
        seed: seed of ε ~ N(0, I) (``np.random.default_rng(seed)``).

    Returns:
        (n, D) float32 samples.

    Raises:
        ValueError: on bad shapes, a negative or non-finite var, labels out of range.

    Example:
        >>> oracle_sample([[0.0, 1.0], [2.0, 3.0]], 0.0, [1, 0], seed=0).tolist()
        [[2.0, 3.0], [0.0, 1.0]]
    """
    mu = np.asarray(means, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(
            f"Argument `means` must be a (C, D) array, got shape {mu.shape}"
        )
    if not np.all(np.isfinite(mu)):
        raise ValueError("Argument `means` must be finite")
    if not (np.isfinite(var) and var >= 0):
        raise ValueError(f"Argument `var` must be a finite number >= 0, got {var!r}")
    y = _check_labels(labels, mu.shape[0])
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((y.shape[0], mu.shape[1]))
    return (mu[y] + np.sqrt(var) * eps).astype(np.float32)


def class_frequencies(y: ArrayLike, n_classes: int) -> list[float]:
    """Pooled class frequencies π_c = (number of rows of class c) / n.

    Args:
        y: (n,) integer labels in [0, n_classes).
        n_classes: C.

    Returns:
        C floats summing to 1.

    Raises:
        ValueError: on labels out of range.

    Example:
        >>> class_frequencies([0, 0, 1, 2], 4)
        [0.5, 0.25, 0.25, 0.0]
    """
    arr = _check_labels(y, n_classes)
    return (np.bincount(arr, minlength=n_classes) / arr.size).tolist()


__all__ = [
    "candidate_labels",
    "class_frequencies",
    "generate",
    "largest_remainder_counts",
    "oracle_sample",
]
