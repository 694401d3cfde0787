"""A ``torch.utils.data.Dataset`` over a party's own data plus its reward file.

Interface.md: the reward file is readable by plain h5py and by this Dataset, which
serves the party's own rows followed by its reward rows as one data set. Files are
opened lazily in each worker, so ``DataLoader(num_workers > 0)`` works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from data.h5 import POOL_PARTY, REWARD, SCHEMA_VERSION, local_dataset


class PartyDataset(Dataset):
    """Own data (``source`` 0) plus synthetic reward rows (``source`` 1).

    Items are ``(x, y, source)`` with x a float32 tensor in the data's own layout,
    y an int64 scalar tensor and source an int64 scalar tensor.

    Args:
        party_file: ``pool/party_<i>.h5`` (or any file with ``x``, ``y``), or None.
        reward_file: ``sample/party_<i>.h5``, or None.
        truncate_to_best: keep only the reward prefix up to the best value of
            ``value_trace`` (drops the stall tail).

    Raises:
        ValueError: if both files are None, or a file lacks ``x``/``y`` as plain
            datasets stored in the file itself, or has another schema version.
    """

    def __init__(
        self,
        party_file: str | Path | None,
        reward_file: str | Path | None = None,
        *,
        truncate_to_best: bool = False,
    ) -> None:
        if party_file is None and reward_file is None:
            raise ValueError("PartyDataset needs a party file or a reward file")
        self._files = [
            (Path(p), schema)
            for p, schema in ((party_file, POOL_PARTY), (reward_file, REWARD))
            if p is not None
        ]
        self._sources = [s for s, p in enumerate((party_file, reward_file)) if p]
        self._lengths = []
        for path, schema in self._files:
            with h5py.File(path, "r") as f:
                if f.attrs.get("schema_version") != SCHEMA_VERSION:
                    raise ValueError(f"{path}: unsupported schema_version")
                for name in ("x", "y"):
                    # a plain dataset in the file itself: no links, no external bytes
                    if local_dataset(f, name, path) is None:
                        raise ValueError(
                            f"{path}: {schema.kind} lacks dataset `{name}`"
                        )
                n = int(f["y"].shape[0])
                if truncate_to_best and schema is REWARD and n:
                    n = int(np.argmax(f["value_trace"][()])) + 1
                self._lengths.append(n)
        self._offsets = np.cumsum([0, *self._lengths])
        self._handles: dict[int, h5py.File] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _handle(self, k: int) -> h5py.File:
        if k not in self._handles:
            self._handles[k] = h5py.File(self._files[k][0], "r")
        return self._handles[k]

    def __getitem__(
        self, index: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        f = self._handle(k)
        row = index - int(self._offsets[k])
        x = torch.from_numpy(np.asarray(f["x"][row], dtype=np.float32))
        y = torch.tensor(int(f["y"][row]), dtype=torch.int64)
        return x, y, torch.tensor(self._sources[k], dtype=torch.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All rows at once as numpy arrays ``(x, y, source)`` (for small data)."""
        xs, ys, ss = [], [], []
        for k, n in enumerate(self._lengths):
            f = self._handle(k)
            xs.append(np.asarray(f["x"][:n], dtype=np.float32))
            ys.append(np.asarray(f["y"][:n], dtype=np.int64))
            ss.append(np.full(n, self._sources[k], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)

    def __getstate__(self) -> dict[str, Any]:
        # h5py handles cannot cross process boundaries: each worker reopens lazily.
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def close(self) -> None:
        """Close any open file handles."""
        for f in self._handles.values():
            f.close()
        self._handles.clear()
