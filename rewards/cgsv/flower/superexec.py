"""``flower-superexec`` that forks each ClientApp from a pre-imported process.

Flower 1.42's SuperExec (started by a SuperNode with ``--isolation subprocess``)
launches a fresh ``flwr-clientapp`` interpreter for every message: about 2.5 s of
CPU importing Flower before the ClientApp runs (docs/federated.md §6). This
launcher is the SuperExec of a SuperNode started with ``--isolation process``
(Flower's mode for a SuperExec started outside the SuperNode): one long-lived
process per SuperNode that imports Flower's ClientApp runtime and the App's
modules (``--preload``) once, then runs Flower's own ``flower-superexec`` loop
(it acquires each task from the SuperNode's Runtime API with its token) with one
change: a task runs in a *fork* of this process that executes Flower's
``run_clientapp`` (the body of ``flwr-clientapp``: pull the message and context,
install the FAB, call the ClientApp, push the reply and context, exit). Same
messages, same tokens, same process per task; no import per message. A fork
retries a pull of an object its SuperNode has not stored yet after 20 ms, not
Flower's 1 s (`rewards.cgsv.flower.records.shorten_pull_backoff`).

With ``--wake PATH`` the loop's wait between two task polls also ends as soon as
a datagram arrives on the Unix socket ``PATH``: `rewards.cgsv.flower.supernode`
sends one whenever its SuperNode has stored a message, so a task starts at once
instead of after up to one poll interval. The datagram carries nothing; a stray
one costs one poll.

Usage (next to a SuperNode started with ``--isolation process --port 9094``):

    python -m rewards.cgsv.flower.superexec [--wake PATH] [--preload MODULE]
        --insecure --runtime-api-address 127.0.0.1:9094 [flower-superexec args]
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from rewards.cgsv.flower.supernode import take_option

logger = logging.getLogger(__name__)

#: the App module the fork server imports before its first task (our ClientApp)
DEFAULT_PRELOAD = "rewards.cgsv.flower.client_app"
#: seconds the launcher waits for the SuperNode's Runtime API to listen
API_WAIT_S = 120.0


class ForkExecutor:
    """Flower's SuperExec ``Executor``: each ClientApp task in a fork of this process.

    The fork runs `_run_task` and exits; `reconcile` (called by Flower's loop
    before every poll) reaps the finished ones. Only ClientApp tasks are offered.
    """

    def __init__(self) -> None:
        self.children: set[int] = set()

    def get_eligible_capacity(
        self, supported_task_types: set[Any], **_: Any
    ) -> tuple[set[Any], set[str]]:
        """ClientApp tasks only, with no capacity limit."""
        from flwr.supercore.constant import TaskType

        return supported_task_types & {TaskType.CLIENT_APP}, set()

    def wait_for_capacity(self, *_: Any, **__: Any) -> None:
        """Nothing to wait for (as Flower's subprocess executor)."""

    def launch(self, spec: Any) -> Any:
        """Fork; the child runs the task described by ``spec`` and exits."""
        from flwr.supercore.superexec.executor import LaunchResult

        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_task(spec)
        self.children.add(pid)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        """Reap the children that have exited."""
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            self.children.discard(pid)

    def close(self) -> None:
        """Nothing to release: a child exits when its task ends or this one dies."""


def _run_task(spec: Any) -> NoReturn:
    """In the fork: Flower's ``flwr-clientapp`` body for ``spec``'s token; exit."""
    code = 1
    try:
        from flwr.supercore.exit import exit_handler
        from flwr.supercore.tls import validate_and_resolve_root_certificates
        from flwr.supernode.runtime.run_clientapp import run_clientapp

        # the parent's exit handlers (its Runtime API client) are not this task's
        exit_handler.registered_exit_handlers.clear()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        run_clientapp(
            runtime_api_address=spec.runtime_api_address,
            token=spec.token,
            insecure=spec.insecure,
            certificates=validate_and_resolve_root_certificates(
                spec.root_certificates_path, spec.insecure
            ),
            parent_pid=spec.parent_pid,
            runtime_dependency_install=spec.runtime_dependency_install,
        )
        code = 0
    except SystemExit as e:  # flwr_exit ends every task with sys.exit
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        logger.exception("the ClientApp task failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _WakeableTime:
    """The ``time`` module, whose ``sleep`` ends early on a datagram to ``path``.

    Tested in tests/rewards/cgsv/test_flower_superexec.py (it binds a socket).
    """

    def __init__(self, path: str | Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        Path(path).unlink(missing_ok=True)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    def sleep(self, seconds: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], seconds)
        if ready:  # drain: one poll answers every wake-up sent so far
            with contextlib.suppress(BlockingIOError):
                while True:
                    self.sock.recv(64)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def wake(path: str | Path) -> None:
    """Wake the fork server listening on ``path`` (nothing if none listens)."""
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s,
        contextlib.suppress(OSError),
    ):
        s.sendto(b"1", str(path))


def _wait_listening(address: str, timeout_s: float) -> None:
    """Wait until ``host:port`` accepts TCP connections (the SuperNode starts)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex((host.strip("[]"), int(port))) == 0:
                return
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    """Pre-import, patch Flower's SuperExec loop, then run ``flower-superexec``."""
    args = list(sys.argv[1:] if argv is None else argv)
    wake_path = take_option(args, "--wake")
    preload = take_option(args, "--preload") or DEFAULT_PRELOAD
    importlib.import_module("flwr.supernode.runtime.run_clientapp")
    importlib.import_module(preload)
    from rewards.cgsv.flower.records import shorten_pull_backoff

    shorten_pull_backoff()  # the forks inherit it
    import flwr.supercore.superexec.run_superexec as loop
    from flwr.supercore.cli.flower_superexec import flower_superexec

    loop.get_executor = lambda *_, **__: ForkExecutor()  # type: ignore[assignment]
    if wake_path is not None:
        loop.time = _WakeableTime(wake_path)  # type: ignore[assignment]
    address = take_option(list(args), "--runtime-api-address")
    if address is not None:
        _wait_listening(address, API_WAIT_S)
    sys.argv = ["flower-superexec", *args]
    flower_superexec()


if __name__ == "__main__":
    main()
