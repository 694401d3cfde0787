"""The ``synthreward`` command line (docs/interface.md §3).

``synthreward <stage> --run-dir DIR [--config FILE.toml] [--set key=value ...]
[--seed N] [--quiet]``. Exit codes: 0 success, 2 bad input (one line on stderr),
1 anything unexpected (with its traceback) or a full disk (one line), 130 / 143 after
SIGINT / SIGTERM (one line). A command holds an exclusive lock on ``DIR/.lock``; a
stage that fails leaves no manifest and none of the files it newly created
(docs/interface.md §5.6).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType
from typing import NoReturn

from pipeline import manifest, paths
from pipeline.config import RunConfig, load_config, resolve_threads
from pipeline.errors import UsageError

logger = logging.getLogger("synthreward")

#: Every stage, in order: the one list is ``manifest.STAGE_KEY``.
STAGES: tuple[str, ...] = tuple(manifest.STAGE_KEY)
#: The synthetic-data chain that ``all`` runs, in order (docs/interface.md §3).
PIPELINE: tuple[str, ...] = STAGES[: STAGES.index("evaluate") + 1]
DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.toml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="synthreward",
        description="Incentive-aware collaborative ML: synthetic-data and gradient "
        "rewards.",
    )
    p.add_argument("stage", choices=(*STAGES, "all"), help="stage to run")
    p.add_argument("--run-dir", required=True, type=Path, help="the run folder")
    p.add_argument("--config", type=Path, help="TOML config (default: built-in)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override one key (value parsed as TOML; bare words are strings)",
    )
    p.add_argument("--seed", type=int, help="root seed (replaces the config's)")
    p.add_argument("--quiet", action="store_true", help="warnings only, no bars")
    return p


def apply_threads(threads: int) -> None:
    """Give torch, BLAS and every child process ``threads`` CPU threads.

    Children (sampler workers, Flower processes) read the environment at start.

    Args:
        threads: the resolved ``threads`` setting (docs/interface.md §4.4, §7).
    """
    import threadpoolctl
    import torch

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)  # manifests record it (RunConfig.tables)


def stage_module(stage: str) -> ModuleType:
    """The stage's module, ``pipeline.stages.<stage>``."""
    return importlib.import_module(f"pipeline.stages.{stage}")


def run_stage(
    stage: str, cfg: RunConfig, run_dir: Path, *, progress: bool
) -> dict[str, Path]:
    """Run one stage (logging its resolved config and wall time).

    Raises:
        UsageError: on bad input.
    """
    module = stage_module(stage)
    logger.info("[%s] config: %s", stage, cfg.tables(*module.TABLES))
    t0 = time.perf_counter()
    manifest.forget_reads(run_dir)
    folder = paths.stage_dir(run_dir, stage)
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        outputs = module.run(cfg, run_dir, progress=progress)
    except BaseException:
        _remove_new_files(folder, before)
        raise
    logger.info("[%s] done in %.1f s", stage, time.perf_counter() - t0)
    return outputs


def _remove_new_files(folder: Path, before: set[Path]) -> None:
    """Remove the files a failed stage created (not its ``.partial`` evidence)."""
    if not folder.is_dir():
        return
    for path in set(folder.iterdir()) - before:
        if path.is_file() and not path.name.endswith(".partial"):
            path.unlink(missing_ok=True)


def run_all(cfg: RunConfig, run_dir: Path, *, progress: bool) -> None:
    """Run pool … evaluate in order, skipping finished stages.

    A stage counts as finished when its manifest exists, records the same config
    tables and seed, and every output still matches its sha256.
    """
    for stage in PIPELINE:
        tables = cfg.tables(*stage_module(stage).TABLES)
        if manifest.is_finished(run_dir, stage, tables):
            logger.info("[%s] finished earlier with the same config: skipped", stage)
            continue
        run_stage(stage, cfg, run_dir, progress=progress)


def _report(stage: str, run_dir: Path) -> None:
    out = sys.stdout
    if stage in ("all", "sample") and paths.manifest(run_dir, "sample").is_file():
        print(
            f"reward files: {paths.stage_dir(run_dir, 'sample')}/party_<i>.h5", file=out
        )
    if stage in ("all", "evaluate") and paths.manifest(run_dir, "evaluate").is_file():
        print(f"report: {paths.evaluate_file(run_dir, 'report.md')}", file=out)
    if stage != "all":
        print(f"{stage} files are in {paths.stage_dir(run_dir, stage)}/", file=out)
    else:
        done = [s for s in PIPELINE if paths.manifest(run_dir, s).is_file()]
        print(f"finished stages: {', '.join(done)} (in {run_dir}/)", file=out)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds every ``with`` block (temp files removed).

    A `BaseException` that is not `KeyboardInterrupt`, so Lightning's "graceful
    shutdown" (which would return normally) re-raises it instead.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` for the command's duration."""
    sigs = (signal.SIGINT, signal.SIGTERM)
    try:
        old = {s: signal.signal(s, _raise_interrupted) for s in sigs}
    except ValueError:  # not the main thread: leave the handlers alone
        yield
        return
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _check_run_dir(run_dir: Path) -> bool:
    """Refuse a run folder that cannot be one; create it. Returns: it was created."""
    if run_dir.resolve() == Path(run_dir.resolve().anchor):
        raise UsageError(
            f"--run-dir {run_dir}: the filesystem root cannot be a run folder"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir {run_dir}: exists and is not a folder")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--run-dir {run_dir}: cannot create it ({e.strerror})") from e
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--run-dir {run_dir}: not writable")
    return created


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``DIR/.lock`` (holding our pid).

    Raises:
        UsageError: if another command holds it (naming its pid), or the folder
            is not writable.
    """
    path = run_dir / ".lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise UsageError(f"--run-dir {run_dir}: not writable ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"{run_dir}: in use by another synthreward command (pid {holder}); "
                "wait for it to finish or use another --run-dir"
            ) from None
        # a finishing holder unlinks the file: lock the one that is at `path` now
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, OSError | RuntimeError) and "No space left on device" in str(e)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``synthreward`` and ``python -m pipeline``.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 bad input, 1 unexpected error or a full disk,
        128 + the signal number after SIGINT (130) or SIGTERM (143).
    """
    stage = "?"
    try:
        with _signals_raise():
            args = _parser().parse_args(argv)
            stage = args.stage
            logging.basicConfig(
                level=logging.WARNING if args.quiet else logging.INFO,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                stream=sys.stderr,
                force=True,
            )
            # libraries (Lightning) set INFO on their own loggers: filter at the handler
            for handler in logging.getLogger().handlers:
                handler.setLevel(logging.WARNING if args.quiet else logging.INFO)
            cfg = load_config(args.config or DEFAULT_CONFIG, args.set, args.seed)
            apply_threads(resolve_threads(cfg.threads))
            progress = sys.stderr.isatty() and not args.quiet
            created = _check_run_dir(args.run_dir)
            try:
                with run_lock(args.run_dir):
                    if args.stage == "all":
                        run_all(cfg, args.run_dir, progress=progress)
                    else:
                        run_stage(args.stage, cfg, args.run_dir, progress=progress)
            finally:
                if created:  # a refused first command leaves no empty folder
                    with contextlib.suppress(OSError):
                        args.run_dir.rmdir()
            _report(args.stage, args.run_dir)
        return 0
    except UsageError as e:
        print(f"synthreward: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(
            f"synthreward: {e} received: `{stage}` stopped, its stage left unfinished; "
            "rerun the command (or `all`) to resume",
            file=sys.stderr,
        )
        return 128 + e.signum
    except KeyboardInterrupt:
        print("synthreward: interrupted", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as e:
        if _disk_full(e):
            where = getattr(e, "filename", None) or "the run folder"
            print(
                f"synthreward: error: {where}: no space left on device; the stage was "
                "left unfinished: free space and rerun the command (or `all`)",
                file=sys.stderr,
            )
            return 1
        if isinstance(e, OSError) and e.errno in (
            errno.EACCES,
            errno.EPERM,
            errno.EROFS,
        ):
            print(f"synthreward: error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 2
        raise
