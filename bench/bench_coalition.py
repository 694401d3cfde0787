"""Benchmark: all 2^n coalition values from one block-sum pass vs. direct recomputation.

docs/cgm.md §5.4: one chunked pass over T × T (upper block triangle) gives the block-sum
matrix; all 2^n − 1 coalition values then follow by array arithmetic. This script
times, for n parties:

  (a) kernel_block_sums + coalition_values_from_blocks (all 2^n values);
  (b) value_of_set for every coalition (direct §5.1 recomputation); for large n a
      random sample of coalitions is timed and the total extrapolated;
  one plain pass: kernel_row_sums(T, T) over the full T × T kernel.

Target: (a) ≤ 2 × one plain pass at n = 10. Run from the repository root:

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python bench/bench_coalition.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import timed
from valuation.coalition import (
    coalition_values_from_blocks,
    members_of,
    value_of_set,
)
from valuation.kernels import kernel_block_sums, kernel_row_sums


def hardware() -> str:
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"platform {platform.platform()}; processor {platform.processor() or '?'}; "
        f"cpu_count {os.cpu_count()}; python {platform.python_version()}; "
        f"torch {torch.__version__} (threads {torch.get_num_threads()}); "
        f"numpy {np.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
        f"cuda {cuda}"
    )


def bench_one(n: int, args: argparse.Namespace, rng: np.random.Generator) -> dict:
    parties = [
        rng.normal(rng.uniform(-1, 1, args.dim), 1.0, (args.party_size, args.dim))
        for _ in range(n)
    ]
    pool = rng.normal(size=(args.n_candidates, args.dim))
    t = np.concatenate([*parties, pool])
    sizes = np.array([args.party_size] * n + [args.n_candidates])
    ell, kw = args.lengthscale, {"chunk_size": args.chunk_size, "device": args.device}

    t_pass, _ = timed(lambda: kernel_row_sums(t, t, ell, **kw), args.repeats)

    def blocks_and_values() -> np.ndarray:
        kbar = kernel_block_sums([*parties, pool], ell, **kw)
        return coalition_values_from_blocks(kbar, sizes)

    t_fast, table = timed(blocks_and_values, args.repeats)

    n_coalitions = 2**n - 1
    if n_coalitions <= args.sample:
        masks = np.arange(1, n_coalitions + 1)
    else:
        masks = rng.choice(np.arange(1, n_coalitions + 1), args.sample, replace=False)
    start = time.perf_counter()
    direct = np.array(
        [
            value_of_set(np.concatenate([parties[i] for i in members_of(m)]), t, ell)
            for m in masks
        ]
    )
    t_direct = (time.perf_counter() - start) * n_coalitions / len(masks)
    rel_err = float(np.max(np.abs(table[masks] - direct) / np.abs(direct)))
    return {
        "n": n,
        "n_T": t.shape[0],
        "coalitions": n_coalitions,
        "pass": t_pass,
        "fast": t_fast,
        "direct": t_direct,
        "measured": len(masks),
        "rel_err": rel_err,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-min", type=int, default=4)
    p.add_argument("--n-max", type=int, default=12)
    p.add_argument("--party-size", type=int, default=200)
    p.add_argument("--n-candidates", type=int, default=2000)
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--lengthscale", type=float, default=2.0)
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sample", type=int, default=32, help="direct coalitions timed")
    p.add_argument("--repeats", type=int, default=3, help="best of, for (a) and pass")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"hardware: {hardware()}")
    print(
        f"data: {args.party_size} points/party, {args.n_candidates} candidates, "
        f"d={args.dim}, ℓ={args.lengthscale}, chunk {args.chunk_size}, "
        f"device {args.device}; times are best of {args.repeats} (direct: one run)"
    )
    print()
    print(
        "| n | n_T | 2^n−1 | one pass T×T (s) | (a) blocks + all values (s) "
        "| (a) / pass | (b) direct (s) | (b) timed on | (b) / (a) | max rel err |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in range(args.n_min, args.n_max + 1):
        r = bench_one(n, args, rng)
        how = (
            "all"
            if r["measured"] == r["coalitions"]
            else f"{r['measured']} sampled, extrapolated"
        )
        print(
            f"| {r['n']} | {r['n_T']} | {r['coalitions']} | {r['pass']:.3f} "
            f"| {r['fast']:.3f} | {r['fast'] / r['pass']:.2f} | {r['direct']:.2f} "
            f"| {how} | {r['direct'] / r['fast']:.0f}× | {r['rel_err']:.1e} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
