"""Benchmark: the lengthscale rule, histogram replay vs. the plain 20-step bisection.

docs/cgm.md §5.3: ``find_lengthscale(method="bisect")`` evaluates the 22 ℓ of the
bisection (22 passes over D_i × T); ``method="histogram"`` makes one histogram pass
and evaluates exactly only the ℓ whose sign its bounds cannot certify, returning
bitwise the same ℓ and bracket (checked here). The floor is one
``kernel_block_sums`` pass over T = parties ⊎ candidates at the found ℓ.

Data: the 2-D GMM source, party i = 1,000 points of component i (5 parties), the
candidates drawn from the whole mixture. One JSON line per candidate count, with
the hardware, the load average and the ratios. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_lengthscale.py --candidates 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from bench.common import timed
from data.sources import GMM_COMPONENTS, gmm_source
from valuation.kernels import kernel_block_sums
from valuation.lengthscale import (
    SingletonSums,
    find_lengthscale,
    histogram_lengthscale,
)


def hardware() -> dict:
    """CPU model, cores, threads, library versions and the load average now."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (
                    ln.split(":", 1)[1].strip()
                    for ln in f
                    if ln.startswith("model name")
                ),
                "?",
            )
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def gmm_parties(
    n_parties: int, party_size: int, n_candidates: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Party i = ``party_size`` points of GMM component i; the rest are candidates."""
    src = gmm_source(GMM_COMPONENTS * party_size + n_candidates, seed=seed)
    x, y = src.x.astype(np.float64), src.y
    taken = np.zeros(len(y), dtype=bool)
    parties = []
    for i in range(n_parties):
        rows = np.flatnonzero(y == i % GMM_COMPONENTS)
        rows = rows[~taken[rows]][:party_size]
        taken[rows] = True
        parties.append(x[rows])
    return parties, x[~taken][:n_candidates]


def bench_one(n_candidates: int, args: argparse.Namespace) -> dict:
    """Old, new and floor times at one candidate count."""
    parties, pool = gmm_parties(args.parties, args.party_size, n_candidates, args.seed)
    load = [round(x, 2) for x in os.getloadavg()]
    t_old, old = timed(lambda: find_lengthscale(parties, pool, method="bisect"), 1)
    t_new, new = timed(lambda: find_lengthscale(parties, pool), args.repeats)
    ell = new[0]
    t_floor, _ = timed(lambda: kernel_block_sums([*parties, pool], ell), args.repeats)
    sums = SingletonSums(parties, pool)
    _, n_exact = histogram_lengthscale(sums)
    return {
        "n_candidates": n_candidates,
        "parties": [len(p) for p in parties],
        "n_T": sum(len(p) for p in parties) + len(pool),
        "lengthscale": ell,
        "bracket": list(new[1]),
        "equal": old == new,
        "n_exact": n_exact,
        "old_s": round(t_old, 3),
        "new_s": round(t_new, 3),
        "floor_s": round(t_floor, 3),
        "old_over_new": round(t_old / t_new, 1),
        "new_over_floor": round(t_new / t_floor, 2),
        "old_over_floor": round(t_old / t_floor, 1),
        "load_avg_before": load,
        "repeats_new_floor": args.repeats,
        "hardware": hardware(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; one JSON line per candidate count on stdout."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, nargs="+", default=[10_000, 30_000])
    p.add_argument("--parties", type=int, default=5)
    p.add_argument("--party-size", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=2, help="best of, new and floor")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for n_candidates in args.candidates:
        print(json.dumps(bench_one(n_candidates, args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
