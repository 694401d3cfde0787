"""The figures of the ``fl`` stage, docs/cgsv.md §7 and §8.

Formatting only, no math: everything drawn is read from the rows of ``rounds.csv``,
the simulation summary and the rows of ``sv_check.csv``. Figures are built on
`matplotlib.figure.Figure` (no pyplot state) and returned: the ``fl`` stage saves
them with `pipeline.figures.save.save_figure`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

__all__ = [
    "accuracy_figure",
    "fairness_figure",
    "fl_figures",
    "r_q_figure",
    "sv_check_figure",
]


def _series(
    rows: Sequence[Mapping[str, Any]], method: str, beta: Any, key: str
) -> dict[int, list[tuple[int, float]]]:
    """{party: [(round, value)]} of one method's non-empty column ``key``."""
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["method"] == method and r["beta"] == beta and r[key] is not None:
            out[r["party"]].append((r["round"], r[key]))
    return out


def fl_figures(
    rows: Sequence[Mapping[str, Any]],
    body: Mapping[str, Any],
    sv_rows: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Figure]:
    """The figures of docs/cgsv.md §7 that apply to this run, by name.

    Args:
        rows: the rows of ``rounds.csv`` (`rewards.cgsv.simulation.ROUND_COLUMNS`).
        body: ``SimulationSummary.to_dict()``.
        sv_rows: the rows of ``sv_check.csv``, or ``None``.

    Returns:
        ``accuracy`` and ``r_q``; ``fairness`` when Standalone ran; ``sv_check``
        when it ran.
    """
    figures = {
        "accuracy": accuracy_figure(rows, body),
        "r_q": r_q_figure(rows, body["cgsv"]),
    }
    if body["standalone"] is not None:
        figures["fairness"] = fairness_figure(body)
    if sv_rows:
        figures["sv_check"] = sv_check_figure(sv_rows)
    return figures


def accuracy_figure(
    rows: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> Figure:
    """Per-party test accuracy by round, one panel per method, Standalone dashed."""
    methods = [("cgsv", c["beta"]) for c in body["cgsv"]]
    if body["fedavg"] is not None:
        methods.append(("fedavg", None))
    standalone = _series(rows, "standalone", None, "test_acc")
    fig = Figure(figsize=(5 * len(methods), 4))
    for k, (method, beta) in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), k + 1)
        for party, pts in sorted(_series(rows, method, beta, "test_acc").items()):
            line = ax.plot(*zip(*pts, strict=True), label=f"party {party}")[0]
            if party in standalone:
                ax.plot(
                    *zip(*standalone[party], strict=True), ls="--", c=line.get_color()
                )
        ax.set(
            title=method + ("" if beta is None else f" β={beta}"),
            xlabel="round",
            ylabel="test accuracy (Standalone dashed)",
        )
        ax.legend(fontsize=7)
    return fig


def r_q_figure(
    rows: Sequence[Mapping[str, Any]], cgsv: Sequence[Mapping[str, Any]]
) -> Figure:
    """The importance r and fraction q per party by round, one row per β.

    Rounds a party missed (Flower engine, docs/cgsv.md §2.1) are marked ×.
    """
    fig = Figure(figsize=(10, 3.5 * len(cgsv)), layout="constrained")
    for k, c in enumerate(cgsv):
        for j, key in enumerate(("r", "q")):
            ax = fig.add_subplot(len(cgsv), 2, 2 * k + j + 1)
            for party, pts in sorted(_series(rows, "cgsv", c["beta"], key).items()):
                line = ax.plot(*zip(*pts, strict=True), label=f"party {party}")[0]
                gone = [
                    (r["round"], r[key])
                    for r in rows
                    if r.get("missing") == 1
                    and r["method"] == "cgsv"
                    and r["beta"] == c["beta"]
                    and r["party"] == party
                ]
                if gone:
                    xs, ys = zip(*gone, strict=True)
                    ax.scatter(xs, ys, marker="x", color=line.get_color())
            ax.set(title=f"{key} (β={c['beta']})", xlabel="round", ylabel=key)
            ax.legend(fontsize=7)
    return fig


def fairness_figure(body: Mapping[str, Any]) -> Figure:
    """Standalone against final test accuracy, per method, with its Pearson."""
    finals = [
        (f"cgsv β={c['beta']}", c["test_acc"], c["fairness"]) for c in body["cgsv"]
    ]
    if body["fedavg"] is not None:
        fa = body["fedavg"]
        finals.append(("fedavg", fa["test_acc"], fa["fairness"]))
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    for name, acc, fair in finals:
        ax.scatter(
            body["standalone"]["test_acc"], acc, label=f"{name} (Pearson {_fmt(fair)})"
        )
    ax.set(xlabel="Standalone test accuracy", ylabel="final test accuracy")
    ax.legend(fontsize=7)
    return fig


def sv_check_figure(sv_rows: Sequence[Mapping[str, Any]]) -> Figure:
    """L1 of ψ and of Monte Carlo to the exact Shapley value: N sweep, d sweep (§8)."""
    n_sweep = [r for r in sv_rows if r["dim"] == 1000]
    d_sweep = [r for r in sv_rows if r["n_parties"] == 10 and r["dim"] != 1000]
    fig = Figure(figsize=(10, 4))
    for k, (sweep, x_key, scale) in enumerate(
        ((n_sweep, "n_parties", "linear"), (d_sweep, "dim", "log"))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        for est, label in (("psi", "CGSV ψ"), ("mc", "Monte Carlo")):
            ax.errorbar(
                [r[x_key] for r in sweep],
                [r[f"{est}_l1_mean"] for r in sweep],
                yerr=[r[f"{est}_l1_std"] for r in sweep],
                marker="o",
                label=label,
            )
        ax.set(xlabel=x_key, ylabel="L1 to exact Shapley", xscale=scale)
        ax.legend(fontsize=7)
    return fig


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
