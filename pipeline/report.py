"""The text of ``evaluate/report.md`` (formatting only, no math; docs/cgm.md §8.3).

The figures it links are drawn by `pipeline.figures.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import manifest
from rewards.cgm.evaluation import METRICS

# The authors' indicative numbers (docs/cgm.md §8.4): corr(α, metric after rewards).
AUTHORS = {
    "GMM equaldisjoint": (-0.993, -0.84, -0.986, -0.74, 0.69),
    "GMM unequal": (-0.918, -0.51, -0.81, -0.65, 0.72),
    "MNIST equaldisjoint": (-0.9996, 0.31, -0.963, -0.97, 0.76),
    "MNIST unequal": (-0.9916, -0.95, -0.73, -0.995, -0.95),
}


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
    privacy: dict[str, Any] | None = None,
) -> Path:
    """Write the human-readable report next to report.json (and privacy.json)."""
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
    lines += [
        "",
        "MMD² is the unbiased estimate and k-NN KL an estimate too: either can be "
        "slightly below 0 when a set is very close to the reference (docs/cgm.md "
        "§8.1). Each party's own report, `party_<i>.md`, explains its row in words.",
    ]
    fell = [r for r in rows if r.get("acc_weighted") is not None]
    if fell:
        lines.append(
            "Accuracy fell with the reward for parties "
            + ", ".join(str(r["party"]) for r in fell)
            + "; trained with the reward down-weighted (`evaluate.reward_weight`): "
            + ", ".join(f"party {r['party']} {_fmt(r['acc_weighted'])}" for r in fell)
            + " (docs/cgm.md §8.2)."
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
    if privacy is not None:
        lines += privacy_lines(privacy)
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


def privacy_lines(privacy: dict[str, Any]) -> list[str]:
    """The privacy section of report.md (docs/cgm.md §8.5)."""
    g = privacy["guard"]
    lines = [
        "",
        "## Privacy of the rewards",
        "",
        "DCR ratio: median distance of the reward rows to the closest training row, "
        "over the same for held-out real rows (about 1: no closer than fresh data; "
        "near 0: copies). Near copies: share of reward rows closer than the 1st "
        "percentile of real-to-real nearest distances. MIA AUC: training rows vs "
        "held-out rows scored by their distance to the closest reward row (0.5: "
        "the rewards do not tell members apart).",
        "",
        *_header(
            "party", "#rewards", "DCR ratio (feature)", "DCR ratio (data)",
            "near copies (feature)", "near copies (data)", "MIA AUC (feature)",
            "MIA AUC (data)",
        ),
    ]  # fmt: skip
    feat, data = privacy["spaces"]["feature"], privacy["spaces"]["data"]
    for i, (f, d) in enumerate(zip(feat["parties"], data["parties"], strict=True)):
        lines.append(
            f"| {i} | {f['n_rewards']} | {_fmt(_ratio(f))} | {_fmt(_ratio(d))} | "
            f"{_fmt(f['near_copy_share'])} | {_fmt(d['near_copy_share'])} | "
            f"{_fmt(f['mia_auc'])} | {_fmt(d['mia_auc'])} |"
        )
    setting = g["min_distance"]
    lines += [
        "",
        f"Guard `sample.min_distance = {setting!r}`: "
        + (
            "off (every candidate could be drawn)."
            if g["n_removed"] == 0 and setting == 0
            else f"distance {_fmt(g['distance_used'])} in the data space removed "
            f"{g['n_removed']} of {g['n_candidates']} candidates before sampling."
        ),
    ]
    return lines


def _ratio(p: dict[str, Any]) -> float | None:
    return None if p["dcr"] is None else p["dcr"]["ratio"]
