"""The ClientApp: a thin, torch-free shim in front of the party (docs/federated.md).

Flower runs the ClientApp in a process of its own for every message (in local
runs a fork of `rewards.cgsv.flower.superexec`, which imported this module once).
With ``worker`` in the node config the shim forwards the message's arrays to the
party's long-lived worker (`rewards.cgsv.flower.worker`, running next to the
SuperNode on the same machine, holding torch, the party's model state and its
data file) and wraps the worker's answer into the reply; no torch import happens
per message. Without it the ClientApp trains itself (`worker.train_step`, torch
imported in that process) and keeps the party's state in ``context.state``: per
runner its flat θ_i, its learning rate and the last reward round it applied.
The numbers are the same either way.

Each message applies the rewards the party has not applied yet, trains E epochs
on the party's own data file (``--node-config "party-id=<i> data-file='<f>.npz'"``,
see `files`) and answers with what the method uploads (docs/cgsv.md §2 step 2:
the Γ-normalised u_i for CGSV). Nothing else leaves the machine. With ``out-dir``
in the node config the final models are saved there as ``party_<i>.npz`` (one
array per runner key) when the run ends.

Usage (a SuperNode's node config names the data file and the worker's socket;
see docs/federated.md):

    flower-supernode --superlink HOST:PORT
        --node-config "party-id=0 data-file='party_0.npz' worker='party_0.sock'"
"""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from rewards.cgsv.flower import worker
from rewards.cgsv.flower.files import read_party_file
from rewards.cgsv.flower.records import pack_arrays, unpack_arrays

logger = logging.getLogger(__name__)

app = ClientApp()

#: seconds the shim waits for its worker to listen (it imports torch first)
WORKER_WAIT_S = 120.0


def _identity(context: Context) -> tuple[int, str]:
    cfg = context.node_config
    if "party-id" not in cfg or "data-file" not in cfg:
        raise ValueError(
            "The SuperNode's --node-config must set party-id and data-file, got "
            f"{sorted(cfg)}"
        )
    return int(cfg["party-id"]), str(cfg["data-file"])


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Answer who this party is: its id and n_i (nothing else)."""
    party_id, data_file = _identity(context)
    _, y, _ = read_party_file(data_file)
    meta = ConfigRecord({"party_id": party_id, "n_samples": int(y.shape[0])})
    return Message(RecordDict({"meta": meta}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round of every method for this party (module docstring)."""
    party_id, data_file = _identity(context)
    cfg = context.node_config
    out_dir = str(cfg["out-dir"]) if "out-dir" in cfg else None
    job = dict(msg.content.config_records["job"])
    arrays = unpack_arrays(msg.content)
    if "worker" in cfg:
        request = {
            "run_id": int(context.run_id), "party_id": party_id,
            "data_file": data_file, "job": job, "arrays": arrays, "out_dir": out_dir,
        }  # fmt: skip
        out, meta = worker.call(str(cfg["worker"]), request, WORKER_WAIT_S)
    else:
        out, meta = _train_here(context, party_id, data_file, job, arrays, out_dir)
    reply = RecordDict({"meta": ConfigRecord(meta)})
    pack_arrays(reply, out)
    return Message(reply, reply_to=msg)


def _train_here(
    context: Context,
    party_id: int,
    data_file: str,
    job: dict[str, Any],
    arrays: worker.Arrays,
    out_dir: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`worker.train_step` in this process, its state in ``context.state``."""
    state = context.state
    stored = state.array_records.get("theta", ArrayRecord())
    book = state.config_records.get("party", ConfigRecord())
    mine = {"theta": {k: a.numpy() for k, a in stored.items()}, "book": dict(book)}
    data = read_party_file(data_file)
    out, meta = worker.train_step(mine, party_id, data, job, arrays, out_dir)
    thetas = ArrayRecord()
    for key, theta in mine["theta"].items():
        thetas[key] = Array(theta)
    state["theta"] = thetas
    state["party"] = ConfigRecord(mine["book"])
    return out, meta
