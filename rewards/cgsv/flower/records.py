"""Arrays and configs in Flower records: the wire format of docs/federated.md §2.

One ``train`` message per party and round carries every method of the lock-step
run (docs/cgsv.md §2, §6), each under its runner key ``r<k>``:

- server → party: ``job`` (a ``ConfigRecord``: round, E, Γ, lr, decay, B, model
  spec, the runner keys and their methods, ``send_model``, ``final``); ``init``
  (θ_0, until the party has answered once); per runner an ``ArrayRecord`` with
  ``params`` (FedAvg's θ_F) or ``reward.<t>`` (the party's own g_i^(t), every one
  not yet acknowledged).
- party → server: ``meta`` (party id, n_i, the local seconds ``fit_s.<key>``, the
  last reward round applied ``applied.<key>``) and per runner ``vec`` (u_i, or
  θ_i^new for FedAvg) and, for Standalone on evaluated rounds, ``model``.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from torch import Tensor

#: message types of the ServerApp (``query`` asks a party who it is)
TRAIN = "train"
QUERY = "query"


def to_array(vec: Tensor) -> Array:
    """A flat tensor as a Flower ``Array`` (NumPy, same dtype, on CPU).

    Example:
        >>> from_array(to_array(torch.tensor([1.5, -2.0]))).tolist()
        [1.5, -2.0]
    """
    return Array(np.ascontiguousarray(vec.detach().cpu().numpy()))


def from_array(array: Array) -> Tensor:
    """A Flower ``Array`` as a new tensor (bit for bit)."""
    return torch.from_numpy(np.array(array.numpy(), copy=True))


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


def rewards_in(record: ArrayRecord | None) -> list[tuple[int, Tensor]]:
    """The (t, g_i^(t)) carried by a runner's record, in round order."""
    if record is None:
        return []
    found = [(reward_round(k), v) for k, v in record.items() if k.startswith("reward.")]
    return [(t, from_array(a)) for t, a in sorted(found, key=lambda item: item[0])]
