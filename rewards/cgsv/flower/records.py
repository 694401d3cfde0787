"""Arrays and configs in Flower records: the wire format of docs/federated.md §2.

One ``train`` message per party and round carries every method of the lock-step
run (docs/cgsv.md §2, §6), each under its runner key ``r<k>``:

- server → party: ``job`` (a ``ConfigRecord``: round, E, Γ, lr, decay, B, model
  spec, the runner keys and their methods, ``send_model``, ``final``); the arrays
  ``init``/``theta_0`` (θ_0, until the party has answered once) and per runner
  ``params`` (FedAvg's θ_F) or ``reward.<t>`` (the party's own g_i^(t), every one
  not yet acknowledged).
- party → server: ``meta`` (party id, n_i, the local seconds ``fit_s.<key>``, the
  last reward round applied ``applied.<key>``) and per runner the arrays ``vec``
  (u_i, or θ_i^new for FedAvg) and, for Standalone on evaluated rounds, ``model``.

Flower 1.42 sends every record, array and array chunk of a message as its own
object, one HTTP request each, at every hop (ServerApp → SuperLink → SuperNode →
ClientApp and back). So the arrays of a message travel packed (`pack_arrays`):
their bytes in ONE ``Array`` and their names, dtypes and shapes in a
``ConfigRecord``, bit for bit. This module imports no torch until a tensor is
asked for (the ClientApp shim uses only `pack_arrays` and `unpack_arrays`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from numpy.typing import NDArray

if TYPE_CHECKING:
    from torch import Tensor

#: arrays of a message: runner key (or ``init``) → array name → array
NamedArrays = Mapping[str, Mapping[str, NDArray[Any]]]

#: record names of the packed arrays (bytes) and of their layout
PACKED = "arrays"
LAYOUT = "layout"
#: first retry (s) of an object pull that found the object not yet stored
PULL_BACKOFF_S = 0.02

#: message types of the ServerApp (``query`` asks a party who it is)
TRAIN = "train"
QUERY = "query"


def to_numpy(vec: Tensor) -> NDArray[Any]:
    """A tensor as a contiguous NumPy array (same dtype, on CPU)."""
    return np.ascontiguousarray(vec.detach().cpu().numpy())


def to_tensor(a: NDArray[Any]) -> Tensor:
    """A NumPy array as a new tensor (bit for bit)."""
    import torch

    return torch.from_numpy(np.array(a, copy=True))


def shorten_pull_backoff(initial_s: float = PULL_BACKOFF_S) -> None:
    """Retry a pull of a not-yet-stored object after ``initial_s``, not 1 s.

    A message's objects are pushed one by one after the message itself, so a
    receiver that sees the message early (a SuperNode polling while the ServerApp
    still pushes, a ClientApp started while its SuperNode still pulls, the
    ServerApp pulling a reply) finds an object missing. Flower 1.42 then retries
    after 1 s, doubling up to 10 s (``flwr/supercore/inflatable/inflatable_utils.py``,
    no option); in a round of a few seconds that wait dominates. This sets, in
    this process, the first retry of both pull functions to ``initial_s``, still
    doubling up to Flower's cap: a missing object costs a few more small requests
    instead of a second.
    """
    from flwr.supercore.inflatable import inflatable_utils

    for fn in (
        inflatable_utils.pull_objects,
        inflatable_utils.pull_and_inflate_object_from_tree,
    ):
        fn.__kwdefaults__["initial_backoff"] = initial_s


def pack_arrays(content: RecordDict, named: NamedArrays) -> None:
    """Put every array of ``named`` into ``content``: one ``Array`` + its layout.

    Nothing is added when ``named`` holds no array. `unpack_arrays` inverts it
    bit for bit (any dtype and shape); a runner key without arrays comes back
    absent.

    Example:
        >>> content = RecordDict()
        >>> pack_arrays(content, {"r0": {"vec": np.arange(3.0)}, "r1": {}})
        >>> sorted(content), unpack_arrays(content)["r0"]["vec"].tolist()
        (['arrays', 'layout'], [0.0, 1.0, 2.0])
    """
    names: list[str] = []
    dtypes: list[str] = []
    ndims: list[int] = []
    dims: list[int] = []
    blobs: list[NDArray[np.uint8]] = []
    for key, arrays in named.items():
        for name, a in arrays.items():
            a = np.asarray(a, order="C")
            names.append(f"{key}/{name}")
            dtypes.append(a.dtype.str)
            ndims.append(a.ndim)
            dims.extend(int(d) for d in a.shape)
            blobs.append(a.reshape(-1).view(np.uint8))
    if not names:
        return
    content[PACKED] = ArrayRecord({"bytes": Array(np.concatenate(blobs))})
    content[LAYOUT] = ConfigRecord(
        {"names": names, "dtypes": dtypes, "ndims": ndims, "dims": dims}
    )


def unpack_arrays(content: RecordDict) -> dict[str, dict[str, NDArray[Any]]]:
    """The arrays `pack_arrays` put into ``content`` (new, writable copies)."""
    out: dict[str, dict[str, NDArray[Any]]] = {}
    if PACKED not in content.array_records:
        return out
    blob = content.array_records[PACKED]["bytes"].numpy()
    layout = content.config_records[LAYOUT]
    dims = [int(d) for d in layout["dims"]]  # type: ignore[union-attr]
    offset = d = 0
    for name, dtype, ndim in zip(
        layout["names"], layout["dtypes"], layout["ndims"], strict=True
    ):  # type: ignore[arg-type]
        shape = tuple(dims[d : d + int(ndim)])
        d += int(ndim)
        kind = np.dtype(str(dtype))
        size = int(np.prod(shape, dtype=np.int64)) * kind.itemsize
        a = np.frombuffer(blob[offset : offset + size].tobytes(), dtype=kind)
        offset += size
        key, _, item = str(name).partition("/")
        out.setdefault(key, {})[item] = a.reshape(shape).copy()
    return out


def reward_key(round: int) -> str:
    """Key of g_i^(t) in a runner's ``ArrayRecord``.

    Example:
        >>> reward_key(3), reward_round(reward_key(3))
        ('reward.3', 3)
    """
    return f"reward.{round}"


def reward_round(key: str) -> int:
    """The round t of a ``reward.<t>`` key."""
    return int(key.split(".", 1)[1])
