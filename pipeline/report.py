"""``evaluate/report.md`` and its figures (formatting only, no math; docs/cgm.md §8.3).

Figures use matplotlib's object API with the Agg canvas (no pyplot state) and are
written to a temporary name, then renamed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from data.h5 import read_h5
from gan.quality import sample_grid_png
from pipeline import manifest, paths
from pipeline.figures.save import save_figure
from pipeline.stages.common import Pool
from rewards.cgm.evaluation import METRICS
from valuation.result import PartyValues

# The authors' indicative numbers (docs/cgm.md §8.4): corr(α, metric after rewards).
AUTHORS = {
    "GMM equaldisjoint": (-0.993, -0.84, -0.986, -0.74, 0.69),
    "GMM unequal": (-0.918, -0.51, -0.81, -0.65, 0.72),
    "MNIST equaldisjoint": (-0.9996, 0.31, -0.963, -0.97, 0.76),
    "MNIST unequal": (-0.9916, -0.95, -0.73, -0.995, -0.95),
}


def write_figures(
    run_dir: Path,
    body: dict[str, Any],
    cand: dict[str, np.ndarray],
    pool: Pool,
    n_classes: int,
    values: PartyValues,
) -> dict[str, Path]:
    """reward_vs_alpha.png, value_traces.png, class_hist.png, samples_party_<i>.png."""
    rows = body["parties"]
    out: dict[str, Path] = {}
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
        title=f"Reward values (ρ = {body['rho']:.3g})",
    )
    ax.legend(fontsize=8)
    out["reward_vs_alpha"] = save_figure(
        fig, paths.evaluate_file(run_dir, "reward_vs_alpha.png")
    )

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for r in rows:
        trace = _reward_dataset(run_dir, r["party"], "value_trace")
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
    out["value_traces"] = save_figure(
        fig, paths.evaluate_file(run_dir, "value_traces.png")
    )

    reward_idx = {
        i: _reward_dataset(run_dir, i, "candidate_index")
        for i in (r["party"] for r in rows)
    }
    fig = Figure(figsize=(2.2 * len(rows), 2.6))
    for k, r in enumerate(rows):
        ax = fig.add_subplot(1, len(rows), k + 1)
        own = np.bincount(pool.parties[r["party"]][1], minlength=n_classes)
        idx = reward_idx[r["party"]]
        rew = np.bincount(cand["y"][idx], minlength=n_classes)
        ax.bar(np.arange(n_classes), own, label="own")
        ax.bar(np.arange(n_classes), rew, bottom=own, label="reward")
        ax.set_title(f"party {r['party']}", fontsize=9)
        ax.set_xticks(range(n_classes))
        ax.tick_params(labelsize=6)
    fig.axes[0].legend(fontsize=7)
    out["class_hist"] = save_figure(fig, paths.evaluate_file(run_dir, "class_hist.png"))

    for r in rows:
        i = r["party"]
        idx = reward_idx[i]
        path = paths.evaluate_file(run_dir, f"samples_party_{i}.png")
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            if len(idx):
                sample_grid_png(
                    f,
                    cand["x"][idx],
                    cand["y"][idx],
                    n_classes=n_classes,
                    real_x=pool.parties[i][0],
                    title=f"party {i}: rewards by class"
                    + ("" if cand["x"].ndim > 2 else " (grey: own data)"),
                )
        os.replace(tmp, path)
        out[f"samples_party_{i}"] = path
    return out


def _reward_dataset(run_dir: Path, party: int, name: str) -> np.ndarray:
    data, _ = read_h5(paths.reward_file(run_dir, party), names=(name,))
    return data[name]


def _header(*cells: str) -> list[str]:
    """The header row and the separator row of a Markdown table."""
    return ["| " + " | ".join(cells) + " |", "|---" * len(cells) + "|"]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_markdown(
    path: Path,
    body: dict[str, Any],
    figures: dict[str, Path],
    wall_times: dict[str, float],
) -> Path:
    """Write the human-readable report next to report.json."""
    rows = body["parties"]
    lines = [
        "# synthreward evaluation report",
        "",
        f"ρ = {_fmt(body['rho'])}, v* = {_fmt(body['v_star'])}, "
        f"lengthscale ℓ = {_fmt(body['lengthscale'])}",
        "",
        "## Parties",
        "",
        "| party | α | r_i | achieved | stop | #rewards | MMD² before → after | "
        "k-NN KL after | W2 after | imbalance after | acc D_i | acc D_i ∪ R_i | gain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(
            f"| {r['party']} | {_fmt(r['alpha'])} | {_fmt(r['reward_value'])} | "
            f"{_fmt(r['achieved_value'])} | {r['stop_reason']} | {r['n_rewards']} | "
            f"{_fmt(b['mmd2'])} → {_fmt(a['mmd2'])} | {_fmt(a['knn_kl'])} | "
            f"{_fmt(a['w2'])} | {_fmt(a['class_imbalance'])} | {_fmt(r['acc_before'])} "
            f"| {_fmt(r['acc_after'])} | {_fmt(r['gain'])} |"
        )
    corr = body["correlations"]
    lines += [
        "",
        "## Correlation with α (after rewards)",
        "",
        *_header("metric", "corr(α, ·)"),
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in corr.items()]
    sweep = body.get("sweep") or {}
    if sweep:
        s = sweep["summary"]
        lines += [
            "",
            "## β sweep",
            "",
            *_header("β", *METRICS, "#rewards per party"),
        ]
        for row, n_rew in zip(sweep["per_beta"], sweep["n_rewards"], strict=True):
            lines.append(
                f"| {_fmt(row['inv_temp'])} | "
                + " | ".join(_fmt(row[m]) for m in METRICS)
                + f" | {n_rew} |"
            )
        lines.append(
            "| mean ± s.e. | "
            + " | ".join(
                f"{_fmt(s['corr_alpha'][m]['mean'])} ± {_fmt(s['corr_alpha'][m]['se'])}"
                for m in METRICS
            )
            + " | |"
        )
        lines += [
            "",
            f"corr(β, #rewards) averaged over parties: "
            f"{_fmt(s['corr_beta_n_rewards'])}; corr(β, MMD²): "
            f"{_fmt(s['corr_beta_mmd2'])}.",
        ]
    lines += [
        "",
        "The authors' indicative corr(α, ·) after rewards (docs/cgm.md §8.4):",
        "",
        *_header("data / split", *METRICS),
    ]
    lines += [
        f"| {k} | " + " | ".join(_fmt(v) for v in vals) + " |"
        for k, vals in AUTHORS.items()
    ]
    q = body.get("gan_quality") or {}
    if q:
        lines += ["", "## Candidate quality", "", *_header("figure", "value")]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in q.items()]
    lines += ["", "## Figures", ""]
    lines += [
        f"![{name}]({p.name})" for name, p in figures.items() if p.suffix == ".png"
    ]
    lines += [
        "",
        "Stage wall times (s): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in wall_times.items()),
    ]
    return manifest.atomic_write_text(path, "\n".join(lines) + "\n")
