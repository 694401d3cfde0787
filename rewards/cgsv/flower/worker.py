"""A party's long-lived worker: the torch side of the ClientApp (docs/federated.md §3).

Flower 1.42 starts a fresh ``flwr-clientapp`` process for every message; importing
torch there costs seconds per party and round. So the ClientApp
(`rewards.cgsv.flower.client_app`) is a thin, torch-free shim that forwards the
message's arrays to this worker, which runs next to the party's SuperNode on the
same machine, keeps torch imported and the party's state in memory, and answers
with the arrays of the reply. The socket is a Unix socket in a private folder; an
authentication key (``<socket>.key``, mode 0600, written by the worker) guards it.
Nothing new leaves the machine: the SuperNode still sends only the reply.

`train_step` is the round of one party, shared by the worker and by the shim's
fallback (no ``worker`` in the node config: the ClientApp trains itself and keeps
the state in Flower's ``context.state``); the numbers are the same either way.

Usage (on a party's machine, before its SuperNode; see docs/federated.md):

    python -m rewards.cgsv.flower.worker --socket /private/dir/party.sock
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rewards.cgsv.flower.files import read_party_file, write_npz

if TYPE_CHECKING:
    from torch import Tensor, nn

    from rewards.cgsv.party import FLParty

logger = logging.getLogger(__name__)

#: arrays of a message: runner key (or ``init``) → array name → array
Arrays = Mapping[str, Mapping[str, NDArray[Any]]]


def key_file(socket: str | Path) -> Path:
    """The file holding the worker's authentication key (next to its socket).

    Example:
        >>> key_file("/tmp/x/party_0.sock").name
        'party_0.sock.key'
    """
    return Path(f"{socket}.key")


def _tensor(a: NDArray[Any]) -> Tensor:
    """A new tensor with ``a``'s bits (`records.to_tensor` without a Flower import)."""
    import torch

    return torch.from_numpy(np.array(a, copy=True))


def _numpy(vec: Tensor) -> NDArray[Any]:
    """A contiguous NumPy copy of a tensor (as `records.to_numpy`, and a copy)."""
    return np.array(np.ascontiguousarray(vec.detach().cpu().numpy()), copy=True)


def train_step(
    state: dict[str, Any],
    party_id: int,
    data: tuple[NDArray[Any], NDArray[Any], NDArray[Any]],
    job: Mapping[str, Any],
    arrays: Arrays,
    out_dir: str | None = None,
) -> tuple[dict[str, dict[str, NDArray[Any]]], dict[str, Any]]:
    """One round of every method for this party (docs/cgsv.md §2 steps 1–2, §6).

    Args:
        state: the party's state for this run, updated in place: ``theta`` (runner
            key → flat θ_i) and ``book`` (``lr.<key>``, ``applied.<key>``).
        party_id: i.
        data: the party file's (x, y, orders).
        job: the ``job`` config of docs/federated.md §2.
        arrays: the message's arrays (``init`` and one record per runner key).
        out_dir: where the final models go (``party_<i>.npz``) when ``job.final``.

    Returns:
        (reply arrays per runner key, the ``meta`` config).
    """
    from rewards.cgsv.flower.records import reward_round
    from rewards.classifiers import build_classifier

    x, y, orders = data
    thetas: dict[str, NDArray[Any]] = state.setdefault("theta", {})
    book: dict[str, Any] = state.setdefault("book", {})
    if "init" in arrays and not thetas:
        for key in job["runners"]:
            thetas[key] = np.array(arrays["init"]["theta_0"], copy=True)
    template = build_classifier(
        job["kind"], tuple(job["input_shape"]), int(job["n_classes"]), seed=0
    )
    meta: dict[str, Any] = {"party_id": party_id, "n_samples": int(y.shape[0])}
    reply: dict[str, dict[str, NDArray[Any]]] = {}
    for key, method in zip(job["runners"], job["methods"], strict=True):
        party = _party(template, thetas[key], book, key, job, party_id, (x, y, orders))
        out: dict[str, NDArray[Any]] = {}
        record = arrays.get(key, {})
        applied = int(book.get(f"applied.{key}", -1))
        found = sorted((reward_round(k), k) for k in record if k.startswith("reward."))
        for t, name in found:
            if t > applied:
                party.apply_reward(_tensor(record[name]))
                applied = t
        if not job["final"]:
            t0 = time.perf_counter()
            _fit(party, method, job, record.get("params"), out)
            meta[f"fit_s.{key}"] = time.perf_counter() - t0
        thetas[key] = _numpy(party.flat())
        book[f"lr.{key}"] = float(party.optimizer.param_groups[0]["lr"])
        book[f"applied.{key}"] = applied
        meta[f"applied.{key}"] = applied
        reply[key] = out
    if job["final"] and out_dir is not None:
        final = {k: thetas[k] for k in job["runners"]}
        write_npz(Path(out_dir) / f"party_{party_id}.npz", **final)
    return reply, meta


def _party(
    template: nn.Module,
    theta: NDArray[Any],
    book: Mapping[str, Any],
    key: str,
    job: Mapping[str, Any],
    party_id: int,
    data: tuple[Any, Any, Any],
) -> FLParty:
    """Rebuild the party of runner ``key`` from its stored θ_i and learning rate."""
    import torch

    from rewards.cgsv.params import assign_parameters
    from rewards.cgsv.party import FLParty

    model = copy.deepcopy(template)
    assign_parameters(model, _tensor(theta))
    return FLParty(
        party_id,
        model,
        torch.as_tensor(data[0]),
        torch.as_tensor(data[1]),
        data[2],
        lr=float(book.get(f"lr.{key}", job["lr"])),
        lr_decay=float(job["lr_decay"]),
        batch_size=int(job["batch_size"]),
        device=str(job["device"]),
    )


def _fit(
    party: FLParty,
    method: str,
    job: Mapping[str, Any],
    params: NDArray[Any] | None,
    out: dict[str, NDArray[Any]],
) -> None:
    """The method's local round (docs/cgsv.md §2 steps 1–2, §6) into ``out``."""
    cfg = {
        "round": int(job["round"]),
        "local_epochs": int(job["local_epochs"]),
        "gamma": float(job["gamma"]),
    }
    if method == "standalone":
        party.fit_standalone(cfg)
        if job["send_model"]:
            out["model"] = _numpy(party.flat())
        return
    if method == "fedavg":
        if params is None:
            raise ValueError("A fedavg runner needs the server's parameters")
        vec, _ = party.fit_fedavg({**cfg, "parameters": _tensor(params)})
    else:
        vec, _ = party.fit(cfg)
    out["vec"] = _numpy(vec)


class Worker:
    """The party's state per run and its data files, cached (module docstring)."""

    def __init__(self) -> None:
        self.runs: dict[int, dict[str, Any]] = {}
        self.data: dict[str, tuple[NDArray[Any], NDArray[Any], NDArray[Any]]] = {}

    def handle(self, request: Mapping[str, Any]) -> Any:
        """Answer one request of `call` (a ``train`` of `train_step`)."""
        path = str(request["data_file"])
        if path not in self.data:
            self.data[path] = read_party_file(path)
        state = self.runs.setdefault(int(request["run_id"]), {})
        return train_step(
            state,
            int(request["party_id"]),
            self.data[path],
            request["job"],
            request["arrays"],
            request.get("out_dir"),
        )


def serve(
    socket: str | Path,
    parent_pid: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Listen on ``socket`` until killed, ``parent_pid`` exits or ``stop`` is set.

    ``stop`` is checked after each request (tests set it, then send one more).
    """
    _warm_up()
    socket = Path(socket)
    socket.unlink(missing_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(key_file(socket), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    worker = Worker()
    with Listener(str(socket), family="AF_UNIX", authkey=key) as listener:
        logger.info("worker listening on %s", socket)
        while True:
            try:
                conn = listener.accept()
            except (OSError, AuthenticationError) as e:  # a failed handshake
                logger.warning("refused a connection: %s", e)
                continue
            with conn:
                _answer(worker, conn)
            if stop is not None and stop.is_set():
                return


_WARM_LOCK = threading.Lock()
_warm: list[bool] = []


def _warm_up() -> None:
    """Play one tiny round of every method before the first message, once.

    It imports torch, the party's modules, and what torch loads lazily on first
    use (``torch._dynamo`` on the first optimiser step: seconds of CPU), so that
    round 0 trains as fast as the others. The tiny party (4 rows, an mlp) is
    thrown away. Once per process, whatever the number of threads serving.
    """
    with _WARM_LOCK:
        if not _warm:
            _tiny_round()
            _warm.append(True)


def _tiny_round() -> None:
    """One `train_step` of every method on a 4-row party (see `_warm_up`)."""
    from rewards.cgsv.params import flatten_parameters
    from rewards.classifiers import build_classifier

    x = np.zeros((4, 3), np.float32)
    y = np.array([0, 1, 0, 1])
    orders = np.arange(4).reshape(1, 1, 4)
    theta = flatten_parameters(build_classifier("mlp", (3,), 2, seed=0)).numpy()
    job = {
        "kind": "mlp", "input_shape": [3], "n_classes": 2, "round": 0,
        "runners": ["r0", "r1", "r2"], "methods": ["standalone", "fedavg", "cgsv"],
        "local_epochs": 1, "gamma": 0.1, "lr": 0.1, "lr_decay": 1.0,
        "batch_size": 2, "device": "cpu", "send_model": True, "final": False,
    }  # fmt: skip
    arrays = {"init": {"theta_0": theta}, "r1": {"params": theta}}
    train_step({}, 0, (x, y, orders), job, arrays)


def _answer(worker: Worker, conn: Connection) -> None:
    """Answer one request; a ClientApp gone mid-request only loses its answer."""
    try:
        request = conn.recv()
    except (EOFError, OSError):
        return
    try:
        answer: tuple[str, Any] = ("ok", worker.handle(request))
    except Exception as e:  # the shim raises it in the ClientApp
        logger.exception("request failed")
        answer = ("error", f"{type(e).__name__}: {e}")
    try:
        conn.send(answer)
    except OSError:
        logger.warning("the ClientApp left before its answer")


def _watch_parent(pid: int) -> None:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(1.0)


def call(socket: str | Path, request: Mapping[str, Any], timeout_s: float) -> Any:
    """Send ``request`` to the worker on ``socket``; return its answer.

    Waits up to ``timeout_s`` for the worker to listen (it may still be importing
    torch).

    Raises:
        RuntimeError: if the worker is not there in time or its step failed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            key = key_file(socket).read_bytes()
            conn = Client(str(socket), family="AF_UNIX", authkey=key)
            break
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no party worker on {socket} within {timeout_s:g} s"
                ) from e
            time.sleep(0.05)
    with conn:
        conn.send(dict(request))
        status, body = conn.recv()
    if status != "ok":
        raise RuntimeError(f"the party worker failed: {body}")
    return body


def main(argv: list[str] | None = None) -> None:
    """``python -m rewards.cgsv.flower.worker --socket PATH [--parent-pid PID]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(args.socket, args.parent_pid)


if __name__ == "__main__":
    main()
