"""Value and sample at paper scale on CUDA against the CPU (bench/gpu_check.sh).

Usage (on a machine with CUDA, from the repository root):

    python3 bench/gpu_kernels.py --n-candidates 100000 --out /tmp/gpu_kernels.json

The GMM paper setting (5 parties × 1,000 points of the 5-class 2-D mixture, candidates
drawn from the true mixture): the lengthscale rule, the one kernel pass (K̄ and the
per-row block sums R) and all 2^5 coalition values, on the CPU in float64 and on
CUDA in float32 (the ``"auto"`` precisions) and float64; then every party's reward
sequence at β = 1 and greedy from the stored sums, the CPU loop against the batched
CUDA loop. Prints one JSON object: times, the largest relative differences of K̄, R
and the coalition values, whether ℓ and the sequences agree, and the hardware.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewards.cgm.sampling import pool_sums, sample_parties
from valuation.coalition import (
    coalition_values_from_blocks,
    coalition_values_from_sums,
)
from valuation.kernels import kernel_block_row_sums
from valuation.lengthscale import find_lengthscale


def gmm_setting(n_g: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """5 parties (party i mostly class i) and n_g candidates of one 2-D mixture."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 1, size=(5, 2))
    sd = math.sqrt(1 / 200)
    parties = []
    for i in range(5):
        labels = np.where(rng.random(1000) < 0.6, i, rng.integers(0, 5, 1000))
        parties.append(means[labels] + sd * rng.normal(size=(1000, 2)))
    cand = means[rng.integers(0, 5, n_g)] + sd * rng.normal(size=(n_g, 2))
    return parties, cand


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def timed(fn, *args, **kw):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-candidates", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-threads", type=int, default=8)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.cpu_threads)
    parties, cand = gmm_setting(args.n_candidates, args.seed)
    sizes = np.array([len(x) for x in parties] + [len(cand)])
    ref = np.concatenate([*parties, cand])
    out: dict = {
        "n_candidates": args.n_candidates,
        "cpu_threads": args.cpu_threads,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }
    (ell, _), out["lengthscale_cpu_s"] = timed(find_lengthscale, parties, cand)
    out["lengthscale"] = ell
    runs = {"cpu": ("cpu", "float64")}
    if torch.cuda.is_available():
        runs |= {"cuda32": ("cuda", "float32"), "cuda64": ("cuda", "float64")}
        for name, (dev, prec) in list(runs.items())[1:]:
            (e, _), out[f"lengthscale_{name}_s"] = timed(
                find_lengthscale,
                parties,
                cand,
                device=dev,
                kernel_precision=prec,
                chunk_size=16384,
            )
            out[f"lengthscale_{name}"] = e
            out[f"lengthscale_{name}_equal"] = e == ell
    sums = {}
    for name, (dev, prec) in runs.items():
        chunk = 4096 if dev == "cpu" else 16384
        s, out[f"pass_{name}_s"] = timed(
            kernel_block_row_sums,
            [*parties, cand],
            ell,
            device=dev,
            kernel_precision=prec,
            chunk_size=chunk,
        )
        sums[name] = s
    base = sums["cpu"]
    values_cpu = coalition_values_from_blocks(base.block_sums, sizes)
    for name in runs:
        if name == "cpu":
            continue
        s = sums[name]
        out[f"kbar_rel_{name}"] = rel(s.block_sums, base.block_sums)
        out[f"rowsums_rel_{name}"] = rel(s.row_sums, base.row_sums)
        values = coalition_values_from_blocks(s.block_sums, sizes)
        out[f"values_rel_{name}"] = rel(values, values_cpu)
    n_own = int(sizes[:-1].sum())
    ps = pool_sums(base.row_sums[n_own:], base.block_sums, sizes[:-1].tolist())
    start = coalition_values_from_sums(  # v(D_i) from the stored sums
        np.array([st.n_party for st in ps.states]),
        np.array([st.B for st in ps.states]),
        np.array([st.A for st in ps.states]),
        float(len(ref)),
    )
    v_all = float(values_cpu[-1])  # v(N): each target 90 % of the way from v(D_i)
    targets = [s + 0.9 * (v_all - s) for s in start]
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    for beta in (1.0, math.inf):
        tag = "greedy" if math.isinf(beta) else f"beta{beta:g}"
        res = {}
        for dev in devices:
            res[dev], out[f"sample_{dev}_{tag}_s"] = timed(
                sample_parties, parties, cand, ref, ell, targets, inv_temp=beta,
                seeds=list(range(100, 105)), sums=ps, device=dev, workers=1,
            )  # fmt: skip
        out[f"n_rewards_{tag}"] = [r.n_rewards for r in res["cpu"]]
        if "cuda" in res:
            pairs = list(zip(res["cpu"], res["cuda"], strict=True))
            out[f"same_sequences_{tag}"] = [
                bool(np.array_equal(a.candidate_index, b.candidate_index))
                for a, b in pairs
            ]
            out[f"trace_rel_{tag}"] = max(
                (
                    rel(b.value_trace, a.value_trace)
                    for a, b in pairs
                    if a.n_rewards == b.n_rewards and a.n_rewards > 0
                ),
                default=None,
            )
    text = json.dumps(out)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
