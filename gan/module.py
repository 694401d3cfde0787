"""The conditional GAN as a LightningModule: docs/cgm.md §3.2 (Tay et al., AAAI 2022).

:class:`GANModule` owns the generator and discriminator of ``gan/models.py``, the
scaling between the data space and the model space (docs/cgm.md §3.1), and the
manual-optimisation training step with the non-saturating generator loss. Its
hyper-parameters (architecture, latent size, C, sample shape, scaling statistics, class
frequencies, seed) are saved in every checkpoint, so
``GANModule.load_from_checkpoint(path)`` rebuilds a generator that samples without the
pool.

Randomness has two owners, both derived from the ``seed`` argument: the initial weights
come from a CPU ``torch.Generator`` (:func:`derive_seed` ``(seed, 0)``) and the training
latents from a device ``torch.Generator`` created at the start of ``fit``
(``(seed, 1, global_rank)``). No code here reads the global RNG.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from data.checks import check_int, check_positive
from gan.models import IMAGE_LATENT_DIM, VECTOR_LATENT_DIM, build_networks

logger = logging.getLogger(__name__)

STD_FLOOR = 1e-8
"""Floor on the per-feature std of the vector standardisation (docs/cgm.md §3.1)."""

_INIT_KEY = 0
_LATENT_KEY = 1


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit torch seed derived by name from ``seed`` (docs/interface.md §7).

    Args:
        seed: the root seed (≥ 0).
        *keys: integers naming the consumer (≥ 0).

    Returns:
        An int in [0, 2³²) from ``SeedSequence([seed, *keys])``.

    Example:
        >>> derive_seed(3, 1) == derive_seed(3, 1) != derive_seed(3, 2)
        True
    """
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def standardisation_stats(x: NDArray) -> tuple[list[float], list[float]]:
    """Per-feature mean and std (ddof 0, float64) of pooled vectors (docs/cgm.md §3.1).

    Args:
        x: (n, D) array.

    Returns:
        (mean, std) as lists of D floats; std is not floored (the module floors it).

    Example:
        >>> standardisation_stats(np.array([[0.0, 1.0], [2.0, 1.0]]))
        ([1.0, 1.0], [1.0, 0.0])
    """
    x64 = np.asarray(x, dtype=np.float64)
    return x64.mean(axis=0).tolist(), x64.std(axis=0).tolist()


def _as_floats(name: str, value: Any, length: int) -> list[float]:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"Argument `{name}` must be a sequence of numbers, got {value!r}"
        ) from e
    if arr.size != length:
        raise ValueError(
            f"Argument `{name}` must have {length} entries, got {arr.size}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"Argument `{name}` must be finite, got {arr.tolist()!r}")
    return arr.tolist()


class GANModule(pl.LightningModule):
    """Conditional GAN (docs/cgm.md §3.1–§3.2) with manual optimisation.

    Per real batch (x, y): z ~ N(0, I), fake = G(z, y) (fake labels = the batch's
    labels); D step L_D = BCE(D(x, y), 1) + BCE(D(fake.detach(), y), 0); G step
    L_G = BCE(D(fake, y), 1) (non-saturating). Each step toggles its optimiser, calls
    ``manual_backward``, steps and untoggles; ``d_loss`` and ``g_loss`` are logged.

    Args:
        kind: ``"image"`` (conditional DCGAN, x of shape (ch, H, W) in [0, 1]) or
            ``"vector"`` (conditional MLP GAN, x of shape (D,)).
        sample_shape: shape of one sample, (ch, H, W) or (D,).
        n_classes: C ≥ 1.
        class_frequencies: the pooled class frequencies π_c (C non-negative numbers,
            positive sum); stored so that candidates can be drawn without the pool.
        latent_dim: size of z; ``None`` gives the spec's 100 (images) or 16 (vectors).
        width: w of the DCGAN (``gan.width``); ignored for vectors.
        lr: Adam learning rate of both optimisers.
        betas: Adam betas of both optimisers.
        data_mean: vectors only: the pooled per-feature mean (D floats).
        data_std: vectors only: the pooled per-feature std (D floats; floored at 1e-8).
        seed: root of the initial-weight and training-latent generators.

    Raises:
        ValueError: on a bad value (named in the message).
        TypeError: on a bad type.
    """

    def __init__(
        self,
        kind: Literal["image", "vector"],
        sample_shape: Sequence[int],
        n_classes: int,
        class_frequencies: Sequence[float],
        latent_dim: int | None = None,
        width: int = 64,
        lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        data_mean: Sequence[float] | None = None,
        data_std: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if kind not in ("image", "vector"):
            raise ValueError(
                f"Argument `kind` must be 'image' or 'vector', got {kind!r}"
            )
        shape = [check_int("sample_shape", s, 1) for s in sample_shape]
        n_classes = check_int("n_classes", n_classes, 1)
        freqs = _as_floats("class_frequencies", class_frequencies, n_classes)
        if min(freqs) < 0 or sum(freqs) <= 0:
            raise ValueError(
                f"Argument `class_frequencies` must be >= 0 with a positive sum, "
                f"got {freqs!r}"
            )
        if latent_dim is None:
            latent_dim = IMAGE_LATENT_DIM if kind == "image" else VECTOR_LATENT_DIM
        latent_dim = check_int("latent_dim", latent_dim, 1)
        width = check_int("width", width, 1)
        check_positive("lr", lr)
        betas_list = _as_floats("betas", betas, 2)
        if not all(0.0 <= b < 1.0 for b in betas_list):
            raise ValueError(f"Argument `betas` must lie in [0, 1), got {betas_list!r}")
        seed = check_int("seed", seed, 0)
        if kind == "vector":
            if len(shape) != 1:
                raise ValueError(
                    f"Argument `sample_shape` must be (D,) for vectors, "
                    f"got {tuple(shape)!r}"
                )
            if data_mean is None or data_std is None:
                raise ValueError(
                    "Arguments `data_mean` and `data_std` are required for "
                    "kind 'vector'"
                )
            mean = _as_floats("data_mean", data_mean, shape[0])
            std = _as_floats("data_std", data_std, shape[0])
            if min(std) < 0:
                raise ValueError(f"Argument `data_std` must be >= 0, got {std!r}")
        else:
            if data_mean is not None or data_std is not None:
                raise ValueError(
                    "Arguments `data_mean` and `data_std` must be None for kind 'image'"
                )
            mean, std = None, None

        # Plain Python values only, so that the checkpoint loads with weights_only=True.
        self.save_hyperparameters(
            {
                "kind": kind,
                "sample_shape": shape,
                "n_classes": n_classes,
                "class_frequencies": freqs,
                "latent_dim": latent_dim,
                "width": width,
                "lr": float(lr),
                "betas": betas_list,
                "data_mean": mean,
                "data_std": std,
                "seed": seed,
            }
        )
        self.automatic_optimization = False
        init_gen = torch.Generator().manual_seed(derive_seed(seed, _INIT_KEY))
        self.generator, self.discriminator = build_networks(
            kind, tuple(shape), n_classes, latent_dim, width, init_gen
        )
        if kind == "vector":
            self.register_buffer("data_mean", torch.tensor(mean, dtype=torch.float32))
            floored = np.maximum(np.asarray(std), STD_FLOOR)
            self.register_buffer("data_std", torch.tensor(floored, dtype=torch.float32))
        self._latent_gen: torch.Generator | None = None
        self.n_batches_seen = 0

    # ------------------------------------------------------------------ scaling
    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample in the data space."""
        return tuple(self.hparams["sample_shape"])

    @property
    def n_classes(self) -> int:
        """C, the number of classes."""
        return int(self.hparams["n_classes"])

    @property
    def latent_dim(self) -> int:
        """Size of z."""
        return int(self.hparams["latent_dim"])

    def from_data_space(self, x: Tensor) -> Tensor:
        """Data → model space: images 2x − 1, vectors (x − mean)/std (docs/cgm.md §3.1).

        Args:
            x: (N, *sample_shape) float tensor in the data space.

        Returns:
            The tensor in the model space.
        """
        if self.hparams["kind"] == "image":
            return 2.0 * x - 1.0
        return (x - self.data_mean) / self.data_std

    def to_data_space(self, g: Tensor) -> Tensor:
        """Model space → data space: images clip((g+1)/2, 0, 1), vectors g·std + mean.

        Args:
            g: (N, *sample_shape) generator output.

        Returns:
            The tensor in the data space.
        """
        if self.hparams["kind"] == "image":
            return ((g + 1.0) / 2.0).clamp(0.0, 1.0)
        return g * self.data_std + self.data_mean

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Generate samples in the data space (no scaling needed by the caller).

        Args:
            z: (N, latent_dim) latent codes.
            y: (N,) int64 labels in [0, C).

        Returns:
            (N, *sample_shape) samples in the data space.
        """
        return self.to_data_space(self.generator(z, y))

    # ----------------------------------------------------------------- training
    def configure_optimizers(
        self,
    ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """Two Adam optimisers, G first (default lr 2e-4, betas (0.5, 0.999))."""
        lr, betas = self.hparams["lr"], tuple(self.hparams["betas"])
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        return opt_g, opt_d

    def on_fit_start(self) -> None:
        """Create the training-latent generator on the module's device, per rank."""
        seed = derive_seed(self.hparams["seed"], _LATENT_KEY, self.global_rank)
        self._latent_gen = torch.Generator(device=self.device).manual_seed(seed)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """One D step and one non-saturating G step on a real batch (docs/cgm.md §3.2).

        Args:
            batch: (x in the data space, y int64).
            batch_idx: index of the batch in the epoch (unused).

        Raises:
            RuntimeError: if called outside ``Trainer.fit``.
        """
        if self._latent_gen is None:
            raise RuntimeError("GANModule.training_step called before on_fit_start")
        opt_g, opt_d = self.optimizers()
        x, y = batch
        x = self.from_data_space(x)
        n = x.shape[0]
        z = torch.randn(
            n, self.latent_dim, generator=self._latent_gen, device=self.device
        )
        fake = self.generator(z, y)
        ones = torch.ones(n, device=self.device)
        zeros = torch.zeros(n, device=self.device)

        self.toggle_optimizer(opt_d)
        d_loss = F.binary_cross_entropy_with_logits(
            self.discriminator(x, y).float(), ones
        ) + F.binary_cross_entropy_with_logits(
            self.discriminator(fake.detach(), y).float(), zeros
        )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_loss = F.binary_cross_entropy_with_logits(
            self.discriminator(fake, y).float(), ones
        )
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.n_batches_seen += 1
        self.log_dict(
            {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()},
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=n,
        )
