"""The ``gan`` stage's figures: ``samples.png`` and the numbers of ``quality.json``.

``fidelity.png`` (tables): per-column KS / TV of docs/cgm.md §3.6.

docs/cgm.md §3.4: the quality of the candidates is measured with our own feature
extractor E (a small classifier trained on the pooled party data): real-test
accuracy, label agreement, TSTR accuracy and FID/KID against a real-vs-real
baseline. :func:`gan.quality.fid_kid` takes E's features by injection, so
``gan`` never imports ``rewards``; this module does the wiring.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from data.atomic import atomic_path
from gan.quality import GATE_MAX_KS, GATE_MAX_TV, fid_kid, sample_grid_png
from pipeline.figures.save import save_figure
from rewards.classifiers import (
    accuracy,
    fit_classifier,
    penultimate_features,
    predict,
)

logger = logging.getLogger(__name__)

#: Candidates used by the label-agreement and TSTR figures.
MAX_QUALITY_ROWS = 10_000
#: The fidelity target of docs/cgm.md §3.7 (median KS and TV), drawn dotted.
FIDELITY_TARGET = 0.1
#: Candidates used by FID/KID.
MAX_FID_ROWS = 5_000


def measure_quality(
    real: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    *,
    epochs: int,
    seed: int,
) -> dict[str, float | None]:
    """The quality figures of docs/cgm.md §3.4 with our own feature extractor E."""
    model, pre = fit_classifier(real[0], real[1], n_classes, epochs=epochs, seed=seed)
    xc, yc = cand[0][:MAX_QUALITY_ROWS], cand[1][:MAX_QUALITY_ROWS]
    q: dict[str, float] = {
        "real_test_acc": accuracy(model, pre.transform(test[0]), test[1]),
        "label_agreement": float(np.mean(predict(model, pre.transform(xc)) == yc)),
    }
    tstr, pre_s = fit_classifier(xc, yc, n_classes, epochs=epochs, seed=seed + 1)
    q["tstr_acc"] = accuracy(tstr, pre_s.transform(test[0]), test[1])

    def feature_fn(xb: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(penultimate_features(model, pre.transform(xb.numpy())))

    fake = cand[0][:MAX_FID_ROWS]
    q.update(fid_kid(real[0], fake, feature_fn, seed=seed))
    base = fid_kid(real[0], test[0], feature_fn, seed=seed)
    q["fid_real_baseline"] = base["fid"]
    q["kid_real_baseline"] = base["kid_mean"]
    return _finite_or_none(q)


def _finite_or_none(q: dict[str, Any]) -> dict[str, float | None]:
    """Figures as floats; a non-finite one (e.g. KID of degenerate features) is None."""
    out: dict[str, float | None] = {}
    for key, value in q.items():
        v = float(value)
        if not np.isfinite(v):
            logger.warning("quality figure %s is %s: recorded as null", key, v)
        out[key] = v if np.isfinite(v) else None
    return out


def label_and_measure(
    real: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    x_cand: np.ndarray,
    y_cand: np.ndarray | None,
    n_classes: int,
    *,
    measure: bool,
    epochs: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, float | None]]:
    """Label unlabelled candidates with E, then measure quality when asked.

    Returns:
        (candidate labels, the figures of :func:`measure_quality` or ``{}``).
    """
    if y_cand is None:
        model, pre = fit_classifier(
            real[0], real[1], n_classes, epochs=epochs, seed=seed
        )
        y_cand = predict(model, pre.transform(x_cand)).astype(np.int64)
    if not measure:
        return y_cand, {}
    quality = measure_quality(
        real, test, (x_cand, y_cand), n_classes, epochs=epochs, seed=seed
    )
    logger.info("candidate quality: %s", quality)
    return y_cand, quality


def write_samples_png(
    path: Path,
    cand: tuple[np.ndarray, np.ndarray],
    real_x: np.ndarray,
    n_classes: int,
    generator: str,
) -> Path:
    """Draw ``gan/samples.png`` (:func:`gan.quality.sample_grid_png`), atomically.

    Args:
        path: the PNG to write.
        cand: candidates (x, y).
        real_x: the pooled real data (drawn under vector candidates).
        n_classes: C.
        generator: the generator's name, for the title.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        sample_grid_png(
            f,
            cand[0],
            cand[1],
            n_classes=n_classes,
            real_x=real_x,
            title=f"{generator} candidates",
        )
    return path


def write_fidelity_png(path: Path, fidelity: dict[str, Any], generator: str) -> Path:
    """Draw ``gan/fidelity.png``: per-column KS (continuous) and TV (categorical).

    One horizontal bar per column, the gate limits of docs/cgm.md §3.6 as dashed
    lines and the fidelity target 0.1 (§3.7) dotted; written atomically by
    :func:`pipeline.figures.save.save_figure`.

    Args:
        path: the PNG to write.
        fidelity: :func:`gan.fidelity.table_fidelity` of the candidates.
        generator: the generator's name, for the title.

    Returns:
        ``path``.
    """
    panels = [("ks", "KS statistic (continuous)", GATE_MAX_KS)]
    panels.append(("tv", "total-variation distance (categorical)", GATE_MAX_TV))
    panels = [p for p in panels if fidelity.get(p[0])]
    rows = max([len(fidelity[k]) for k, _, _ in panels] or [1])
    size = (5.5 * max(len(panels), 1), 1.2 + 0.3 * rows)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (key, label, limit) in zip(axes, panels, strict=False):
        names = list(fidelity[key])
        values = [fidelity[key][n] for n in names]
        ax.barh(range(len(names)), values, color="tab:blue")
        ax.set_yticks(range(len(names)), names, fontsize="small")
        ax.invert_yaxis()
        ax.axvline(limit, color="tab:red", linestyle="--", label=f"gate {limit}")
        ax.axvline(FIDELITY_TARGET, color="0.4", linestyle=":", label="target 0.1")
        ax.set_xlim(0, max(1.05 * max(values), limit * 1.2))
        ax.set_xlabel(label)
        ax.legend(fontsize="small", loc="lower right")
    fig.suptitle(
        f"{generator} candidates vs pooled rows: "
        f"median KS {_fmt(fidelity.get('median_ks'))}, "
        f"median TV {_fmt(fidelity.get('median_tv'))}, "
        f"corr. diff {_fmt(fidelity.get('corr_diff'))}",
        fontsize="medium",
    )
    return save_figure(fig, path)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
