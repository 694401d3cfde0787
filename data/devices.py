"""One answer to "which device?" for every package (gan, valuation, rewards).

``"auto"`` means CUDA when it is available, else the CPU; ``"cuda"`` (or ``"gpu"``)
without CUDA is refused, so a config asking for a GPU on a CPU machine fails before
work starts instead of silently running on the CPU.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str) -> torch.device:
    """Map ``"auto"``/``"cpu"``/``"cuda"`` to a torch device.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    Returns:
        The torch device.

    Raises:
        ValueError: if ``device`` is unknown or CUDA is asked for but absent.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"Argument `device` is {device!r} but CUDA is not available"
            )
        return torch.device("cuda")
    raise ValueError(
        f"Argument `device` must be 'auto', 'cpu' or 'cuda', got {device!r}"
    )
