"""GAN quality metrics and the sample figure of docs/cgm.md §3.4.

- :func:`fid_kid`: torchmetrics FID and KID with a caller-supplied feature extractor
  (Inception weights cannot be downloaded; the ``gan`` stage passes the penultimate
  layer of its classifier E, with z-scoring folded in for vectors). Not comparable
  with Inception FIDs.
- :func:`sample_grid_png`: ``samples.png``: images as one row per class (its first
  10 candidates), vectors as a scatter of ≤ 5,000 candidates coloured by class over
  the real points (first two principal axes when D > 2). Matplotlib's Agg canvas, no
  pyplot state.
- :func:`gate_measures` and :func:`gate_failures`: the quality gate of docs/cgm.md
  §3.6 (column fidelity, correlation difference, spread, label agreement and TSTR
  near chance), with the one-line message of :func:`gate_message`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gan.fidelity import std_ratios, table_fidelity

logger = logging.getLogger(__name__)

FeatureFn = Callable[[Tensor], Tensor]
"""Maps a batch (N, *sample_shape) to features (N, d)."""

KID_MAX_SUBSET = 1000
"""Largest KID subset (docs/cgm.md §3.4: ``subset_size = min(1000, sizes)``)."""


class _PrecomputedFeatures(nn.Module):
    """Identity "extractor" for torchmetrics: the features are computed beforehand.

    ``num_features`` spares torchmetrics its probe with a dummy 299×299 RGB image.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def _features(
    x: Tensor | NDArray, feature_fn: FeatureFn, batch_size: int, device: torch.device
) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    out = []
    with torch.no_grad():
        for s in range(0, t.shape[0], batch_size):
            f = feature_fn(t[s : s + batch_size].to(device=device, dtype=torch.float32))
            if f.ndim != 2:
                raise ValueError(
                    f"Argument `feature_fn` must return (N, d) features, got shape "
                    f"{tuple(f.shape)}"
                )
            out.append(f.detach().float().cpu())
    return torch.cat(out)


def fid_kid(
    real: Tensor | NDArray,
    fake: Tensor | NDArray,
    feature_fn: FeatureFn,
    *,
    seed: int,
    subset_size: int | None = None,
    n_subsets: int = 100,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """FID and KID of ``fake`` vs ``real`` in the features of ``feature_fn`` (§3.4).

    Features are computed once per set (batches under ``no_grad``, on ``device``) and
    fed to torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance``
    through an identity ``feature=`` module. KID draws its subsets with the global CPU
    generator; it runs inside ``torch.random.fork_rng`` seeded with ``seed``, so the
    result is seeded and the caller's RNG state is left as it was.

    Args:
        real: (n_real, *sample_shape) real samples (n_real ≥ 2).
        fake: (n_fake, *sample_shape) generated samples (n_fake ≥ 2).
        feature_fn: batch → (N, d) features (e.g. a classifier's penultimate layer).
        seed: seed of the KID subsets.
        subset_size: KID subset size; ``None`` gives min(1000, n_real, n_fake).
        n_subsets: number of KID subsets.
        batch_size: rows per ``feature_fn`` call.
        device: where ``feature_fn`` runs.

    Returns:
        ``{"fid": …, "kid_mean": …, "kid_std": …}`` as floats.

    Raises:
        ValueError: on too few rows, mismatched sample shapes or a bad subset size.
    """
    n_real, n_fake = len(real), len(fake)
    if n_real < 2 or n_fake < 2:
        raise ValueError(
            f"Arguments `real` and `fake` need >= 2 rows each, "
            f"got {n_real} and {n_fake}"
        )
    if tuple(real.shape[1:]) != tuple(fake.shape[1:]):
        raise ValueError(
            f"Arguments `real` and `fake` must have equal sample shapes, got "
            f"{tuple(real.shape[1:])} and {tuple(fake.shape[1:])}"
        )
    if subset_size is None:
        subset_size = min(KID_MAX_SUBSET, n_real, n_fake)
    if not 2 <= subset_size <= min(n_real, n_fake):
        raise ValueError(
            f"Argument `subset_size` must be in [2, {min(n_real, n_fake)}], "
            f"got {subset_size}"
        )
    if n_subsets < 1:
        raise ValueError(f"Argument `n_subsets` must be >= 1, got {n_subsets}")
    dev = torch.device(device)
    f_real = _features(real, feature_fn, batch_size, dev)
    f_fake = _features(fake, feature_fn, batch_size, dev)
    extractor = _PrecomputedFeatures(f_real.shape[1])
    fid = FrechetInceptionDistance(feature=extractor)
    fid.update(f_real, real=True)
    fid.update(f_fake, real=False)
    with warnings.catch_warnings():
        # KID warns that it buffers all features; ours are small by construction.
        warnings.filterwarnings(
            "ignore", message=".*will save all extracted features.*"
        )
        kid = KernelInceptionDistance(
            feature=extractor, subsets=n_subsets, subset_size=subset_size
        )
    kid.update(f_real, real=True)
    kid.update(f_fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
    }


def sample_grid_png(
    path_or_buffer: str | IO[bytes],
    x: ArrayLike,
    y: ArrayLike,
    *,
    n_classes: int,
    real_x: ArrayLike | None = None,
    n_per_class: int = 10,
    max_points: int = 5000,
    title: str | None = None,
) -> None:
    """Draw ``samples.png`` (docs/cgm.md §3.4) and write it as PNG.

    Images (x of shape (n, ch, H, W), values in [0, 1]): row c shows the first
    ``n_per_class`` candidates of class c in candidate order (blank cells when a
    class has fewer). Vectors (x of shape (n, D)): the first ``max_points``
    candidates coloured by class over ``real_x`` in grey, in the first two principal
    axes of the real points (of the candidates without real points) when D > 2.

    Args:
        path_or_buffer: a file path or a binary buffer (the caller handles atomicity).
        x: candidates in the data space.
        y: (n,) integer candidate labels in [0, n_classes).
        n_classes: C.
        real_x: vectors only: real points (m, D) drawn underneath.
        n_per_class: images per class row.
        max_points: most candidates in the scatter.
        title: optional figure title.

    Raises:
        ValueError: on shapes that are neither (n, D) nor (n, ch, H, W), mismatched
            labels or bad counts.
    """
    xa = np.asarray(x, dtype=np.float32)
    ya = np.asarray(y)
    if ya.ndim != 1 or ya.shape[0] != xa.shape[0]:
        raise ValueError(
            f"Argument `y` must have shape ({xa.shape[0]},) to match `x`, "
            f"got {ya.shape}"
        )
    if ya.size and (ya.min() < 0 or ya.max() >= n_classes):
        raise ValueError(
            f"Argument `y` must lie in [0, {n_classes}), got labels in "
            f"[{ya.min()}, {ya.max()}]"
        )
    if n_per_class < 1 or max_points < 1:
        raise ValueError(
            f"Arguments `n_per_class` and `max_points` must be >= 1, got "
            f"{n_per_class} and {max_points}"
        )
    if xa.ndim == 4:
        fig = _image_grid(xa, ya, n_classes, n_per_class, bool(title))
    elif xa.ndim == 2:
        real = None if real_x is None else np.asarray(real_x, dtype=np.float64)
        if real is not None and (real.ndim != 2 or real.shape[1] != xa.shape[1]):
            raise ValueError(
                f"Argument `real_x` must have shape (m, {xa.shape[1]}), "
                f"got {real.shape}"
            )
        fig = _scatter(xa[:max_points], ya[:max_points], n_classes, real)
    else:
        raise ValueError(
            f"Argument `x` must be (n, D) or (n, ch, H, W), got shape {xa.shape}"
        )
    if title:
        fig.suptitle(title)
    FigureCanvasAgg(fig)
    fig.savefig(path_or_buffer, format="png", dpi=100)


def image_mosaic(
    x: NDArray, y: NDArray, n_classes: int, n_per_class: int, pad: int = 1
) -> NDArray[np.float32]:
    """Tile images into one (H', W', 3) RGB array: row c = first candidates of class c.

    Cells are separated by ``pad`` pixels of mid grey (0.5); missing cells (a class with
    fewer than ``n_per_class`` candidates) are mid grey too. Grey images are repeated
    over the three channels; values are clipped to [0, 1].

    Args:
        x: (n, ch, H, W) images with ch = 1 or ≥ 3 (the first three are used).
        y: (n,) labels.
        n_classes: rows of the mosaic.
        n_per_class: columns of the mosaic.
        pad: border width in pixels.

    Returns:
        (n_classes·(H+pad)+pad, n_per_class·(W+pad)+pad, 3) float32 array.

    Example:
        >>> m = image_mosaic(np.ones((1, 1, 2, 2)), np.array([0]), 1, 2)
        >>> m.shape, float(m[1, 1, 0]), float(m[1, 4, 0])
        ((4, 7, 3), 1.0, 0.5)
    """
    _, ch, h, w = x.shape
    mosaic = np.full(
        (n_classes * (h + pad) + pad, n_per_class * (w + pad) + pad, 3),
        0.5,
        dtype=np.float32,
    )
    for c in range(n_classes):
        for j, row in enumerate(np.flatnonzero(y == c)[:n_per_class]):
            img = np.clip(x[row], 0.0, 1.0)
            rgb = np.repeat(img[:1], 3, axis=0) if ch < 3 else img[:3]
            top, left = pad + c * (h + pad), pad + j * (w + pad)
            mosaic[top : top + h, left : left + w] = np.moveaxis(rgb, 0, -1)
    return mosaic


def _image_grid(
    x: NDArray, y: NDArray, n_classes: int, n_per_class: int, titled: bool
) -> Figure:
    h = x.shape[2]
    width_in = 0.8 * n_per_class + 0.6
    height_in = 0.8 * n_classes + (0.6 if titled else 0.3)
    fig = Figure(figsize=(width_in, height_in))
    left, top = 0.5 / width_in, 1.0 - (0.5 if titled else 0.1) / height_in
    ax = fig.add_axes((left, 0.02, 0.99 - left, top - 0.02))
    ax.imshow(image_mosaic(x, y, n_classes, n_per_class), interpolation="nearest")
    ax.set_xticks([])
    # Row c's centre in pixels: 1 px border, then c cells of H + 1 px.
    ax.set_yticks([1 + c * (h + 1) + (h - 1) / 2 for c in range(n_classes)])
    ax.set_yticklabels([str(c) for c in range(n_classes)])
    ax.set_ylabel("class")
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def principal_axes_2d(x: NDArray, basis: NDArray | None = None) -> NDArray[np.float64]:
    """Project rows of x on the first two principal axes of ``basis`` (default x).

    D ≤ 2 is returned as is (D = 1 gets a zero second column).

    Args:
        x: (n, D) points.
        basis: (m, D) points whose mean and principal axes are used.

    Returns:
        (n, 2) float64 coordinates.

    Example:
        >>> np.round(principal_axes_2d(np.array([[1.0], [2.0]])), 9).tolist()
        [[1.0, 0.0], [2.0, 0.0]]
    """
    x64 = np.asarray(x, dtype=np.float64)
    if x64.shape[1] == 1:
        return np.hstack([x64, np.zeros_like(x64)])
    if x64.shape[1] == 2:
        return x64
    b = x64 if basis is None else np.asarray(basis, dtype=np.float64)
    mean = b.mean(axis=0)
    _, _, vt = np.linalg.svd(b - mean, full_matrices=False)
    return (x64 - mean) @ vt[:2].T


def _scatter(x: NDArray, y: NDArray, n_classes: int, real: NDArray | None) -> Figure:
    basis = real if real is not None else x
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.subplots()
    if real is not None:
        r2 = principal_axes_2d(real, basis)
        ax.scatter(r2[:, 0], r2[:, 1], s=4, c="0.75", label="real", linewidths=0)
    p2 = principal_axes_2d(x, basis)
    cmap = _class_colours(n_classes)
    for c in range(n_classes):
        sel = y == c
        if sel.any():
            ax.scatter(p2[sel, 0], p2[sel, 1], s=4, color=cmap[c], label=f"class {c}")
    pcs = x.shape[1] > 2
    ax.set_xlabel("PC 1" if pcs else "x[0]")
    ax.set_ylabel("PC 2" if pcs else "x[1]")
    ax.legend(markerscale=3, fontsize="small", loc="best")
    return fig


def _class_colours(n_classes: int) -> list[tuple[float, float, float, float]]:
    cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
    return [cmap(c % cmap.N) for c in range(n_classes)]


GATE_MAX_KS = 0.25
"""Gate: the median KS statistic of the continuous columns must not exceed this."""
GATE_MAX_TV = 0.25
"""Gate: the median TV distance of the categorical columns must not exceed this."""
GATE_MAX_CORR_DIFF = 0.25
"""Gate: the mean pairwise-correlation difference must not exceed this."""
GATE_STD_RATIO = (0.5, 2.0)
"""Gate: the median per-column std ratio (images: the spread ratio) lies in here."""
GATE_MIN_SKILL = 0.25
"""Gate: label agreement and TSTR keep this fraction of the real skill over chance."""
GATE_MIN_REAL_SKILL = 0.05
"""Below this real skill over chance, label agreement and TSTR are not judged."""
GATE_MAX_ROWS = 10_000
"""Rows (the first ones) of each set the gate measures."""


def gate_measures(
    real_x: NDArray, fake_x: NDArray, layout: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Spread and (tables) column fidelity of candidates (docs/cgm.md §3.6).

    Tables (``layout`` given): :func:`gan.fidelity.table_fidelity` of the encoded
    rows. Vectors: ``median_std_ratio`` over the columns that vary in the real rows.
    Images: ``spread_ratio`` = √(Σ var_fake) / √(Σ var_real) over all pixels (a
    per-pixel ratio would judge the empty borders).

    Args:
        real_x: (n, ...) pooled real rows (the first 10,000 are used).
        fake_x: (m, ...) candidates (the first 10,000 are used).
        layout: the table layout, or ``None``.

    Returns:
        A JSON-ready dict of measures.
    """
    r, f = real_x[:GATE_MAX_ROWS], fake_x[:GATE_MAX_ROWS]
    if layout is not None:
        return table_fidelity(r, f, layout)
    if r.ndim == 4:
        vr = float(np.var(r.reshape(len(r), -1), axis=0).sum())
        vf = float(np.var(f.reshape(len(f), -1), axis=0).sum())
        return {"spread_ratio": float(np.sqrt(vf / vr)) if vr > 0 else None}
    ratios = std_ratios(r, f)
    return {"median_std_ratio": float(np.median(ratios)) if ratios.size else None}


def _skill(value: float | None, real: float | None, chance: float) -> float | None:
    if value is None or real is None or real - chance < GATE_MIN_REAL_SKILL:
        return None
    return (value - chance) / (real - chance)


def gate_failures(
    measures: dict[str, Any], quality: dict[str, Any], chance: float
) -> list[str]:
    """The measures that trip the quality gate, as ``"name value (limit)"`` strings.

    Args:
        measures: :func:`gate_measures`.
        quality: ``quality.json`` figures (``real_test_acc``, ``label_agreement``,
            ``tstr_acc``; absent when ``gan.quality`` is off).
        chance: the majority-class frequency of the test set.

    Returns:
        The failures, empty when the generator passes.

    Example:
        >>> gate_failures({"median_ks": 0.4}, {}, 0.5)
        ['median KS 0.400 (> 0.25)']
        >>> q = {"real_test_acc": 0.9, "label_agreement": 0.52, "tstr_acc": 0.85}
        >>> gate_failures({}, q, 0.5)
        ['label agreement 0.520 near chance 0.500 (skill 0.05 < 0.25)']
    """
    out = []
    for key, name, limit in (
        ("median_ks", "median KS", GATE_MAX_KS),
        ("median_tv", "median categorical TV", GATE_MAX_TV),
        ("corr_diff", "pairwise-correlation difference", GATE_MAX_CORR_DIFF),
    ):
        v = measures.get(key)
        if v is not None and v > limit:
            out.append(f"{name} {v:.3f} (> {limit})")
    lo, hi = GATE_STD_RATIO
    for key, name in (("median_std_ratio", "std ratio"), ("spread_ratio", "spread")):
        v = measures.get(key)
        if v is not None and not lo <= v <= hi:
            out.append(f"{name} {v:.3f} (outside [{lo}, {hi}])")
    real = quality.get("real_test_acc")
    for key, name in (("label_agreement", "label agreement"), ("tstr_acc", "TSTR")):
        v = quality.get(key)
        skill = _skill(v, real, chance)
        if skill is not None and skill < GATE_MIN_SKILL:
            out.append(
                f"{name} {v:.3f} near chance {chance:.3f} "
                f"(skill {skill:.2f} < {GATE_MIN_SKILL})"
            )
    return out


def gate_message(failures: list[str]) -> str:
    """One line naming the failed measures and the fix (docs/cgm.md §3.6).

    Example:
        >>> gate_message(["std ratio 0.100 (outside [0.5, 2.0])"])[:40]
        'gan quality gate: std ratio 0.100 (outsi'
    """
    return (
        f"gan quality gate: {'; '.join(failures)}: the generator looks collapsed or "
        "unfaithful; train longer (raise gan.epochs) or pool more rows (raise "
        "data.party_size or data.n_parties)"
    )
