"""The ``fl`` stage: federated learning with CGSV gradient rewards (docs/cgsv.md).

Keeps or re-splits the pool's parties (docs/cgsv.md §4), runs `simulate` (Xu et al.,
NeurIPS 2021) or, with ``fl.engine = "flower"``, the same loop on a local Flower
federation (docs/federated.md), streams ``fl/rounds.csv``, then writes
``fl/summary.json``, ``fl/sv_check.csv`` (§8), the plots of §7, the manifest last.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from data.splits import split_indices
from pipeline import federation, manifest, paths
from pipeline.config import FlConfig, RunConfig
from pipeline.errors import UsageError
from pipeline.figures.fl import fl_figures
from pipeline.figures.save import save_figure
from pipeline.inputs import Pool, read_pool
from pipeline.manifest import STAGE_KEY
from rewards.cgsv.cosine_game import sv_check
from rewards.cgsv.party import batch_order_table
from rewards.cgsv.simulation import FLOWER_ROUND_COLUMNS, ROUND_COLUMNS, simulate
from rewards.classifiers import Preprocessor, build_classifier, resolve_classifier_kind

logger = logging.getLogger(__name__)

TABLES = ("data", "fl")
#: docs/cgsv.md §5: ``lr = "auto"`` and ``lr_decay = "auto"`` per model.
AUTO_LR = {"cnn": 1e-3, "mlp": 1e-2}
AUTO_LR_DECAY = {"cnn": 0.955, "mlp": 0.977}
_IMAGE_SHAPES = ((28, 28), (1, 28, 28))


def _fl_parties(
    f: FlConfig, pool: Pool, seed: np.random.SeedSequence
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The parties of docs/cgsv.md §4: the pool's, or a re-split of the pool."""
    n_pool = len(pool.parties)
    if f.split == "pool":
        if f.n_parties not in (0, n_pool):
            raise UsageError(
                f'[fl] n_parties: {f.n_parties} with split = "pool", expected 0 or '
                f"the pool's {n_pool} parties (or choose another fl.split)"
            )
        return pool.parties
    x, y = pool.pooled
    n = f.n_parties or n_pool
    try:
        parts = split_indices(y, n, f.split, n_classes=pool.n_classes, seed=seed)
    except ValueError as e:
        raise UsageError(f"[fl] split: {e}") from e
    return [(x[p], y[p]) for p in parts]


def _model_kind(f: FlConfig, sample_shape: tuple[int, ...]) -> str:
    if f.model == "cnn" and sample_shape not in _IMAGE_SHAPES:
        raise UsageError(
            f'[fl] model: "cnn" needs 28×28 images, the pool holds samples of shape '
            f'{sample_shape}; use "mlp" or "auto"'
        )
    return resolve_classifier_kind(f.model, sample_shape)


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Run CGSV and the baselines and write the ``fl`` outputs.

    Args:
        cfg: the run config (reads ``[fl]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing/stale pool, a split impossible for the data, or a
            model the data cannot feed.
    """
    f = cfg.fl
    pool = read_pool(run_dir)
    # four children, one of them for CFFL's validation draw (docs/cgsv.md §3.3)
    split_ss, order_ss, _cffl_ss, sv_ss = manifest.stage_seed(cfg.seed, "fl").spawn(4)
    parties = _fl_parties(f, pool, split_ss)
    x_pool, _ = pool.pooled
    kind = _model_kind(f, tuple(x_pool.shape[1:]))
    lr = AUTO_LR[kind] if f.lr == "auto" else f.lr
    lr_decay = AUTO_LR_DECAY[kind] if f.lr_decay == "auto" else f.lr_decay
    pre = Preprocessor.fit(kind, x_pool)
    data = [(pre.transform(x), y) for x, y in parties]
    test = (pre.transform(pool.test[0]), pool.test[1])
    torch_seed = manifest.stage_int_seed(cfg.seed, "fl")
    model = build_classifier(kind, x_pool.shape[1:], pool.n_classes, seed=torch_seed)
    sizes = [len(y) for _, y in parties]
    orders = batch_order_table(sizes, f.rounds, f.local_epochs, seed=order_ss)
    engine = federation.engine(f, simulate, kind, x_pool.shape[1:], pool.n_classes)
    t0 = manifest.begin(run_dir, "fl")
    logger.info("fl: %s, lr %g, decay %g, party sizes %s", kind, lr, lr_decay, sizes)
    out = functools.partial(paths.fl_file, run_dir)
    rows: list[dict[str, Any]] = []
    outputs = {"rounds": out("rounds.csv")}
    columns = FLOWER_ROUND_COLUMNS if f.engine == "flower" else ROUND_COLUMNS
    with manifest.CsvStream(outputs["rounds"], columns) as stream:

        def on_round(row: dict[str, Any]) -> None:
            stream.write(row)
            rows.append(row)

        result = engine(
            model, data, test, rounds=f.rounds, local_epochs=f.local_epochs,
            batch_size=f.batch_size, lr=lr, lr_decay=lr_decay, gamma=f.gamma,
            alpha=f.alpha, beta=f.beta, aggregator=f.aggregator,
            baselines=f.baselines, eval_every=f.eval_every, orders=orders,
            device=f.device, on_round=on_round, progress=progress,
        )  # fmt: skip
    sv, sv_rows = [], []
    if f.sv_check:
        sv = sv_check(trials=f.sv_trials, seed=sv_ss, progress=progress)
        sv_rows = [r.to_dict() for r in sv]
        outputs["sv_check"] = manifest.write_csv(
            out("sv_check.csv"), list(sv_rows[0]), sv_rows
        )
    seed = {"root": cfg.seed, "stage_key": STAGE_KEY["fl"], "torch": torch_seed}
    body = result.to_dict()
    summary = {
        "config": cfg.tables(*TABLES), "seed": seed,
        "source": pool.attrs.get("source"), "split": f.split, "model": kind,
        "lr": lr, "lr_decay": lr_decay, **body,
        "sv_check": {"file": "fl/sv_check.csv", "rows": [r.summary() for r in sv]}
        if f.sv_check else None,
    }  # fmt: skip
    outputs["summary"] = manifest.write_json(out("summary.json"), summary)
    for name, fig in fl_figures(rows, body, sv_rows or None).items():
        outputs[f"{name}_png"] = save_figure(fig, out(f"{name}.png"))
    manifest.finish(
        run_dir, "fl", config=cfg.tables(*TABLES), seed=seed, inputs=pool.inputs,
        outputs=outputs, started=t0,
        metrics={
            "cgsv_fairness": [r["fairness"] for r in body["cgsv"]],
            "cgsv_reward_fairness": [r["reward_fairness"] for r in body["cgsv"]],
            "fedavg_fairness": (body["fedavg"] or {}).get("fairness"),
            "overhead": body["timing"]["overhead"],
        },
    )  # fmt: skip
    return outputs
