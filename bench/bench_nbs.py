"""Time the Nash bargaining solver of docs/nash.md §2 per call, K = 2..10.

Usage (from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_nbs.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_nbs.py --ks 2 4 10 20 --dim 22338

For every K, ``--problems`` feasible problems G ~ N(0.5, 1) of shape (K, D) are drawn
(seeded), plus the same number of ill-conditioned ones (pairs g, −0.9g + 0.1ξ as in
docs/nash.md §2 test 6) and conflicting ones (last row = −sum of the others, so 0 ∈ conv
and the solver must report failure). Each problem is solved ``--repeats`` times; the
table reports the median time per call (including forming GGᵀ), its 90th percentile
over problems, the mean and max Newton iterations and the number of failures. Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_name
from rewards.nash.bargaining import nbs

#: problem families; each (seed, K, family) gets its own generator
KINDS = ("feasible", "ill-conditioned", "conflicting")


def _problem(rng: np.random.Generator, k: int, dim: int, kind: str) -> np.ndarray:
    if kind == "feasible":
        return rng.normal(0.5, 1.0, size=(k, dim))
    if kind == "conflicting":
        g = rng.normal(0.5, 1.0, size=(k, dim))
        g[-1] = -g[:-1].sum(axis=0)  # 0 = mean of the rows: 0 ∈ conv, must fail
        return g
    base = rng.normal(size=((k + 1) // 2, dim))
    noise = rng.normal(size=(k // 2, dim))
    rows = []
    for i in range(k):
        rows.append(
            base[i // 2] if i % 2 == 0 else -0.9 * base[i // 2] + 0.1 * noise[i // 2]
        )
    return np.stack(rows)


def time_problem(g: np.ndarray, repeats: int) -> tuple[float, int, bool]:
    """Best-of-``repeats`` seconds per call, iterations and success."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = nbs(g)
        best = min(best, time.perf_counter() - t0)
    return best, r.iterations, r.success


def run_k(k: int, kind: str, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng([args.seed, k, KINDS.index(kind)])
    times, its, fails = [], [], 0
    for _ in range(args.problems):
        t, it, ok = time_problem(_problem(rng, k, args.dim, kind), args.repeats)
        times.append(t)
        its.append(it)
        fails += not ok
    return {
        "k": k,
        "kind": kind,
        "median_us": 1e6 * float(np.median(times)),
        "p90_us": 1e6 * float(np.quantile(times, 0.9)),
        "mean_it": float(np.mean(its)),
        "max_it": int(np.max(its)),
        "fails": fails,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ks", type=int, nargs="+", default=list(range(2, 11)))
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--problems", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(
        f"NBS solver, D = {args.dim}, {args.problems} problems x best of "
        f"{args.repeats}; {cpu_name()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
    )
    print("| K | problems | median µs/call | p90 µs/call | mean it | max it | fails |")
    print("|---|---|---|---|---|---|---|")
    for k in args.ks:
        for kind in KINDS:
            row = run_k(k, kind, args)
            print(
                f"| {k} | {kind} | {row['median_us']:.0f} | {row['p90_us']:.0f} | "
                f"{row['mean_it']:.1f} | {row['max_it']} | {row['fails']} |"
            )


if __name__ == "__main__":
    main()
