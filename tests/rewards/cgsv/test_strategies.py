"""Tests of the CGSV and FedAvg server strategies (docs/cgsv.md §2, §5, §6, §9)."""

from __future__ import annotations

import math

import numpy as np
import torch

from rewards.cgsv.params import flatten_parameters, layer_sizes
from rewards.cgsv.party import batch_order_table
from rewards.cgsv.strategies import FedAvgStrategy, GradientRewardStrategy
from rewards.nash.bargaining import NbsResult
from tests.rewards.cgsv.helpers import make_party, tiny_data, tiny_model

# --- GradientRewardStrategy: one round by hand -----------------------


def test_one_cgsv_round_by_hand():
    # Prepare: 3 parties, 4 parameters in layers of 3 and 1, Γ = 1, n = (2, 1, 1)
    theta_0 = torch.zeros(4)
    strategy = GradientRewardStrategy(
        theta_0, [3, 1], 3, gamma=1.0, alpha=0.95, beta=1.0, local_epochs=1
    )
    uploads = [
        (0, torch.tensor([1.0, 0.0, 0.0, 0.0]), 2),
        (1, torch.tensor([0.0, 1.0, 0.0, 0.0]), 1),
        (2, torch.tensor([-0.6, 0.0, 0.8, 0.0]), 1),
    ]
    # By hand: w = (.5, .25, .25); u_N = (.35, .25, .2, 0); ‖u_N‖² = .225
    norm = math.sqrt(0.225)
    psi = np.array([0.35, 0.25, -0.21 + 0.16]) / norm
    r_tilde = np.maximum(0.05 * psi, 1e-3)  # (1 − α) ψ, party 2 floored
    r = r_tilde / r_tilde.sum()
    q = np.tanh(r) / np.tanh(r).max()
    # Execute
    result = strategy.aggregate_round(0, uploads)
    # Assert: float32 u_N to 1e-7; float64 ψ, r, q to 1e-6 (ψ from float32 u)
    np.testing.assert_allclose(result.metrics["w"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(result.server_update, [0.35, 0.25, 0.2, 0.0], atol=1e-7)
    np.testing.assert_allclose(result.metrics["psi"], psi, atol=1e-6)
    np.testing.assert_allclose(result.metrics["r"], r, atol=1e-6)
    np.testing.assert_allclose(result.metrics["q"], q, atol=1e-6)
    assert r_tilde[2] == 1e-3
    # k = min(⌈3q⌉, 2) = 2, 2, 1
    assert q[1] > 2 / 3
    assert q[2] < 1 / 3
    # q = (1, .75, .03): layer 1 keeps its top 2, 2, 1 entries; layer 2 (one entry)
    # is always kept
    expected = [[0.35, 0.25, 0.0, 0.0], [0.35, 0.25, 0.0, 0.0], [0.35, 0.0, 0.0, 0.0]]
    for i in range(3):
        np.testing.assert_allclose(result.rewards[i], expected[i], atol=1e-7)
    np.testing.assert_allclose(strategy.theta, [0.35, 0.25, 0.2, 0.0], atol=1e-7)
    assert strategy.round == 1


def _two_party_strategy(**kwargs):
    """Two parties, one 2-entry layer, Γ = 1, α = 0.5, β = 1, E = 1."""
    return GradientRewardStrategy(
        torch.zeros(2), [2], 2, gamma=1.0, alpha=0.5, beta=1.0, local_epochs=1, **kwargs
    )


def test_second_round_weights_are_previous_r():
    # Prepare
    strategy = _two_party_strategy()
    ups = [(0, torch.tensor([1.0, 0.0]), 1), (1, torch.tensor([0.0, 1.0]), 3)]
    # Execute
    first = strategy.aggregate_round(0, ups)
    second = strategy.aggregate_round(1, ups)
    # Assert: w_1 = r_0
    np.testing.assert_allclose(first.metrics["w"], [0.25, 0.75])
    np.testing.assert_array_equal(second.metrics["w"], first.metrics["r"])


def test_fedavg_aggregator_keeps_size_weights():
    # Prepare
    strategy = _two_party_strategy(aggregator="fedavg")
    ups = [(0, torch.tensor([1.0, 0.0]), 1), (1, torch.tensor([0.0, 1.0]), 3)]
    # Execute
    results = [strategy.aggregate_round(t, ups) for t in range(3)]
    # Assert
    for res in results:
        np.testing.assert_allclose(res.metrics["w"], [0.25, 0.75])


def test_nash_aggregator_with_stub_solver():
    # Prepare: a stub solver α = (1, 3); a failing one falls back to cgsv weights
    ok_result = NbsResult(np.array([1.0, 3.0]), True, 0.0, 1, "converged")
    fail_result = NbsResult(None, False, math.nan, 0, "unbounded: 0 in convex hull")
    ups = [(0, torch.tensor([1.0, 0.0]), 1), (1, torch.tensor([0.0, 1.0]), 1)]
    ok = _two_party_strategy(aggregator="nash", nbs=lambda g: ok_result)
    fail = _two_party_strategy(aggregator="nash", nbs=lambda g: fail_result)
    # Execute
    res_ok = ok.aggregate_round(0, ups)
    res_fail = fail.aggregate_round(0, ups)
    # Assert
    np.testing.assert_allclose(res_ok.metrics["w"], [0.25, 0.75])
    np.testing.assert_allclose(res_ok.server_update, [0.25, 0.75])
    assert not res_ok.metrics["nbs_failed"]
    np.testing.assert_allclose(res_fail.metrics["w"], [0.5, 0.5])
    assert res_fail.metrics["nbs_failed"]


def test_rewards_travel_in_next_config():
    # Prepare: the Flower mode of docs/cgsv.md §9
    strategy = _two_party_strategy(deliver_rewards_in_config=True)
    ups = [(0, torch.tensor([1.0, 0.0]), 1), (1, torch.tensor([0.0, 1.0]), 1)]
    # Execute
    first = strategy.configure_round(0)
    result = strategy.aggregate_round(0, ups)
    second = strategy.configure_round(1)
    # Assert
    assert first[0]["reward"] is None
    assert torch.equal(second[1]["reward"], result.rewards[1])
    assert strategy.final_rewards() == {}


def test_party_model_is_theta0_plus_rewards(seed):
    # Prepare: θ_i after T rounds = θ_0 + Σ_t g_i^(t) (docs/cgsv.md §2 step 8)
    parties_data, _ = tiny_data(seed)
    init = tiny_model()
    theta_0 = flatten_parameters(init)
    orders = batch_order_table([20, 30, 40], 4, 1, seed=seed)
    parties = [
        make_party(tiny_model(), d, orders[i], party_id=i)
        for i, d in enumerate(parties_data)
    ]
    strategy = GradientRewardStrategy(
        theta_0, layer_sizes(init), 3, gamma=0.5, alpha=0.9, beta=1.0, local_epochs=1
    )
    expected = [theta_0.clone() for _ in parties]
    server = theta_0.clone()
    # Execute
    for t in range(4):
        configs = strategy.configure_round(t)
        uploads = [(p.party_id, *p.fit(configs[p.party_id])) for p in parties]
        result = strategy.aggregate_round(t, uploads)
        for p in parties:
            p.apply_reward(result.rewards[p.party_id])
            expected[p.party_id] = expected[p.party_id] + result.rewards[p.party_id]
        server = server + result.server_update
    # Assert: bit-exact (the same float32 additions in the same order)
    for p in parties:
        assert torch.equal(p.flat(), expected[p.party_id])
    assert torch.equal(strategy.theta, server)


# --- FedAvg -------------------------------------------------------------------


def test_fedavg_strategy_weighted_average():
    # Prepare
    strategy = FedAvgStrategy(torch.zeros(2), 2, local_epochs=1)
    results = [(1, torch.tensor([4.0, 0.0]), 3), (0, torch.tensor([0.0, 8.0]), 1)]
    # Execute
    result = strategy.aggregate_round(0, results)
    # Assert: θ_F = (1·(0, 8) + 3·(4, 0)) / 4; the one result type, without rewards
    np.testing.assert_allclose(result.metrics["w"], [0.25, 0.75])
    assert result.server_update is None
    assert result.rewards == {}
    np.testing.assert_allclose(strategy.theta, [3.0, 2.0])
    assert torch.equal(strategy.configure_round(1)[0]["parameters"], strategy.theta)
