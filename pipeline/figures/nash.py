"""The two figures of the ``nash`` stage (docs/nash.md §5): AUC and conflict by epoch.

Formatting only: every curve is the seed mean of a column of the epoch rows
(:class:`rewards.nash.evaluation.EpochMetrics`). Figures are built with the object
API and returned; the ``nash`` stage saves them with
:func:`pipeline.figures.save.save_figure`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from rewards.nash.evaluation import EpochMetrics

__all__ = ["plot_auc", "plot_conflict"]


def _seed_mean(
    rows: Sequence[EpochMetrics], method: str, value: Callable[[EpochMetrics], float]
) -> tuple[list[int], list[float]]:
    """(epochs, seed-mean of ``value``) of one method's rows."""
    mine = [r for r in rows if r.method == method]
    epochs = sorted({r.epoch for r in mine})
    means = [np.mean([value(r) for r in mine if r.epoch == e]) for e in epochs]
    return epochs, means


def _methods(rows: Sequence[EpochMetrics]) -> list[str]:
    return list(dict.fromkeys(r.method for r in rows))


def plot_auc(rows: Sequence[EpochMetrics], t_bar: int) -> Figure:
    """``auc.png``: overall and worst-group test AUC by epoch, one line per method.

    Args:
        rows: every epoch row of every (method, seed).
        t_bar: the last bargaining epoch T_bar (a dotted line after it).

    Returns:
        The figure (the caller saves it).
    """
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("overall", lambda r: r.test.overall_auc),
        ("worst-group", lambda r: r.test.worst_group_auc),
    )
    for ax, (title, value) in zip(axes, panels, strict=True):
        for m in _methods(rows):
            ax.plot(*_seed_mean(rows, m, value), label=m)
        ax.axvline(t_bar + 0.5, color="grey", linestyle=":")
        ax.set(title=f"{title} test AUC (seed mean)", xlabel="epoch")
    axes[0].legend(fontsize=8)
    return fig


def plot_conflict(rows: Sequence[EpochMetrics], t_bar: int) -> Figure:
    """``conflict.png``: the conflict rate by epoch of the meta methods.

    Args:
        rows: every epoch row of every (method, seed).
        t_bar: the last bargaining epoch T_bar (a dotted line after it).

    Returns:
        The figure (the caller saves it).
    """
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    for m in _methods(rows):
        if m not in ("erm", "dro"):
            ax.plot(*_seed_mean(rows, m, lambda r: r.conflict_rate), label=m)
    ax.axvline(t_bar + 0.5, color="grey", linestyle=":")
    ax.set(title="conflict rate (seed mean)", xlabel="epoch", ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    return fig
