"""Readers shared by stages: upstream files through their manifests (STYLE §5)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data.h5 import POOL_PARTY, POOL_TEST, read_h5
from pipeline import manifest, paths


@dataclass(frozen=True)
class Pool:
    """The verified output of the ``pool`` stage.

    Attributes:
        parties: per party (x, y).
        test: (x, y) of the held-out test set.
        attrs: attributes of party 0's file (source, n_classes, layout, ...).
        inputs: name -> path of every file read, for the reading stage's manifest.
    """

    parties: list[tuple[NDArray[np.float32], NDArray[np.int64]]]
    test: tuple[NDArray[np.float32], NDArray[np.int64]]
    attrs: dict[str, Any]
    inputs: dict[str, Path]

    @property
    def n_classes(self) -> int:
        """Number of classes of the pool."""
        return int(self.attrs["n_classes"])

    @property
    def pooled(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """All party rows, in party order."""
        return (
            np.concatenate([x for x, _ in self.parties]),
            np.concatenate([y for _, y in self.parties]),
        )

    def json_attr(self, name: str) -> Any:
        """An attribute stored as JSON (e.g. ``gmm_means``)."""
        value = self.attrs[name]
        return json.loads(value) if isinstance(value, str) else value


def read_pool(run_dir: Path) -> Pool:
    """Verify the pool manifest and read every party file and the test set.

    Raises:
        UsageError: if the pool manifest is missing or a file changed.
    """
    body = manifest.require(run_dir, "pool")
    n_parties = len(body["metrics"]["party_sizes"])
    parties, inputs = [], {}
    attrs: dict[str, Any] = {}
    for i in range(n_parties):
        path = paths.pool_party(run_dir, i)
        data, file_attrs = read_h5(path, POOL_PARTY)
        parties.append((data["x"], data["y"]))
        inputs[f"pool_party_{i}"] = path
        attrs = attrs or file_attrs
    data, _ = read_h5(paths.pool_test(run_dir), POOL_TEST)
    inputs["pool_test"] = paths.pool_test(run_dir)
    return Pool(parties, (data["x"], data["y"]), attrs, inputs)
