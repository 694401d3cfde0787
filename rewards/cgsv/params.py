"""Flat parameter vectors: a buffer-free model as one (D,) vector (docs/cgsv.md §2).

A "flat" vector concatenates all trainable parameters in ``named_parameters()`` order.
Server work of docs/cgsv.md §2 runs on such vectors; these helpers move between a
model and its flat vector without aliasing either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def flatten_parameters(model: nn.Module) -> Tensor:
    """flat(θ): all trainable parameters concatenated in ``named_parameters()`` order.

    Args:
        model: a model without buffers.

    Returns:
        (D,) detached copy in the model dtype and device.

    Example:
        >>> flatten_parameters(nn.Linear(2, 1, bias=False).requires_grad_(False)).shape
        torch.Size([2])
    """
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def assign_parameters(model: nn.Module, flat: Tensor) -> None:
    """θ ← flat, copying into the existing parameter storage (no aliasing of ``flat``).

    ``torch.nn.utils.vector_to_parameters`` would make the parameters views of
    ``flat``; copying keeps each party's buffer its own.

    Args:
        model: the model to overwrite.
        flat: (D,) vector.

    Raises:
        ValueError: if ``flat`` does not have D entries.
    """
    _apply_flat(model, flat, add=False)


def add_to_parameters(model: nn.Module, flat: Tensor) -> None:
    """θ ← θ + flat, in place.

    Args:
        model: the model to update.
        flat: (D,) vector.

    Raises:
        ValueError: if ``flat`` does not have D entries.
    """
    _apply_flat(model, flat, add=True)


def _apply_flat(model: nn.Module, flat: Tensor, *, add: bool) -> None:
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if flat.ndim != 1 or flat.numel() != total:
        raise ValueError(
            f"Argument `flat` must be a vector of {total} entries, got shape "
            f"{tuple(flat.shape)}"
        )
    offset = 0
    with torch.no_grad():
        for p in params:
            chunk = flat[offset : offset + p.numel()].view_as(p)
            if add:
                p.add_(chunk)
            else:
                p.copy_(chunk)
            offset += p.numel()


def layer_sizes(model: nn.Module) -> list[int]:
    """Number of entries n_l of each parameter tensor, in ``named_parameters()`` order.

    Args:
        model: any module.

    Returns:
        [n_1, …, n_L].

    Example:
        >>> layer_sizes(nn.Linear(3, 2))
        [6, 2]
    """
    return [p.numel() for p in model.parameters()]
