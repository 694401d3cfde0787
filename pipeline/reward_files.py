"""The ``sample`` stage's guard and writers (docs/interface.md §6.6).

The reward file ``sample/party_<i>.h5`` (THE file a party trains on), the privacy
guard ``sample.min_distance`` and its record ``sample/guard.json`` (docs/cgm.md
§8.5), and the column-true exports ``sample/party_<i>.parquet`` / ``.csv`` of a
table pool (``sample.export``, docs/cgm.md §2).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from data.h5 import write_h5
from data.tables import write_party_table
from pipeline import manifest, paths
from pipeline.errors import UsageError
from pipeline.inputs import Pool
from rewards.cgm.privacy import guard_candidates
from rewards.cgm.sampling import SamplingResult
from valuation.result import PartyValues

logger = logging.getLogger(__name__)


def write_reward_file(
    path: Path,
    party_id: int,
    res: SamplingResult,
    cand: dict[str, np.ndarray],
    cand_features: np.ndarray,
    *,
    values: PartyValues,
    target: float,
    inv_temp: float,
    seed: int,
) -> Path:
    """Write one reward file with every dataset and attribute of docs/interface.md."""
    idx = res.candidate_index
    return write_h5(
        path,
        {
            "x": cand["x"][idx],
            "y": cand["y"][idx].astype(np.int64),
            "features": cand_features[idx],
            "candidate_index": idx.astype(np.int64),
            "value_trace": res.value_trace.astype(np.float64),
        },
        {
            "party_id": party_id,
            "shapley": float(values.shapley[party_id]),
            "alpha": float(values.alpha[party_id]),
            "reward_value": float(target),
            "achieved_value": res.achieved_value,
            "inv_temp": float(inv_temp) if math.isfinite(inv_temp) else np.inf,
            "seed": seed,
            "lengthscale": float(values.lengthscale),
            "stop_reason": res.stop_reason,
            "start_value": res.start_value,
            "best_value": res.best_value,
            "n_rewards": res.n_rewards,
        },
    )


def write_guard(
    path: Path, setting: float | str, used: float, keep: np.ndarray, n_candidates: int
) -> Path:
    """``sample/guard.json``: the guard's setting, the distance used, what it removed.

    ``removed_index`` lists the candidate rows no party could receive; the
    evaluate stage's β sweep draws from the same kept rows.
    """
    removed = np.setdiff1d(np.arange(n_candidates), keep)
    body: dict[str, Any] = {
        "min_distance": setting,
        "distance_used": used,
        "space": "data",
        "n_candidates": n_candidates,
        "n_removed": int(removed.size),
        "removed_index": removed.tolist(),
    }
    return manifest.write_json(path, body)


def kept_candidates(guard: dict[str, Any]) -> np.ndarray:
    """The candidate rows the guard of ``guard.json`` kept, in increasing order."""
    removed = np.asarray(guard["removed_index"], dtype=np.int64)
    return np.setdiff1d(np.arange(int(guard["n_candidates"])), removed)


def guard(
    setting: float | str, pool: Pool | None, x_cand: np.ndarray
) -> tuple[np.ndarray, float]:
    """The candidate rows ``sample.min_distance`` keeps, and the distance used.

    Raises:
        UsageError: if fewer than 2 candidates would be left.
    """
    if setting == 0 or pool is None:
        return np.arange(len(x_cand), dtype=np.int64), 0.0
    keep, used = guard_candidates(x_cand, pool.pooled[0], setting)
    if len(keep) < 2:
        raise UsageError(
            f"[sample] min_distance: keeps {len(keep)} of {len(x_cand)} candidates "
            f"(distance {used:.4g} to the nearest training row); lower it"
        )
    logger.info(
        "privacy guard: distance %.4g removes %d of %d candidates",
        used, len(x_cand) - len(keep), len(x_cand),
    )  # fmt: skip
    return keep, used


def check_export(formats: tuple[str, ...], pool: Pool | None) -> None:
    """Refuse ``sample.export`` for a pool without a table schema (before work)."""
    if formats and (pool is None or pool.schema is None):
        raise UsageError(
            '[sample] export: needs a table pool (data.source = "table" or "adult"); '
            "this pool has no column names to write"
        )


def write_exports(
    run_dir: Path,
    results: list[SamplingResult],
    cand: dict[str, np.ndarray],
    pool: Pool,
    formats: tuple[str, ...],
    *,
    with_own: bool,
) -> dict[str, Path]:
    """``sample/party_<i>.<fmt>``: each reward set with the original columns.

    With ``with_own`` the party's own rows come first and a ``source`` column
    says ``own`` or ``reward`` for each row.
    """
    schema = pool.schema
    out: dict[str, Path] = {}
    for i, res in enumerate(results):
        x, y = cand["x"][res.candidate_index], cand["y"][res.candidate_index]
        source = None
        if with_own:
            own_x, own_y = pool.parties[i]
            x, y = np.concatenate([own_x, x]), np.concatenate([own_y, y])
            source = ["own"] * len(own_y) + ["reward"] * res.n_rewards
        for fmt in formats:
            path = paths.stage_file(run_dir, "sample", f"party_{i}.{fmt}")
            out[f"party_{i}_{fmt}"] = write_party_table(
                path, x, y, schema, source=source, fmt=fmt
            )
    return out
