"""Per-party work of the ``evaluate`` stage: metrics, downstream accuracy, privacy.

Reads each reward file back as a user would (``data.torch_data.PartyDataset``) and
calls the library (`rewards.cgm.evaluation`, `rewards.cgm.privacy`); the stage
module only wires these together (docs/cgm.md §8).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from data.h5 import read_h5
from data.torch_data import PartyDataset
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.inputs import Pool, RewardInputs
from pipeline.reward_files import kept_candidates
from rewards.cgm.evaluation import (
    Reference,
    distribution_metrics,
    downstream_accuracy,
    weighted_accuracy,
)
from rewards.cgm.privacy import privacy_measures

logger = logging.getLogger(__name__)


def party_row(
    cfg: RunConfig,
    run_dir: Path,
    i: int,
    pool: Pool,
    up: RewardInputs,
    ref: Reference,
    seed: int,
) -> dict[str, Any]:
    """Party i's metrics before and after its rewards and its accuracy gain.

    When the reward lowers the test accuracy, the party's classifier is also
    trained with each reward row weighted ``evaluate.reward_weight``
    (``acc_weighted``; None otherwise), docs/cgm.md §8.2.
    """
    e, feats, n_classes = cfg.evaluate, up.features, pool.n_classes
    kw = {"chunk_size": cfg.value.chunk_size, "device": cfg.value.device}
    reward_path = paths.reward_file(run_dir, i)
    x_all, y_all, src = PartyDataset(paths.pool_party(run_dir, i), reward_path).arrays()
    rdata, rattrs = read_h5(reward_path, names=("candidate_index",))
    idx = rdata["candidate_index"]
    f_own, y_own = feats[f"party_{i}"], pool.parties[i][1]
    f_all = np.concatenate([f_own, feats["candidates"][idx]])
    before = distribution_metrics(f_own, y_own, ref, n_classes, n_rewards=0, **kw)
    after = distribution_metrics(f_all, y_all, ref, n_classes, n_rewards=len(idx), **kw)
    train = {"kind": e.classifier, "epochs": e.epochs, "seed": seed}
    acc = downstream_accuracy(
        (x_all[src == 0], y_all[src == 0]), (x_all, y_all), pool.test, n_classes,
        **train,
    )  # fmt: skip
    acc["acc_weighted"] = None
    if acc["gain"] < 0:
        acc["acc_weighted"] = weighted_accuracy(
            (x_all, y_all), src == 1, pool.test, n_classes,
            reward_weight=e.reward_weight, **train,
        )  # fmt: skip
    row = {
        "party": i,
        "alpha": up.values.alpha[i],
        "shapley": up.values.shapley[i],
        "reward_value": up.rewards["reward_values"][i],
        "achieved_value": rattrs["achieved_value"],
        "stop_reason": rattrs["stop_reason"],
        "n_rewards": len(idx),
        "reward_classes": np.bincount(y_all[src == 1], minlength=n_classes).tolist(),
        "own_classes": np.bincount(y_own, minlength=n_classes).tolist(),
        "before": before,
        "after": after,
        **acc,
    }
    logger.info("party %d: %s", i, {k: row[k] for k in ("n_rewards", "gain")})
    return row


def read_guard(run_dir: Path) -> dict[str, Any]:
    """``sample/guard.json`` (verified) with the kept candidate rows as ``keep``."""
    manifest.require(run_dir, "sample", ["guard"])
    path = paths.stage_file(run_dir, "sample", "guard.json")
    guard = manifest.read_json(path)
    return {**guard, "keep": kept_candidates(guard), "path": path}


def read_test_features(run_dir: Path) -> np.ndarray:
    """The held-out rows through the feature map (``test`` of ``value/features.h5``).

    Raises:
        UsageError: if ``value/features.h5`` predates the ``test`` features.
    """
    try:
        return read_h5(paths.features(run_dir), names=("test",))[0]["test"]
    except (KeyError, ValueError) as e:
        raise UsageError(
            f"{paths.features(run_dir)}: no test features ({e}); rerun `synthreward "
            "value`"
        ) from e


def privacy_report(
    run_dir: Path,
    pool: Pool,
    up: RewardInputs,
    guard: dict[str, Any],
    f_test: np.ndarray,
) -> dict[str, Any]:
    """The body of ``evaluate/privacy.json`` (docs/cgm.md §8.5).

    Every measure of `rewards.cgm.privacy.privacy_measures` in the feature space
    (the vectors the kernel sees; ``f_test`` from `read_test_features`) and in the
    data space (the rows as stored, flattened), with the held-out test rows as the
    baseline.
    """
    n = up.values.n_parties
    idx = [
        read_h5(paths.reward_file(run_dir, i), names=("candidate_index",))[0][
            "candidate_index"
        ]
        for i in range(n)
    ]
    feats, x_cand = up.features, up.candidates["x"]

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), int(np.prod(x.shape[1:])))  # 0 rows too

    spaces = {
        "feature": privacy_measures(
            [feats[f"party_{i}"] for i in range(n)], f_test,
            [feats["candidates"][j] for j in idx],
        ),
        "data": privacy_measures(
            [flat(x) for x, _ in pool.parties], flat(pool.test[0]),
            [flat(x_cand[j]) for j in idx],
        ),
    }  # fmt: skip
    hidden = ("keep", "removed_index", "path")
    guard_out = {k: v for k, v in guard.items() if k not in hidden}
    return {"spaces": spaces, "guard": guard_out, "n_holdout": len(pool.test[1])}
