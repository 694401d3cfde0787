"""Tests of `pipeline.figures.evaluate` (the evaluate stage's plots)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from pipeline.figures.evaluate import (
    plot_class_hist,
    plot_reward_vs_alpha,
    plot_value_traces,
)
from pipeline.inputs import Pool

ROWS = [
    {"party": 0, "alpha": 1.0, "reward_value": 0.5, "achieved_value": 0.52},
    {"party": 1, "alpha": 0.4, "reward_value": 0.3, "achieved_value": 0.31},
]


def test_reward_vs_alpha_and_traces_draw_one_axes() -> None:
    values = SimpleNamespace(v_single=[0.2, 0.1], v_max=[0.6, 0.5])
    fig = plot_reward_vs_alpha(ROWS, values, 0.5)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 4
    fig = plot_value_traces(ROWS, [np.array([0.3, 0.52]), np.array([0.31])])
    assert len(fig.axes[0].lines) == 4  # a trace and a dotted target per party


def test_class_hist_one_panel_per_party() -> None:
    y = np.array([0, 1, 1])
    pool = Pool(
        [(np.zeros((3, 2)), y), (np.zeros((3, 2)), y)], (y, y), {"n_classes": 2}, {}
    )
    idx = {0: np.array([0, 1]), 1: np.array([], dtype=np.int64)}
    fig = plot_class_hist(ROWS, idx, np.array([1, 0, 1]), pool)
    assert len(fig.axes) == 2
