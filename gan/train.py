"""Train the conditional GAN on the pooled party data with Lightning (docs/cgm.md §3.2).

:func:`train_gan` checks its arguments, resolves accelerator / devices / precision /
strategy (:func:`resolve_trainer_settings`), builds :class:`~gan.module.GANModule` and
:class:`~gan.datamodule.PooledDataModule` and runs ``Trainer.fit``. It returns the
module, the trainer (for ``trainer.save_checkpoint`` and ``trainer.is_global_zero``) and
:class:`TrainStats` (wall time, throughput, final losses).

Global seeding is the caller's job (docs/interface.md §7): a stage entry point calls
``pl.seed_everything(seed, workers=True)`` before :func:`train_gan`. The module's own
generators already make a CPU run reproducible from ``seed`` alone; the global seed
covers DataLoader workers and anything Lightning draws itself.
"""

from __future__ import annotations

import logging
import math
import signal
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from numpy.typing import NDArray

from data.checks import check_int, check_positive_int
from gan.ctgan import PAC, CTGANModule, pac_for
from gan.ctgan_data import CondSampler, CTGANDataModule, fit_transformer, to_model_space
from gan.datamodule import PooledDataModule, check_xy
from gan.module import GANModule, derive_seed, standardisation_stats
from gan.sampling import class_frequencies

logger = logging.getLogger(__name__)

_DATA_KEY = 2
_ACCELERATORS = ("auto", "cpu", "gpu")
_PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed")
MODELS = ("auto", "dcgan", "mlp", "ctgan")


@dataclass(frozen=True, kw_only=True)
class TrainerSettings:
    """Resolved Lightning ``Trainer`` settings (docs/cgm.md §3.2).

    Attributes:
        accelerator: ``"cpu"`` or ``"gpu"``.
        devices: number of devices (≥ 1).
        precision: ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"``.
        strategy: ``"ddp"`` when devices > 1, else ``"auto"``.
        deterministic: ``True`` on the CPU, ``"warn"`` on CUDA.
    """

    accelerator: Literal["cpu", "gpu"]
    devices: int
    precision: str
    strategy: str
    deterministic: bool | Literal["warn"]


@dataclass(frozen=True, kw_only=True)
class TrainStats:
    """What one :func:`train_gan` call measured (on this rank).

    Attributes:
        wall_time_s: seconds spent in ``Trainer.fit``.
        epochs: completed epochs.
        n_batches: training batches (one D step and one G step each).
        n_samples: real rows seen, n_batches·batch_size.
        samples_per_s: n_samples / wall_time_s.
        sec_per_epoch: wall_time_s / max(epochs, 1).
        d_loss: mean discriminator loss of the last epoch (``None`` if not logged).
        g_loss: mean generator loss of the last epoch (``None`` if not logged).
        settings: the resolved trainer settings.
    """

    wall_time_s: float
    epochs: int
    n_batches: int
    n_samples: int
    samples_per_s: float
    sec_per_epoch: float
    d_loss: float | None
    g_loss: float | None
    settings: TrainerSettings

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no NaN; the settings flattened in)."""
        out = asdict(self)
        out.update(out.pop("settings"))
        return out


def resolve_trainer_settings(
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str = "auto",
    *,
    cuda_available: bool | None = None,
    cuda_device_count: int | None = None,
    bf16_supported: bool | None = None,
) -> TrainerSettings:
    """Resolve ``gan.accelerator``, ``devices`` and ``precision`` (docs/cgm.md §3.2).

    ``auto`` accelerator is ``gpu`` when CUDA is available, else ``cpu``; ``auto``
    devices is every visible GPU (1 on the CPU); devices > 1 use ``ddp``; ``auto``
    precision is ``bf16-mixed`` on a bf16-capable CUDA GPU, else ``32-true``.

    Args:
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        devices: ``"auto"`` or an int ≥ 1.
        precision: ``"auto"``, ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"``.
        cuda_available: override ``torch.cuda.is_available()`` (tests).
        cuda_device_count: override ``torch.cuda.device_count()`` (tests).
        bf16_supported: override ``torch.cuda.is_bf16_supported()`` (tests).

    Returns:
        The resolved :class:`TrainerSettings`.

    Raises:
        ValueError: on an unknown option, ``gpu`` without CUDA, too many devices,
            or ``16-mixed`` on the CPU.

    Example:
        >>> s = resolve_trainer_settings("cpu", "auto", "auto", cuda_available=False)
        >>> (s.accelerator, s.devices, s.precision, s.strategy, s.deterministic)
        ('cpu', 1, '32-true', 'auto', True)
    """
    if accelerator not in _ACCELERATORS:
        raise ValueError(
            f"Argument `accelerator` must be one of {_ACCELERATORS}, "
            f"got {accelerator!r}"
        )
    if precision not in _PRECISIONS:
        raise ValueError(
            f"Argument `precision` must be one of {_PRECISIONS}, got {precision!r}"
        )
    if devices != "auto":
        check_positive_int("devices", devices)
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if accelerator == "gpu" and not cuda_available:
        raise ValueError(
            "Argument `accelerator` is 'gpu' but CUDA is not available; "
            "use 'auto' or 'cpu'"
        )
    resolved: Literal["cpu", "gpu"] = (
        "gpu"
        if accelerator == "gpu" or (accelerator == "auto" and cuda_available)
        else "cpu"
    )
    if resolved == "gpu":
        n_visible = (
            torch.cuda.device_count()
            if cuda_device_count is None
            else cuda_device_count
        )
        n_devices = n_visible if devices == "auto" else int(devices)
        if n_devices > n_visible:
            raise ValueError(
                f"Argument `devices` asks for {n_devices} GPUs, "
                f"but {n_visible} are visible"
            )
    else:
        n_devices = 1 if devices == "auto" else int(devices)
    if precision == "auto":
        if resolved == "gpu":
            if bf16_supported is None:
                bf16_supported = torch.cuda.is_bf16_supported()
            precision = "bf16-mixed" if bf16_supported else "32-true"
        else:
            precision = "32-true"
    if precision == "16-mixed" and resolved == "cpu":
        raise ValueError(
            "Argument `precision` '16-mixed' needs a GPU; use '32-true' or 'bf16-mixed'"
        )
    return TrainerSettings(
        accelerator=resolved,
        devices=n_devices,
        precision=precision,
        strategy="ddp" if n_devices > 1 else "auto",
        deterministic="warn" if resolved == "gpu" else True,
    )


def train_gan(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    n_classes: int,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    width: int = 64,
    latent_dim: int | None = None,
    lr: float = 2e-4,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str = "auto",
    num_workers: int = 0,
    max_steps: int = -1,
    fast_dev_run: bool = False,
    progress: bool = False,
) -> tuple[GANModule, pl.Trainer, TrainStats]:
    """Train the conditional GAN of docs/cgm.md §3.1 on pooled data (docs/cgm.md §3.2).

    Call ``pl.seed_everything(seed, workers=True)`` first (docs/interface.md §7). With
    ``devices > 1`` Lightning's ``ddp`` runs this on every rank; sample and write files
    on ``trainer.is_global_zero`` only.

    Args:
        x: (n, ch, H, W) images in [0, 1] (H, W divisible by 4) or (n, D) vectors;
            float32.
        y: (n,) int64 labels in [0, n_classes).
        n_classes: C ≥ 1 (classes absent from ``y`` get frequency 0).
        epochs: ``max_epochs`` (``gan.epochs``), ≥ 1.
        seed: root of the weight, latent and shuffle generators.
        batch_size: rows per batch (``gan.batch_size``), 1 ≤ batch_size ≤ n.
        width: DCGAN width w (``gan.width``); ignored for vectors.
        latent_dim: size of z; ``None`` for the spec's 100 / 16.
        lr: Adam learning rate.
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        devices: ``"auto"`` or an int ≥ 1.
        precision: ``"auto"``, ``"32-true"``, ``"bf16-mixed"`` or ``"16-mixed"``.
        num_workers: DataLoader workers.
        max_steps: stop after this many batches (−1: no limit).
        fast_dev_run: Lightning's one-batch smoke run.
        progress: show Lightning's progress bar and model summary.

    Returns:
        (trained module, the trainer, :class:`TrainStats`).

    Raises:
        ValueError: on a bad value, named in the message (before any work).
        TypeError: on a bad type.
    """
    n_classes = check_int("n_classes", n_classes, 1)
    check_xy(x, y, n_classes=n_classes)
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    max_steps = check_int("max_steps", max_steps, -1)
    if max_steps == 0:
        raise ValueError("Argument `max_steps` must be -1 (no limit) or >= 1, got 0")
    if x.ndim == 4:
        kind = "image"
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(
                f"Argument `x` images must have H and W divisible by 4, "
                f"got shape {x.shape}"
            )
        if float(x.min()) < 0.0 or float(x.max()) > 1.0:
            raise ValueError(
                f"Argument `x` images must lie in [0, 1], got values in "
                f"[{float(x.min())}, {float(x.max())}]"
            )
        mean = std = None
    else:
        kind = "vector"
        mean, std = standardisation_stats(x)
    settings = resolve_trainer_settings(accelerator, devices, precision)
    module = GANModule(
        kind=kind,
        sample_shape=x.shape[1:],
        n_classes=n_classes,
        class_frequencies=class_frequencies(y, n_classes),
        latent_dim=latent_dim,
        width=width,
        lr=lr,
        data_mean=mean,
        data_std=std,
        seed=seed,
    )
    datamodule = PooledDataModule(
        x,
        y,
        batch_size=batch_size,
        seed=derive_seed(seed, _DATA_KEY),
        num_workers=num_workers,
    )
    trainer, wall = _fit(
        module,
        datamodule,
        settings,
        epochs=epochs,
        max_steps=max_steps,
        fast_dev_run=fast_dev_run,
        progress=progress,
        what=f"{kind} GAN on {x.shape[0]} rows",
        batch_size=batch_size,
    )
    return module, trainer, _stats(module, trainer, wall, batch_size, settings)


def resolve_model(model: str, x_ndim: int, has_schema: bool) -> str:
    """``gan.model`` → ``"dcgan"``, ``"mlp"`` or ``"ctgan"`` (docs/cgm.md §3.1, §3.5).

    ``"auto"`` is dcgan for images (4-D x, e.g. 28×28), ctgan when the pool carries a
    table schema, mlp otherwise.

    Raises:
        ValueError: on an unknown model, ctgan without a table schema, or dcgan/mlp
            on data of the other layout.

    Example:
        >>> resolve_model("auto", 4, False), resolve_model("auto", 2, True)
        ('dcgan', 'ctgan')
    """
    if model not in MODELS:
        raise ValueError(f"Argument `model` must be one of {MODELS}, got {model!r}")
    if model == "auto":
        return "dcgan" if x_ndim == 4 else "ctgan" if has_schema else "mlp"
    if model == "ctgan" and not has_schema:
        raise ValueError(
            "'ctgan' needs a table pool (data.source = table or adult) with a schema; "
            "use 'auto' or 'mlp'"
        )
    if (model == "dcgan") != (x_ndim == 4):
        raise ValueError(
            f"{model!r} does not fit {'images' if x_ndim == 4 else 'vectors'}; "
            "use 'auto'"
        )
    return model


def train_ctgan(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    layout: list[dict[str, Any]],
    n_classes: int,
    epochs: int,
    seed: int,
    batch_size: int = 500,
    pac: int = PAC,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str = "auto",
    max_steps: int = -1,
    progress: bool = False,
) -> tuple[CTGANModule, pl.Trainer, TrainStats]:
    """Train CTGAN (docs/cgm.md §3.5) on encoded table rows with Lightning.

    Call ``pl.seed_everything(seed, workers=True)`` first (docs/interface.md §7).

    Args:
        x: (n, width) float32 encoded rows of ``layout``.
        y: (n,) int64 labels in [0, n_classes).
        layout: :func:`gan.ctgan_data.table_layout` of the pool's schema.
        n_classes: C.
        epochs: ``max_epochs``; an epoch is n // batch_size batches.
        seed: root of the transformer, sampler, weight and noise generators.
        batch_size: rows per batch, 1 ≤ batch_size ≤ n.
        pac: the largest pack size used is :func:`gan.ctgan.pac_for` (batch, pac).
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        devices: ``"auto"`` or an int ≥ 1.
        precision: Lightning precision.
        max_steps: stop after this many batches (−1: no limit).
        progress: show Lightning's progress bar.

    Returns:
        (trained module, the trainer, :class:`TrainStats`).

    Raises:
        ValueError: on a bad value, named in the message (before any work).
    """
    n_classes = check_int("n_classes", n_classes, 1)
    check_xy(x, y, n_classes=n_classes)
    epochs = check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if batch_size > x.shape[0]:
        raise ValueError(
            f"Argument `batch_size` must be <= {x.shape[0]} (rows), got {batch_size}"
        )
    settings = resolve_trainer_settings(accelerator, devices, precision)
    tf = fit_transformer(x, y, layout, n_classes, seed=derive_seed(seed, 3))
    model_x = to_model_space(tf, x, y, seed=derive_seed(seed, 4))
    module = CTGANModule(
        tf, class_frequencies(y, n_classes), pac=pac_for(batch_size, pac), seed=seed
    )
    datamodule = CTGANDataModule(
        model_x,
        CondSampler(tf, x, y),
        batch_size=batch_size,
        seed=derive_seed(seed, _DATA_KEY),
    )
    # CTGAN's matrices are small: on the CPU, intra-op threads cost more than they
    # give (one thread was 10x faster on the busy 2-core machine, docs/cgm.md §3.5).
    threads = torch.get_num_threads()
    if settings.accelerator == "cpu":
        torch.set_num_threads(1)
    try:
        trainer, wall = _fit(
            module,
            datamodule,
            settings,
            epochs=epochs,
            max_steps=max_steps,
            fast_dev_run=False,
            progress=progress,
            what=f"CTGAN on {x.shape[0]} rows (pac {module.hparams['pac']})",
            batch_size=batch_size,
        )
    finally:
        torch.set_num_threads(threads)
    return module, trainer, _stats(module, trainer, wall, batch_size, settings)


def _fit(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    settings: TrainerSettings,
    *,
    epochs: int,
    max_steps: int,
    fast_dev_run: bool,
    progress: bool,
    what: str,
    batch_size: int,
) -> tuple[pl.Trainer, float]:
    """Run ``Trainer.fit`` with the settings of docs/cgm.md §3.2; (trainer, wall s)."""
    # Trainer(deterministic=...) switches torch's global flag; restore it after fit.
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        # Lightning counts every optimiser step: one D and one G step per batch.
        max_steps=-1 if max_steps == -1 else 2 * max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy=settings.strategy,
        precision=settings.precision,
        deterministic=settings.deterministic,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=progress,
        fast_dev_run=fast_dev_run,
    )
    logger.info(
        "training %s: %s, epochs=%d, batch_size=%d", what, settings, epochs, batch_size
    )
    try:
        with warnings.catch_warnings():
            # num_workers = 0 is deliberate on small in-memory pools.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            start = time.perf_counter()
            trainer.fit(module, datamodule=datamodule)
            wall = time.perf_counter() - start
    finally:
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    if trainer.received_sigterm:
        # Lightning's own SIGTERM handler stops fit "gracefully" and returns as if
        # training had finished; its teardown restored the process's handler, so
        # deliver the signal again: the default ends the process (exit 143), the
        # CLI's raises (docs/interface.md §5.6). Never return a half-trained model.
        signal.raise_signal(signal.SIGTERM)
        raise RuntimeError("GAN training was stopped by SIGTERM")
    return trainer, wall


def _stats(
    module: Any, trainer: pl.Trainer, wall: float, batch_size: int, settings: Any
) -> TrainStats:
    epochs_done = int(trainer.current_epoch)
    n_samples = module.n_batches_seen * batch_size
    stats = TrainStats(
        wall_time_s=wall,
        epochs=epochs_done,
        n_batches=module.n_batches_seen,
        n_samples=n_samples,
        samples_per_s=n_samples / wall if wall > 0 else 0.0,
        sec_per_epoch=wall / max(epochs_done, 1),
        d_loss=_final_metric(trainer, "d_loss_epoch"),
        g_loss=_final_metric(trainer, "g_loss_epoch"),
        settings=settings,
    )
    logger.info("GAN training took %.1f s (%.0f samples/s)", wall, stats.samples_per_s)
    return stats


def _final_metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None
