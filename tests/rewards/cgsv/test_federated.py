"""Tests of the federated CGSV loop, FedAvg and Standalone (docs/cgsv.md §2, §6, §7, §9)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from rewards.cgsv.gradient import normalise_update
from rewards.cgsv.simulation import (
    ROUND_COLUMNS,
    FedAvgStrategy,
    FLParty,
    GradientRewardStrategy,
    _timing,
    add_to_parameters,
    assign_parameters,
    batch_order_table,
    flatten_parameters,
    layer_sizes,
    simulate,
)
from rewards.classifiers import build_classifier

TIMING_COLUMNS = ("round_time_s", "server_time_s")


def _tiny_data(seed, n_parties=3, sizes=(20, 30, 40), d=4, n_classes=3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d)) * 2
    parties = []
    for n in sizes[:n_parties]:
        y = rng.integers(0, n_classes, n)
        parties.append(
            ((centres[y] + rng.standard_normal((n, d))).astype(np.float32), y)
        )
    y = rng.integers(0, n_classes, 60)
    test = ((centres[y] + rng.standard_normal((60, d))).astype(np.float32), y)
    return parties, test


def _model(seed=0):
    return build_classifier("mlp", (4,), 3, seed=seed)


def _party(model, data, orders, party_id=0, lr=0.05, decay=0.9):
    x, y = data
    return FLParty(party_id, model, x, y, orders, lr=lr, lr_decay=decay, batch_size=8)


# --- flat vectors and batch orders ----------------------------------------------


def test_flatten_assign_add_round_trip():
    # Prepare
    model = _model()
    sizes = layer_sizes(model)
    flat = torch.arange(sum(sizes), dtype=torch.float32)
    # Execute
    assign_parameters(model, flat)
    add_to_parameters(model, torch.ones_like(flat))
    # Assert: named_parameters() order, copies (not views of `flat`)
    assert sizes == [p.numel() for _, p in model.named_parameters()]
    assert torch.equal(flatten_parameters(model), flat + 1)
    flat[0] = -100.0
    assert flatten_parameters(model)[0] == 1.0


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
    parties, _ = _tiny_data(seed)
    orders = batch_order_table([20], 1, 2, seed=seed)[0]
    theta_0 = flatten_parameters(_model())
    cg = _party(_model(), parties[0], orders)
    sa = _party(_model(), parties[0], orders)
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
    parties, _ = _tiny_data(seed)
    orders = batch_order_table([20], 3, 3, seed=seed)[0]
    party = _party(_model(), parties[0], orders, lr=0.1, decay=0.5)
    # Execute: two rounds of three epochs each
    for t in range(2):
        party.fit({"round": t, "local_epochs": 3, "gamma": 1.0})
    # Assert: lr · decay^rounds, not decay^epochs (docs/cgsv.md §3.2)
    assert party.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_underflowing_updates_warn_once(seed, caplog):
    # Prepare: lr 1e-12 moves almost no float32 parameter (steps < half an ulp)
    parties, _ = _tiny_data(seed)
    orders = batch_order_table([20], 2, 1, seed=seed)[0]
    tiny = _party(_model(), parties[0], orders, lr=1e-12, decay=1.0)
    normal = _party(_model(), parties[0], orders, party_id=1)
    # Execute
    with caplog.at_level("WARNING", logger="rewards.cgsv.simulation"):
        for t in range(2):
            tiny.fit({"round": t, "local_epochs": 1, "gamma": 0.5})
            normal.fit({"round": t, "local_epochs": 1, "gamma": 0.5})
    # Assert: one warning, for the tiny-lr party, at round 0
    warned = [r.getMessage() for r in caplog.records if "float32" in r.getMessage()]
    assert len(warned) == 1
    assert warned[0].startswith("party 0, round 0:")


def test_one_step_per_minibatch(seed):
    # Prepare: 20 rows, B = 8 → 3 steps per epoch (8, 8, 4)
    parties, _ = _tiny_data(seed)
    orders = batch_order_table([20], 1, 1, seed=seed)[0]
    party = _party(_model(), parties[0], orders)
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
    class Ok:
        alpha = np.array([1.0, 3.0])
        success = True

    class Fail:
        alpha = None
        success = False

    ups = [(0, torch.tensor([1.0, 0.0]), 1), (1, torch.tensor([0.0, 1.0]), 1)]
    ok = _two_party_strategy(aggregator="nash", nbs=lambda g: Ok())
    fail = _two_party_strategy(aggregator="nash", nbs=lambda g: Fail())
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
    parties_data, _ = _tiny_data(seed)
    init = _model()
    theta_0 = flatten_parameters(init)
    orders = batch_order_table([20, 30, 40], 4, 1, seed=seed)
    parties = [
        _party(_model(), d, orders[i], party_id=i) for i, d in enumerate(parties_data)
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
    w = strategy.aggregate_round(0, results)
    # Assert: θ_F = (1·(0, 8) + 3·(4, 0)) / 4
    np.testing.assert_allclose(w, [0.25, 0.75])
    np.testing.assert_allclose(strategy.theta, [3.0, 2.0])
    assert torch.equal(strategy.configure_round(1)[0]["parameters"], strategy.theta)


def test_timing_overhead_is_ratio_of_medians():
    # Prepare
    times = {
        "cgsv": [1.0, 1.2, 5.0],
        "cgsv_srv": [0.1, 0.2, 0.3],
        "fedavg": [1.0, 1.0, 1.1],
        "fedavg_srv": [0.1, 0.1, 0.1],
    }
    # Execute
    timing = _timing(times)
    # Assert: median 1.2 / median 1.0 − 1; server 0.2 / 0.1 − 1
    assert timing.overhead == pytest.approx(0.2)
    assert timing.server_overhead == pytest.approx(1.0)
    assert timing.goal_met is False


# --- simulate: a tiny 3-party run on CPU ----------------------------------------


def _simulate(seed, **over):
    parties, test = _tiny_data(0)
    rows = []
    kwargs = {
        "rounds": 3,
        "local_epochs": 2,
        "batch_size": 8,
        "lr": 0.05,
        "lr_decay": 0.97,
        "gamma": 0.5,
        "alpha": 0.95,
        "beta": [1.0, 1e7],
        "seed": seed,
        "on_round": rows.append,
    }
    kwargs.update(over)
    summary = simulate(_model(), parties, test, **kwargs)
    return summary, rows


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def test_simulate_tiny_run_rows_and_summary(seed):
    # Execute
    summary, rows = _simulate(seed)
    # Assert: one row per (round, method, β, party) in that order
    assert len(rows) == 3 * 3 * 4  # 3 rounds × (standalone, fedavg, 2 β) × 3 parties
    assert all(tuple(r) == ROUND_COLUMNS for r in rows)
    keys = [(r["round"], r["method"], r["beta"], r["party"]) for r in rows]
    assert keys[:4] == [
        (0, "standalone", None, 0),
        (0, "standalone", None, 1),
        (0, "standalone", None, 2),
        (0, "fedavg", None, 0),
    ]
    for t in range(3):
        for beta in (1.0, 1e7):
            cg = [r for r in rows if r["round"] == t and r["beta"] == beta]
            assert sum(r["r"] for r in cg) == pytest.approx(1.0, abs=1e-12)
            assert max(r["q"] for r in cg) == 1.0
            assert sum(r["weight"] for r in cg) == pytest.approx(1.0, abs=1e-12)
            assert all(0 < r["reward_density"] <= 1 for r in cg)
            assert all(0 < r["reward_cos"] <= 1 + 1e-6 for r in cg)
    sa = [r for r in rows if r["method"] == "standalone"]
    assert all(r["psi"] is None and r["server_acc"] is None for r in sa)
    assert summary.party_sizes == [20, 30, 40]
    assert [c.beta for c in summary.cgsv] == [1.0, 1e7]
    for c in summary.cgsv:  # allocation fairness: Pearson(standalone acc, final r)
        expected = np.corrcoef(summary.standalone["test_acc"], c.final_r)[0, 1]
        assert c.reward_fairness == pytest.approx(expected, abs=1e-12)
    assert summary.timing.cgsv_round_s > 0


def test_simulate_beta_huge_gives_everyone_the_same_model(seed):
    # Execute: β = 1e7 → q = 1 for everyone → identical rewards each round
    summary, rows = _simulate(seed, beta=1e7)
    # Assert
    cg = [r for r in rows if r["method"] == "cgsv"]
    assert all(r["q"] == 1.0 for r in cg)
    for t in range(3):
        accs = {r["test_acc"] for r in cg if r["round"] == t}
        assert len(accs) == 1
    assert summary.cgsv[0].fairness is None  # zero variance → null (docs/cgsv.md §7)


def test_simulate_seed_pair(seed, seed_alt):
    # Execute
    a, rows_a = _simulate(seed)
    b, rows_b = _simulate(seed)
    _, rows_c = _simulate(seed_alt)
    # Assert: same seed → identical rows apart from timing; another seed differs
    assert _untimed(rows_a) == _untimed(rows_b)
    assert a.cgsv == b.cgsv
    assert _untimed(rows_a) != _untimed(rows_c)


def test_simulate_eval_every_leaves_test_acc_empty(seed):
    # Execute
    _, rows = _simulate(seed, rounds=4, eval_every=2, beta=1.0)
    # Assert: evaluated at t = 0, 2 and the last round 3
    evaluated = {r["round"] for r in rows if r["test_acc"] is not None}
    assert evaluated == {0, 2, 3}


def test_simulate_nash_stub_counts_failures(seed):
    # Prepare
    class Fail:
        alpha = None
        success = False

    # Execute
    summary, rows = _simulate(seed, beta=1.0, aggregator="nash", nbs=lambda g: Fail())
    # Assert
    assert summary.cgsv[0].nbs_failures == 3
    assert all(r["nbs_failed"] == 1 for r in rows if r["method"] == "cgsv")


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"rounds": 0}, "rounds"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": -1.0}, "gamma"),
        ({"beta": 0.0}, "beta"),
        ({"beta": []}, "beta"),
        ({"alpha": 1.0}, "alpha"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"aggregator": "mean"}, "aggregator"),
        ({"baselines": ["cffl"]}, "baselines"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_simulate_bad_inputs(over, match):
    # Execute / Assert
    with pytest.raises(ValueError, match=match):
        _simulate(0, **over)


def test_simulate_refuses_one_party():
    # Prepare
    parties, test = _tiny_data(0, n_parties=1)
    # Execute / Assert
    with pytest.raises(ValueError, match="party_data"):
        simulate(
            _model(),
            parties,
            test,
            rounds=1,
            local_epochs=1,
            batch_size=8,
            lr=0.1,
            lr_decay=1.0,
            gamma=1.0,
            alpha=0.5,
            beta=1.0,
        )


# --- whole loop against a literal, per-layer implementation --------------------


def _naive_train(model, opt, x, y, order_t, batch_size):
    """E epochs of per-mini-batch SGD in the order of the shared table."""
    loss_fn = torch.nn.CrossEntropyLoss()
    for order in order_t:
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start : start + batch_size])
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()


def _naive_cgsv(init, data, orders, rounds, *, lr, decay, gamma, alpha, beta, bs):
    """docs/cgsv.md §2 written the reference's way: per-layer lists, one model per party."""
    n = len(data)
    models = [copy.deepcopy(init) for _ in range(n)]
    opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in models]
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=decay) for o in opts]
    sizes = torch.tensor([len(y) for _, y in data], dtype=torch.float64)
    r = torch.zeros(n, dtype=torch.float64)
    history = []
    for t in range(rounds):
        uploads = []
        for i, (x, y) in enumerate(data):
            old = [p.detach().clone() for p in models[i].parameters()]
            _naive_train(models[i], opts[i], x, y, orders[i][t], bs)
            delta = [
                p.detach() - o for p, o in zip(models[i].parameters(), old, strict=True)
            ]
            with torch.no_grad():
                for p, o in zip(models[i].parameters(), old, strict=True):
                    p.copy_(o)
            scheds[i].step()
            norm = torch.cat([d.reshape(-1) for d in delta]).norm() + 1e-7
            uploads.append([gamma * d / norm for d in delta])
        w = sizes / sizes.sum() if t == 0 else r
        n_layers = len(uploads[0])
        agg = [
            sum(float(w[i]) * uploads[i][k] for i in range(n)) for k in range(n_layers)
        ]
        flat_agg = torch.cat([a.reshape(-1) for a in agg]).double()
        psi = torch.stack(
            [
                torch.nn.functional.cosine_similarity(
                    torch.cat([u.reshape(-1) for u in up]).double(), flat_agg, 0, 1e-10
                )
                for up in uploads
            ]
        )
        r = torch.clamp(alpha * r + (1 - alpha) * psi, min=1e-3)
        r = r / r.sum()
        q = torch.tanh(beta * r) / torch.tanh(beta * r).max()
        for i in range(n):
            with torch.no_grad():
                for p, layer in zip(models[i].parameters(), agg, strict=True):
                    flat = layer.reshape(-1).abs()
                    k = min(math.ceil(len(flat) * float(q[i])), max(len(flat) - 1, 1))
                    tau = torch.topk(flat, k).values[-1]
                    p += torch.where(layer.abs() >= tau, layer, torch.zeros_like(layer))
        history.append((psi.numpy(), r.numpy(), q.numpy()))
    return models, history


def _test_acc(model, test):
    """Accuracy of ``model`` on ``test`` as a count over n (as the evaluator counts)."""
    x, y = (torch.as_tensor(a) for a in test)
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


def test_simulate_matches_reference_style_loop(seed):
    # Prepare: `_simulate`'s data and θ_0, 4 rounds, 2 local epochs, one order table
    parties, test = _tiny_data(0)
    data = [(torch.as_tensor(x), torch.as_tensor(y)) for x, y in parties]
    orders = batch_order_table([20, 30, 40], 4, 2, seed=seed)
    hyper = {"lr": 0.05, "decay": 0.97, "gamma": 0.5, "alpha": 0.8, "beta": 1.0}
    # Execute
    summary, rows = _simulate(
        seed, rounds=4, alpha=0.8, beta=1.0, baselines=(), orders=orders
    )
    models, history = _naive_cgsv(_model(), data, orders, 4, bs=8, **hyper)
    # Assert: ψ, r, q of every round, and the final party models' accuracies
    for t, (psi, r, q) in enumerate(history):
        got = [row for row in rows if row["round"] == t]
        np.testing.assert_allclose([g["psi"] for g in got], psi, rtol=0, atol=1e-6)
        np.testing.assert_allclose([g["r"] for g in got], r, rtol=0, atol=1e-6)
        np.testing.assert_allclose([g["q"] for g in got], q, rtol=0, atol=1e-6)
    naive_acc = [_test_acc(m, test) for m in models]
    assert summary.cgsv[0].test_acc == pytest.approx(naive_acc, abs=1e-12)


def test_fedavg_and_standalone_match_literal_loops(seed):
    # Prepare: the baselines of docs/cgsv.md §6 written out on `_simulate`'s data and θ_0
    parties, test = _tiny_data(0)
    data = [(torch.as_tensor(x), torch.as_tensor(y)) for x, y in parties]
    orders = batch_order_table([20, 30, 40], 3, 2, seed=seed)
    init = _model()
    fed = [copy.deepcopy(init) for _ in data]
    alone = [copy.deepcopy(init) for _ in data]
    opts = [torch.optim.SGD(m.parameters(), lr=0.05) for m in fed + alone]
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.97) for o in opts]
    global_model = copy.deepcopy(init)
    weights = [20 / 90, 30 / 90, 40 / 90]
    n = len(data)
    # Execute
    summary, _ = _simulate(seed, beta=1.0, orders=orders)
    for t in range(3):
        for i, (x, y) in enumerate(data):
            fed[i].load_state_dict(global_model.state_dict())
            _naive_train(fed[i], opts[i], x, y, orders[i][t], 8)
            _naive_train(alone[i], opts[n + i], x, y, orders[i][t], 8)
        with torch.no_grad():
            for k, p in enumerate(global_model.parameters()):
                p.copy_(
                    sum(
                        w * list(m.parameters())[k]
                        for w, m in zip(weights, fed, strict=True)
                    )
                )
        for sched in scheds:
            sched.step()
    # Assert
    assert summary.standalone["test_acc"] == pytest.approx(
        [_test_acc(m, test) for m in alone]
    )
    assert summary.fedavg["test_acc"] == pytest.approx(
        [_test_acc(m, test) for m in fed]
    )
    assert summary.fedavg["global_acc"] == pytest.approx(_test_acc(global_model, test))
