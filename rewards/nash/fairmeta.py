"""Two-stage fairness-aware meta-learning by Nash bargaining (docs/nash.md §3).

Reproduces Zeng, Yang, Chen, Canton Ferrer, Jin, Jordan, Jia, "Fairness-Aware
Meta-Learning via Nash Bargaining" (NeurIPS 2024), as its reference notebook runs it.
Each training mini-batch is reweighted by the hypergradient of a fairness objective
measured on a tiny validation set after a one-step lookahead:

    G[k, i] = ∂L_k(θ'(ε))/∂ε_i |₀ = −η ∇L_k(θ'₀)ᵀ∇ℓ_i(θ),
    θ'(ε) = θ − η(Σ_i ε_i ∇ℓ_i(θ) + λθ + μ·buf).

Stage 1 (epochs 1..T_bar) combines the players' rows by the Nash bargaining solution
(:func:`rewards.nash.bargaining.nbs`), h = Gᵀα, so every player improves to first order;
stage 2 follows the method's objective (LtR, FORML or Meta-gDRO). The weights are
w = relu(−h)/‖relu(−h)‖₂. Baselines: ERM, DRO (top-40 % losses) and the one-stage
meta methods.

The meta step (hypergradients, directions) is :mod:`rewards.nash.lookahead`; the test
metrics and summaries are :mod:`rewards.nash.evaluation`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn
from tqdm.auto import tqdm

from data.adult import N_LABELS, FairData
from rewards.nash.evaluation import EpochMetrics, group_metrics
from rewards.nash.lookahead import (
    Direction,
    EvalMode,
    Lookahead,
    Players,
    build_mlp,
    hypergradients,
    meta_direction,
    momentum_buffers,
    sample_weights,
    stage_of,
)

logger = logging.getLogger(__name__)

Method = Literal[
    "erm", "dro", "ltr", "forml", "gdro", "nash-ltr", "nash-forml", "nash-gdro"
]
METHODS: tuple[str, ...] = (
    "erm",
    "dro",
    "ltr",
    "forml",
    "gdro",
    "nash-ltr",
    "nash-forml",
    "nash-gdro",
)
#: DRO baseline: the step is on the sum of the top ⌊0.4·B⌋ losses (docs/nash.md §3).
DRO_FRACTION = 0.4


def _predict(model: nn.Module, x: Tensor) -> NDArray[np.int64]:
    with EvalMode(model), torch.no_grad():
        return model(x).argmax(dim=1).numpy().astype(np.int64)


# --- training -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    """Plain hyper-parameters of one run (docs/nash.md §3, §5)."""

    epochs: int
    bargain_epochs: int
    lr: float
    dropout: float
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-4
    players: Players = "group_x_label"
    soft_f1: bool = True


def auto_settings(dataset: str, sensitive: str) -> tuple[float, float, int]:
    """(lr, dropout, batch_size) of docs/nash.md §5 for ``"auto"``.

    Example:
        >>> auto_settings("adult", "race")
        (0.0005, 0.4, 512)
    """
    if dataset == "synthetic":
        return 1e-2, 0.0, 128
    if sensitive == "race":
        return 5e-4, 0.4, 512
    return 1e-3, 0.2, 512


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Argument `method` must be one of {METHODS}, got {method!r}")


def _batch_loss(
    method: str,
    stage: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    xb: Tensor,
    yb: Tensor,
    val: tuple[Tensor, Tensor, int, int],
    cfg: TrainSettings,
) -> tuple[Tensor | None, Tensor, Direction | None]:
    """The loss to step on (None: skip), the per-row CE and the meta direction."""
    direction = None
    if method not in ("erm", "dro"):
        x_val, y_val, n_cells, n_groups = val
        step = Lookahead(
            cfg.lr, cfg.weight_decay, cfg.momentum, momentum_buffers(model, optimizer)
        )
        g_cells, cell_losses = hypergradients(
            model, xb, yb, x_val, y_val, n_cells, step, soft_f1=cfg.soft_f1
        )
        direction = meta_direction(
            method, stage, g_cells, cell_losses, n_groups, cfg.players
        )
    model.train()
    losses = F.cross_entropy(model(xb), yb, reduction="none")
    if method == "erm":
        return losses.sum() / math.sqrt(xb.shape[0]), losses, None
    if method == "dro":
        k = max(1, math.floor(DRO_FRACTION * xb.shape[0]))
        return torch.topk(losses, k).values.sum(), losses, None
    w = sample_weights(direction.h)
    if w is None:
        return None, losses, direction
    return (w.to(losses.dtype) * losses).sum(), losses, direction


def train_method(
    data: FairData,
    method: str,
    seed: int,
    cfg: TrainSettings,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    progress: bool = False,
) -> list[EpochMetrics]:
    """Train one method with one seed and evaluate after every epoch (docs/nash.md §3).

    The global torch RNG is used (init, dropout) only inside ``fork_rng`` seeded with
    ``seed``; batches follow a ``torch.Generator`` seeded with ``seed``, so every
    method sees the same batches. The last partial batch is dropped.

    Args:
        data: the split data.
        method: one of :data:`METHODS`.
        seed: the training seed.
        cfg: hyper-parameters.
        on_epoch: called with each epoch's metrics.
        progress: show a tqdm bar over epochs.

    Returns:
        One :class:`EpochMetrics` per epoch.

    Raises:
        ValueError: on an unknown method, or fewer training rows than one batch.
    """
    _check_method(method)
    n_train = data.x_train.shape[0]
    if n_train < cfg.batch_size:
        raise ValueError(
            f"Argument `batch_size` ({cfg.batch_size}) exceeds the training rows "
            f"({n_train})"
        )
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    n_cells = N_LABELS * data.n_groups
    val = (
        torch.from_numpy(data.x_val),
        torch.from_numpy(data.y_val),
        n_cells,
        data.n_groups,
    )
    x_test = torch.from_numpy(data.x_test)
    batches = torch.Generator().manual_seed(seed)
    rows: list[EpochMetrics] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_mlp(data.n_features, cfg.dropout)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        bar = tqdm(
            range(1, cfg.epochs + 1), desc=f"{method} seed {seed}", disable=not progress
        )
        for epoch in bar:
            stats = _train_epoch(
                method, epoch, model, optimizer, (x, y), val, batches, cfg
            )
            pred = _predict(model, x_test)
            row = EpochMetrics(
                method=method,
                seed=seed,
                epoch=epoch,
                test=group_metrics(data.y_test, data.s_test, pred, data.n_groups),
                **stats,
            )
            rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
    return rows


def _train_epoch(
    method: str,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor, int, int],
    batches: torch.Generator,
    cfg: TrainSettings,
) -> dict:
    """One epoch of docs/nash.md §3's loop: the training fields of EpochMetrics."""
    t0 = time.perf_counter()
    x, y = train
    stage = stage_of(epoch, cfg.bargain_epochs)
    perm = torch.randperm(x.shape[0], generator=batches)
    n_batches = x.shape[0] // cfg.batch_size
    conflicts, nbs_ok, zero_steps, iterations, loss_sum = 0, 0, 0, [], 0.0
    reasons: list[str] = []
    for b in range(n_batches):
        idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        loss, losses, direction = _batch_loss(
            method, stage, model, optimizer, x[idx], y[idx], val, cfg
        )
        loss_sum += float(losses.detach().mean())
        if direction is not None:
            conflicts += direction.conflict
            nbs_ok += direction.nbs_success
            iterations.append(direction.nbs_iterations)
            if not direction.nbs_success:
                reasons.append(direction.nbs_reason)
        if loss is None:
            zero_steps += 1
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    meta = method not in ("erm", "dro")
    return {
        "stage": stage,
        "conflict_rate": conflicts / n_batches if meta else 0.0,
        "nbs_success_rate": nbs_ok / n_batches if meta else 1.0,
        "nbs_failures": n_batches - nbs_ok if meta else 0,
        "zero_weight_steps": zero_steps,
        "train_loss": loss_sum / n_batches,
        "epoch_time_s": time.perf_counter() - t0,
        "nbs_iterations": tuple(iterations),
        "nbs_failure_reasons": tuple(reasons),
        "n_batches": n_batches,
    }


def log_epoch(row: EpochMetrics) -> None:
    """Log one epoch's test metrics; warn when bargains of a ``nash-*`` stage 1 failed.

    An ``on_epoch`` callback for :func:`train_method` and :func:`run_methods`.
    """
    if row.nbs_failures and row.method.startswith("nash-") and row.stage == 1:
        logger.warning(
            "%s seed %d epoch %d: %d of %d bargains failed (0 in the convex hull); "
            "those batches used the %s objective",
            row.method,
            row.seed,
            row.epoch,
            row.nbs_failures,
            row.n_batches,
            row.method.removeprefix("nash-"),
        )
    logger.info(
        "%s seed %d epoch %d (stage %d): AUC %.4f worst %.4f gap %.4f conflict %.3f "
        "nbs_ok %.3f",
        row.method,
        row.seed,
        row.epoch,
        row.stage,
        row.test.overall_auc,
        row.test.worst_group_auc,
        row.test.max_group_auc_gap,
        row.conflict_rate,
        row.nbs_success_rate,
    )


def run_methods(
    data: FairData,
    methods: Sequence[str],
    seeds: Sequence[int],
    cfg: TrainSettings,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    progress: bool = False,
) -> list[EpochMetrics]:
    """All (seed, method) runs in docs/nash.md §3's order: seeds outer, methods inner.

    Raises:
        ValueError: on an unknown method (before any training).
    """
    for m in methods:
        _check_method(m)
    rows: list[EpochMetrics] = []
    for seed in seeds:
        for method in methods:
            rows += train_method(
                data, method, seed, cfg, on_epoch=on_epoch, progress=progress
            )
    return rows
