"""Tests of the batch-order table and FLParty (docs/cgsv.md §2, §3, §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewards.cgsv.gradient import normalise_update
from rewards.cgsv.params import flatten_parameters
from rewards.cgsv.party import FLParty, batch_order_table
from tests.rewards.cgsv.helpers import make_party, tiny_data, tiny_model

# --- batch orders -------------------------------------------------------------


def test_batch_order_table_permutations_and_seed_pair(seed, seed_alt):
    # Prepare / Execute
    a = batch_order_table([5, 3], 4, 2, seed=seed)
    b = batch_order_table([5, 3], 4, 2, seed=seed)
    c = batch_order_table([5, 3], 4, 2, seed=seed_alt)
    # Assert: one permutation of 0..n_i−1 per (round, epoch)
    assert [t.shape for t in a] == [(4, 2, 5), (4, 2, 3)]
    for table, n in zip(a, [5, 3], strict=True):
        for row in table.reshape(-1, n):
            assert sorted(row.tolist()) == list(range(n))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_longer_table_keeps_shorter_orders(seed):
    # Prepare / Execute: per party, one child draws (round, epoch) in order
    short = batch_order_table([6, 4], 2, 3, seed=seed)
    long = batch_order_table([6, 4], 5, 3, seed=seed)
    # Assert
    for s, lo in zip(short, long, strict=True):
        np.testing.assert_array_equal(s, lo[:2])


# --- FLParty ------------------------------------------------------------------


def test_fit_restores_theta_and_uploads_standalone_delta(seed):
    # Prepare: a CGSV party and a Standalone party on the same θ_0 and orders
    parties, _ = tiny_data(seed)
    orders = batch_order_table([20], 1, 2, seed=seed)[0]
    theta_0 = flatten_parameters(tiny_model())
    cg = make_party(tiny_model(), parties[0], orders)
    sa = make_party(tiny_model(), parties[0], orders)
    # Execute
    upload, n = cg.fit({"round": 0, "local_epochs": 2, "gamma": 0.5})
    sa.fit_standalone({"round": 0, "local_epochs": 2})
    # Assert: θ_i restored; u = Γ Δ/(‖Δ‖ + 1e-7) with Δ = Standalone θ_new − θ_0,
    # bit-exact (same CPU ops in the same order)
    assert n == 20
    assert torch.equal(cg.flat(), theta_0)
    assert torch.equal(upload, normalise_update(sa.flat() - theta_0, 0.5))
    assert float(torch.linalg.vector_norm(upload)) == pytest.approx(0.5, rel=1e-5)


def test_scheduler_steps_once_per_round(seed):
    # Prepare
    parties, _ = tiny_data(seed)
    orders = batch_order_table([20], 3, 3, seed=seed)[0]
    party = make_party(tiny_model(), parties[0], orders, lr=0.1, decay=0.5)
    # Execute: two rounds of three epochs each
    for t in range(2):
        party.fit({"round": t, "local_epochs": 3, "gamma": 1.0})
    # Assert: lr · decay^rounds, not decay^epochs (docs/cgsv.md §3.2)
    assert party.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_underflowing_updates_warn_once(seed, caplog):
    # Prepare: lr 1e-12 moves almost no float32 parameter (steps < half an ulp)
    parties, _ = tiny_data(seed)
    orders = batch_order_table([20], 2, 1, seed=seed)[0]
    tiny = make_party(tiny_model(), parties[0], orders, lr=1e-12, decay=1.0)
    normal = make_party(tiny_model(), parties[0], orders, party_id=1)
    # Execute
    with caplog.at_level("WARNING", logger="rewards.cgsv.party"):
        for t in range(2):
            tiny.fit({"round": t, "local_epochs": 1, "gamma": 0.5})
            normal.fit({"round": t, "local_epochs": 1, "gamma": 0.5})
    # Assert: one warning, for the tiny-lr party, at round 0
    warned = [r.getMessage() for r in caplog.records if "float32" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith("party 0, round 0:")


def test_one_step_per_minibatch(seed):
    # Prepare: 20 rows, B = 8 → 3 steps per epoch (8, 8, 4)
    parties, _ = tiny_data(seed)
    orders = batch_order_table([20], 1, 1, seed=seed)[0]
    party = make_party(tiny_model(), parties[0], orders)
    steps = []
    party.optimizer.register_step_post_hook(lambda *a: steps.append(1))
    # Execute
    party.fit_standalone({"round": 0, "local_epochs": 1})
    # Assert
    assert len(steps) == 3


def test_party_refuses_buffers():
    # Prepare
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    # Execute / Assert
    with pytest.raises(RuntimeError, match="buffers"):
        FLParty(
            0,
            model,
            np.zeros((2, 4), np.float32),
            np.zeros(2, np.int64),
            np.zeros((1, 1, 2), np.int64),
            lr=0.1,
            lr_decay=1.0,
            batch_size=1,
        )
