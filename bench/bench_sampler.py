"""Time the fast reward sampler (docs/cgm.md §7.2) against the naive one, same outputs.

Usage (from the repository root):

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/bench_sampler.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_sampler.py --sizes 1000 4000 \\
        --steps 50 --inv-temp 1.0

One party of ``--party-size`` points, a pool of n_G candidates, d = ``--dim``, and
T = D ⊎ G. Both samplers run a fixed number of additions: a probe run of the fast
sampler (target = inf) gives the value trace, and the target is then set to the best
value among its first k additions, so that both samplers stop at that addition.
The naive sampler runs ``--steps`` additions up to ``--naive-full-max`` candidates and
``--naive-steps-large`` above that (its per-step cost is then extrapolated to
``--steps``; the cost grows only with |D ⊎ R| + n_T, so the error is ≲ 1 %).
The candidate sequences of both samplers are asserted to be identical.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import cpu_name
from rewards.cgm.reference import naive_sample_party
from rewards.cgm.sampling import (
    candidate_reference_sums,
    initial_state,
    sample_party,
)


def _target_for(trace: np.ndarray, k: int) -> tuple[float, int]:
    """Target that stops a run after exactly n ≤ k additions, and that n.

    The target sits just below the best of the first k trace values and above every
    earlier value, so rounding-level differences between samplers cannot move it.
    """
    best = int(np.argmax(trace[:k]))
    v = float(trace[best])
    below = float(np.max(trace[:best])) if best > 0 else -math.inf
    margin = min(1e-9 * abs(v), (v - below) / 2.0)
    return v - margin, best + 1


def run_size(n_g: int, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng([args.seed, n_g])
    party = rng.normal(0.3, 1.0, size=(args.party_size, args.dim))
    g = rng.normal(0.0, 1.0, size=(n_g, args.dim))
    ref = np.vstack([party, g])
    ell, beta = args.lengthscale, args.inv_temp

    t0 = time.perf_counter()
    t = candidate_reference_sums(g, ref, ell)
    state = initial_state(party, g, ref, ell)
    setup_s = time.perf_counter() - t0

    def fast(target: float) -> object:
        return sample_party(
            party,
            g,
            t,
            ref.shape[0],
            ell,
            target,
            inv_temp=beta,
            seed=args.seed,
            state=state,
        )

    probe = fast(math.inf)
    target, n_fast = _target_for(probe.value_trace, args.steps)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res_fast = fast(target)
        times.append(time.perf_counter() - t0)
    fast_step = min(times) / n_fast

    k_naive = args.steps if n_g <= args.naive_full_max else args.naive_steps_large
    target_n, n_naive = _target_for(probe.value_trace, k_naive)
    res_fast_n = fast(target_n)
    t0 = time.perf_counter()
    res_naive = naive_sample_party(
        party, g, ref, ell, target_n, inv_temp=beta, seed=args.seed
    )
    naive_s = time.perf_counter() - t0
    naive_step = naive_s / n_naive

    same = np.array_equal(res_fast_n.candidate_index, res_naive.candidate_index)
    if not same:
        raise RuntimeError(f"n_G={n_g}: fast and naive candidate sequences differ")
    if not np.array_equal(
        res_fast.candidate_index[:n_naive], res_fast_n.candidate_index
    ):
        raise RuntimeError(f"n_G={n_g}: fast runs of different length disagree")
    rel = np.max(np.abs(res_fast_n.value_trace / res_naive.value_trace - 1.0))
    return {
        "n_g": n_g,
        "n_t": ref.shape[0],
        "n_fast": n_fast,
        "n_naive": n_naive,
        "setup_s": setup_s,
        "fast_ms": 1e3 * fast_step,
        "naive_ms": 1e3 * naive_step,
        "speedup": naive_step / fast_step,
        "e2e": (naive_step * n_fast) / (setup_s + fast_step * n_fast),
        "extrapolated": n_naive < n_fast,
        "rel": rel,
        "probe_steps": probe.n_rewards,
        "probe_reason": probe.stop_reason,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--party-size", type=int, default=500)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--naive-full-max", type=int, default=4000)
    p.add_argument("--naive-steps-large", type=int, default=10)
    p.add_argument("--lengthscale", type=float, default=2.0)
    p.add_argument("--inv-temp", type=float, default=math.inf)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # probe runs end in "stall" by design

    rows = [run_size(n, args) for n in args.sizes]
    print(
        f"hardware: {cpu_name()}, "
        f"{os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"numpy {np.__version__}, torch {torch.__version__}, "
        f"python {platform.python_version()}"
    )
    print(
        f"d = {args.dim}, |D_i| = {args.party_size}, ℓ = {args.lengthscale}, "
        f"β = {args.inv_temp}, fast: best of {args.repeats} runs\n"
    )
    print(
        "| n_G | n_T | additions fast / naive | setup t+s,A,B (s) | fast per step (ms) "
        "| naive per step (ms) | speedup per step | speedup incl. setup | "
        "max rel. trace diff |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        star = "*" if r["extrapolated"] else ""
        print(
            f"| {r['n_g']:,} | {r['n_t']:,} | {r['n_fast']} / {r['n_naive']}{star} | "
            f"{r['setup_s']:.3f} | {r['fast_ms']:.3f} | {r['naive_ms']:.1f} | "
            f"{r['speedup']:,.0f}× | {r['e2e']:,.0f}×{star} | {r['rel']:.1e} |"
        )
    if any(r["extrapolated"] for r in rows):
        print(
            "\n\\* naive ran fewer additions; its per-step cost is extrapolated to the "
            "fast run's additions for 'speedup incl. setup'."
        )
    print("\nCandidate sequences identical (asserted) in every row.")


if __name__ == "__main__":
    main()
