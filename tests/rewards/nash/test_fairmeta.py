"""Tests of the two-stage fairness-aware meta-learning (docs/nash.md §3)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from data.adult import synthetic_fair
from rewards.nash.bargaining import nbs
from rewards.nash.evaluation import (
    HEADLINE_METRICS,
    EpochMetrics,
    GroupMetrics,
    group_metrics,
    hard_auc,
    metrics_columns,
    metrics_rows,
    select_epoch,
    summarise,
)
from rewards.nash.fairmeta import METHODS, TrainSettings, run_methods, train_method
from rewards.nash.lookahead import (
    Lookahead,
    block_means,
    build_mlp,
    group_rows,
    hypergradients,
    hypergradients_per_sample,
    is_conflict,
    meta_direction,
    objective_direction,
    sample_weights,
    stage_of,
    validation_row_loss,
)

# --- hypergradients -----------------------------------------------------------


def _problem(seed, *, dropout=0.0, n_cells=4, v=2, b=6, d=5):
    """A float64 MLP, a training batch and validation blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_mlp(d, dropout).double()
    x = torch.randn(b, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (b,), generator=g)
    x_val = torch.randn(n_cells * v, d, generator=g, dtype=torch.float64)
    y_val = torch.tensor([0, 1] * (n_cells // 2)).repeat_interleave(v)
    buffers = {
        n: 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    return model, x, y, x_val, y_val, buffers


def _lookahead_losses(model, x, y, x_val, y_val, n_cells, step, eps, soft_f1):
    """L_k(θ'(ε)) for a given ε, computed directly (no ε-graph), eval mode."""
    model.eval()
    params = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
    losses = F.cross_entropy(functional_call(model, params, (x,)), y, reduction="none")
    grads = torch.autograd.grad((eps * losses).sum(), tuple(params.values()))
    new = {
        n: p.detach() - step.lr * (g + step.shift(n, p.detach()))
        for (n, p), g in zip(params.items(), grads, strict=True)
    }
    with torch.no_grad():
        logits = functional_call(model, new, (x_val,))
        return block_means(validation_row_loss(logits, y_val, soft_f1=soft_f1), n_cells)


@pytest.mark.parametrize(
    ("with_buffers", "soft_f1", "dropout"),
    [(False, True, 0.0), (True, True, 0.3), (True, False, 0.0)],
)
def test_hypergradient_routes_agree(seed, with_buffers, soft_f1, dropout):
    # Prepare
    model, x, y, x_val, y_val, buffers = _problem(seed, dropout=dropout)
    step = Lookahead(0.3, 5e-4, 0.9, buffers if with_buffers else None)
    # Execute
    g_fast, _ = hypergradients(model, x, y, x_val, y_val, 4, step, soft_f1=soft_f1)
    g_oracle = hypergradients_per_sample(
        model, x, y, x_val, y_val, 4, step, soft_f1=soft_f1
    )
    # Assert: docs/nash.md §3 says the routes agree to 1e-10 in float64
    assert g_fast.shape == (4, 6)
    torch.testing.assert_close(g_fast, g_oracle, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_buffers", [False, True])
def test_hypergradients_equal_finite_differences(seed, with_buffers):
    # Prepare
    model, x, y, x_val, y_val, buffers = _problem(seed)
    step = Lookahead(0.5, 1e-3, 0.9, buffers if with_buffers else None)
    h = 1e-5
    # Execute
    g_fast, cell_losses = hypergradients(model, x, y, x_val, y_val, 4, step)
    fd = torch.zeros_like(g_fast)
    for i in range(x.shape[0]):
        e = torch.zeros(x.shape[0], dtype=torch.float64)
        e[i] = h
        up = _lookahead_losses(model, x, y, x_val, y_val, 4, step, e, True)
        down = _lookahead_losses(model, x, y, x_val, y_val, 4, step, -e, True)
        fd[:, i] = (up - down) / (2 * h)
    zero = torch.zeros(x.shape[0], dtype=torch.float64)
    at_zero = _lookahead_losses(model, x, y, x_val, y_val, 4, step, zero, True)
    # Assert: central differences have O(h²) ≈ 1e-10 error, plus rounding 1e-16/h
    torch.testing.assert_close(g_fast, fd, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(cell_losses, at_zero, rtol=1e-12, atol=0)


def test_hypergradients_leave_model_unchanged(seed):
    # Prepare
    model, x, y, x_val, y_val, _ = _problem(seed, dropout=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    # Execute
    g1, _ = hypergradients(model, x, y, x_val, y_val, 4, Lookahead(0.1))
    g2, _ = hypergradients(model, x, y, x_val, y_val, 4, Lookahead(0.1))
    # Assert: deterministic (dropout off), parameters and train mode kept
    assert torch.equal(g1, g2)
    assert model.training
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n])
        assert p.grad is None


# --- directions ---------------------------------------------------------------


def test_group_rows_and_objectives_by_hand():
    # Prepare: 2 groups × 2 labels, B = 2; group losses (0.2, 0.6)
    g = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, -2.0]])
    cell_losses = torch.tensor([0.1, 0.3, 0.5, 0.7])
    # Execute
    groups = group_rows(g, 2)
    ltr = objective_direction("ltr", g, cell_losses, 2)
    gdro = objective_direction("gdro", g, cell_losses, 2)
    forml = objective_direction("forml", g, cell_losses, 2)
    # Assert: group rows (2, 1) and (1, 1); worst group 1, best group 0
    # float32 means of small integers: exact in IEEE, 1e-6 leaves room for any BLAS
    np.testing.assert_allclose(groups.numpy(), [[2.0, 1.0], [1.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(ltr.numpy(), [1.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(gdro.numpy(), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(forml.numpy(), [-1.0, 0.0], atol=1e-6)


def test_unknown_objective():
    with pytest.raises(ValueError, match="`objective`"):
        objective_direction("fair", torch.zeros(4, 2), torch.zeros(4), 2)


def test_conflict_and_weights():
    # Prepare
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    # Execute / Assert: g_2ᵀh = −1 for h = e_1; both positive for h = (1, 3)
    assert is_conflict(g, torch.tensor([1.0, 0.0]))
    assert not is_conflict(g, torch.tensor([1.0, 3.0]))
    assert sample_weights(torch.tensor([1.0, 0.0, 2.0])) is None
    w = sample_weights(torch.tensor([-1.0, 2.0, -1.0], dtype=torch.float64))
    np.testing.assert_allclose(w.numpy(), [2**-0.5, 0.0, 2**-0.5])


def test_stage_schedule_gives_t_bar_bargaining_epochs():
    # The reference's strict `ep < T_bar` gave T_bar − 1 epochs (docs/nash.md §3)
    assert [stage_of(e, 3) for e in range(1, 6)] == [1, 1, 1, 2, 2]
    assert [stage_of(e, 0) for e in range(1, 3)] == [2, 2]


def test_nbs_direction_never_conflicts(seed):
    # Prepare: feasible cell rows
    g = torch.from_numpy(np.random.default_rng(seed).normal(0.5, 1.0, size=(4, 64)))
    cell_losses = torch.tensor([0.1, 0.2, 0.3, 0.4])
    # Execute
    d = meta_direction("nash-ltr", 1, g, cell_losses, 2, "group_x_label")
    # Assert: h = Gᵀα with α = nbs(G), so g_kᵀh = 1/α_k > 0
    alpha = nbs(g.numpy()).alpha
    assert d.bargained
    assert d.nbs_success
    assert not d.conflict
    np.testing.assert_allclose((g @ d.h).numpy(), 1.0 / alpha, rtol=1e-9)


def test_nbs_failure_falls_back_to_objective(seed):
    # Prepare: cells 0 and 1 have opposite rows, so 0 ∈ conv and the NBS fails
    r = torch.from_numpy(np.random.default_rng(seed).normal(size=(3, 16)))
    g = torch.stack([r[0], -r[0], r[1], r[2]])
    cell_losses = torch.tensor([0.1, 0.2, 0.9, 0.4])
    for method in ("nash-ltr", "nash-gdro", "nash-forml"):
        # Execute
        d = meta_direction(method, 1, g, cell_losses, 2, "group_x_label")
        # Assert
        objective = method.removeprefix("nash-")
        assert not d.nbs_success
        assert d.nbs_reason.startswith("unbounded")
        assert not d.bargained
        torch.testing.assert_close(
            d.h, objective_direction(objective, g, cell_losses, 2)
        )


def test_group_players_bargain_over_group_rows(seed):
    # Prepare
    g = torch.from_numpy(np.random.default_rng(seed).normal(0.5, 1.0, size=(4, 32)))
    # Execute
    d = meta_direction("nash-gdro", 1, g, torch.zeros(4), 2, "group")
    # Assert: every group gains g_sᵀh = 1/α_s
    g_groups = group_rows(g, 2)
    alpha = nbs(g_groups.numpy()).alpha
    np.testing.assert_allclose((g_groups @ d.h).numpy(), 1.0 / alpha, rtol=1e-9)


def test_stage2_and_one_stage_use_objective(seed):
    g = torch.from_numpy(np.random.default_rng(seed).normal(0.5, 1.0, size=(4, 32)))
    cell_losses = torch.tensor([0.1, 0.2, 0.3, 0.4])
    for method, stage in (("nash-ltr", 2), ("ltr", 1)):
        d = meta_direction(method, stage, g, cell_losses, 2, "group_x_label")
        assert not d.bargained
        assert d.nbs_success
        torch.testing.assert_close(d.h, g.mean(dim=0))


# --- metrics ------------------------------------------------------------------


def test_hard_auc_equals_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    pred = rng.integers(0, 2, 200)
    assert hard_auc(y, pred) == pytest.approx(metrics.roc_auc_score(y, pred), abs=1e-12)


def test_group_metrics_by_hand():
    # Prepare: group 0 perfect, group 1 predicts all positive
    y = np.array([0, 1, 0, 1, 0, 1])
    s = np.array([0, 0, 1, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 1, 1])
    # Execute
    m = group_metrics(y, s, pred, 2)
    # Assert: overall TPR 1, TNR 1/3
    # ratios of small counts: 1e-12 is far below any rounding that matters
    assert m.group_auc == pytest.approx((1.0, 0.5), abs=1e-12)
    assert m.group_tpr == pytest.approx((1.0, 1.0), abs=1e-12)
    assert m.worst_group_auc == pytest.approx(0.5, abs=1e-12)
    assert m.max_group_auc_gap == pytest.approx(0.5, abs=1e-12)
    assert m.overall_auc == pytest.approx(2 / 3)


def test_hard_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        hard_auc(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64))


def _row(method, seed, epoch, auc):
    return EpochMetrics(
        method=method,
        seed=seed,
        epoch=epoch,
        stage=1,
        test=GroupMetrics(auc, auc - 0.1, 0.1, (auc, auc - 0.1), (0.5, 0.5)),
        conflict_rate=0.0,
        nbs_success_rate=1.0,
        nbs_failures=0,
        zero_weight_steps=0,
        train_loss=0.0,
        epoch_time_s=0.0,
        nbs_iterations=(5,),
        n_batches=1,
    )


def test_select_and_summarise():
    # Prepare: seed means by epoch 0.6, 0.8, 0.7
    rows = [
        _row("ltr", 0, 1, 0.6),
        _row("ltr", 1, 1, 0.6),
        _row("ltr", 0, 2, 0.7),
        _row("ltr", 1, 2, 0.9),
        _row("ltr", 0, 3, 0.7),
        _row("ltr", 1, 3, 0.7),
    ]
    # Execute
    last = summarise(rows, "last")["ltr"]
    best = summarise(rows, "best_test_auc")["ltr"]
    # Assert
    assert select_epoch(rows, "last") == 3
    assert select_epoch(rows, "best_test_auc") == 2
    # means and sds of two floats: pytest.approx's default rel 1e-6 is ample
    assert last["overall_auc"] == pytest.approx({"mean": 0.7, "sd": 0.0, "n": 2})
    assert best["overall_auc"]["mean"] == pytest.approx(0.8)
    assert best["overall_auc"]["sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert best["nbs_success_rate"] == pytest.approx(1.0)
    assert best["nbs_failure_reasons"] == {}
    with pytest.raises(ValueError, match="`select`"):
        select_epoch(rows, "first")


def test_metrics_columns_and_rows():
    # Prepare
    rows = [_row("ltr", 0, 1, 0.6), _row("erm", 1, 2, 0.75)]
    # Execute
    columns = metrics_columns(("a", "b"))
    table = metrics_rows(rows, ("a", "b"))
    # Assert: docs/nash.md §5: the group columns after the headline metrics (the
    # stage test checks the leading ones); one dict per row, keyed by the columns
    assert columns[4:7] == list(HEADLINE_METRICS)
    assert columns[7:11] == ["auc_a", "auc_b", "tpr_a", "tpr_b"]
    assert len(columns) == 16
    assert [list(r) for r in table] == [columns, columns]
    assert [(r["method"], r["seed"], r["epoch"]) for r in table] == [
        ("ltr", 0, 1),
        ("erm", 1, 2),
    ]
    assert table[1]["auc_b"] is rows[1].test.group_auc[1]


# --- training -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_fair(1200, seed=5, test_per_cell=40)


TINY = TrainSettings(epochs=3, bargain_epochs=2, lr=1e-2, dropout=0.1, batch_size=64)


def _without_time(rows):
    return [dataclasses.replace(r, epoch_time_s=0.0) for r in rows]


def test_training_is_seeded(tiny_data):
    # Prepare
    state = torch.random.get_rng_state()
    # Execute
    a = train_method(tiny_data, "nash-ltr", 3, TINY)
    b = train_method(tiny_data, "nash-ltr", 3, TINY)
    c = train_method(tiny_data, "nash-ltr", 4, TINY)
    # Assert: same seed same rows, other seed differs, global RNG untouched
    assert _without_time(a) == _without_time(b)
    assert [r.train_loss for r in a] != [r.train_loss for r in c]
    assert torch.equal(torch.random.get_rng_state(), state)


def test_every_method_runs_and_nash_stage1_has_no_conflict(tiny_data):
    # Execute
    rows = run_methods(tiny_data, METHODS, [0], TINY)
    # Assert
    assert len(rows) == len(METHODS) * TINY.epochs
    for r in rows:
        assert 0.0 <= r.test.overall_auc <= 1.0
        assert r.n_batches == (tiny_data.x_train.shape[0] // TINY.batch_size)
        if r.method.startswith("nash-") and r.stage == 1:
            assert r.conflict_rate <= 1.0 - r.nbs_success_rate
        if r.method in ("erm", "dro"):
            assert r.conflict_rate == 0.0
            assert r.nbs_iterations == ()
        else:
            assert len(r.nbs_iterations) == r.n_batches
    assert [r.stage for r in rows[: TINY.epochs]] == [1, 1, 2]


@pytest.mark.parametrize(
    ("method", "cfg", "match"),
    [
        ("nash-foo", TINY, "`method`"),
        ("erm", dataclasses.replace(TINY, batch_size=100_000), "`batch_size`"),
    ],
)
def test_bad_training_input(tiny_data, method, cfg, match):
    with pytest.raises(ValueError, match=match):
        train_method(tiny_data, method, 0, cfg)
