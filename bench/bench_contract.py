"""Time the contract solver on the scenarios of docs/contract.md §5.

Run with one thread, e.g.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/bench_contract.py

It prints markdown tables: one row per scenario and constraint set (median of
``--repeats`` runs of the trust-constr call and of the whole `solve_contract`, wall
and CPU time, the latter robust to other processes on a shared machine; the whole
call adds enumeration, reservation, recovery, checks and the complete-information
benchmark), next to the times printed in the authors' notebooks
(bingchen-wang/paid-with-models, Experiment_Multitype_Case[_noSimp].ipynb, laptop,
scipy default gtol = 1e-8 on the unscaled objective). A second table shows how the
time grows with the number of types K at N = 10.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewards.contract.solve import solve_contract

SCENARIOS = {
    "1 all would train alone": [0.2, 0.16, 0.12, 0.08, 0.04],
    "2 none would": [1.0, 0.85, 0.7, 0.55, 0.4],
    "3 some would": [0.5, 0.4, 0.03, 0.02, 0.001],
}
# (seconds, iterations, converged) printed by the authors' notebooks.
AUTHORS = {
    ("1 all would train alone", "simplified"): (0.23, 63, True),
    ("2 none would", "simplified"): (0.23, 63, True),
    ("3 some would", "simplified"): (7.5, 1813, True),
    ("1 all would train alone", "full"): (0.48, 118, True),
    ("2 none would", "full"): (0.39, 99, True),
    ("3 some would", "full"): (8.5, 2000, False),
}


def hardware() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, OMP_NUM_THREADS={threads}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}"
    )


def time_solve(costs, probs, n, constraints, repeats):
    """Median wall time of the solver call, and median wall and CPU time of it all."""
    solver_times, total_times, cpu_times = [], [], []
    res = None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        res = solve_contract(costs, probs, n, constraints=constraints)
        total_times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        solver_times.append(res.solver.time_s)
    return (
        res,
        statistics.median(solver_times),
        statistics.median(total_times),
        statistics.median(cpu_times),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-types", type=int, default=7)
    args = parser.parse_args(argv)

    print(f"Hardware: {hardware()}\n")
    print(f"N = 10, p_i = 0.2, SGB a_opt = k = 1, V = 100; median of {args.repeats}.\n")
    print(
        "| scenario | constraints | iterations | solver wall s | total wall s "
        "| total CPU s | E[v(a)] | success | authors s (iterations) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, costs in SCENARIOS.items():
        for constraints in ("simplified", "full"):
            res, solver_s, total_s, cpu_s = time_solve(
                costs, [0.2] * 5, 10, constraints, args.repeats
            )
            a_s, a_it, a_ok = AUTHORS[(name, constraints)]
            a_note = f"{a_s:.2f} ({a_it}{'' if a_ok else ', not converged'})"
            print(
                f"| {name} | {constraints} | {res.solver.iterations} | {solver_s:.3f} "
                f"| {total_s:.3f} | {cpu_s:.3f} | {res.expected_value:.3f} "
                f"| {res.success} "
                f"| {a_note} |"
            )

    print("\nScaling in K (N = 10, costs linspace(0.2, 0.04, K), uniform p):\n")
    print(
        "| K | outcomes | constraints | iterations | solver wall s | total wall s "
        "| total CPU s |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in range(2, args.max_types + 1):
        costs = np.linspace(0.2, 0.04, k).tolist()
        for constraints in ("simplified", "full"):
            res, solver_s, total_s, cpu_s = time_solve(
                costs, [1.0 / k] * k, 10, constraints, max(1, args.repeats // 2)
            )
            print(
                f"| {k} | {res.n_outcomes} | {constraints} | {res.solver.iterations} "
                f"| {solver_s:.3f} | {total_s:.3f} | {cpu_s:.3f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
