"""The pooled party data as a LightningDataModule for GAN training (docs/cgm.md §3.2).

The caller (the ``gan`` stage) reads and concatenates the party files; this module only
serves the in-memory arrays, shuffled by its own seeded ``torch.Generator`` and with
``drop_last=True`` so that BatchNorm never sees a batch of one.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch
from numpy.typing import NDArray
from torch.utils.data import DataLoader, TensorDataset

from data.checks import check_int

logger = logging.getLogger(__name__)


def check_xy(x: NDArray, y: NDArray, *, n_classes: int | None = None) -> None:
    """Refuse pooled arrays that the GAN cannot train on.

    Args:
        x: (n, D) or (n, ch, H, W) float32 samples in the data space.
        y: (n,) int64 labels.
        n_classes: if given, labels must lie in [0, n_classes).

    Raises:
        TypeError: if ``x`` is not float32 or ``y`` not int64.
        ValueError: on empty, non-finite or mismatched arrays, or labels out of range.

    Example:
        >>> check_xy(np.zeros((2, 3), np.float32), np.array([0, 1]), n_classes=2)
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(
            f"Argument `x` must be a float32 numpy array, got {_describe(x)}"
        )
    if not isinstance(y, np.ndarray) or y.dtype != np.int64:
        raise TypeError(
            f"Argument `y` must be an int64 numpy array, got {_describe(y)}"
        )
    if x.ndim not in (2, 4):
        raise ValueError(
            f"Argument `x` must be (n, D) vectors or (n, ch, H, W) images, "
            f"got shape {x.shape}"
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"Argument `y` must have shape ({x.shape[0]},) to match `x`, got {y.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError("Argument `x` must have at least one row, got 0")
    if not np.all(np.isfinite(x)):
        raise ValueError("Argument `x` must be finite, got NaN or inf")
    lo = int(y.min())
    hi = int(y.max())
    if lo < 0 or (n_classes is not None and hi >= n_classes):
        raise ValueError(
            f"Argument `y` must lie in [0, {n_classes}), got labels in [{lo}, {hi}]"
        )


def _describe(a: object) -> str:
    dtype = getattr(a, "dtype", None)
    return f"{type(a).__name__} of dtype {dtype}" if dtype is not None else repr(a)


class PooledDataModule(pl.LightningDataModule):
    """Serve pooled (x, y) arrays in seeded, shuffled batches (docs/cgm.md §3.2).

    Args:
        x: (n, D) or (n, ch, H, W) float32 samples in the data space.
        y: (n,) int64 labels.
        batch_size: rows per batch, 1 ≤ batch_size ≤ n (``drop_last=True``).
        seed: seed of the shuffling ``torch.Generator``.
        num_workers: DataLoader worker processes (0 = load in the main process).

    Raises:
        TypeError: on bad dtypes.
        ValueError: on bad shapes or sizes (named in the message).
    """

    def __init__(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.int64],
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_xy(x, y)
        check_int("batch_size", batch_size)
        if not 1 <= batch_size <= x.shape[0]:
            raise ValueError(
                f"Argument `batch_size` must be in [1, {x.shape[0]}] (pooled rows), "
                f"got {batch_size}"
            )
        check_int("num_workers", num_workers, 0)
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.seed = int(seed)
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches from a ``torch.Generator`` seeded with ``seed``."""
        dataset = TensorDataset(torch.from_numpy(self.x), torch.from_numpy(self.y))
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(self.seed),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
