"""Per-round overhead of ``fl.engine = "flower"`` over in-process.

See docs/federated.md §6.

Usage (from the repository root):

    .venv/bin/python bench/flower_overhead.py [--run-dir runs/bench_flower] \\
        [--rounds 3] [--legacy] [--set table.key=value ...]  # data.* shape the pool

On the demo's ``fl`` setting (the default config: the ``mnist5k`` pool, its 5
parties, cnn, 3 local epochs, β = 1, Standalone and FedAvg beside CGSV; ``fl.rounds``
and ``fl.sv_check`` are lowered to keep it short) it runs the ``fl`` stage three
times in one invocation, in-process, Flower, in-process (A-B-A, so a change of
machine load shows as a gap between the two in-process runs), and prints one
markdown row: the median per-round wall time of each, without evaluation, and
the overhead = Flower / mean(in-process) − 1. With ``--legacy`` it also runs
Flower as it was before the party workers (the ClientApp imports torch per
message; Flower's own SuperNode with its fixed 3 s idle wait), between the two.

A round's time is, in-process, the sum over methods of ``round_time_s`` (local
training + server work of every method, one after another); with Flower, the
exchange (push the messages, every party trains all methods, pull the answers)
plus every method's server work. The load average is printed with it: other jobs
on the machine move both numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import federation
from pipeline.cli import main as cli

logger = logging.getLogger("flower_overhead")


def _stage(run: Path, sets: list[str]) -> None:
    argv = ["fl", "--run-dir", str(run), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    if cli(argv) != 0:
        raise SystemExit(f"fl failed: {argv}")


def _round_times(run: Path) -> tuple[list[float], list[float]]:
    """(per-round wall time as defined above, per-round server seconds)."""
    with (run / "fl" / "rounds.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((run / "fl" / "summary.json").read_text())
    seen: dict[int, dict[tuple[str, str], tuple[float, float]]] = defaultdict(dict)
    for r in rows:  # one (round_time_s, server_time_s) per (round, method, β)
        srv = float(r["server_time_s"]) if r["server_time_s"] else 0.0
        seen[int(r["round"])][(r["method"], r["beta"])] = (
            float(r["round_time_s"]),
            srv,
        )
    server = [sum(s for _, s in seen[t].values()) for t in sorted(seen)]
    if "flower" in summary:
        exchange = summary["flower"]["round_exchange_s"]
        return [e + s for e, s in zip(exchange, server, strict=True)], server
    return [sum(rt for rt, _ in seen[t].values()) for t in sorted(seen)], server


def main(argv: list[str] | None = None) -> int:
    """Run the A-B-A comparison and print the markdown row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench_flower"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], dest="sets")
    parser.add_argument(
        "--legacy", action="store_true",
        help="also run Flower without the party workers and the short idle wait",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run = args.run_dir
    pool_argv = ["pool", "--run-dir", str(run), "--quiet"]
    for s in args.sets:  # the data.* overrides shape the pool too
        pool_argv += ["--set", s] if s.startswith("data.") else []
    pooled = (run / "pool" / "manifest.json").exists()
    if not pooled and cli(pool_argv) != 0:
        raise SystemExit("pool failed")
    base = [f"fl.rounds={args.rounds}", "fl.sv_check=false", *args.sets]
    load0 = os.getloadavg()[0]
    medians = {}
    runs = [("inprocess_a", "inprocess"), ("flower", "flower")]
    if args.legacy:
        runs.append(("flower_legacy", "flower"))
    for label, engine in [*runs, ("inprocess_b", "inprocess")]:
        with _legacy(label == "flower_legacy"):
            _stage(run, [*base, f"fl.engine={engine}"])
        times, _ = _round_times(run)
        medians[label] = statistics.median(times)
        print(f"{label}: per-round {[round(t, 2) for t in times]}", flush=True)
    load1 = os.getloadavg()[0]
    ref = (medians["inprocess_a"] + medians["inprocess_b"]) / 2
    print("| rounds | engine | in-process A / B (s) | Flower (s) | overhead | load |")
    print("|---|---|---|---|---|---|")
    for label in [k for k in medians if k.startswith("flower")]:
        print(
            f"| {args.rounds} | {label} | {medians['inprocess_a']:.1f} / "
            f"{medians['inprocess_b']:.1f} | {medians[label]:.1f} | "
            f"{100 * (medians[label] / ref - 1):+.0f} % | {load0:.1f} → {load1:.1f} |"
        )
    return 0


@contextlib.contextmanager
def _legacy(on: bool) -> Iterator[None]:
    """Flower as before the party workers: a torch import per message, 3 s idle."""
    names = ("USE_WORKERS", "NODE_IDLE_S", "FORK_SUPEREXEC")
    saved = [getattr(federation, n) for n in names]
    if on:
        for name, value in zip(names, (False, None, False), strict=True):
            setattr(federation, name, value)
    try:
        yield
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(federation, name, value)


if __name__ == "__main__":
    raise SystemExit(main())
