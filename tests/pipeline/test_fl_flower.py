"""``fl.engine = "flower"``: real SuperLink/SuperNode processes (docs/federated.md).

Starting a federation (17 Python processes importing Flower or torch) and its
rounds cost seconds to tens of seconds on a loaded 2-core machine, so the
federation tests are ``slow`` (about 20–90 s each); the bad-input tests that start
nothing, or only a SuperLink, run by default.
"""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import federation, paths
from pipeline.cli import main
from pipeline.config import FlConfig
from rewards.cgsv.party import batch_order_table
from rewards.cgsv.simulation import FLOWER_ROUND_COLUMNS
from rewards.classifiers import build_classifier
from tests.rewards.cgsv.flower_helpers import (
    KW,
    assert_same_final_models,
    assert_same_rows,
    digits_parties,
    inprocess,
)

pytest.importorskip("flwr")

ROUNDS = 3
DIGITS_POOL = ["data.source=digits", "data.n_parties=3", "data.split=uniform"]
FL = ["fl.rounds=3", "fl.local_epochs=1", "fl.sv_check=false", "fl.batch_size=32"]


def _children_gone(fed_pids):
    for pid in fed_pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().split(")")[-1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"child {pid} still running"


@pytest.mark.slow
def test_flower_equals_inprocess(tmp_path, monkeypatch):
    # Prepare: digits, 3 parties, 3 rounds, Standalone + FedAvg + CGSV(β = 1)
    parts, test = digits_parties(3, 60, (200, 400))
    model = build_classifier("mlp", (64,), 10, seed=0)
    orders = batch_order_table([60] * 3, ROUNDS, 1, seed=1)
    baselines = ["standalone", "fedavg"]
    ref_rows, runners = inprocess(model, parts, test, orders, ROUNDS, baselines)
    spawned = []
    real_spawn = federation.Federation._spawn

    def spawn(self, name, args, **kwargs):
        child = real_spawn(self, name, args, **kwargs)
        spawned.append(child.proc.pid)
        return child

    monkeypatch.setattr(federation.Federation, "_spawn", spawn)
    out = tmp_path / "parties"
    f = FlConfig(engine="flower", round_timeout_s=120.0)
    spec = {"kind": "mlp", "input_shape": [64], "n_classes": 10}
    rows = []
    # Execute
    result = federation.run_flower(f, spec, out_dir=out)(
        model, parts, test, orders=orders, on_round=rows.append, rounds=ROUNDS,
        baselines=baselines, **KW,
    )  # fmt: skip
    # Assert: every row, and the final models each party holds on its machine
    assert_same_rows(ref_rows, rows)
    assert_same_final_models(out, runners)
    assert result.to_dict()["flower"]["missing"] == [[], [], []]
    _children_gone(spawned)


def _digits_pool(tmp_path):
    run = tmp_path / "run"
    argv = ["pool", "--run-dir", str(run), "--quiet"]
    for s in DIGITS_POOL:
        argv += ["--set", s]
    assert main(argv) == 0
    return run


def _fl(run, *sets):
    argv = ["fl", "--run-dir", str(run), "--quiet"]
    for s in [*DIGITS_POOL, *FL, *sets]:
        argv += ["--set", s]
    return main(argv)


@pytest.mark.slow
def test_killed_supernode_is_left_out(tmp_path, monkeypatch):
    # Prepare: a watcher kills party 2's SuperNode when round 2's message arrives
    run = _digits_pool(tmp_path)
    feds = []
    real_run = federation.Federation.run

    def run_and_kill(self, plan, result, deadline_s):
        feds.append(self)
        log = self.nodes[2].log

        def watch():
            # the second train message is round 2 (0-based round 1)
            while log.read_text(errors="replace").count("Receiving: train") < 2:
                time.sleep(0.05)
            self.kill_node(2)

        threading.Thread(target=watch, daemon=True).start()
        return real_run(self, plan, result, deadline_s)

    monkeypatch.setattr(federation.Federation, "run", run_and_kill)
    # Execute
    code = _fl(run, "fl.engine=flower", "fl.round_timeout_s=60")
    # Assert: the run finished; rounds 1 and 2 (0-based) say party 2 was missing
    assert code == 0
    with paths.fl_file(run, "rounds.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == FLOWER_ROUND_COLUMNS
        rows = list(reader)
    cgsv = [r for r in rows if r["method"] == "cgsv"]
    missing = {(int(r["round"]), int(r["party"])) for r in cgsv if r["missing"] == "1"}
    assert missing == {(1, 2), (2, 2)}
    assert all(r["reward_density"] == "" for r in cgsv if r["missing"] == "1")
    for name in ("summary.json", "accuracy.png", "r_q.png", "fairness.png"):
        assert paths.fl_file(run, name).exists()
    _children_gone([c.proc.pid for c in feds[0].children])


def test_port_in_use_exits_2_before_anything(tmp_path, capsys):
    # Prepare: hold a port
    run = _digits_pool(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        # Execute
        t0 = time.monotonic()
        code = _fl(run, "fl.engine=flower", f"fl.flower_port={port}")
    # Assert: exit 2, one line naming the key, nothing written, no child started
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "flower_port" in err[0]
    assert not (run / "fl").exists()
    assert time.monotonic() - t0 < 30


def test_unreachable_superlink_exits_2_within_timeout(tmp_path, monkeypatch, capsys):
    # Prepare: every SuperNode dials a port nobody listens on
    run = _digits_pool(tmp_path)
    dead = federation.free_port()
    feds = []
    real_init = federation.Federation.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **{**kwargs, "node_superlink": f"127.0.0.1:{dead}"})
        feds.append(self)

    monkeypatch.setattr(federation.Federation, "__init__", init)
    # Execute
    t0 = time.monotonic()
    code = _fl(run, "fl.engine=flower", "fl.round_timeout_s=3")
    took = time.monotonic() - t0
    # Assert: exit 2 with one line, within the timeout plus start-up (SuperLink and
    # flwr run import Flower: seconds, more on a busy machine); nothing left
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "could not reach the SuperLink" in err[0]
    assert took < 3 + 90
    _children_gone([c.proc.pid for c in feds[0].children])


def test_flower_columns_extend_inprocess():
    from rewards.cgsv.simulation import ROUND_COLUMNS

    assert FLOWER_ROUND_COLUMNS[: len(ROUND_COLUMNS)] == ROUND_COLUMNS
    assert FLOWER_ROUND_COLUMNS[-1] == "missing"


def test_free_port_is_bindable():
    port = federation.free_port()
    assert federation.port_free(port)


def _flower_processes(port, parent=None):
    """Pids whose command line names the SuperLink port (ours: a fresh port) or,
    for the workers and SuperExecs (and their forks), ``--parent-pid parent``."""
    marks = [f"--port {port} ", f"127.0.0.1:{port} "]
    if parent is not None:
        marks.append(f"--parent-pid {parent} ")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(m in cmd for m in marks):
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_sigint_stops_every_child(tmp_path):
    # Prepare: the fl stage with Flower in a child process, on a known port
    run = _digits_pool(tmp_path)
    port = federation.free_port()
    argv = [sys.executable, "-m", "pipeline", "fl", "--run-dir", str(run), "--quiet"]
    for s in [*DIGITS_POOL, *FL, "fl.engine=flower", f"fl.flower_port={port}"]:
        argv += ["--set", s]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_flower_processes(port, proc.pid)) < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_flower_processes(port, proc.pid)) >= 10, "no federation started"
    # Execute: Ctrl-C
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # Assert: exit 130, one line, no SuperLink/SuperNode left
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1
    time.sleep(1)
    assert _flower_processes(port, proc.pid) == []


def test_r_q_figure_marks_missing_rounds():
    from pipeline.figures.fl import r_q_figure

    rows = [
        {"round": t, "method": "cgsv", "beta": 1.0, "party": p, "r": 0.5, "q": 1.0,
         "missing": int(p == 1 and t == 1)}
        for t in range(3) for p in range(2)
    ]  # fmt: skip
    fig = r_q_figure(rows, [{"beta": 1.0}])
    # one × per panel (r and q), at party 1's round 1
    marks = [c.get_offsets().tolist() for ax in fig.axes for c in ax.collections]
    assert marks == [[[1.0, 0.5]], [[1.0, 1.0]]]
    plain = r_q_figure([{**r, "missing": 0} for r in rows], [{"beta": 1.0}])
    assert all(not ax.collections for ax in plain.axes)
