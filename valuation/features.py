"""Feature maps the kernel sees: identity, PCA, autoencoder (docs/cgm.md §4).

One map is fitted on X_fit = pooled party x plus candidate x and applied to
parties, candidates and reference alike (docs/cgm.md §9.10). ``auto`` picks identity
for 2-D vectors, PCA for other vectors and the autoencoder for NCHW images.

- ``identity``: flatten, no scaling (the paper's GMM setting); warns for d > 64.
- ``pca``: vectors z-scored with X_fit's mean and std (floor 1e-8), images only
  centred; then the top ``feature_dim`` principal axes (full SVD, no whitening).
- ``autoencoder``: a small Lightning module (conv for images, MLP for vectors)
  in :mod:`valuation.autoencoder`; the authors' extra L1 and MMD terms on the
  codes are omitted (docs/cgm.md §4).

Maps return float32, the dtype ``features.h5`` stores, so the value stage values
exactly the vectors it writes. Feature extraction after Tay et al. (AAAI 2022),
who used d = 8 autoencoder codes for MNIST and CIFAR-10.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from data.checks import check_positive_int
from valuation.autoencoder import fit_autoencoder
from valuation.feature_base import (
    STD_FLOOR,
    FeatureMap,
    check_samples,
)

logger = logging.getLogger(__name__)

FeatureKind = Literal["identity", "pca", "autoencoder", "auto"]

#: identity warns above this dimension (docs/cgm.md §4).
IDENTITY_WARN_DIM = 64


def resolve_feature_kind(
    kind: FeatureKind, sample_shape: tuple[int, ...], feature_dim: int | None = None
) -> Literal["identity", "pca", "autoencoder"]:
    """The concrete map of ``value.features`` for samples of a shape (docs/cgm.md §4).

    Args:
        kind: ``identity``, ``pca``, ``autoencoder`` or ``auto``.
        sample_shape: shape of one sample: (D,) for vectors, (C, H, W) for images.
        feature_dim: the requested d; ``auto`` keeps vectors with D ≤ d as they
            are (PCA to d ≥ D dimensions would only rotate them).

    Returns:
        ``auto`` resolved: (2,) or D ≤ ``feature_dim`` → identity, other vectors
        → pca, images → autoencoder; other kinds unchanged.

    Raises:
        ValueError: on an unknown kind, or a sample shape the kind cannot handle.

    Example:
        >>> resolve_feature_kind("auto", (2,)), resolve_feature_kind("auto", (30,))
        ('identity', 'pca')
        >>> resolve_feature_kind("auto", (7,), feature_dim=8)
        'identity'
    """
    if kind not in ("identity", "pca", "autoencoder", "auto"):
        raise ValueError(
            "Argument `kind` must be 'identity', 'pca', 'autoencoder' or 'auto', "
            f"got {kind!r}"
        )
    is_vector, is_image = len(sample_shape) == 1, len(sample_shape) == 3
    if kind in ("pca", "autoencoder", "auto") and not (is_vector or is_image):
        raise ValueError(
            f"Argument `kind` is {kind!r}, which needs vectors (n, D) or images "
            f"(n, C, H, W), got samples of shape {sample_shape}"
        )
    if kind != "auto":
        return kind
    if is_image:
        return "autoencoder"
    small = feature_dim is not None and sample_shape[0] <= feature_dim
    return "identity" if sample_shape == (2,) or small else "pca"


@dataclass(frozen=True)
class IdentityMap(FeatureMap):
    """Flatten, no scaling (docs/cgm.md §4).

    Attributes:
        sample_shape: shape of one sample.
    """

    kind: ClassVar[str] = "identity"
    sample_shape: tuple[int, ...]

    @property
    def feature_dim(self) -> int:
        """Product of the sample shape."""
        return math.prod(self.sample_shape)

    def transform(self, x: NDArray) -> NDArray[np.float32]:
        """Flatten to (n, D) float32.

        Args:
            x: (n, *sample_shape) samples.

        Returns:
            (n, D) float32.

        Raises:
            ValueError: if the sample shape differs from the fitted one.

        Example:
            >>> IdentityMap((2, 2)).transform(np.ones((1, 2, 2))).tolist()
            [[1.0, 1.0, 1.0, 1.0]]
        """
        x = check_samples(x)
        if x.shape[1:] != self.sample_shape:
            raise ValueError(
                f"Argument `x` must hold samples of shape {self.sample_shape}, got "
                f"{x.shape[1:]}"
            )
        return x.reshape(x.shape[0], -1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class PcaMap(FeatureMap):
    """z = ((x − mean) / scale) @ componentsᵀ on flattened samples (docs/cgm.md §4).

    Attributes:
        mean: (D,) float64 mean of X_fit.
        scale: (D,) float64 std of X_fit floored at 1e-8 (vectors) or ones (images).
        components: (d, D) float64 principal axes, rows orthonormal.
    """

    kind: ClassVar[str] = "pca"
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    components: NDArray[np.float64]

    @property
    def feature_dim(self) -> int:
        """Number of principal axes d."""
        return int(self.components.shape[0])

    def transform(self, x: NDArray) -> NDArray[np.float32]:
        """Project flattened, standardised samples on the principal axes.

        Args:
            x: (n, ...) samples with D values each.

        Returns:
            (n, d) float32 codes.

        Raises:
            ValueError: if a sample does not have D values.

        Example:
            >>> m = PcaMap(np.zeros(2), np.ones(2), np.array([[0.0, 1.0]]))
            >>> m.transform(np.array([[3.0, 4.0]])).tolist()
            [[4.0]]
        """
        x = check_samples(x)
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"Argument `x` must have {self.mean.shape[0]} values per sample, got "
                f"{flat.shape[1]}"
            )
        return (((flat - self.mean) / self.scale) @ self.components.T).astype(
            np.float32
        )

    def to_arrays(self) -> dict[str, NDArray[np.float64]]:
        """The arrays to store in the ``feature_map`` group of ``features.h5``.

        Returns:
            {"mean": (D,), "scale": (D,), "components": (d, D)} float64.
        """
        return {"mean": self.mean, "scale": self.scale, "components": self.components}

    @classmethod
    def from_arrays(cls, arrays: dict[str, NDArray]) -> PcaMap:
        """Rebuild a map from :meth:`to_arrays` output.

        Args:
            arrays: dict with ``mean``, ``scale`` and ``components``.

        Returns:
            The map.

        Raises:
            ValueError: on a missing array or inconsistent shapes.
        """
        missing = {"mean", "scale", "components"} - set(arrays)
        if missing:
            raise ValueError(f"Argument `arrays` lacks {sorted(missing)!r}")
        mean = np.asarray(arrays["mean"], dtype=np.float64)
        scale = np.asarray(arrays["scale"], dtype=np.float64)
        comps = np.asarray(arrays["components"], dtype=np.float64)
        if (
            mean.ndim != 1
            or scale.shape != mean.shape
            or comps.ndim != 2
            or comps.shape[1] != mean.shape[0]
        ):
            raise ValueError(
                "Argument `arrays` must hold mean (D,), scale (D,), components "
                f"(d, D), got {mean.shape}, {scale.shape}, {comps.shape}"
            )
        return cls(mean, scale, comps)


def fit_pca(x_fit: NDArray, feature_dim: int) -> PcaMap:
    """Fit the PCA map of docs/cgm.md §4 on X_fit (full SVD, no whitening).

    Vectors (n, D) are z-scored with X_fit's mean and std (floor 1e-8); images
    (n, C, H, W) are only centred. Each axis gets the sign that makes its
    largest-magnitude entry positive, so the fit is deterministic.

    Args:
        x_fit: (n, D) vectors or (n, C, H, W) images.
        feature_dim: number of principal axes d ≤ min(n, D).

    Returns:
        The fitted map.

    Raises:
        ValueError: on bad samples or ``feature_dim``.

    Example:
        >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])  # variance along x
        >>> np.round(np.abs(fit_pca(x, 1).components), 9).tolist()
        [[1.0, 0.0]]
    """
    x_fit = check_samples(x_fit, "x_fit")
    check_positive_int("feature_dim", feature_dim)
    flat = x_fit.reshape(x_fit.shape[0], -1).astype(np.float64)
    if feature_dim > min(flat.shape):
        raise ValueError(
            f"Argument `feature_dim` must be <= min(n, D) = {min(flat.shape)}, got "
            f"{feature_dim}"
        )
    mean = flat.mean(axis=0)
    if x_fit.ndim == 2:
        scale = np.maximum(flat.std(axis=0), STD_FLOOR)
    else:
        scale = np.ones_like(mean)
    _, _, vt = np.linalg.svd((flat - mean) / scale, full_matrices=False)
    comps = vt[:feature_dim]
    signs = np.sign(comps[np.arange(feature_dim), np.abs(comps).argmax(axis=1)])
    return PcaMap(mean, scale, comps * signs[:, None])


def fit_feature_map(
    x_fit: NDArray,
    kind: FeatureKind = "auto",
    *,
    feature_dim: int = 8,
    ae_epochs: int = 15,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    device: str = "auto",
    progress: bool = False,
) -> FeatureMap:
    """Fit the map ``kind`` (``value.features``) on X_fit (docs/cgm.md §4).

    Args:
        x_fit: pooled party x plus candidate x, (n, D) or (n, C, H, W).
        kind: ``identity``, ``pca``, ``autoencoder`` or ``auto``.
        feature_dim: d for PCA and the autoencoder (identity ignores it).
        ae_epochs: autoencoder epochs.
        seed: autoencoder seed (PCA and identity are deterministic).
        device: autoencoder device.
        progress: show progress.

    Returns:
        The fitted map.

    Raises:
        ValueError: on bad samples or settings.

    Example:
        >>> fit_feature_map(np.zeros((5, 2))).kind
        'identity'
    """
    x_fit = check_samples(x_fit, "x_fit")
    resolved = resolve_feature_kind(kind, tuple(x_fit.shape[1:]), feature_dim)
    if resolved == "identity":
        fmap: FeatureMap = IdentityMap(tuple(x_fit.shape[1:]))
        if fmap.feature_dim > IDENTITY_WARN_DIM:
            logger.warning(
                "identity features have d = %d > %d: the SE kernel on raw "
                "high-dimensional data discriminates poorly; consider pca or "
                "autoencoder",
                fmap.feature_dim,
                IDENTITY_WARN_DIM,
            )
        return fmap
    if resolved == "pca":
        return fit_pca(x_fit, feature_dim)
    return fit_autoencoder(
        x_fit,
        feature_dim,
        epochs=ae_epochs,
        seed=seed,
        device=device,
        progress=progress,
    )


def featurise(
    party_x: Sequence[NDArray],
    candidate_x: NDArray,
    kind: FeatureKind = "auto",
    **fit_kwargs: object,
) -> tuple[FeatureMap, list[NDArray[np.float32]], NDArray[np.float32]]:
    """Fit one map on parties plus candidates, apply it to both (docs/cgm.md §4, §9.10).

    Args:
        party_x: N arrays (n_i, ...) of party samples.
        candidate_x: (n_G, ...) candidate samples.
        kind: ``identity``, ``pca``, ``autoencoder`` or ``auto``.
        **fit_kwargs: passed to :func:`fit_feature_map` (feature_dim, ae_epochs,
            seed, device, progress).

    Returns:
        (map, party features [(n_i, d) float32], candidate features (n_G, d)
        float32); the reference is their concatenation in that order.

    Raises:
        ValueError: on no parties or mismatched sample shapes.

    Example:
        >>> fmap, parties, cands = featurise([np.ones((2, 2))], np.zeros((3, 2)))
        >>> fmap.kind, parties[0].shape, cands.shape
        ('identity', (2, 2), (3, 2))
    """
    if len(party_x) == 0:
        raise ValueError("Argument `party_x` must hold at least one party")
    arrays = [check_samples(x, f"party_x[{i}]") for i, x in enumerate(party_x)]
    cands = check_samples(candidate_x, "candidate_x")
    for i, x in enumerate(arrays):
        if x.shape[1:] != cands.shape[1:]:
            raise ValueError(
                f"Argument `party_x[{i}]` has samples of shape {x.shape[1:]} but "
                f"`candidate_x` has {cands.shape[1:]}"
            )
    x_fit = np.concatenate([*arrays, cands], axis=0)
    fmap = fit_feature_map(x_fit, kind, **fit_kwargs)  # type: ignore[arg-type]
    return fmap, [fmap.transform(x) for x in arrays], fmap.transform(cands)
