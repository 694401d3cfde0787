"""The party worker behind the torch-free ClientApp shim (docs/federated.md §2).

The same `LocalGrid` run as tests/rewards/cgsv/test_flower_apps.py, but every
ClientApp forwards to a worker listening on a Unix socket (here in a thread of
this process; a process next to each SuperNode in real runs): the rows and final
models must equal the in-process run, as they do without the worker.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from rewards.cgsv.flower import worker  # noqa: E402
from rewards.cgsv.flower.server_app import run_server  # noqa: E402
from tests.rewards.cgsv.flower_helpers import (  # noqa: E402
    assert_same_final_models,
    assert_same_rows,
    inprocess,
)
from tests.rewards.cgsv.test_flower_apps import ROUNDS, LocalGrid, _setup  # noqa: E402

STARTED: list[tuple[Path, threading.Event, threading.Thread]] = []


@pytest.fixture
def sock_dir():
    # AF_UNIX paths are limited to ~108 bytes: pytest's tmp_path can be longer
    d = Path(tempfile.mkdtemp(prefix="sr-w-", dir="/tmp"))
    yield d
    while STARTED:  # stop each worker: set its event, then one last request
        sock, stop, thread = STARTED.pop()
        stop.set()
        with contextlib.suppress(RuntimeError, OSError):  # it may close first
            worker.call(sock, {}, timeout_s=5)
        thread.join(5)
    shutil.rmtree(d, ignore_errors=True)


def _start(sock: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(sock, None, stop))
    thread.daemon = True
    thread.start()
    STARTED.append((sock, stop, thread))
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_shim_and_worker_equal_inprocess(tmp_path, sock_dir):
    # Prepare: one worker per party, named in its node config
    baselines = ["standalone", "fedavg"]
    model, parts, test, orders, plan, configs = _setup(tmp_path, baselines)
    ref_rows, runners = inprocess(model, parts, test, orders, ROUNDS, baselines)
    for i, cfg in enumerate(configs):
        cfg["worker"] = str(sock_dir / f"w{i}.sock")
        _start(Path(cfg["worker"]))
    grid = LocalGrid(configs)
    # Execute
    body = run_server(grid, plan)
    # Assert: every row and every party's final models; the state is the worker's
    assert_same_rows(ref_rows, body["rows"])
    assert_same_final_models(tmp_path / "out", runners)
    assert not grid.contexts[100].state.array_records


def test_shim_imports_no_torch():
    code = (
        "import sys; import rewards.cgsv.flower.client_app; "
        "sys.exit(int('torch' in sys.modules))"
    )
    import subprocess

    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_call_without_worker_times_out(sock_dir):
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="no party worker"):
        worker.call(sock_dir / "none.sock", {}, timeout_s=0.2)
    assert time.monotonic() - t0 < 10


def test_worker_reports_a_failed_step(sock_dir):
    # Prepare: a request naming a data file that does not exist
    sock = sock_dir / "w.sock"
    _start(sock)
    request = {"run_id": 1, "party_id": 0, "data_file": str(sock_dir / "no.npz"),
               "job": {}, "arrays": {}}  # fmt: skip
    # Execute / Assert: the worker answers with the error and keeps serving
    with pytest.raises(RuntimeError, match="FileNotFoundError"):
        worker.call(sock, request, timeout_s=10)
    with pytest.raises(RuntimeError, match="FileNotFoundError"):
        worker.call(sock, request, timeout_s=10)


def test_worker_refuses_a_wrong_key(sock_dir):
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    sock = sock_dir / "w.sock"
    _start(sock)
    with pytest.raises(AuthenticationError):
        Client(str(sock), family="AF_UNIX", authkey=b"wrong")
    key = worker.key_file(sock)
    assert key.stat().st_mode & 0o077 == 0
    assert np.frombuffer(key.read_bytes(), np.uint8).size == 32


def test_worker_survives_a_clientapp_that_left(sock_dir):
    from multiprocessing.connection import Client

    # Prepare: a ClientApp that sends a request and leaves before the answer
    sock = sock_dir / "w.sock"
    _start(sock)
    key = worker.key_file(sock).read_bytes()
    with Client(str(sock), family="AF_UNIX", authkey=key) as conn:
        conn.send({"run_id": 1})
    # Execute / Assert: the next request is still answered
    with pytest.raises(RuntimeError, match="KeyError"):
        worker.call(sock, {"run_id": 1}, timeout_s=10)
