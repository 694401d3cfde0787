"""Feature maps the kernel sees: identity, PCA, autoencoder (docs/cgm.md §4).

One map is fitted on X_fit = pooled party x plus candidate x and applied to
parties, candidates and reference alike (docs/cgm.md §9.10). ``auto`` picks identity
for 2-D vectors, PCA for other vectors and the autoencoder for NCHW images.

- ``identity``: flatten, no scaling (the paper's GMM setting); warns for d > 64.
- ``pca``: vectors z-scored with X_fit's mean and std (floor 1e-8), images only
  centred; then the top ``feature_dim`` principal axes (full SVD, no whitening).
- ``autoencoder``: a small Lightning module (conv for images, MLP for vectors),
  Adam 1e-3, batch 128, seeded through a ``torch.Generator`` (initial weights
  and shuffling); codes taken in eval mode. The authors' extra L1 and MMD terms
  on the codes are omitted (docs/cgm.md §4).

Maps return float32, the dtype ``features.h5`` stores, so the value stage values
exactly the vectors it writes. Feature extraction after Tay et al. (AAAI 2022),
who used d = 8 autoencoder codes for MNIST and CIFAR-10.
"""

from __future__ import annotations

import itertools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from data.devices import resolve_device

logger = logging.getLogger(__name__)

FeatureKind = Literal["identity", "pca", "autoencoder", "auto"]

#: identity warns above this dimension (docs/cgm.md §4).
IDENTITY_WARN_DIM = 64

#: Floor of the per-feature standard deviation used for z-scoring (docs/cgm.md §4).
STD_FLOOR = 1e-8

#: Rows per batch when encoding with the autoencoder.
_ENCODE_BATCH = 1024


def _check_x(x: NDArray, name: str = "x") -> NDArray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"Argument `{name}` must be (n, ...) with n >= 1 samples, got shape "
            f"{x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"Argument `{name}` contains NaN or inf")
    return x


def _check_feature_dim(feature_dim: int) -> None:
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int):
        raise TypeError(f"Argument `feature_dim` must be an int, got {feature_dim!r}")
    if feature_dim < 1:
        raise ValueError(f"Argument `feature_dim` must be >= 1, got {feature_dim!r}")


def resolve_feature_kind(
    kind: FeatureKind, sample_shape: tuple[int, ...]
) -> Literal["identity", "pca", "autoencoder"]:
    """The concrete map of ``value.features`` for samples of a shape (docs/cgm.md §4).

    Args:
        kind: ``identity``, ``pca``, ``autoencoder`` or ``auto``.
        sample_shape: shape of one sample: (D,) for vectors, (C, H, W) for images.

    Returns:
        ``auto`` resolved: (2,) → identity, other vectors → pca, images →
        autoencoder; other kinds unchanged.

    Raises:
        ValueError: on an unknown kind, or a sample shape the kind cannot handle.

    Example:
        >>> resolve_feature_kind("auto", (2,)), resolve_feature_kind("auto", (30,))
        ('identity', 'pca')
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
    return "identity" if sample_shape == (2,) else "pca"


class FeatureMap(ABC):
    """A fitted map from samples (n, ...) to feature vectors (n, d) float32."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Dimension d of the feature vectors."""

    @abstractmethod
    def transform(self, x: NDArray) -> NDArray[np.float32]:
        """Map samples (n, ...) of the fitted shape to features (n, d) float32."""


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
        x = _check_x(x)
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
        x = _check_x(x)
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
        >>> fit_pca(x, 1).components.tolist()
        [[1.0, 0.0]]
    """
    x_fit = _check_x(x_fit, "x_fit")
    _check_feature_dim(feature_dim)
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


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _mlp(*widths: int) -> nn.Sequential:
    """Linear layers through ``widths`` with LeakyReLU(0.2) between them."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), _leaky()]
    return nn.Sequential(*layers[:-1])


class AutoencoderModule(pl.LightningModule):
    """Small autoencoder of docs/cgm.md §4: conv for images, MLP for vectors.

    Images (C, H, W) with H, W divisible by 4: encoder Conv2d(C→32) → LeakyReLU →
    BatchNorm → Conv2d(32→64) → LeakyReLU → BatchNorm → flatten → Linear(→ d);
    decoder Linear → ReLU → (64, H/4, W/4) → ConvTranspose2d(64→32) → BatchNorm →
    ReLU → ConvTranspose2d(32→C) → sigmoid (all k4, s2, p1); binary cross-entropy
    (the sigmoid is folded into the loss for stability). Vectors (D,): MLP
    D → 128 → 64 → d and back (LeakyReLU 0.2), MSE on data z-scored with the
    ``mean``/``std`` buffers.

    Args:
        sample_shape: (D,) or (C, H, W).
        feature_dim: code dimension d.
        learning_rate: Adam step size.

    Raises:
        ValueError: on a bad sample shape or feature_dim.
    """

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        feature_dim: int = 8,
        learning_rate: float = 1e-3,
    ) -> None:
        super().__init__()
        sample_shape = tuple(int(s) for s in sample_shape)
        _check_feature_dim(feature_dim)
        self.save_hyperparameters()
        self.sample_shape = sample_shape
        self.learning_rate = learning_rate
        self.is_image = len(sample_shape) == 3
        # Construction draws default inits from the global RNG; fork_rng restores
        # it, so building (or loading) a module leaves global state untouched.
        with torch.random.fork_rng(devices=[]):
            if self.is_image:
                self._build_conv(sample_shape, feature_dim)
            elif len(sample_shape) == 1:
                self._build_mlp(sample_shape[0], feature_dim)
            else:
                raise ValueError(
                    "Argument `sample_shape` must be (D,) or (C, H, W), got "
                    f"{sample_shape}"
                )
        n_in = sample_shape[0] if not self.is_image else 1
        self.register_buffer("mean", torch.zeros(n_in, dtype=torch.float32))
        self.register_buffer("std", torch.ones(n_in, dtype=torch.float32))

    def _build_conv(self, shape: tuple[int, ...], d: int) -> None:
        ch, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(
                f"Argument `sample_shape` must have H and W divisible by 4, got {shape}"
            )
        flat = 64 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(ch, 32, 4, 2, 1),
            _leaky(),
            nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 4, 2, 1),
            _leaky(),
            nn.BatchNorm2d(64),
            nn.Flatten(),
            nn.Linear(flat, d),
        )
        self.decoder = nn.Sequential(
            nn.Linear(d, flat),
            nn.ReLU(),
            nn.Unflatten(1, (64, h // 4, w // 4)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.ConvTranspose2d(32, ch, 4, 2, 1),
        )

    def _build_mlp(self, n_in: int, d: int) -> None:
        self.encoder = _mlp(n_in, 128, 64, d)
        self.decoder = _mlp(d, 64, 128, n_in)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw every weight and bias from ``generator`` (PyTorch's default scheme).

        Args:
            generator: the seeded torch generator that owns the initialisation.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def _standardise(self, x: Tensor) -> Tensor:
        return x if self.is_image else (x - self.mean) / self.std

    def encode(self, x: Tensor) -> Tensor:
        """Codes (n, d) of raw samples (vectors are z-scored first)."""
        return self.encoder(self._standardise(x))

    def forward(self, x: Tensor) -> Tensor:
        """Codes (n, d) of raw samples."""
        return self.encode(x)

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        """Reconstruction loss: BCE on [0, 1] pixels, MSE on z-scored vectors."""
        (x,) = batch
        target = self._standardise(x)
        recon = self.decoder(self.encoder(target))
        if self.is_image:
            loss = F.binary_cross_entropy_with_logits(recon, target)
        else:
            loss = F.mse_loss(recon, target)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam with the configured step size (docs/cgm.md §4: 1e-3)."""
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class AutoencoderMap(FeatureMap):
    """A fitted autoencoder used as a feature map (codes in eval mode).

    Args:
        module: the trained module.
        trainer: the Trainer that fitted it (needed by :meth:`save`); None for a
            loaded map.
        device: where to encode: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    kind: ClassVar[str] = "autoencoder"

    def __init__(
        self,
        module: AutoencoderModule,
        trainer: pl.Trainer | None = None,
        device: str = "cpu",
    ) -> None:
        self.module = module
        self.trainer = trainer
        self.device = resolve_device(device)

    @property
    def feature_dim(self) -> int:
        """Code dimension d."""
        return int(self.module.hparams["feature_dim"])

    def transform(self, x: NDArray) -> NDArray[np.float32]:
        """Encode samples in eval mode, in batches.

        Args:
            x: (n, *sample_shape) samples.

        Returns:
            (n, d) float32 codes.

        Raises:
            ValueError: if the sample shape differs from the fitted one.
        """
        x = _check_x(x)
        if x.shape[1:] != self.module.sample_shape:
            raise ValueError(
                f"Argument `x` must hold samples of shape {self.module.sample_shape}, "
                f"got {x.shape[1:]}"
            )
        module = self.module.to(self.device)
        module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], _ENCODE_BATCH):
                xb = torch.from_numpy(
                    np.ascontiguousarray(x[start : start + _ENCODE_BATCH], np.float32)
                ).to(self.device)
                out.append(module.encode(xb).cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float32)

    def save(self, path: str) -> None:
        """Write a Lightning checkpoint (weights, buffers and hyper-parameters).

        Args:
            path: file to write (the caller makes it atomic).

        Raises:
            RuntimeError: if the map was loaded rather than fitted (no Trainer).
        """
        if self.trainer is None:
            raise RuntimeError("only a fitted AutoencoderMap (with its Trainer) saves")
        self.trainer.save_checkpoint(path, weights_only=True)

    @classmethod
    def load(cls, path: str, *, device: str = "cpu") -> AutoencoderMap:
        """Read a checkpoint written by :meth:`save`.

        Args:
            path: the checkpoint.
            device: where to encode.

        Returns:
            The map (without a Trainer).
        """
        module = AutoencoderModule.load_from_checkpoint(path, map_location="cpu")
        return cls(module, None, device)


def _torch_seed(seed: int | np.random.Generator | np.random.SeedSequence | None) -> int:
    return int(np.random.default_rng(seed).integers(2**62))


def fit_autoencoder(
    x_fit: NDArray,
    feature_dim: int = 8,
    *,
    epochs: int = 15,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    device: str = "auto",
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    progress: bool = False,
) -> AutoencoderMap:
    """Train the autoencoder of docs/cgm.md §4 on X_fit.

    The seed drives one ``torch.Generator`` for the initial weights and one for
    the shuffling; global seeding (``seed_everything``) is left to the stage.

    Args:
        x_fit: (n, D) vectors or (n, C, H, W) images in [0, 1].
        feature_dim: code dimension d.
        epochs: training epochs (``value.ae_epochs``).
        seed: seed of the initialisation and shuffling.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        batch_size: mini-batch size.
        learning_rate: Adam step size.
        progress: show Lightning's progress bar.

    Returns:
        The fitted map (with its Trainer, so it can be saved).

    Raises:
        ValueError: on bad samples or settings.
    """
    x_fit = _check_x(x_fit, "x_fit")
    _check_feature_dim(feature_dim)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Argument `{name}` must be an int >= 1, got {value!r}")
    dev = resolve_device(device)
    base = _torch_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(x_fit, dtype=np.float32))
    module = AutoencoderModule(tuple(x_fit.shape[1:]), feature_dim, learning_rate)
    module.reset_parameters(torch.Generator().manual_seed(base))
    if not module.is_image:
        module.mean.copy_(x.mean(0))
        module.std.copy_(x.std(0, unbiased=False).clamp_min(STD_FLOOR))
    loader = DataLoader(
        TensorDataset(x),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(base + 1),
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if dev.type == "cuda" else "cpu",
        devices=1,
        deterministic="warn" if dev.type == "cuda" else True,
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, train_dataloaders=loader)
    return AutoencoderMap(module, trainer, device)


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
    x_fit = _check_x(x_fit, "x_fit")
    resolved = resolve_feature_kind(kind, tuple(x_fit.shape[1:]))
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
    """Fit one map on parties plus candidates and apply it to both (docs/cgm.md §4, §9.10).

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
    arrays = [_check_x(x, f"party_x[{i}]") for i, x in enumerate(party_x)]
    cands = _check_x(candidate_x, "candidate_x")
    for i, x in enumerate(arrays):
        if x.shape[1:] != cands.shape[1:]:
            raise ValueError(
                f"Argument `party_x[{i}]` has samples of shape {x.shape[1:]} but "
                f"`candidate_x` has {cands.shape[1:]}"
            )
    x_fit = np.concatenate([*arrays, cands], axis=0)
    fmap = fit_feature_map(x_fit, kind, **fit_kwargs)  # type: ignore[arg-type]
    return fmap, [fmap.transform(x) for x in arrays], fmap.transform(cands)
