"""The meta step of docs/nash.md §3: lookahead hypergradients and the direction h.

Each training mini-batch is reweighted by the hypergradient of a fairness objective
measured on a tiny validation set after a one-step lookahead:

    G[k, i] = ∂L_k(θ'(ε))/∂ε_i |₀ = −η ∇L_k(θ'₀)ᵀ∇ℓ_i(θ),
    θ'(ε) = θ − η(Σ_i ε_i ∇ℓ_i(θ) + λθ + μ·buf).

Stage 1 combines the players' rows by the Nash bargaining solution
(:func:`rewards.nash.bargaining.nbs`), h = Gᵀα; stage 2 follows the method's objective
(LtR, FORML or Meta-gDRO). The weights are w = relu(−h)/‖relu(−h)‖₂. The training loop
that calls these is :mod:`rewards.nash.fairmeta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from data.adult import N_LABELS
from rewards.nash.bargaining import nbs

Objective = Literal["ltr", "forml", "gdro"]
Players = Literal["group_x_label", "group"]
OBJECTIVES: tuple[str, ...] = ("ltr", "forml", "gdro")
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
        >>> import math
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
        >>> means = block_means(torch.tensor([1.0, 3.0, 5.0, 7.0]), 2)
        >>> means.round(decimals=6).tolist()
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


class EvalMode:
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
    with EvalMode(model):
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
    with EvalMode(model):
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
        >>> group_rows(torch.tensor([1.0, 3.0, 5.0, 9.0]), 2).round(decimals=6).tolist()
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
        >>> h = [objective_direction(o, g, L, 2) for o in OBJECTIVES]
        >>> [v.round(decimals=6).tolist() for v in h]
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
        >>> sample_weights(h).round(decimals=9).tolist()
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
