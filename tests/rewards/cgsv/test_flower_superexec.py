"""The fork-server SuperExec and the SuperNode's shorter waits (docs/federated.md §6).

Flower's own loop and ``run_clientapp`` are not re-tested here: the slow tests of
tests/pipeline/test_fl_flower.py run them through real SuperLink/SuperNode
processes. These tests check what this package adds: a task runs in a fork that
always exits (with Flower's exit code) and is reaped, and the wake-up and
back-off of the waits.
"""

from __future__ import annotations

import os
import time

import pytest

flwr = pytest.importorskip("flwr")

from flwr.supercore.constant import TaskType  # noqa: E402
from flwr.supercore.superexec.executor import ExecutionSpec  # noqa: E402

from rewards.cgsv.flower import superexec  # noqa: E402
from rewards.cgsv.flower.supernode import _NodeTime  # noqa: E402


def _spec(task_id=1):
    return ExecutionSpec(
        task_type=TaskType.CLIENT_APP, runtime_api_address="127.0.0.1:1",
        token="t0k3n", insecure=True, root_certificates_path=None,
        runtime_dependency_install=False, parent_pid=None, suppress_output=False,
        task_id=task_id,
    )  # fmt: skip


def _exit_status(pid, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    raise AssertionError(f"task process {pid} did not exit")


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(None, 0), (SystemExit(3), 3), (ValueError("boom"), 1)],
)
def test_task_fork_exits_with_flowers_code(monkeypatch, outcome, code):
    # Prepare: Flower's ClientApp body returns, exits via flwr_exit, or raises
    import flwr.supernode.runtime.run_clientapp as runtime

    seen = []

    def run_clientapp(**kwargs):
        seen.append(kwargs)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(runtime, "run_clientapp", run_clientapp)
    # Execute: the task in a fork (as ForkExecutor.launch does)
    pid = os.fork()
    if pid == 0:
        superexec._run_task(_spec())
    # Assert: the fork exited with that code and never returned into this code
    assert _exit_status(pid) == code
    assert seen == []  # the call happened in the fork only


def test_fork_executor_offers_clientapp_tasks_and_reaps(monkeypatch, tmp_path):
    # Prepare: each task writes its token and exits
    def run_task(spec):
        (tmp_path / f"task_{spec.task_id}").write_text(spec.token)
        os._exit(0)

    monkeypatch.setattr(superexec, "_run_task", run_task)
    executor = superexec.ForkExecutor()
    # Execute
    types, fabs = executor.get_eligible_capacity(set(TaskType))
    results = [executor.launch(_spec(k)) for k in (1, 2)]
    deadline = time.monotonic() + 30
    while executor.children and time.monotonic() < deadline:
        executor.reconcile()
        time.sleep(0.01)
    # Assert: only ClientApp tasks; both ran in their own process and were reaped
    assert types == {TaskType.CLIENT_APP}
    assert fabs == set()
    assert all(r.status == "accepted" for r in results)
    assert executor.children == set()
    assert [(tmp_path / f"task_{k}").read_text() for k in (1, 2)] == ["t0k3n"] * 2


def test_wake_ends_the_wait_and_without_it_the_wait_runs_out(tmp_path):
    path = tmp_path / "wake.sock"
    clock = superexec._WakeableTime(path)
    t0 = time.monotonic()
    clock.sleep(0.2)
    waited = time.monotonic() - t0
    superexec.wake(path)
    superexec.wake(path)  # two wake-ups are drained by one wait
    t1 = time.monotonic()
    clock.sleep(30)
    woken = time.monotonic() - t1
    t2 = time.monotonic()
    clock.sleep(0.2)
    after = time.monotonic() - t2
    assert waited >= 0.19
    assert woken < 10
    assert after >= 0.19
    superexec.wake(tmp_path / "nobody.sock")  # nobody listens: no error


def test_node_waits_back_off_and_busy_waits_are_capped(monkeypatch):
    slept = []
    monkeypatch.setattr("rewards.cgsv.flower.supernode.time.sleep", slept.append)
    clock = _NodeTime(cap=0.25, floor=0.02, busy=0.01)
    for _ in range(6):
        clock.sleep(3)  # Flower's idle wait
    clock.reset()
    clock.sleep(3)
    clock.sleep(0.5)  # Flower's wait for the ClientApp's reply
    clock.sleep(0.001)
    assert slept == pytest.approx(
        [0.02, 0.04, 0.08, 0.16, 0.25, 0.25, 0.02, 0.01, 0.001], abs=1e-12
    )
