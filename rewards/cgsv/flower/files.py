"""The files of a Flower run: the server's plan and each party's data.

See docs/federated.md.

Both are NumPy ``.npz`` archives written atomically:

- the **plan** (coordinator only): ``theta_0`` (D,) float32, the test set
  ``x_test``/``y_test`` (preprocessed) and ``meta``, a JSON string of the
  hyper-parameters of docs/cgsv.md §5 plus the model spec (``kind``, ``input_shape``,
  ``n_classes``) and ``round_timeout_s`` / ``connect_timeout_s``;
- a **party file** (one per party machine, never sent anywhere): ``x`` (n_i, ...)
  float32 preprocessed inputs, ``y`` (n_i,) labels and ``orders`` (T, E, n_i), its
  rows of the batch-order table (docs/cgsv.md §3.3).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data.atomic import atomic_path


def _encode(value: Any) -> Any:
    """JSON-safe copy: ±inf (β = 10⁷ may be written as inf) becomes a string."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def write_npz(path: str | Path, **arrays: NDArray[Any]) -> Path:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically.

    Example:
        >>> import tempfile
        >>> p = write_npz(Path(tempfile.mkdtemp()) / "a.npz", x=np.arange(3))
        >>> np.load(p)["x"].tolist()
        [0, 1, 2]
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def write_plan(
    path: str | Path,
    theta_0: NDArray[np.float32],
    test: tuple[NDArray[Any], NDArray[Any]],
    meta: Mapping[str, Any],
) -> Path:
    """Write the ServerApp's plan (module docstring)."""
    text = json.dumps({k: _encode(v) for k, v in meta.items()})
    return write_npz(
        path,
        theta_0=np.asarray(theta_0, dtype=np.float32),
        x_test=np.asarray(test[0], dtype=np.float32),
        y_test=np.asarray(test[1], dtype=np.int64),
        meta=np.asarray(text),
    )


def read_plan(
    path: str | Path,
) -> tuple[NDArray[np.float32], tuple[NDArray[Any], NDArray[Any]], dict[str, Any]]:
    """Read a plan: (θ_0, (x_test, y_test), meta).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> t = (np.zeros((1, 2)), np.zeros(1))
        >>> _ = write_plan(d / "p.npz", np.ones(2), t, {"beta": [1.0, math.inf]})
        >>> read_plan(d / "p.npz")[2]
        {'beta': [1.0, inf]}
    """
    with np.load(path) as z:
        meta = {k: _decode(v) for k, v in json.loads(str(z["meta"])).items()}
        return z["theta_0"], (z["x_test"], z["y_test"]), meta


def write_party_file(
    path: str | Path,
    x: NDArray[Any],
    y: NDArray[Any],
    orders: NDArray[np.int64],
) -> Path:
    """Write one party's data file (module docstring)."""
    return write_npz(
        path,
        x=np.asarray(x, dtype=np.float32),
        y=np.asarray(y, dtype=np.int64),
        orders=np.asarray(orders, dtype=np.int64),
    )


def read_party_file(
    path: str | Path,
) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
    """Read a party file: (x, y, orders)."""
    with np.load(path) as z:
        return z["x"], z["y"], z["orders"]
