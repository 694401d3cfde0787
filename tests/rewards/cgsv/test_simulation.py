"""Tests of the lock-step federated loop `simulate` (docs/cgsv.md §2, §6, §7)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from rewards.cgsv.party import batch_order_table
from rewards.cgsv.simulation import ROUND_COLUMNS, _timing, simulate
from rewards.nash.bargaining import NbsResult
from tests.rewards.cgsv.helpers import tiny_data, tiny_model

TIMING_COLUMNS = ("round_time_s", "server_time_s")


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
    parties, test = tiny_data(0)
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
    summary = simulate(tiny_model(), parties, test, **kwargs)
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


def test_simulate_beta_huge_gives_everyone_the_sametiny_model(seed):
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
    fail = NbsResult(None, False, math.nan, 0, "unbounded: 0 in convex hull")
    # Execute
    summary, rows = _simulate(seed, beta=1.0, aggregator="nash", nbs=lambda g: fail)
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


def test_simulate_refuses_onemake_party():
    # Prepare
    parties, test = tiny_data(0, n_parties=1)
    # Execute / Assert
    with pytest.raises(ValueError, match="party_data"):
        simulate(
            tiny_model(),
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
    """docs/cgsv.md §2 the reference's way: per-layer lists, one model per party."""
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
    parties, test = tiny_data(0)
    data = [(torch.as_tensor(x), torch.as_tensor(y)) for x, y in parties]
    orders = batch_order_table([20, 30, 40], 4, 2, seed=seed)
    hyper = {"lr": 0.05, "decay": 0.97, "gamma": 0.5, "alpha": 0.8, "beta": 1.0}
    # Execute
    summary, rows = _simulate(
        seed, rounds=4, alpha=0.8, beta=1.0, baselines=(), orders=orders
    )
    models, history = _naive_cgsv(tiny_model(), data, orders, 4, bs=8, **hyper)
    # Assert: ψ, r, q of every round, and the final party models' accuracies
    for t, (psi, r, q) in enumerate(history):
        got = [row for row in rows if row["round"] == t]
        np.testing.assert_allclose([g["psi"] for g in got], psi, rtol=0, atol=1e-6)
        np.testing.assert_allclose([g["r"] for g in got], r, rtol=0, atol=1e-6)
        np.testing.assert_allclose([g["q"] for g in got], q, rtol=0, atol=1e-6)
    naive_acc = [_test_acc(m, test) for m in models]
    assert summary.cgsv[0].test_acc == pytest.approx(naive_acc, abs=1e-12)


def test_fedavg_and_standalone_match_literal_loops(seed):
    # Prepare: the baselines of docs/cgsv.md §6 written out on `_simulate`'s data, θ_0
    parties, test = tiny_data(0)
    data = [(torch.as_tensor(x), torch.as_tensor(y)) for x, y in parties]
    orders = batch_order_table([20, 30, 40], 3, 2, seed=seed)
    init = tiny_model()
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
