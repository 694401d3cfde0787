"""The autoencoder feature map of docs/cgm.md §4.

A small Lightning module (conv for images, MLP for vectors), Adam 1e-3, batch
128, seeded through a ``torch.Generator`` (initial weights and shuffling); codes
are taken in eval mode. The authors' extra L1 and MMD terms on the codes are
omitted (docs/cgm.md §4). Fitted by :func:`fit_autoencoder`; chosen through
:func:`valuation.features.fit_feature_map`.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from data.checks import check_positive_int
from data.devices import resolve_device
from valuation.feature_base import (
    STD_FLOOR,
    FeatureMap,
    check_samples,
)

logger = logging.getLogger(__name__)

#: Rows per batch when encoding with the autoencoder.
_ENCODE_BATCH = 1024


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
        check_positive_int("feature_dim", feature_dim)
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
        x = check_samples(x)
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
    x_fit = check_samples(x_fit, "x_fit")
    check_positive_int("feature_dim", feature_dim)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
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
