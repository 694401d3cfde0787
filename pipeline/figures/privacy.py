"""The privacy figure of the ``evaluate`` stage (docs/cgm.md §8.5).

``evaluate/privacy.png``: per party, the DCR ratio (reward over held-out) and the
membership-inference AUC, in the feature and the data space, with the no-leak
levels (1 and 0.5) drawn as lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline.figures.save import save_figure


def _series(privacy: dict[str, Any], space: str, key: str) -> np.ndarray:
    out = []
    for p in privacy["spaces"][space]["parties"]:
        value = p["dcr"]["ratio"] if key == "dcr" and p["dcr"] else p.get(key)
        out.append(np.nan if value is None or isinstance(value, dict) else value)
    return np.asarray(out, dtype=np.float64)


def plot_privacy(privacy: dict[str, Any]) -> Figure:
    """Two panels: DCR ratio and MIA AUC per party, feature vs data space."""
    n = len(privacy["spaces"]["feature"]["parties"])
    x = np.arange(n)
    fig = Figure(figsize=(9, 3.6))
    panels = (
        ("dcr", "DCR ratio (reward / held-out)", 1.0),
        ("mia_auc", "MIA AUC", 0.5),
    )
    for k, (key, label, level) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        for j, space in enumerate(("feature", "data")):
            ax.bar(
                x + (j - 0.5) * 0.38, _series(privacy, space, key), 0.38, label=space
            )
        ax.axhline(level, color="black", lw=0.8, ls="--", label="no leak")
        ax.set(xlabel="party", ylabel=label, xticks=x)
        ax.legend(fontsize=8)
    fig.suptitle("Privacy of the rewards (parties without rewards are blank)")
    return fig


def write_privacy_figure(path: Path, privacy: dict[str, Any]) -> Path:
    """Draw `plot_privacy` and save it atomically to ``path``."""
    return save_figure(plot_privacy(privacy), path)
