"""Test metrics, ``metrics.csv`` columns and the per-method summary (docs/nash.md §5).

Hard-prediction AUC per group after every epoch (:func:`group_metrics`), one
:class:`EpochMetrics` row per (method, seed, epoch), the columns and rows of
``metrics.csv`` (:func:`metrics_columns`, :func:`metrics_rows`), and the
``summary.json`` entry of each method at its reported epoch (:func:`summarise`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: The headline test metrics: columns of ``metrics.csv``, summarised per method in
#: ``summary.json`` and the manifest (docs/nash.md §5).
HEADLINE_METRICS: tuple[str, ...] = (
    "overall_auc",
    "worst_group_auc",
    "max_group_auc_gap",
)


def hard_auc(y: NDArray[np.int64], pred: NDArray[np.int64]) -> float:
    """ROC AUC of hard 0/1 predictions = (TPR + TNR)/2, balanced accuracy.

    Raises:
        ValueError: if ``y`` lacks a class (AUC undefined).

    Example:
        >>> round(hard_auc(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])), 6)
        0.75
    """
    pos, neg = y == 1, y == 0
    if not pos.any() or not neg.any():
        raise ValueError("Argument `y` must contain both classes for an AUC")
    return float((np.mean(pred[pos] == 1) + np.mean(pred[neg] == 0)) / 2.0)


@dataclass(frozen=True)
class GroupMetrics:
    """Test metrics of one epoch (docs/nash.md §5 ``metrics.csv``)."""

    overall_auc: float
    worst_group_auc: float
    max_group_auc_gap: float
    group_auc: tuple[float, ...]
    group_tpr: tuple[float, ...]


def group_metrics(
    y: NDArray[np.int64], s: NDArray[np.int64], pred: NDArray[np.int64], n_groups: int
) -> GroupMetrics:
    """Overall and per-group hard AUC, worst group, max gap and per-group TPR.

    Example:
        >>> y = np.array([0, 1, 0, 1]); s = np.array([0, 0, 1, 1])
        >>> m = group_metrics(y, s, np.array([0, 1, 1, 1]), 2)
        >>> [round(v, 6) for v in (m.overall_auc, *m.group_auc, m.max_group_auc_gap)]
        [0.75, 1.0, 0.5, 0.5]
    """
    aucs = tuple(hard_auc(y[s == g], pred[s == g]) for g in range(n_groups))
    tprs = tuple(
        float(np.mean(pred[(s == g) & (y == 1)] == 1)) for g in range(n_groups)
    )
    return GroupMetrics(hard_auc(y, pred), min(aucs), max(aucs) - min(aucs), aucs, tprs)


@dataclass(frozen=True)
class EpochMetrics:
    """One row of ``metrics.csv``: a (method, seed, epoch) (docs/nash.md §5).

    Attributes:
        method, seed, epoch, stage: identification (epoch from 1).
        test: the test metrics after the epoch.
        conflict_rate: fraction of the meta batches in conflict (0 for erm/dro).
        nbs_success_rate: fraction of meta batches whose NBS succeeded (1 for
            erm/dro, which do not bargain).
        nbs_failures: meta batches whose NBS failed.
        zero_weight_steps: meta batches skipped because relu(−h) = 0.
        train_loss: mean over batches of the unweighted mean CE.
        epoch_time_s: wall time of the epoch.
        nbs_iterations: Newton iterations of the epoch's solves.
        nbs_failure_reasons: the reason string of each failed solve.
        n_batches: mini-batches in the epoch.
    """

    method: str
    seed: int
    epoch: int
    stage: int
    test: GroupMetrics
    conflict_rate: float
    nbs_success_rate: float
    nbs_failures: int
    zero_weight_steps: int
    train_loss: float
    epoch_time_s: float
    nbs_iterations: tuple[int, ...] = field(default=())
    nbs_failure_reasons: tuple[str, ...] = field(default=())
    n_batches: int = 0


def metrics_columns(groups: Sequence[str]) -> list[str]:
    """The columns of ``metrics.csv`` (docs/nash.md §5) for these group names.

    Example:
        >>> metrics_columns(("a", "b"))[6:11]
        ['max_group_auc_gap', 'auc_a', 'auc_b', 'tpr_a', 'tpr_b']
    """
    return [
        "method",
        "seed",
        "epoch",
        "stage",
        *HEADLINE_METRICS,
        *(f"auc_{g}" for g in groups),
        *(f"tpr_{g}" for g in groups),
        "conflict_rate",
        "nbs_success_rate",
        "zero_weight_steps",
        "train_loss",
        "epoch_time_s",
    ]


def metrics_rows(
    rows: Sequence[EpochMetrics], groups: Sequence[str]
) -> list[dict[str, Any]]:
    """One ``metrics.csv`` row per epoch row, keyed by :func:`metrics_columns`.

    ``epoch_time_s`` is rounded to 4 decimals; every other value is written as is.
    """
    columns = metrics_columns(groups)
    out = []
    for r in rows:
        t = r.test
        values = [
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
        out.append(dict(zip(columns, values, strict=True)))
    return out


# --- summary ------------------------------------------------------------------


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "sd": sd, "n": int(arr.size)}


def select_epoch(rows: Sequence[EpochMetrics], select: str) -> int:
    """The reported epoch of one method's rows: ``last``, or ``best_test_auc``.

    ``best_test_auc`` is the reference protocol: the epoch with the best seed-mean
    overall test AUC (it selects on the test set).

    Raises:
        ValueError: on an unknown rule or no rows.
    """
    if not rows:
        raise ValueError("Argument `rows` must not be empty")
    epochs = sorted({r.epoch for r in rows})
    if select == "last":
        return epochs[-1]
    if select == "best_test_auc":
        means = [
            np.mean([r.test.overall_auc for r in rows if r.epoch == e]) for e in epochs
        ]
        return epochs[int(np.argmax(means))]
    raise ValueError(
        f"Argument `select` must be 'last' or 'best_test_auc', got {select!r}"
    )


def summarise(rows: Sequence[EpochMetrics], select: str) -> dict[str, dict]:
    """Per method: mean ± sd over seeds at the selected epoch, conflict and NBS stats.

    Args:
        rows: every epoch row of every (method, seed).
        select: ``last`` or ``best_test_auc``.

    Returns:
        method -> summary dict (plain floats and ints, JSON-ready).
    """
    out: dict[str, dict] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        epoch = select_epoch(mine, select)
        at = [r for r in mine if r.epoch == epoch]
        iters = [i for r in mine for i in r.nbs_iterations]
        batches = sum(r.n_batches for r in mine)
        summary = {
            "epoch": epoch,
            "seeds": [r.seed for r in at],
            "overall_auc": _mean_sd([r.test.overall_auc for r in at]),
            "worst_group_auc": _mean_sd([r.test.worst_group_auc for r in at]),
            "max_group_auc_gap": _mean_sd([r.test.max_group_auc_gap for r in at]),
        }
        for stage in (1, 2):
            rs = [r for r in mine if r.stage == stage]
            summary[f"conflict_rate_stage{stage}"] = (
                float(np.mean([r.conflict_rate for r in rs])) if rs else None
            )
        if method not in ("erm", "dro"):
            failures = sum(r.nbs_failures for r in mine)
            summary |= {
                "nbs_success_rate": 1.0 - failures / batches,
                "nbs_failures": failures,
                "nbs_solves": batches,
                "nbs_iterations_mean": float(np.mean(iters)),
                "nbs_iterations_max": int(np.max(iters)),
                "nbs_failure_reasons": dict(
                    Counter(x for r in mine for x in r.nbs_failure_reasons)
                ),
                "zero_weight_steps": sum(r.zero_weight_steps for r in mine),
            }
        out[method] = summary
    return out
