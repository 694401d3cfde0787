"""A local Flower federation for ``fl.engine = "flower"`` (docs/federated.md §3).

`Federation` starts, on 127.0.0.1, a SuperLink and, per party, a worker
(`rewards.cgsv.flower.worker`: torch and the party's state, so that Flower's
per-message ClientApp process imports no torch), a SuperNode (through
`rewards.cgsv.flower.supernode`: shorter waits, ``--isolation process``) and its
SuperExec (`rewards.cgsv.flower.superexec`: each message's ClientApp process is a
fork of a process that imported Flower once) as child processes, each in its own
process group, with ``FLWR_HOME`` in a private temporary folder;
`Federation.run` submits the CGSV Flower App with ``flwr run`` and waits for
the ServerApp's result. Every child is stopped on leaving the ``with`` block: on
success, on an error, and on Ctrl-C / SIGTERM (the CLI turns both into an exception
that unwinds the block). `run_flower` is the `fl` stage's engine: same arguments
and rows as `rewards.cgsv.simulation.simulate`, plus the ``missing`` column.

Bad input is refused with `UsageError` (exit 2, one line): a ``fl.flower_port`` in
use (`check_flower`, before the stage starts), or a SuperNode that cannot reach the
SuperLink within ``fl.round_timeout_s``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import FlConfig
from pipeline.errors import UsageError

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: seconds a child gets to exit after SIGTERM before SIGKILL
STOP_GRACE_S = 5.0
#: seconds the SuperLink may take to listen (a busy machine: tens of seconds)
START_TIMEOUT_S = 120.0
#: seconds ``flwr run`` may take to submit the App (it imports Flower: seconds)
SUBMIT_TIMEOUT_S = 120.0
#: seconds between two task polls of the SuperLink's SuperExec (Flower's default
#: is 1 s); it only starts the ServerApp, once per run, so each poll is overhead
TASK_POLL_S = "0.5"
#: each party's torch side runs in a long-lived worker next to its SuperNode
#: (`rewards.cgsv.flower.worker`); False: the ClientApp imports torch per message
USE_WORKERS = True
#: cap on the SuperNode's idle wait between polls (Flower's fixed 3 s), via
#: `rewards.cgsv.flower.supernode`; None: Flower's own ``flower-supernode``
NODE_IDLE_S: float | None = 0.25
#: each SuperNode runs ``--isolation process`` with a fork-server SuperExec
#: (`rewards.cgsv.flower.superexec`, woken by its SuperNode); False: Flower's
#: SuperExec, a fresh ``flwr-clientapp`` interpreter per message
FORK_SUPEREXEC = True
#: seconds between two task polls of a fork-server SuperExec when no wake-up
#: comes (its SuperNode wakes it when a message arrives)
FORK_POLL_S = "1.0"


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1 (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def check_flower(f: FlConfig) -> None:
    """Refuse ``fl.engine = "flower"`` when Flower is missing or the port is taken.

    Raises:
        UsageError: naming the key (exit 2, before the stage writes anything).
    """
    if f.engine != "flower":
        return
    try:
        import flwr  # noqa: F401
    except ImportError as e:
        raise UsageError(
            '[fl] engine: "flower" needs flwr: pip install ".[flower]"'
        ) from e
    if f.flower_port and not port_free(f.flower_port):
        raise UsageError(
            f"[fl] flower_port: {HOST}:{f.flower_port} is in use; choose another "
            "port or 0 for a free one"
        )


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _supernode(wake: Path) -> list[str]:
    """The SuperNode command: Flower's, or ours with shorter waits."""
    if NODE_IDLE_S is None:
        return [_bin("flower-supernode")]
    module = "rewards.cgsv.flower.supernode"
    args = [sys.executable, "-m", module, "--idle-s", f"{NODE_IDLE_S:g}"]
    if FORK_SUPEREXEC:
        args += ["--wake", str(wake)]
    return args


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Federation:
    """SuperLink + one SuperNode per party on 127.0.0.1 (module docstring).

    Args:
        workdir: a private folder for logs, ``FLWR_HOME`` and the App.
        party_files: one party file per party (`rewards.cgsv.flower.files`).
        port: the SuperLink's port (Fleet, Control and Runtime APIs share it in
            Flower 1.42); 0 picks a free one.
        timeout_s: seconds each SuperNode may take to reach the SuperLink.
        out_dir: where each party saves its final models (node config ``out-dir``).
        node_superlink: the address the SuperNodes dial (tests point it elsewhere).
    """

    def __init__(
        self,
        workdir: Path,
        party_files: Sequence[Path],
        *,
        port: int = 0,
        timeout_s: float = 120.0,
        out_dir: Path | None = None,
        node_superlink: str | None = None,
    ):
        self.workdir = Path(workdir)
        self.party_files = [Path(p) for p in party_files]
        self.port = port or free_port()
        self.timeout_s = float(timeout_s)
        self.out_dir = out_dir
        self.address = f"{HOST}:{self.port}"
        self.node_superlink = node_superlink or self.address
        self.children: list[_Child] = []
        self.nodes: list[_Child] = []
        #: per party, its other processes (worker, SuperExec)
        self.helpers: list[list[_Child]] = []
        home = self.workdir / "flwr_home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "FLWR_HOME": str(home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": TASK_POLL_S,
        }
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
            f'address = "{self.address}"\ninsecure = true\n'
        )

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> _Child:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=self.workdir,
                start_new_session=True,
            )
        child = _Child(name, proc, log)
        self.children.append(child)
        return child

    def __enter__(self) -> Federation:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        if not port_free(self.port):
            raise UsageError(f"[fl] flower_port: {self.address} is in use")
        link = self._spawn(
            "superlink",
            [_bin("flower-superlink"), "--insecure", "--host", HOST, "--port",
             str(self.port), "--disable-runtime-dependency-installation"],
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _listening(self.port):
            self._check_alive(link)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the SuperLink did not listen on {self.address} within "
                    f"{START_TIMEOUT_S:g} s (log {link.log})"
                )
            time.sleep(0.1)
        for i, data in enumerate(self.party_files):
            self._start_party(i, data)

    def _start_party(self, i: int, data: Path) -> None:
        """Party i's worker, SuperNode and (fork server) SuperExec."""
        helpers: list[_Child] = []
        config = f"party-id={i} data-file='{data}'"
        if USE_WORKERS:
            sock = self.workdir / f"worker_{i}.sock"
            worker = self._spawn(
                f"worker_{i}",
                [sys.executable, "-m", "rewards.cgsv.flower.worker",
                 "--socket", str(sock), "--parent-pid", str(os.getpid())],
            )  # fmt: skip
            helpers.append(worker)
            config += f" worker='{sock}'"
        if self.out_dir is not None:
            config += f" out-dir='{self.out_dir}'"
        runtime = f"{HOST}:{free_port()}"
        wake = self.workdir / f"wake_{i}.sock"
        isolation = ["--isolation", "process"] if FORK_SUPEREXEC else []
        node = self._spawn(
            f"supernode_{i}",
            [*_supernode(wake), "--insecure", "--superlink", self.node_superlink,
             *isolation, "--host", HOST, "--port", runtime.rsplit(":", 1)[1],
             "--max-wait-time", f"{self.timeout_s:g}", "--node-config", config],
        )  # fmt: skip
        self.nodes.append(node)
        if FORK_SUPEREXEC:
            superexec = self._spawn(
                f"superexec_{i}",
                [sys.executable, "-m", "rewards.cgsv.flower.superexec",
                 "--wake", str(wake), "--insecure", "--runtime-api-address",
                 runtime, "--parent-pid", str(os.getpid())],
                env={"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": FORK_POLL_S},
            )  # fmt: skip
            helpers.append(superexec)
        self.helpers.append(helpers)

    def _check_alive(self, child: _Child) -> None:
        if child.proc.poll() is not None:
            raise UsageError(
                f"[fl] engine: {child.name} exited with code {child.proc.returncode} "
                f"({_last_line(child.log)})"
            )

    def kill_node(self, party: int) -> None:
        """Kill party ``party``'s SuperNode, its SuperExec and its worker."""
        _signal_group(self.nodes[party].proc, signal.SIGKILL)
        for child in self.helpers[party]:
            _signal_group(child.proc, signal.SIGKILL)

    def run(self, plan: Path, result: Path, deadline_s: float) -> dict[str, Any]:
        """Submit the App with ``flwr run`` and wait for the ServerApp's result.

        Raises:
            UsageError: if a SuperNode exits before the ServerApp has connected to
                every party (it could not reach the SuperLink).
            RuntimeError: if the ServerApp fails or ``deadline_s`` passes.
        """
        app = self.workdir / "app"
        app.mkdir(exist_ok=True)
        from rewards.cgsv.flower.server_app import app_pyproject

        (app / "pyproject.toml").write_text(app_pyproject())
        config = f"plan='{plan}' result='{result}'"
        try:
            submit = subprocess.run(
                [_bin("flwr"), "run", str(app), "local", "--run-config", config],
                env=self.env, cwd=self.workdir, capture_output=True, text=True,
                timeout=SUBMIT_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"flwr run took over {SUBMIT_TIMEOUT_S:g} s") from e
        if submit.returncode != 0:
            last = (submit.stderr or submit.stdout).strip().splitlines()
            tail = last[-1] if last else ""
            raise UsageError(f"[fl] engine: flwr run failed: {tail}")
        connected = Path(f"{result}.connected")
        t_end = time.monotonic() + deadline_s
        while not result.exists():
            self._check_alive(self.children[0])
            if not connected.exists():
                for node in self.nodes:
                    if node.proc.poll() is not None:
                        raise UsageError(
                            f"[fl] engine: {node.name} could not reach the SuperLink "
                            f"at {self.node_superlink} ({_last_line(node.log)})"
                        )
            if time.monotonic() > t_end:
                raise RuntimeError(f"the Flower run did not finish in {deadline_s:g} s")
            time.sleep(0.2)
        body = json.loads(result.read_text())
        if "error" in body:
            raise RuntimeError(f"the Flower ServerApp failed: {body['error']}")
        return body

    def stop(self) -> None:
        """Stop every child process group: SIGTERM, then SIGKILL after a grace."""
        for child in self.children:
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(max(deadline - time.monotonic(), 0.01))
            _signal_group(child.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(STOP_GRACE_S)
        for child in self.children:  # the groups' other members (SuperExec, Apps)
            _wait_group_gone(child.proc.pid, STOP_GRACE_S)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's whole process group (its own SuperExec and Apps too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait until no process of group ``pgid`` is left (SIGKILL already sent)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    logger.warning("process group %d still has members after SIGKILL", pgid)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return f"log {log}: {lines[-1].strip()[:200]}" if lines else f"empty log {log}"


class FlowerResult:
    """The summary of a Flower run (the `SimulationSummary` dict, plus ``flower``)."""

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        """The ``summary.json`` body of docs/cgsv.md §7 plus ``flower`` timings."""
        return {**self.body["summary"], "flower": self.body["flower"]}


def engine(
    f: FlConfig,
    inprocess: Callable[..., Any],
    kind: str,
    input_shape: Sequence[int],
    n_classes: int,
) -> Callable[..., Any]:
    """The ``fl`` stage's engine: ``inprocess`` (`simulate`) or `run_flower`.

    Raises:
        UsageError: from `check_flower`, before the stage starts.
    """
    if f.engine != "flower":
        return inprocess
    check_flower(f)
    spec = {"kind": kind, "input_shape": list(input_shape), "n_classes": n_classes}
    return run_flower(f, spec)


def run_flower(
    f: FlConfig, spec: dict[str, Any], *, out_dir: Path | None = None
) -> Callable[..., FlowerResult]:
    """The `simulate`-shaped engine of ``fl.engine = "flower"`` (module docstring).

    Args:
        f: the ``[fl]`` table.
        spec: ``kind``, ``input_shape``, ``n_classes`` of the model.
        out_dir: where parties save their final models (tests).

    Returns:
        A callable taking `simulate`'s arguments (``orders`` required) that runs
        the federation and returns a `FlowerResult`.
    """

    def flower(init_model: Any, data: Sequence[Any], test: Any, **kw: Any) -> Any:
        from rewards.cgsv.flower.files import write_party_file, write_plan
        from rewards.cgsv.params import flatten_parameters

        betas = kw["beta"] if isinstance(kw["beta"], list) else [kw["beta"]]
        meta = {
            **spec, **{k: kw[k] for k in ("rounds", "local_epochs", "batch_size",
                                          "lr", "lr_decay", "gamma", "alpha",
                                          "aggregator", "eval_every")},
            "baselines": list(kw["baselines"]), "betas": betas,
            "n_parties": len(data), "party_sizes": [len(y) for _, y in data],
            "round_timeout_s": f.round_timeout_s,
            "connect_timeout_s": f.round_timeout_s,
        }  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="synthreward-flower-") as tmp:
            work = Path(tmp)
            plan = write_plan(
                work / "plan.npz", flatten_parameters(init_model).numpy(), test, meta
            )
            files = [
                write_party_file(work / f"party_{i}.npz", x, y, kw["orders"][i])
                for i, (x, y) in enumerate(data)
            ]
            deadline = (kw["rounds"] + 3) * f.round_timeout_s + 60
            with Federation(
                work, files, port=f.flower_port, timeout_s=f.round_timeout_s,
                out_dir=out_dir,
            ) as fed:  # fmt: skip
                body = fed.run(plan, work / "result.json", deadline)
        on_round = kw.get("on_round")
        for row in body["rows"]:
            if on_round is not None:
                on_round(row)
        return FlowerResult(body)

    return flower
