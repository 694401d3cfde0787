"""Tests of the pure per-round CGSV functions (docs/cgsv.md §2, §5, §9)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from rewards.cgsv.gradient import (
    aggregation_weights,
    cosine_contributions,
    flat_layer_topk,
    layer_topk,
    normalise_update,
    reward_fractions,
    topk_count,
    update_importance,
)
from rewards.nash.bargaining import NbsResult

# --- normalise_update ---------------------------------------------------------


def test_normalise_update_known_answer():
    # Prepare: ‖(3, 4)‖ = 5
    delta = torch.tensor([3.0, 4.0])
    # Execute
    u = normalise_update(delta, 0.5)
    # Assert: 0.5 · (3, 4) / (5 + 1e-7); rtol 1e-6 covers float32 rounding
    np.testing.assert_allclose(u.numpy(), [0.3, 0.4], rtol=1e-6)
    assert u.dtype == torch.float32


def test_normalise_update_has_norm_gamma(seed):
    # Prepare
    delta = torch.randn(1000, generator=torch.Generator().manual_seed(seed)) * 1e-3
    # Execute
    u = normalise_update(delta, 0.7)
    # Assert: ‖u‖ = Γ‖Δ‖/(‖Δ‖ + 1e-7); rtol 1e-5 covers the 1e-7 term at ‖Δ‖ ≈ 0.03
    assert float(torch.linalg.vector_norm(u)) == pytest.approx(0.7, rel=1e-5)


def test_normalise_update_zero_gives_zero_and_warning(caplog):
    # Prepare
    delta = torch.zeros(5)
    # Execute
    with caplog.at_level(logging.WARNING):
        u = normalise_update(delta, 0.5)
    # Assert
    assert torch.equal(u, torch.zeros(5))
    assert "Zero parameter update" in caplog.text


# --- aggregation_weights ------------------------------------------------------


def test_cgsv_weights_round0_sizes_then_r():
    # Prepare
    n = [1, 1, 2]
    r = np.array([0.5, 0.3, 0.2])
    u = np.zeros((3, 2))
    # Execute
    w0, f0 = aggregation_weights("cgsv", n, np.zeros(3), u, 0)
    w1, f1 = aggregation_weights("cgsv", n, r, u, 1)
    # Assert: round 0 uses n/Σn, later rounds r_{t−1}
    np.testing.assert_array_equal(w0, [0.25, 0.25, 0.5])
    np.testing.assert_array_equal(w1, r)
    assert not f0
    assert not f1


def test_fedavg_weights_every_round():
    # Prepare
    n = [3, 1]
    # Execute
    w, failed = aggregation_weights(
        "fedavg", n, np.array([0.1, 0.9]), np.zeros((2, 1)), 5
    )
    # Assert
    np.testing.assert_array_equal(w, [0.75, 0.25])
    assert not failed


def test_nash_weights_from_solver_result():
    # Prepare: a solver returning α = (1, 3) as the one shape nbs returns
    def solver(g):
        return NbsResult(np.array([1.0, 3.0]), True, 0.0, 1, "converged")

    u = np.eye(2)
    # Execute
    w, failed = aggregation_weights("nash", [1, 1], [0.5, 0.5], u, 2, nbs=solver)
    # Assert: w = α/Σα (float64 division, 1e-15)
    np.testing.assert_allclose(w, [0.25, 0.75], rtol=0, atol=1e-15)
    assert not failed


def test_nash_failure_falls_back_to_cgsv(caplog):
    # Prepare: the solver reports failure (0 in the convex hull of u and −u)
    u = np.array([[1.0, 0.0], [-1.0, 0.0]])
    r = np.array([0.4, 0.6])
    fail = NbsResult(None, False, math.nan, 3, "unbounded: 0 in convex hull")
    # Execute
    with caplog.at_level(logging.WARNING):
        w, failed = aggregation_weights("nash", [1, 3], r, u, 1, nbs=lambda g: fail)
        w0, failed0 = aggregation_weights("nash", [1, 3], r, u, 0, nbs=lambda g: fail)
    # Assert: cgsv weights of that round
    np.testing.assert_array_equal(w, r)
    np.testing.assert_array_equal(w0, [0.25, 0.75])
    assert failed
    assert failed0
    assert "bargaining failed" in caplog.text


def test_nash_default_solver_is_nbs():
    # Prepare: orthogonal unit uploads; nbs gives α = (1, 1) (docs/nash.md §2)
    u = np.eye(2)
    # Execute
    w, failed = aggregation_weights("nash", [1, 3], [0.5, 0.5], u, 0)
    # Assert: equal weights, not the size weights (1e-9: Newton's residual tolerance)
    np.testing.assert_allclose(w, [0.5, 0.5], rtol=0, atol=1e-9)
    assert not failed


# --- cosine_contributions -----------------------------------------------------


def test_cosine_identical_opposite_orthogonal():
    # Prepare
    u = np.array([[2.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    agg = np.array([3.0, 0.0])
    # Execute
    psi = cosine_contributions(u, agg)
    # Assert: float64 cosines of integer vectors, 1e-15
    np.testing.assert_allclose(psi, [1.0, -1.0, 0.0], rtol=0, atol=1e-15)


def test_cosine_zero_upload_is_zero_with_warning(caplog):
    # Prepare
    u = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # Execute
    with caplog.at_level(logging.WARNING):
        psi = cosine_contributions(u, torch.tensor([1.0, 1.0]))
    # Assert
    assert psi[0] == 0.0
    assert psi[1] == pytest.approx(1.0, abs=1e-12)  # float64 cosine of equal vectors
    assert "Zero vector" in caplog.text


def test_cosine_tensor_and_numpy_paths_match_loop(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((4, 50))
    agg = rng.standard_normal(50)
    expected = [
        float(row @ agg / (np.linalg.norm(row) * np.linalg.norm(agg))) for row in u
    ]
    # Execute
    psi_np = cosine_contributions(u, agg)
    psi_t = cosine_contributions(
        torch.from_numpy(u).float(), torch.from_numpy(agg).float()
    )
    # Assert: float64 vs float64 loop exact to 1e-12; float32 inputs to 1e-6
    np.testing.assert_allclose(psi_np, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(psi_t, expected, rtol=0, atol=1e-6)
    assert psi_t.dtype == np.float64


# --- update_importance --------------------------------------------------------


def test_importance_equal_psi_gives_uniform():
    # Prepare: docs/cgsv.md §2 check, N = 5, r_{−1} = 0, ψ = 0.5
    # Execute
    r = update_importance(np.zeros(5), np.full(5, 0.5), 0.95)
    # Assert: 1e-15 is float64 rounding of 0.025/0.125
    np.testing.assert_allclose(r, [0.2] * 5, rtol=0, atol=1e-15)


def test_importance_floor_and_normalisation():
    # Prepare: r̃ = 0.5·(0.5, 0.5, 0) + 0.5·(1, −1, −1) = (0.75, −0.25, −0.5)
    r_prev = np.array([0.5, 0.5, 0.0])
    psi = np.array([1.0, -1.0, -1.0])
    # Execute
    r = update_importance(r_prev, psi, 0.5)
    # Assert: floored to (0.75, 1e-3, 1e-3), divided by 0.752
    np.testing.assert_allclose(
        r, [0.75 / 0.752, 0.001 / 0.752, 0.001 / 0.752], rtol=1e-14
    )
    assert r.sum() == pytest.approx(1.0, abs=1e-15)


def test_importance_random_sums_to_one(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    r_prev = rng.dirichlet(np.ones(7))
    psi = rng.uniform(-1, 1, 7)
    # Execute
    r = update_importance(r_prev, psi, 0.9)
    # Assert: the floor keeps every entry ≥ 1e-3 / Σ max(r̃, 1e-3) > 0
    assert r.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(r >= 1e-3 / np.maximum(0.9 * r_prev + 0.1 * psi, 1e-3).sum() - 1e-18)


# --- reward_fractions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("beta", "expected"),
    [
        (0.5, [0.127, 0.253, 0.379, 0.754, 1.0]),
        (1.0, [0.131, 0.262, 0.392, 0.767, 1.0]),
        (2.0, [0.150, 0.297, 0.439, 0.809, 1.0]),
        (1e7, [1.0] * 5),
        (math.inf, [1.0] * 5),
    ],
)
def test_reward_fractions_worked_table(beta, expected):
    # Prepare: docs/cgsv.md §2 worked example
    r = np.array([0.05, 0.10, 0.15, 0.30, 0.40])
    # Execute
    q = reward_fractions(r, beta)
    # Assert: the table is given to 3 decimals
    np.testing.assert_allclose(q, expected, rtol=0, atol=5e-4)
    assert q.max() == 1.0


# --- layer_topk ---------------------------------------------------------------


def test_topk_count_cases():
    # Prepare / Execute / Assert: k = min(⌈q n⌉, max(n − 1, 1))
    assert topk_count(0.3, 10) == 3  # 0.3·10 is 3.0000000000000004 in float
    assert topk_count(0.31, 10) == 4
    assert topk_count(1.0, 10) == 9  # n − 1 cap
    assert topk_count(1e-6, 10) == 1  # any q > 0 keeps one
    assert topk_count(0.5, 1) == 1  # one entry


def test_layer_topk_keeps_ties():
    # Prepare: k = ⌈0.25·4⌉ = 1, τ = 3, two entries tie at τ
    u = [torch.tensor([1.0, -3.0, 3.0, 2.0])]
    # Execute
    (g,) = layer_topk(u, 0.25)
    # Assert
    assert g.tolist() == [0.0, -3.0, 3.0, 0.0]


def test_layer_topk_caps_at_n_minus_one_and_keeps_single_entry():
    # Prepare
    u = [torch.tensor([[1.0, -2.0], [3.0, 4.0]]), torch.tensor([-5.0])]
    # Execute
    g_full, g_one = layer_topk(u, 1.0)
    _, g_one_small = layer_topk(u, 1e-3)
    # Assert: q = 1 drops the smallest entry; the one-entry tensor is always kept
    assert g_full.tolist() == [[0.0, -2.0], [3.0, 4.0]]
    assert g_one.tolist() == [-5.0]
    assert g_one_small.tolist() == [-5.0]


def test_layer_topk_small_q_keeps_one_per_tensor():
    # Prepare
    u = [torch.tensor([0.1, 0.5, -0.2]), torch.tensor([[2.0, 1.0]])]
    # Execute
    g = layer_topk(u, 1e-9)
    # Assert
    assert [int((t != 0).sum()) for t in g] == [1, 1]
    assert g[0].tolist() == [0.0, 0.5, 0.0]


def test_flat_layer_topk_matches_layer_topk(seed):
    # Prepare: random layers with forced ties, random fractions
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 30, 2, 64]
    u = torch.from_numpy(rng.integers(-5, 6, sum(sizes)).astype(np.float32) / 4)
    q = np.concatenate([rng.uniform(1e-3, 1, 6), [1.0]])
    # Execute
    fast = flat_layer_topk(u, sizes, q)
    # Assert: identical to the per-layer definition
    for i, qi in enumerate(q):
        slow = torch.cat(layer_topk(u.split(sizes), float(qi)))
        assert torch.equal(fast[i], slow)


# --- bad inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: normalise_update(torch.ones(3), 0.0), "gamma"),
        (lambda: normalise_update(torch.ones(3), -1.0), "gamma"),
        (lambda: normalise_update(torch.ones((2, 2)), 1.0), "delta"),
        (lambda: normalise_update(torch.tensor([float("nan")]), 1.0), "delta"),
        (lambda: aggregation_weights("mean", [1, 1], [0, 0], np.eye(2), 0), "kind"),
        (lambda: aggregation_weights("cgsv", [1], [1.0], np.eye(1), 0), "`n`"),
        (lambda: aggregation_weights("cgsv", [1, 0], [0, 0], np.eye(2), 0), "`n`"),
        (lambda: aggregation_weights("cgsv", [1, 1], [0.1, 0.1], np.eye(2), 1), "`r`"),
        (
            lambda: aggregation_weights("cgsv", [1, 1], [0.5, 0.5], np.eye(2), -1),
            "round",
        ),
        (lambda: cosine_contributions(np.eye(2), np.ones(3)), "uploads"),
        (lambda: update_importance([0.5, 0.5], [1.0, 1.0], 1.0), "alpha"),
        (lambda: update_importance([0.5, 0.5], [1.0, 1.0], -0.1), "alpha"),
        (lambda: update_importance([0.5, 0.5], [1.0], 0.5), "psi"),
        (lambda: update_importance([0.5, 0.5], [1.0, 1.0], 0.5, floor=0.0), "floor"),
        (lambda: reward_fractions([0.5, 0.5], 0.0), "beta"),
        (lambda: reward_fractions([0.5, 0.5], -1.0), "beta"),
        (lambda: reward_fractions([0.0, 0.0], 1.0), "`r`"),
        (lambda: reward_fractions([-0.1, 0.5], 1.0), "`r`"),
        (lambda: layer_topk([torch.ones(3)], 0.0), "`q`"),
        (lambda: layer_topk([torch.ones(3)], 1.5), "`q`"),
        (lambda: flat_layer_topk(torch.ones(3), [2], [0.5]), "sizes"),
        (lambda: flat_layer_topk(torch.ones(3), [3], [0.0]), "`q`"),
    ],
)
def test_bad_inputs(call, match):
    # Prepare / Execute / Assert
    with pytest.raises(ValueError, match=match):
        call()


# --- fast paths against slow obvious implementations ---------------------------


def _slow_layer_topk(u: np.ndarray, q: float) -> np.ndarray:
    n = u.size
    k = min(math.ceil(q * n - 1e-9), max(n - 1, 1))
    tau = sorted(np.abs(u).tolist(), reverse=True)[k - 1]
    return np.array([v if abs(v) >= tau else 0.0 for v in u.tolist()])


@pytest.mark.parametrize("trial", range(5))
def test_layer_topk_matches_sorting(seed, trial):
    # Prepare: integer-valued entries force ties; q includes the cap case 1.0
    rng = np.random.default_rng([seed, trial])
    sizes = [int(s) for s in rng.integers(1, 40, 4)]
    u = rng.integers(-6, 7, sum(sizes)).astype(np.float32)
    qs = [*rng.uniform(0.01, 1, 5).tolist(), 1.0]
    # Execute
    fast = flat_layer_topk(torch.from_numpy(u), sizes, qs)
    # Assert: per layer, keep |u| ≥ the k-th largest |u| of a plain sort
    for i, q in enumerate(qs):
        slow = np.concatenate(
            [_slow_layer_topk(part, q) for part in np.split(u, np.cumsum(sizes)[:-1])]
        )
        np.testing.assert_array_equal(fast[i].numpy(), slow)
        per_layer = torch.cat(layer_topk(torch.from_numpy(u).split(sizes), q))
        np.testing.assert_array_equal(per_layer.numpy(), slow)


def test_flat_layer_topk_cpu_partition_equals_sort_path(seed):
    # Prepare: float64 update with ties, many parties
    rng = np.random.default_rng(seed)
    u = torch.from_numpy(np.round(rng.standard_normal(500), 1))
    q = rng.uniform(1e-3, 1, 12)
    sizes = [100, 1, 399]
    # Execute
    fast = flat_layer_topk(u, sizes, q)
    # Assert: dtype kept and every row equals the per-layer definition
    assert fast.dtype == torch.float64
    for i, qi in enumerate(q):
        assert torch.equal(fast[i], torch.cat(layer_topk(u.split(sizes), float(qi))))


def test_update_importance_matches_loop(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    r_prev = rng.dirichlet(np.ones(6))
    psi = rng.uniform(-1, 1, 6)
    # Execute
    r = update_importance(r_prev, psi, 0.8)
    # Assert: the formula written out entry by entry (float64, 1e-15)
    mixed = [max(0.8 * a + 0.2 * b, 1e-3) for a, b in zip(r_prev, psi, strict=True)]
    np.testing.assert_allclose(r, [m / sum(mixed) for m in mixed], rtol=0, atol=1e-15)


def test_reward_fractions_match_formula(seed):
    # Prepare
    r = np.random.default_rng(seed).dirichlet(np.ones(8))
    # Execute
    q = reward_fractions(r, 1.5)
    # Assert: tanh(β r_i) / max_j tanh(β r_j), float64 to 1e-15
    top = max(math.tanh(1.5 * v) for v in r)
    np.testing.assert_allclose(q, [math.tanh(1.5 * v) / top for v in r], atol=1e-15)
