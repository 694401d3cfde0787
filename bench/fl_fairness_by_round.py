"""Fairness of an `fl` run at every evaluated round, read back from its rounds.csv.

Usage (from the repository root):

    .venv/bin/python bench/fl_fairness_by_round.py runs/RUN/fl/rounds.csv [--every 20]

For each evaluated round t and method it prints (docs/cgsv.md §7, computed at round t
instead of only at the end):

- ``fair``: Pearson(standalone acc, method acc) over the parties, ``null`` when either
  vector is constant;
- for each CGSV β, ``r-fair``: Pearson(standalone acc, r), the allocation fairness of
  ``summary.json``'s ``reward_fairness``; the span of the parties' accuracies; and
  ``dens``: the non-zero fraction of the top party's reward g_i, which is u_N's own
  density (less one entry per tensor). It collapses when the local steps fall below
  float32 resolution and the uploads become rounding.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewards.metrics import pearson_or_none

logger = logging.getLogger("fl_fairness_by_round")


def _fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.3f}"


def fairness_table(rows: list[dict[str, str]], every: int) -> list[str]:
    """Markdown rows of fairness per evaluated round (every ``every``-th and the last).

    Args:
        rows: the rows of ``fl/rounds.csv`` as read by `csv.DictReader`.
        every: keep evaluated rounds that are multiples of this, and the last one.

    Returns:
        The table's lines, header first.
    """
    by_round: dict[int, list[dict[str, str]]] = {}
    for r in rows:
        if r["test_acc"]:
            by_round.setdefault(int(r["round"]), []).append(r)
    evaluated = sorted(by_round)
    last = evaluated[-1]
    betas = sorted({float(r["beta"]) for r in rows if r["method"] == "cgsv"})
    head = ["round", "FedAvg fair"]
    for b in betas:
        head += [f"β={b:g} fair", f"β={b:g} r-fair", f"β={b:g} acc span", "dens"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for t in (t for t in evaluated if t % every == 0 or t == last):
        at = by_round[t]
        sa = [float(r["test_acc"]) for r in at if r["method"] == "standalone"]
        fa = [float(r["test_acc"]) for r in at if r["method"] == "fedavg"]
        cells = [str(t), _fmt(pearson_or_none(sa, fa)) if fa else "–"]
        for b in betas:
            cg = [r for r in at if r["method"] == "cgsv" and float(r["beta"]) == b]
            acc = [float(r["test_acc"]) for r in cg]
            top = max(cg, key=lambda r: float(r["q"]))
            cells += [
                _fmt(pearson_or_none(sa, acc)),
                _fmt(pearson_or_none(sa, [float(r["r"]) for r in cg])),
                f"{min(acc):.3f}–{max(acc):.3f}",
                f"{float(top['reward_density']):.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds_csv", type=Path)
    parser.add_argument("--every", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # null Pearsons are expected here
    with args.rounds_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    sys.stdout.write("\n".join(fairness_table(rows, args.every)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
