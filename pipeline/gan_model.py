"""The ``gan`` stage's model choice, training call and quality gate (docs/cgm.md §3).

Kept out of ``pipeline/stages/gan.py`` so the stage stays a short wiring module:

- :func:`check_request`: the ``[gan]`` checks made before ``manifest.begin``, and
  ``gan.model`` → dcgan / mlp / ctgan (refused with a one-line
  :class:`~pipeline.errors.UsageError`, e.g. ctgan without a table schema);
- :func:`train_generator`: runs ``gan.train.train_gan`` or ``gan.train.train_ctgan``;
- :func:`apply_gate`: measures the candidates (docs/cgm.md §3.6), logs one warning
  line (``gan.quality_gate = "warn"``) or returns the message that the stage raises
  after writing its files (``"fail"``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pytorch_lightning as pl

from data.tables import TableSchema
from gan.ctgan import CTGAN_EPOCHS, ctgan_auto_batch
from gan.ctgan_data import table_layout
from gan.quality import gate_failures, gate_measures, gate_message
from gan.train import (
    TrainStats,
    resolve_model,
    resolve_trainer_settings,
    train_ctgan,
    train_gan,
)
from pipeline.config import GanConfig
from pipeline.errors import UsageError
from pipeline.limits import check_gan_request

logger = logging.getLogger(__name__)

#: candidates.h5 ``generator`` attribute of each model.
GENERATOR_NAME = {"dcgan": "cdcgan", "mlp": "cmlpgan", "ctgan": "ctgan"}


def check_request(
    g: GanConfig, attrs: dict[str, Any], shape: tuple, schema: TableSchema | None
) -> str:
    """Refuse an impossible ``[gan]`` request before ``manifest.begin``.

    Returns:
        The model that ``gan.source = "train"`` trains (``""`` otherwise).

    Raises:
        UsageError: one line naming the key (an impossible accelerator or model,
            batch size or candidates over the limits, oracle without gmm).
    """
    model = ""
    if g.source == "train":
        try:
            resolve_trainer_settings(g.accelerator, g.devices, g.precision)
        except ValueError as e:
            raise UsageError(f"[gan] accelerator: {e}") from e
        try:
            model = resolve_model(g.model, len(shape), schema is not None)
        except ValueError as e:
            raise UsageError(f"[gan] model: {e}") from e
    _, batch_size = training_length(g, model, shape[0])
    check_gan_request(replace(g, batch_size=batch_size), shape[1:], n_rows=shape[0])
    if g.source == "oracle" and attrs["source"] != "gmm":
        raise UsageError(
            f'[gan] source: "oracle" needs a gmm pool, this pool is {attrs["source"]!r}'
        )
    return model


def training_length(g: GanConfig, model: str, n_rows: int) -> tuple[int, int]:
    """(epochs, batch size): ``gan.epochs`` / ``gan.batch_size``, or their "auto".

    ``"auto"`` is 30 epochs of 64 rows for dcgan and mlp (docs/cgm.md §10) and
    :data:`gan.ctgan.CTGAN_EPOCHS` of :func:`gan.ctgan.ctgan_auto_batch` rows for
    ctgan (docs/cgm.md §3.5).
    """
    ctgan = model == "ctgan"
    epochs = (CTGAN_EPOCHS if ctgan else 30) if g.epochs == "auto" else int(g.epochs)
    if g.batch_size != "auto":
        return epochs, int(g.batch_size)
    return epochs, ctgan_auto_batch(n_rows) if ctgan else 64


def train_generator(
    g: GanConfig,
    model: str,
    real: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    schema: TableSchema | None,
    *,
    seed: int,
    progress: bool,
) -> tuple[pl.LightningModule, pl.Trainer, TrainStats]:
    """Train the chosen generator on the pooled rows (``gan.source = "train"``)."""
    x, y = real
    epochs, batch_size = training_length(g, model, len(x))
    common = {
        "n_classes": n_classes,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "accelerator": g.accelerator,
        "devices": g.devices,
        "precision": g.precision,
        "progress": progress,
    }
    if model == "ctgan":
        assert schema is not None  # resolve_gan_model refused ctgan without one
        return train_ctgan(x, y, layout=table_layout(schema), **common)
    return train_gan(x, y, width=g.width, **common)


def apply_gate(
    g: GanConfig,
    real_x: np.ndarray,
    cand_x: np.ndarray,
    quality: dict[str, Any],
    test_y: np.ndarray,
    schema: TableSchema | None,
) -> tuple[dict[str, Any], str | None]:
    """Measure the candidates and, unless the gate is off, judge them (§3.6).

    Returns:
        (measures with ``gate_failures``, the failure message when
        ``gan.quality_gate = "fail"`` and a measure failed, else ``None``).
    """
    layout = None if schema is None else table_layout(schema)
    measures = gate_measures(real_x, cand_x, layout)
    if g.quality_gate == "off" or g.source == "oracle":  # the truth is not judged
        return measures, None
    chance = float(np.bincount(test_y).max() / len(test_y)) if len(test_y) else 0.0
    failures = gate_failures(measures, quality, chance)
    measures["gate_failures"] = failures
    if not failures:
        logger.info("gan quality gate passed: %s", _headline(measures))
        return measures, None
    message = gate_message(failures)
    if g.quality_gate == "warn":
        logger.warning(message)
        return measures, None
    return measures, message


def _headline(measures: dict[str, Any]) -> str:
    keys = ("median_ks", "median_tv", "corr_diff", "median_std_ratio", "spread_ratio")
    return ", ".join(
        f"{k} {measures[k]:.3f}" for k in keys if measures.get(k) is not None
    )
