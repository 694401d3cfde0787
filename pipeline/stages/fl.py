"""The ``fl`` stage: federated learning with CGSV gradient rewards (docs/cgsv.md).

Reads the pool's party files and test set, keeps the pool's parties (``fl.split =
"pool"``) or re-splits the training pool (``uniform``, ``powerlaw``,
``classimbalance``, through `data.splits.split_indices`), and runs CGSV (one run per
β) with the FedAvg and Standalone baselines in lock-step on one batch-order table
(`rewards.cgsv.simulation.simulate`, Xu et al., NeurIPS 2021). Writes ``fl/rounds.csv``,
``fl/summary.json``, ``fl/sv_check.csv`` (docs/cgsv.md §8, when
``fl.sv_check``), the plots of docs/cgsv.md §7 and ``fl/manifest.json`` last.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from data.splits import split_indices
from pipeline import manifest, paths
from pipeline.config import FlConfig, RunConfig
from pipeline.errors import UsageError
from pipeline.figures.save import save_figure
from pipeline.stages.common import Pool, read_pool
from rewards.cgsv.gradient import sv_check
from rewards.cgsv.simulation import ROUND_COLUMNS, batch_order_table, simulate
from rewards.classifiers import Preprocessor, build_classifier, resolve_classifier_kind

logger = logging.getLogger(__name__)

TABLES = ("data", "fl")
#: docs/cgsv.md §5: ``lr = "auto"`` and ``lr_decay = "auto"`` per model.
AUTO_LR = {"cnn": 1e-3, "mlp": 1e-2}
AUTO_LR_DECAY = {"cnn": 0.955, "mlp": 0.977}
_IMAGE_SHAPES = ((28, 28), (1, 28, 28))


def _fl_parties(
    f: FlConfig, pool: Pool, seed: np.random.SeedSequence
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The parties of docs/cgsv.md §4: the pool's, or a re-split of the training pool."""
    n_pool = len(pool.parties)
    if f.split == "pool":
        if f.n_parties not in (0, n_pool):
            raise UsageError(
                f'[fl] n_parties: {f.n_parties} with split = "pool", expected 0 or '
                f"the pool's {n_pool} parties (or choose another fl.split)"
            )
        return pool.parties
    x, y = pool.pooled
    n = f.n_parties or n_pool
    try:
        parts = split_indices(y, n, f.split, n_classes=pool.n_classes, seed=seed)
    except ValueError as e:
        raise UsageError(f"[fl] split: {e}") from e
    return [(x[p], y[p]) for p in parts]


def _model_kind(f: FlConfig, sample_shape: tuple[int, ...]) -> str:
    if f.model == "cnn" and sample_shape not in _IMAGE_SHAPES:
        raise UsageError(
            f'[fl] model: "cnn" needs 28×28 images, the pool holds samples of shape '
            f'{sample_shape}; use "mlp" or "auto"'
        )
    return resolve_classifier_kind(f.model, sample_shape)


def _check(f: FlConfig) -> None:
    if "cffl" in f.baselines:
        raise UsageError(
            "[fl] baselines: 'cffl' is not implemented in this version; use "
            "standalone and fedavg"
        )


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Run CGSV and the baselines and write the ``fl`` outputs.

    Args:
        cfg: the run config (reads ``[fl]``).
        run_dir: the run folder.
        progress: show progress bars.

    Returns:
        Output name -> path.

    Raises:
        UsageError: on a missing/stale pool, a split impossible for the data, a model
            the data cannot feed, or an unavailable baseline/aggregator.
    """
    f = cfg.fl
    _check(f)
    pool = read_pool(run_dir)
    split_ss, order_ss, _cffl_ss, sv_ss = manifest.stage_seed(cfg.seed, "fl").spawn(4)
    parties = _fl_parties(f, pool, split_ss)
    x_pool, _ = pool.pooled
    kind = _model_kind(f, tuple(x_pool.shape[1:]))
    lr = AUTO_LR[kind] if f.lr == "auto" else f.lr
    lr_decay = AUTO_LR_DECAY[kind] if f.lr_decay == "auto" else f.lr_decay
    pre = Preprocessor.fit(kind, x_pool)
    data = [(pre.transform(x), y) for x, y in parties]
    test = (pre.transform(pool.test[0]), pool.test[1])
    torch_seed = manifest.stage_int_seed(cfg.seed, "fl")
    model = build_classifier(kind, x_pool.shape[1:], pool.n_classes, seed=torch_seed)
    sizes = [len(y) for _, y in parties]
    orders = batch_order_table(sizes, f.rounds, f.local_epochs, seed=order_ss)
    t0 = manifest.begin(run_dir, "fl")
    logger.info(
        "fl: %s model, lr %g, decay %g, party sizes %s", kind, lr, lr_decay, sizes
    )
    rows: list[dict[str, Any]] = []
    result = simulate(
        model,
        data,
        test,
        rounds=f.rounds,
        local_epochs=f.local_epochs,
        batch_size=f.batch_size,
        lr=lr,
        lr_decay=lr_decay,
        gamma=f.gamma,
        alpha=f.alpha,
        beta=f.beta,
        aggregator=f.aggregator,
        baselines=f.baselines,  # type: ignore[arg-type]
        eval_every=f.eval_every,
        orders=orders,
        device=f.device,
        on_round=rows.append,
        progress=progress,
    )
    outputs = {
        "rounds": _write_csv(paths.fl_file(run_dir, "rounds.csv"), rows, ROUND_COLUMNS)
    }
    sv_rows = None
    if f.sv_check:
        sv_rows = [
            r.to_dict()
            for r in sv_check(trials=f.sv_trials, seed=sv_ss, progress=progress)
        ]
        outputs["sv_check"] = _write_csv(
            paths.fl_file(run_dir, "sv_check.csv"), sv_rows, list(sv_rows[0])
        )
    seed = {
        "root": cfg.seed,
        "stage_key": manifest.STAGE_KEY["fl"],
        "torch": torch_seed,
    }
    body = result.to_dict()
    summary = {
        "config": cfg.tables(*TABLES),
        "seed": seed,
        "source": pool.attrs.get("source"),
        "split": f.split,
        "model": kind,
        "lr": lr,
        "lr_decay": lr_decay,
        **body,
        "sv_check": None
        if sv_rows is None
        else {"file": "fl/sv_check.csv", "rows": _finite(sv_rows)},
    }
    outputs["summary"] = manifest.write_json(
        paths.fl_file(run_dir, "summary.json"), summary
    )
    outputs.update(_plots(run_dir, rows, body, sv_rows))
    for run_ in body["cgsv"]:
        logger.info(
            "cgsv beta %s: fairness %s, reward fairness %s, performance %.4f, "
            "server %.4f",
            run_["beta"],
            run_["fairness"],
            run_["reward_fairness"],
            run_["performance"],
            run_["server_acc"],
        )
    logger.info("fedavg: %s; timing %s", body["fedavg"], body["timing"])
    manifest.finish(
        run_dir,
        "fl",
        config=cfg.tables(*TABLES),
        seed=seed,
        inputs=pool.inputs,
        outputs=outputs,
        started=t0,
        metrics={
            "cgsv_fairness": [r["fairness"] for r in body["cgsv"]],
            "cgsv_reward_fairness": [r["reward_fairness"] for r in body["cgsv"]],
            "fedavg_fairness": (body["fedavg"] or {}).get("fairness"),
            "overhead": body["timing"]["overhead"],
        },
    )
    return outputs


def _finite(obj: Any) -> Any:
    """NaN (an undefined mean) becomes ``None`` for JSON (docs/interface.md §5)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and math.isnan(obj) else obj


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV through `manifest.atomic_write_text` (docs/interface.md §5)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return manifest.atomic_write_text(path, buf.getvalue())


# --- Plots (docs/cgsv.md §7) --------------------------------------------------------


def _series(rows: list[dict[str, Any]], method: str, beta: Any, key: str) -> dict:
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["method"] == method and r["beta"] == beta and r[key] is not None:
            out[r["party"]].append((r["round"], r[key]))
    return out


def _plots(
    run_dir: Path, rows: list[dict[str, Any]], body: dict, sv_rows: list | None
) -> dict[str, Path]:
    """Write the figures of docs/cgsv.md §7 that apply to this run."""
    figures = {
        "accuracy": _accuracy_figure(rows, body),
        "r_q": _r_q_figure(rows, body["cgsv"]),
    }
    if body["standalone"] is not None:
        figures["fairness"] = _fairness_figure(body)
    if sv_rows:
        figures["sv_check"] = _sv_check_figure(sv_rows)
    return {
        f"{name}_png": save_figure(fig, paths.fl_file(run_dir, f"{name}.png"))
        for name, fig in figures.items()
    }


def _accuracy_figure(rows: list[dict[str, Any]], body: dict) -> Figure:
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


def _r_q_figure(rows: list[dict[str, Any]], cgsv: list[dict]) -> Figure:
    """The importance r and fraction q per party by round, one row per β."""
    fig = Figure(figsize=(10, 3.5 * len(cgsv)), layout="constrained")
    for k, c in enumerate(cgsv):
        for j, key in enumerate(("r", "q")):
            ax = fig.add_subplot(len(cgsv), 2, 2 * k + j + 1)
            for party, pts in sorted(_series(rows, "cgsv", c["beta"], key).items()):
                ax.plot(*zip(*pts, strict=True), label=f"party {party}")
            ax.set(title=f"{key} (β={c['beta']})", xlabel="round", ylabel=key)
            ax.legend(fontsize=7)
    return fig


def _fairness_figure(body: dict) -> Figure:
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


def _sv_check_figure(sv_rows: list[dict[str, Any]]) -> Figure:
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
