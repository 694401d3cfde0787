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
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap
from tqdm.auto import tqdm

from data.adult import N_LABELS, FairData
from rewards.nash.bargaining import nbs

logger = logging.getLogger(__name__)

Method = Literal[
    "erm", "dro", "ltr", "forml", "gdro", "nash-ltr", "nash-forml", "nash-gdro"
]
Objective = Literal["ltr", "forml", "gdro"]
Players = Literal["group_x_label", "group"]
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
OBJECTIVES: tuple[str, ...] = ("ltr", "forml", "gdro")
#: DRO baseline: the step is on the sum of the top ⌊0.4·B⌋ losses (docs/nash.md §3).
DRO_FRACTION = 0.4
#: Hidden widths of the MLP (docs/nash.md §3 "Model").
HIDDEN = (128, 64)


# --- model and losses ---------------------------------------------------------


def build_mlp(n_features: int, dropout: float) -> nn.Sequential:
    """Linear(d,128), ReLU, Dropout, Linear(128,64), ReLU, Dropout, Linear(64,2).

    Uses the global torch RNG for initialisation: callers seed it in a forked state.

    Example:
        >>> sum(p.numel() for p in build_mlp(108, 0.2).parameters())
        22338
    """
    return nn.Sequential(
        nn.Linear(n_features, HIDDEN[0]),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(HIDDEN[1], N_LABELS),
    )


def validation_row_loss(logits: Tensor, y: Tensor, *, soft_f1: bool = True) -> Tensor:
    """ℓ^val = CE(z, y) + σ(−2s/(1+s)) with s = σ(z_y) (docs/nash.md §3).

    The second term is the reference's soft-F1 surrogate; ``soft_f1=False`` drops it.

    Args:
        logits: (n, 2) logits z.
        y: (n,) int64 labels.
        soft_f1: add the surrogate.

    Returns:
        (n,) per-row losses.

    Example:
        >>> z = torch.zeros(1, 2, dtype=torch.float64)
        >>> v = validation_row_loss(z, torch.tensor([1]))  # log 2 + σ(−2/3)
        >>> round(float(v), 6) == round(math.log(2) + 1 / (1 + math.exp(2 / 3)), 6)
        True
    """
    ce = F.cross_entropy(logits, y, reduction="none")
    if not soft_f1:
        return ce
    s = torch.sigmoid(logits.gather(1, y[:, None]).squeeze(1))
    return ce + torch.sigmoid(-2.0 * s / (1.0 + s))


def block_means(values: Tensor, n_blocks: int) -> Tensor:
    """Means of ``n_blocks`` equal consecutive blocks: the cell losses L_k.

    Example:
        >>> block_means(torch.tensor([1.0, 3.0, 5.0, 7.0]), 2).tolist()
        [2.0, 6.0]
    """
    return values.reshape(n_blocks, -1).mean(dim=1)


# --- hypergradients -----------------------------------------------------------


@dataclass(frozen=True)
class Lookahead:
    """The real optimiser's step that the lookahead copies (docs/nash.md §3).

    Attributes:
        lr: η.
        weight_decay: λ.
        momentum: μ.
        buffers: parameter name -> momentum buffer, or None before the first step.
    """

    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    buffers: dict[str, Tensor] | None = None

    def shift(self, name: str, p: Tensor) -> Tensor:
        """λθ + μ·buf for one parameter (the part of the step not scaled by ε)."""
        out = self.weight_decay * p
        buf = None if self.buffers is None else self.buffers.get(name)
        if buf is not None:
            out = out + self.momentum * buf
        return out


def momentum_buffers(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Tensor] | None:
    """The SGD momentum buffers by parameter name, or None before the first step."""
    out = {}
    for name, p in model.named_parameters():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            out[name] = buf.detach()
    return out or None


class _EvalMode:
    """Context manager: module in eval mode (dropout off), previous mode restored."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def hypergradients(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    n_cells: int,
    step: Lookahead,
    *,
    soft_f1: bool = True,
) -> tuple[Tensor, Tensor]:
    """G (K×B) and the cell losses L_k(θ'₀) by differentiating through the lookahead.

    One ``autograd.grad(Σ ε_i ℓ_i, θ, create_graph=True)``, the shifted parameters
    θ'(ε) = θ − η(∇_θ Σ ε_i ℓ_i + λθ + μ·buf), ``functional_call`` on the validation
    set, then K gradients with respect to ε (docs/nash.md §3 "Implementation"). Runs in
    eval mode (dropout off), so it is deterministic.

    Args:
        model: the classifier (its parameters are not changed).
        x: (B, d) training batch.
        y: (B,) int64 labels.
        x_val: (K·v, d) validation rows in cell blocks.
        y_val: (K·v,) labels.
        n_cells: K, the number of validation blocks.
        step: the optimiser step to copy.
        soft_f1: the validation loss's surrogate term.

    Returns:
        (G, L): (K, B) hypergradients and (K,) cell losses, detached, dtype of x.
    """
    with _EvalMode(model):
        params = {
            n: p.detach().requires_grad_(True) for n, p in model.named_parameters()
        }
        eps = torch.zeros(x.shape[0], dtype=x.dtype, requires_grad=True)
        losses = F.cross_entropy(
            functional_call(model, params, (x,)), y, reduction="none"
        )
        grads = torch.autograd.grad(
            (eps * losses).sum(), tuple(params.values()), create_graph=True
        )
        shifted = {
            n: p.detach() - step.lr * (g + step.shift(n, p.detach()))
            for (n, p), g in zip(params.items(), grads, strict=True)
        }
        val_logits = functional_call(model, shifted, (x_val,))
        cell_losses = block_means(
            validation_row_loss(val_logits, y_val, soft_f1=soft_f1), n_cells
        )
        rows = [
            torch.autograd.grad(cell_losses[k], eps, retain_graph=k + 1 < n_cells)[0]
            for k in range(n_cells)
        ]
    return torch.stack(rows), cell_losses.detach()


def hypergradients_per_sample(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    n_cells: int,
    step: Lookahead,
    *,
    soft_f1: bool = True,
) -> Tensor:
    """The test oracle: G = −η Gv Pᵀ from per-sample gradients (docs/nash.md §3).

    P (B×|θ|) holds ∇ℓ_i(θ) by ``vmap(grad(·))``, Gv (K×|θ|) holds ∇L_k(θ'₀) by
    ``jacrev`` at θ'₀ = θ − η(λθ + μ·buf). About 8× slower than
    :func:`hypergradients`; same arguments and eval mode.

    Returns:
        (K, B) hypergradients.
    """
    with _EvalMode(model):
        params = {n: p.detach() for n, p in model.named_parameters()}

        def sample_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)
        pmat = torch.cat([per_sample[n].reshape(x.shape[0], -1) for n in params], 1)
        theta0 = {n: p - step.lr * step.shift(n, p) for n, p in params.items()}

        def cell_losses(p: dict[str, Tensor]) -> Tensor:
            logits = functional_call(model, p, (x_val,))
            return block_means(
                validation_row_loss(logits, y_val, soft_f1=soft_f1), n_cells
            )

        jac = jacrev(cell_losses)(theta0)
        gv = torch.cat([jac[n].reshape(n_cells, -1) for n in params], 1)
    return -step.lr * gv @ pmat.T


# --- directions (docs/nash.md §3 table) -------------------------------------------


def group_rows(g_cells: Tensor, n_groups: int) -> Tensor:
    """Group rows of G (or group losses): the means of their label cells.

    Example:
        >>> group_rows(torch.tensor([1.0, 3.0, 5.0, 9.0]), 2).tolist()
        [2.0, 7.0]
    """
    return g_cells.reshape(n_groups, N_LABELS, *g_cells.shape[1:]).mean(dim=1)


def objective_direction(
    objective: Objective, g_cells: Tensor, cell_losses: Tensor, n_groups: int
) -> Tensor:
    """Direction h of the stage-2 objectives (docs/nash.md §3 table).

    - ``ltr``: mean of all cell rows (the hypergradient of the mean ℓ^val over V).
    - ``forml``: g_argmax − g_argmin of the group losses (F = max L_s − min L_s).
    - ``gdro``: g_argmax (F = max L_s).

    Args:
        objective: ``ltr``, ``forml`` or ``gdro``.
        g_cells: (K, B) cell rows of G.
        cell_losses: (K,) L_k.
        n_groups: |S|.

    Returns:
        (B,) direction h.

    Raises:
        ValueError: on an unknown objective.

    Example:
        >>> g = torch.tensor([[1.0], [3.0], [0.0], [2.0]])
        >>> L = torch.tensor([0.1, 0.3, 0.5, 0.5])
        >>> [objective_direction(o, g, L, 2).tolist() for o in OBJECTIVES]
        [[1.5], [-1.0], [1.0]]
    """
    if objective == "ltr":
        return g_cells.mean(dim=0)
    g_groups = group_rows(g_cells, n_groups)
    l_groups = group_rows(cell_losses, n_groups)
    worst = int(torch.argmax(l_groups))
    if objective == "gdro":
        return g_groups[worst]
    if objective == "forml":
        return g_groups[worst] - g_groups[int(torch.argmin(l_groups))]
    raise ValueError(
        f"Argument `objective` must be one of {OBJECTIVES}, got {objective!r}"
    )


def is_conflict(g_cells: Tensor, h: Tensor) -> bool:
    """A batch is in conflict when min_k g_kᵀh ≤ 0 over the cell rows (docs/nash.md §3).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> is_conflict(g, torch.tensor([1.0, 0.0]))
        True
    """
    return bool(torch.min(g_cells @ h) <= 0)


def sample_weights(h: Tensor) -> Tensor | None:
    """Weights relu(−h)/‖relu(−h)‖₂, or None when relu(−h) = 0 (step skipped).

    Example:
        >>> h = torch.tensor([-3.0, 1.0, -4.0], dtype=torch.float64)
        >>> sample_weights(h).tolist()
        [0.6, 0.0, 0.8]
    """
    w = torch.clamp(-h, min=0.0)
    norm = torch.linalg.vector_norm(w)
    if not norm > 0:
        return None
    return w / norm


def stage_of(epoch: int, bargain_epochs: int) -> int:
    """Stage 1 for epochs 1..T_bar, else 2 (docs/nash.md §3 "Schedule").

    Example:
        >>> [stage_of(e, 2) for e in (1, 2, 3)]
        [1, 1, 2]
    """
    return 1 if epoch <= bargain_epochs else 2


@dataclass(frozen=True)
class Direction:
    """The direction h of one meta batch and its bookkeeping."""

    h: Tensor
    conflict: bool
    nbs_success: bool
    nbs_iterations: int
    bargained: bool
    nbs_reason: str = "converged"


def meta_direction(
    method: str,
    stage: int,
    g_cells: Tensor,
    cell_losses: Tensor,
    n_groups: int,
    players: Players,
) -> Direction:
    """Direction h of a meta method at a stage, with the NBS fallback (docs/nash.md §3).

    The NBS is solved for every meta batch (its success rate is reported for every
    meta method). ``nash-*`` in stage 1 use h = Gᵀα over the players; when the
    bargaining fails, or in stage 2, and for one-stage methods, h is the objective's.

    Args:
        method: a meta method (``ltr`` … ``nash-gdro``).
        stage: 1 or 2.
        g_cells: (K, B) cell rows of G (any float dtype; computed in float64).
        cell_losses: (K,) L_k.
        n_groups: |S|.
        players: ``group_x_label`` (cells) or ``group``.

    Returns:
        The direction (float64) with its conflict flag and NBS outcome.
    """
    g64 = g_cells.detach().to(torch.float64)
    g_players = g64 if players == "group_x_label" else group_rows(g64, n_groups)
    result = nbs(g_players.numpy())
    objective = method.removeprefix("nash-")
    bargain = method.startswith("nash-") and stage == 1 and result.success
    if bargain:
        h = g_players.T @ torch.from_numpy(result.alpha)
    else:
        h = objective_direction(objective, g64, cell_losses.to(torch.float64), n_groups)
    return Direction(
        h,
        is_conflict(g64, h),
        result.success,
        result.iterations,
        bargain,
        result.reason,
    )


# --- evaluation ---------------------------------------------------------------


def hard_auc(y: NDArray[np.int64], pred: NDArray[np.int64]) -> float:
    """ROC AUC of hard 0/1 predictions = (TPR + TNR)/2, balanced accuracy.

    Raises:
        ValueError: if ``y`` lacks a class (AUC undefined).

    Example:
        >>> hard_auc(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
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
        >>> m.overall_auc, m.group_auc, m.max_group_auc_gap
        (0.75, (1.0, 0.5), 0.5)
    """
    aucs = tuple(hard_auc(y[s == g], pred[s == g]) for g in range(n_groups))
    tprs = tuple(
        float(np.mean(pred[(s == g) & (y == 1)] == 1)) for g in range(n_groups)
    )
    return GroupMetrics(hard_auc(y, pred), min(aucs), max(aucs) - min(aucs), aucs, tprs)


def _predict(model: nn.Module, x: Tensor) -> NDArray[np.int64]:
    with _EvalMode(model), torch.no_grad():
        return model(x).argmax(dim=1).numpy().astype(np.int64)


# --- training -----------------------------------------------------------------


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
    """One epoch of docs/nash.md §3's loop; returns the training fields of EpochMetrics."""
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


def run_methods(
    data: FairData,
    methods: Sequence[str],
    seeds: Sequence[int],
    cfg: TrainSettings,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    progress: bool = False,
) -> list[EpochMetrics]:
    """All (seed, method) runs in the order of docs/nash.md §3: seeds outer, methods inner.

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
