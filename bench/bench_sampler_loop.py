"""Time the preallocated sampling loop against the old one (docs/cgm.md §7.2).

Usage (from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sampler_loop.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sampler_loop.py --sizes 10000 \\
        --betas 1 inf --target-fraction 0.9

One party of ``--party-size`` rows drawn from two of the five components of a 2-D
Gaussian mixture, a pool of n_G candidates drawn from all five, T = D ⊎ G; t and the
party's sums come from `rewards.cgm.sampling.candidate_reference_sums` and
`initial_state`. The target is r = v(D) + f·(v(T) − v(D)) with f =
``--target-fraction``, so a run adds a few thousand candidates (about 2,700 at
β = 1 and 1,100 greedy for n_G = 10k). The new loop
(`rewards.cgm.sampler_core.run_party`) and the old one (the reference kept in
tests/rewards/cgm/test_sampler_lean.py) run on the same inputs and seed, alternating
``--repeats`` times (the fastest run of each counts, in wall-clock and in CPU time;
the latter is less sensitive to other processes); their candidate sequences, stop
reasons and value traces are asserted identical. Each case runs in this process after
the setup (``in_process``: numpy's temporaries come from a heap that the setup grew)
and in a fresh spawned process per run (``spawned``: as the workers of
`run_parties`; large temporaries are fresh pages). Prints one JSON line per
(n_G, β, process) with the hardware and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_name
from rewards.cgm.sampler_core import InitialState, run_party
from tests.rewards.cgm.test_sampler_lean import _old_run_party

logger = logging.getLogger("bench_sampler_loop")


def gmm_problem(n_g: int, party_size: int, seed: int) -> tuple:
    """2-D GMM pool (five components) and a party from two of them."""
    rng = np.random.default_rng([seed, n_g])
    means = rng.uniform(-4.0, 4.0, size=(5, 2))
    scales = rng.uniform(0.4, 1.2, size=5)
    comp = rng.integers(0, 5, size=n_g)
    g = means[comp] + scales[comp, None] * rng.normal(size=(n_g, 2))
    pc = rng.integers(0, 2, size=party_size)
    party = means[pc] + scales[pc, None] * rng.normal(size=(party_size, 2))
    return party, g, np.vstack([party, g])


def target_between(state: InitialState, t: np.ndarray, n_t: int, frac: float) -> float:
    """v(D) + frac·(v(T) − v(D)); v(T) = Σ_{T×T} k / n_T² = (B + Σ t) / n_T²."""
    m = state.n_party
    start = 2.0 * state.B / (m * n_t) - state.A / (m * m)
    full = (state.B + float(t.sum())) / (n_t * n_t)
    return start + frac * (full - start)


def timed_loop(which: str, *args: object) -> tuple:
    """One run of the ``"new"`` or ``"old"`` loop: index, trace, reason, wall, cpu."""
    g, t, n_t, ell, target, beta, state, seed = args
    rng = np.random.default_rng(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    if which == "new":
        res = run_party(g, t, n_t, ell, target, beta, rng, state)
        out = (res.candidate_index, res.value_trace, res.stop_reason)
    else:
        out = _old_run_party(g, t, n_t, ell, target, beta, rng, state)[:3]
    return (*out, time.perf_counter() - t0, time.process_time() - c0)


def run_case(args: tuple, repeats: int, spawned: bool) -> dict:
    """New and old loop, alternating ``repeats`` times; identical outputs asserted.

    With ``spawned`` every run happens in a fresh spawned process (as the workers
    of `run_parties`), otherwise in this process after the setup. Each loop's
    time is its fastest run, to damp the load of a shared machine.
    """
    runs: dict[str, list[tuple]] = {"new": [], "old": []}
    ctx = multiprocessing.get_context("spawn")
    for _ in range(repeats):
        for which in ("new", "old"):
            if spawned:
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    runs[which].append(pool.submit(timed_loop, which, *args).result())
            else:
                runs[which].append(timed_loop(which, *args))
    new, old = runs["new"][0], runs["old"][0]
    n_g, beta = args[0].shape[0], args[5]
    if not np.array_equal(new[0], old[0]) or new[2] != old[2]:
        raise RuntimeError(f"n_G={n_g}, β={beta}: candidate sequences differ")
    if not np.array_equal(new[1], old[1]):
        diff = float(np.max(np.abs(new[1] - old[1])))
        raise RuntimeError(f"n_G={n_g}, β={beta}: traces differ by {diff:.3e}")
    steps = len(new[0])
    wall = {k: min(r[3] for r in v) for k, v in runs.items()}
    cpu = {k: min(r[4] for r in v) for k, v in runs.items()}
    return {
        "process": "spawned" if spawned else "in_process",
        "steps": steps,
        "stop_reason": new[2],
        "repeats": repeats,
        "old_s_per_step": wall["old"] / steps,
        "new_s_per_step": wall["new"] / steps,
        "speedup": wall["old"] / wall["new"],
        "old_cpu_s_per_step": cpu["old"] / steps,
        "new_cpu_s_per_step": cpu["new"] / steps,
        "cpu_speedup": cpu["old"] / cpu["new"],
        "identical_index_and_trace": True,
    }


def main() -> None:
    # torch (via sampling) only here: spawned loop processes import this module
    from rewards.cgm.sampling import candidate_reference_sums, initial_state

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, math.inf])
    p.add_argument("--party-size", type=int, default=1000)
    p.add_argument("--lengthscale", type=float, default=0.5)
    p.add_argument("--target-fraction", type=float, default=0.99)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--processes",
        nargs="+",
        choices=["in_process", "spawned"],
        default=["in_process", "spawned"],
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hardware = {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for n_g in args.sizes:
        party, g, ref = gmm_problem(n_g, args.party_size, args.seed)
        t0 = time.perf_counter()
        t = candidate_reference_sums(g, ref, args.lengthscale)
        state = initial_state(party, g, ref, args.lengthscale)
        setup_s = time.perf_counter() - t0
        target = target_between(state, t, ref.shape[0], args.target_fraction)
        for beta, spawned in itertools.product(args.betas, args.processes):
            load_before = os.getloadavg()
            case = (g, t, ref.shape[0], args.lengthscale, target, beta, state)
            row = run_case((*case, args.seed), args.repeats, spawned == "spawned")
            out = {
                "n_g": n_g,
                "n_party": args.party_size,
                "beta": "inf" if math.isinf(beta) else beta,
                "target_fraction": args.target_fraction,
                "setup_s": setup_s,
                **row,
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
                **hardware,
            }
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
