"""Tests for rewards/cgm/evaluation.py: the β sweep (docs/cgm.md §8.3)."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.cgm.evaluation import Reference, beta_sweep, distribution_metrics
from rewards.cgm.sampling import sample_parties
from valuation.mmd import kernel_sum


def _problem() -> dict:
    rng = np.random.default_rng(8)
    parties = [
        (rng.normal(0.5, 1.0, size=(12, 2)), rng.integers(0, 2, 12)),
        (rng.normal(-0.5, 0.7, size=(10, 2)), rng.integers(0, 2, 10)),
    ]
    g = rng.normal(0.0, 1.2, size=(40, 2))
    cand = (g, rng.integers(0, 2, 40))
    t = np.vstack([parties[0][0], parties[1][0], g])
    ref = Reference(t, 1.0, kernel_sum(t, t, 1.0))
    return {"parties": parties, "cand": cand, "ref": ref}


def test_empty_sweep_is_empty() -> None:
    p = _problem()
    out = beta_sweep([], p["parties"], p["cand"], p["ref"], [1.0, 0.5], [0.5, 0.4], 2,
                     seeds=[])  # fmt: skip
    assert out == {}


def test_sweep_reruns_the_sampler_per_beta() -> None:
    # Prepare
    p = _problem()
    betas, seeds = [1.0, 4.0], [[1, 2], [3, 4]]
    targets = [0.25, 0.2]
    # Execute
    out = beta_sweep(betas, p["parties"], p["cand"], p["ref"], [1.0, 0.5], targets, 2,
                     seeds=seeds)  # fmt: skip
    # Assert: each β row is what a fresh sample_parties call gives on those seeds
    feats = [x for x, _ in p["parties"]]
    assert [row["inv_temp"] for row in out["per_beta"]] == betas
    for k, beta in enumerate(betas):
        res = sample_parties(feats, p["cand"][0], p["ref"].features, 1.0, targets,
                             inv_temp=beta, seeds=seeds[k])  # fmt: skip
        assert out["n_rewards"][k] == [r.n_rewards for r in res]
        for i, r in enumerate(res):
            idx = r.candidate_index
            x = np.concatenate([feats[i], p["cand"][0][idx]])
            y = np.concatenate([p["parties"][i][1], p["cand"][1][idx]])
            m = distribution_metrics(x, y, p["ref"], 2, n_rewards=len(idx))
            # same sums, possibly tiled differently: float64 rounding only
            assert out["mmd2"][k][i] == pytest.approx(m["mmd2"], rel=1e-9, abs=1e-12)
    keys = {"corr_alpha", "corr_beta_n_rewards", "corr_beta_mmd2"}
    assert set(out["summary"]) == keys
