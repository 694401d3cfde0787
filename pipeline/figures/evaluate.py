"""The figures of the ``evaluate`` stage (docs/cgm.md §8.3).

reward_vs_alpha.png, value_traces.png, class_hist.png and samples_party_<i>.png in
``evaluate/``; matplotlib's object API on the Agg canvas, each file written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from data.atomic import atomic_path
from data.h5 import read_h5
from gan.quality import sample_grid_png
from pipeline import paths
from pipeline.figures.save import save_figure
from pipeline.inputs import Pool
from valuation.result import PartyValues


def write_figures(
    run_dir: Path,
    body: dict[str, Any],
    cand: dict[str, np.ndarray],
    pool: Pool,
    values: PartyValues,
) -> dict[str, Path]:
    """Write the evaluate stage's figures into ``run_dir/evaluate/``.

    Args:
        run_dir: the run folder (the reward files are read back from it).
        body: report.json's content (``parties``, ``rho``).
        cand: ``x`` and ``y`` of the candidates.
        pool: the pool (own data per party, ``n_classes``).
        values: values.json (``v_single``, ``v_max``).

    Returns:
        Name -> path of reward_vs_alpha.png, value_traces.png, class_hist.png and
        samples_party_<i>.png.
    """
    rows = body["parties"]
    figure = paths.evaluate_file
    traces = [_reward_dataset(run_dir, r["party"], "value_trace") for r in rows]
    reward_idx = {
        r["party"]: _reward_dataset(run_dir, r["party"], "candidate_index")
        for r in rows
    }
    out = {
        "reward_vs_alpha": save_figure(
            plot_reward_vs_alpha(rows, values, body["rho"]),
            figure(run_dir, "reward_vs_alpha.png"),
        ),
        "value_traces": save_figure(
            plot_value_traces(rows, traces), figure(run_dir, "value_traces.png")
        ),
    }
    out["class_hist"] = save_figure(
        plot_class_hist(rows, reward_idx, cand["y"], pool),
        figure(run_dir, "class_hist.png"),
    )
    for i, idx in reward_idx.items():
        path = figure(run_dir, f"samples_party_{i}.png")
        with atomic_path(path) as tmp:  # an empty file when a party got no reward
            if len(idx):
                with tmp.open("wb") as f:
                    sample_grid_png(
                        f,
                        cand["x"][idx],
                        cand["y"][idx],
                        n_classes=pool.n_classes,
                        real_x=pool.parties[i][0],
                        title=f"party {i}: rewards by class"
                        + ("" if cand["x"].ndim > 2 else " (grey: own data)"),
                    )
        out[f"samples_party_{i}"] = path
    return out


def plot_reward_vs_alpha(
    rows: list[dict[str, Any]], values: PartyValues, rho: float
) -> Figure:
    """Reward value, achieved value, v(D_i) and v(D_i ∪ G) against α."""
    alpha = np.array([r["alpha"] for r in rows])
    order = np.argsort(alpha)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key, label, style in (
        ("reward_value", "reward value r_i", "o-"),
        ("achieved_value", "achieved v(D_i ∪ R_i)", "s--"),
    ):
        ax.plot(
            alpha[order], np.array([r[key] for r in rows])[order], style, label=label
        )
    ax.plot(alpha[order], np.array(values.v_single)[order], "^:", label="v(D_i)")
    ax.plot(alpha[order], np.array(values.v_max)[order], "v:", label="v(D_i ∪ G)")
    ax.set(
        xlabel="α (normalised Shapley value)",
        ylabel="value",
        title=f"Reward values (ρ = {rho:.3g})",
    )
    ax.legend(fontsize=8)
    return fig


def plot_value_traces(rows: list[dict[str, Any]], traces: list[np.ndarray]) -> Figure:
    """Each party's v(D_i ∪ R) after each addition, its reward value dotted."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for r, trace in zip(rows, traces, strict=True):
        (line,) = ax.plot(
            np.arange(1, len(trace) + 1),
            trace,
            label=f"party {r['party']} (α={r['alpha']:.2f})",
        )
        ax.axhline(r["reward_value"], color=line.get_color(), ls=":", lw=0.8)
    ax.set(
        xlabel="rewards added",
        ylabel="v(D_i ∪ R)",
        xscale="log",
        title="Value traces (dotted: reward value)",
    )
    ax.legend(fontsize=8)
    return fig


def plot_class_hist(
    rows: list[dict[str, Any]],
    reward_idx: dict[int, np.ndarray],
    cand_y: np.ndarray,
    pool: Pool,
) -> Figure:
    """Per party, the class counts of its own data with its rewards stacked on top."""
    n_classes = pool.n_classes
    fig = Figure(figsize=(2.2 * len(rows), 2.6))
    for k, r in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), k + 1)
        own = np.bincount(pool.parties[r["party"]][1], minlength=n_classes)
        rew = np.bincount(cand_y[reward_idx[r["party"]]], minlength=n_classes)
        ax.bar(np.arange(n_classes), own, label="own")
        ax.bar(np.arange(n_classes), rew, bottom=own, label="reward")
        ax.set_title(f"party {r['party']}", fontsize=9)
        ax.set_xticks(range(n_classes))
        ax.tick_params(labelsize=6)
    fig.axes[0].legend(fontsize=7)
    return fig


def _reward_dataset(run_dir: Path, party: int, name: str) -> np.ndarray:
    data, _ = read_h5(paths.reward_file(run_dir, party), names=(name,))
    return data[name]
