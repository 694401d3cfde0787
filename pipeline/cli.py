"""The ``synthreward`` command line (docs/interface.md §3).

``synthreward <stage> --run-dir DIR [--config FILE.toml] [--set key=value ...]
[--seed N] [--quiet]``. Exit codes: 0 success, 2 bad input (one line on stderr),
1 anything unexpected (with its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from pipeline import manifest, paths
from pipeline.config import RunConfig, load_config
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
    outputs = module.run(cfg, run_dir, progress=progress)
    logger.info("[%s] done in %.1f s", stage, time.perf_counter() - t0)
    return outputs


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``synthreward`` and ``python -m pipeline``.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 bad input, 1 unexpected error.
    """
    try:
        args = _parser().parse_args(argv)
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
        progress = sys.stderr.isatty() and not args.quiet
        if args.stage == "all":
            run_all(cfg, args.run_dir, progress=progress)
        else:
            run_stage(args.stage, cfg, args.run_dir, progress=progress)
        _report(args.stage, args.run_dir)
        return 0
    except UsageError as e:
        print(f"synthreward: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synthreward: interrupted", file=sys.stderr)
        return 1
