"""The kernel stages against their one-pass floor, idle and beside a busy process.

Usage (from the repository root; about 25 min for all three sizes):

    .venv/bin/python bench/floor.py --sizes 10000 30000 100000 --repeats 2 \\
        --out bench/floor.json

For each n_G: the GMM 2-D paper setting (5 × 1,000 parties, ``gan.source = oracle``,
identity features) is run through ``pool … sample`` by the CLI, once with the machine
otherwise idle and once beside a CPU-bound competitor process (one busy Python loop),
interleaved ``repeats`` times. Each stage runs in its own process, so its wall time
(from its manifest) and its peak RSS (``wait4``) are its own. Then, in this process and
one thread, the parts: the floor (one pass of Σ_{y∈T} k(c, y) over G × T,
`valuation.kernels.kernel_row_sums`), the lengthscale rule and the block-sum pass of
the value stage, and the sampling loop of the sample stage (from the stored sums).

Every run of a size must write the same ``value/values.json`` and the same reward
sequences; the bench asserts it. Prints one JSON line per size and writes them all to
``--out``. Quote the ratios: the machines are shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cpu_name  # noqa: E402 (after the path insert)

STAGES = ("pool", "gan", "value", "reward", "sample")


CONDITION = ["reward.condition=stable"]


def settings(n_g: int) -> list[str]:
    """The ``--set`` list of the GMM paper setting at ``n_g`` candidates."""
    return [
        *CONDITION,
        "data.source=gmm",
        "data.split=unequal",
        "data.party_size=1000",
        "gan.source=oracle",
        f"gan.n_candidates={n_g}",
        "value.features=identity",
        "threads=1",
    ]


def run_stage(stage: str, run_dir: Path, n_g: int) -> tuple[float, float]:
    """One stage in its own process: (wall time of its manifest, peak RSS in MiB)."""
    args = [sys.executable, "-m", "pipeline", stage, "--run-dir", str(run_dir)]
    for s in settings(n_g):
        args += ["--set", s]
    proc = subprocess.Popen([*args, "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{stage} failed with exit code {proc.returncode}")
    body = json.loads((run_dir / stage / "manifest.json").read_text())
    return float(body["wall_time_s"]), usage.ru_maxrss / 1024.0


def digest(run_dir: Path) -> str:
    """sha256 of values.json and every reward file's candidate sequence."""
    import h5py

    h = hashlib.sha256((run_dir / "value" / "values.json").read_bytes())
    for f in sorted((run_dir / "sample").glob("party_*.h5")):
        with h5py.File(f, "r") as fh:
            h.update(np.asarray(fh["candidate_index"][()], dtype=np.int64).tobytes())
    return h.hexdigest()


def parts(run_dir: Path) -> dict[str, float]:
    """Floor pass, lengthscale rule, block pass and sampling loop, one thread."""
    import torch

    from pipeline.inputs import read_reward_inputs
    from rewards.cgm.sampler_core import run_parties
    from valuation.kernels import kernel_block_sums, kernel_row_sums
    from valuation.lengthscale import find_lengthscale

    torch.set_num_threads(1)
    up = read_reward_inputs(run_dir)
    f, ell, n = up.features, up.values.lengthscale, up.values.n_parties
    own = [f[f"party_{i}"] for i in range(n)]
    g, ref = f["candidates"], f["reference"]
    out = {}
    t0 = time.perf_counter()
    kernel_row_sums(g, ref, ell)
    out["floor_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found, _ = find_lengthscale(own, g)
    out["lengthscale_s"] = time.perf_counter() - t0
    if found != ell:
        raise SystemExit(f"lengthscale {found!r} != the stage's {ell!r}")
    t0 = time.perf_counter()
    kernel_block_sums([*own, g], ell)
    out["block_pass_s"] = time.perf_counter() - t0
    sums = up.sums
    targets = up.rewards["reward_values"]
    body = json.loads((run_dir / "sample" / "manifest.json").read_text())
    seeds = body["seed"]["party_seeds"]
    excluded = set(up.rewards.get("excluded", []))
    keep = [i for i in range(n) if i not in excluded]
    t0 = time.perf_counter()
    run_parties(
        g,
        sums.t,
        ref.shape[0],
        ell,
        [targets[i] for i in keep],
        1.0,
        [seeds[i] for i in keep],
        [sums.states[i] for i in keep],
    )
    out["loop_s"] = time.perf_counter() - t0
    return out


def competitor() -> subprocess.Popen:
    """A CPU-bound process on one core (a busy Python loop)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(n_g: int, loaded: bool, work: Path) -> dict:
    run_dir = work / f"n{n_g}_{'load' if loaded else 'idle'}"
    shutil.rmtree(run_dir, ignore_errors=True)
    busy = competitor() if loaded else None
    try:
        stages = {s: run_stage(s, run_dir, n_g) for s in STAGES}
        p = parts(run_dir)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return {
        "wall_s": {s: round(w, 3) for s, (w, _) in stages.items()},
        "peak_rss_mib": {s: round(r, 1) for s, (_, r) in stages.items()},
        "parts_s": {k: round(v, 3) for k, v in p.items()},
        "digest": digest(run_dir),
    }


def median(rows: list[dict], *keys: str) -> float:
    vals = []
    for r in rows:
        v = r
        for k in keys:
            v = v[k]
        vals.append(v)
    return float(np.median(vals))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-load", action="store_true", help="idle runs only")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--condition",
        choices=["stable", "individual"],
        default="stable",
        help="reward.condition (stable is infeasible below ~10k candidates)",
    )
    args = p.parse_args()
    CONDITION[0] = f"reward.condition={args.condition}"
    os.environ["OMP_NUM_THREADS"] = "1"
    hardware = (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, Python {sys.version.split()[0]}"
    )
    lines = []
    with tempfile.TemporaryDirectory(prefix="floor_") as tmp:
        for n_g in args.sizes:
            runs = {"idle": [], "load": []}
            for _ in range(args.repeats):
                for loaded in (False,) if args.no_load else (False, True):
                    key = "load" if loaded else "idle"
                    runs[key].append(measure(n_g, loaded, Path(tmp)))
            digests = {r["digest"] for rs in runs.values() for r in rs}
            if len(digests) != 1:
                raise SystemExit(f"n_G={n_g}: runs disagree: {sorted(digests)}")
            row = {
                "n_g": n_g,
                "hardware": hardware,
                "repeats": args.repeats,
                "condition": args.condition,
            }
            for key, rs in runs.items():
                if not rs:
                    continue
                floor = median(rs, "parts_s", "floor_s")
                value = median(rs, "wall_s", "value")
                sample = median(rs, "wall_s", "sample")
                row[key] = {
                    "floor_s": round(floor, 3),
                    "value_s": round(value, 3),
                    "value_over_floor": round(value / floor, 2),
                    "sample_s": round(sample, 3),
                    "sample_over_floor": round(sample / floor, 2),
                    "lengthscale_s": round(median(rs, "parts_s", "lengthscale_s"), 3),
                    "block_pass_s": round(median(rs, "parts_s", "block_pass_s"), 3),
                    "loop_s": round(median(rs, "parts_s", "loop_s"), 3),
                    "peak_rss_mib": {
                        s: max(r["peak_rss_mib"][s] for r in rs) for s in STAGES
                    },
                }
            if runs["load"]:
                row["load_over_idle"] = {
                    s: round(
                        median(runs["load"], "wall_s", s)
                        / median(runs["idle"], "wall_s", s),
                        2,
                    )
                    for s in ("value", "sample")
                }
            row["digest"] = digests.pop()[:16]
            print(json.dumps(row), flush=True)
            lines.append(row)
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in lines))


if __name__ == "__main__":
    main()
