"""The three figures of docs/contract.md §4: menu, reward distributions, contributions.

Formatting only, no math: everything drawn is read from a `ContractResult`. Figures are
built on `matplotlib.figure.Figure` with the Agg canvas, so no pyplot state or global
backend is touched, and returned: the ``contract`` stage saves them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rewards.contract.solve import ContractResult

__all__ = ["plot_contributions", "plot_menu", "plot_rewards"]

_DPI = 120
_LOG_AXIS_RATIO = 20.0  # use a log m-axis when contributions span more than this


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colors(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.85, n)]


def plot_menu(result: ContractResult) -> Figure:
    """``menu.png``: v(a(m)), reservation and isoprofit lines, contracts, t̄ (§4).

    Args:
        result: the solved contract.

    Returns:
        The figure (the caller saves it).
    """
    acc, v_scale = result.accuracy, result.value_scale
    m_all = np.concatenate([result.m, result.m_res[result.m_res > 0]])
    m_hi = 1.3 * float(m_all.max())
    positive = m_all[m_all > 0]
    log_axis = positive.size > 0 and m_hi / positive.min() > _LOG_AXIS_RATIO
    m_lo = 0.5 * float(min(positive.min(), acc.zero_crossing)) if log_axis else 0.0
    grid = (
        np.geomspace(max(m_lo, 1e-9), m_hi, 800)
        if log_axis
        else np.linspace(0, m_hi, 800)
    )

    fig = _new_figure(8.0, 5.5)
    ax = fig.add_subplot()
    ax.plot(grid, v_scale * acc.value(grid), color="black", lw=2, label="v(a(m)) alone")
    for i, col in enumerate(_colors(result.n_types)):
        c = result.costs[i]
        label = f"type {i + 1} (c={c:g})"
        ax.plot(grid, result.f[i] + c * grid, color=col, ls="--", lw=1, alpha=0.7)
        ax.plot(grid, result.u[i] + c * grid, color=col, ls="-", lw=1, alpha=0.7)
        ax.axhline(result.t_bar[i], color=col, ls=":", lw=1)
        ax.plot(result.m[i], result.t[i], "o", color=col, ms=8, label=label)
        if result.m_res[i] > 0:
            v_res = v_scale * float(acc.value(result.m_res[i]))
            ax.plot(result.m_res[i], v_res, "x", color=col, ms=9, mew=2)
    if log_axis:
        ax.set_xscale("log")
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0.0, 1.05 * v_scale * acc.supremum)
    ax.set_xlabel("contribution m (data points)")
    ax.set_ylabel("model value t")
    ax.set_title(
        "Menu: o contract (m_i, t_i), x reservation; -- reservation line, "
        "— isoprofit, ⋯ t̄_i",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_rewards(result: ContractResult) -> Figure:
    """``rewards.png``: the distribution of v(r_i(n)) under W_i, one row per type (§3).

    Args:
        result: the solved contract.

    Returns:
        The figure (the caller saves it).
    """
    present = (result.outcomes >= 1).T
    values = result.value_scale * result.rewards
    shown = values[present]
    lo, hi = float(shown.min()), float(shown.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 41)

    fig = _new_figure(7.0, 1.6 * result.n_types + 0.8)
    axes = fig.subplots(result.n_types, 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, col) in enumerate(zip(axes, _colors(result.n_types), strict=True)):
        ax.hist(
            values[i, present[i]],
            bins=bins,
            weights=result.weights[i, present[i]],
            color=col,
            alpha=0.8,
        )
        ax.axvline(
            result.t[i], color="black", lw=1.5, label=f"t_{i + 1} = {result.t[i]:.3f}"
        )
        ax.set_ylabel(f"type {i + 1}")
        ax.legend(fontsize=8, loc="upper left")
    axes[-1].set_xlabel("realised reward value v(r_i(n))")
    fig.suptitle("Realised reward distributions (weights W_i)", fontsize=10)
    return fig


def plot_contributions(result: ContractResult) -> Figure:
    """``contributions.png``: m_i^res (alone) against the incentivised m_i (§4).

    Args:
        result: the solved contract.

    Returns:
        The figure (the caller saves it).
    """
    idx = np.arange(result.n_types)
    width = 0.38
    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    ax.bar(idx - width / 2, result.m_res, width, color="0.6", label="alone (m_res)")
    ax.bar(
        idx + width / 2, result.m, width, color="tab:blue", label="collaboration (m)"
    )
    for i in idx:
        if result.m[i] < result.m_res[i]:
            ax.annotate(
                "incentivised reduction",
                (i + width / 2, result.m[i]),
                xytext=(0, 12),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                arrowprops={"arrowstyle": "->"},
            )
    if np.max(result.m) > _LOG_AXIS_RATIO * max(np.min(result.m), 1e-9):
        ax.set_yscale("log")
    ax.set_xticks(idx, [f"type {i + 1}\nc={c:g}" for i, c in enumerate(result.costs)])
    ax.set_ylabel("data points")
    ax.set_title("Contributions without and with collaboration", fontsize=10)
    ax.legend(fontsize=8)
    return fig
