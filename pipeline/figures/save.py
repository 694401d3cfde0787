"""Saving matplotlib figures as run outputs (object API, Agg canvas, atomic rename).

Kept apart from `pipeline.report` so that stages which only draw plots (``fl``,
``nash``) do not import the GAN quality code (torchmetrics, torchvision).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from data.atomic import atomic_path


def save_figure(fig: Figure, path: Path) -> Path:
    """Render ``fig`` on the Agg canvas to a PNG: a temp file, then renamed.

    A failed render leaves neither the temp file nor a partial ``path``.

    Args:
        fig: a matplotlib `Figure` built with the object API (no pyplot).
        path: the PNG to write (110 dpi, tight bounding box).

    Returns:
        ``path``.
    """
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path
