"""Tests of the contract library (docs/contract.md; Wang, Wu, Liu, Low, AAAI 2025)."""

from __future__ import annotations

import itertools
import json
import logging
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import multinomial

from pipeline.figures.contract import plot_contributions, plot_menu, plot_rewards
from rewards.contract.complete_info import joint_sizes_complete_info
from rewards.contract.primitives import (
    conditional_weights,
    count_outcomes,
    enumerate_outcomes,
    outcome_probabilities,
    pooling_start,
    reservation_utilities,
)
from rewards.contract.recovery import recover_rewards
from rewards.contract.solve import (
    ContractResult,
    PowerLawAccuracy,
    SGBAccuracy,
    binding_chain,
    make_accuracy,
    solve_contract,
)
from rewards.contract.solver import (
    expected_accuracy,
    expected_accuracy_gradient,
    expected_accuracy_hessian,
    max_reward_values,
    max_reward_values_hessian,
    max_reward_values_jacobian,
)

V = 100.0
SGB = SGBAccuracy()
POWER = PowerLawAccuracy(a_max=0.95, kappa=8.0, exponent=0.5)

# docs/contract.md §5 multi-type table: N = 10, K = 5, p_i = 0.2, SGB a_opt = k = 1,
# V = 100
SCENARIOS = {
    "scenario1": {
        "c": [0.2, 0.16, 0.12, 0.08, 0.04],
        "m_res": [148.06, 172.55, 210.16, 277.42, 445.71],
        "f": [6.77, 13.15, 20.75, 30.34, 44.16],
        "m": [391.91, 391.91, 391.91, 391.91, 425.39],
        "t": [85.152, 85.152, 85.152, 85.152, 86.491],
        "u": [6.770, 22.446, 38.123, 53.799, 69.476],
        "t_bar": [86.475, 86.475, 86.475, 86.475, 86.491],
        "E": 86.478,
    },
    "scenario2": {
        "c": [1.0, 0.85, 0.7, 0.55, 0.4],
        "m_res": [0.0] * 5,
        "f": [0.0] * 5,
        "m": [69.053] * 5,
        "t": [69.053] * 5,
        "u": [0.0, 10.358, 20.716, 31.074, 41.432],
        "t_bar": [69.053] * 5,
        "E": 69.053,
    },
    "scenario3": {
        "c": [0.5, 0.4, 0.03, 0.02, 0.001],
        "m_res": [0.0, 0.0, 542.55, 715.64, 5506.93],
        "f": [0.0, 0.0, 49.063, 55.256, 82.894],
        "m": [104.39, 104.39, 1166.60, 1166.60, 11740.66],
        "t": [52.195, 52.195, 84.061, 84.061, 94.635],
        "u": [0.0, 10.439, 49.063, 60.729, 82.894],
        "t_bar": [93.918, 93.918, 93.970, 93.970, 94.635],
        "E": 94.013,
    },
}

# docs/contract.md §5, two types: c = (0.02, 0.01).
TWO_TYPE = [
    {
        "N": 10,
        "p": [0.5, 0.5],
        "m": [1915.84, 1917.87],
        "t": [93.573, 93.593],
        "u": [55.256, 74.414],
        "E": 93.593,
        "m_ci": [1953.73, 3016.97],
        "E_ci": 94.330,
        "info_cost": 0.737,
        "rent": [0.0, 10.25],
    },
    {
        "N": 50,
        "p": [0.3, 0.7],
        "m": [890.49, 3326.87],
        "t": [73.066, 97.430],
        "u": [55.256, 64.161],
        "E": 97.430,
        "m_ci": [2116.95, 3343.41],
        "E_ci": 97.595,
        "info_cost": 0.165,
        "rent": [0.0, 0.0],
    },
]

# docs/contract.md §5 acceptance tolerances (the table prints 2–3 decimals):
ATOL_VALUE = 0.01  # E[v(a)], t̄, f, u: absolute 0.01
ATOL_T = 0.02  # t: absolute 0.02
RTOL_M = 1e-3  # m and m_res: relative 1e-3


# ---------------------------------------------------------------- known answers first


def test_sgb_zero_crossing_matches_spec():
    # Prepare / Execute
    x0 = SGB.zero_crossing

    # Assert: docs/contract.md §1 prints x₀ = 55.80715 (5 decimals)
    assert x0 == pytest.approx(55.80715, abs=5e-6)
    assert SGB.value(x0 * (1 - 1e-9)) == 0.0
    assert SGB.value(x0 * (1 + 1e-6)) > 0.0


def test_sgb_known_value_and_true_second_derivative():
    # Prepare: x = e⁶ gives L = 6, s = 4, a = 1 − 8/e³ by hand
    x = math.exp(6.0)

    # Execute
    a = float(SGB.value(x))
    d2_60 = float(SGB.second_derivative(60.0))

    # Assert
    assert a == pytest.approx(1 - 8 / math.exp(3), rel=1e-14)  # closed form; rounding
    # §1 pitfall: the true a''(60) is −1.80e-4, not the reference's −8.98e-5 (3 digits)
    assert d2_60 == pytest.approx(-1.80e-4, rel=3e-3)


@pytest.mark.parametrize("model", [SGB, SGBAccuracy(a_opt=0.9, k=2.0), POWER])
def test_accuracy_derivatives_match_central_differences(model):
    # Prepare: points above x₀ on a log scale up to 10⁸
    x = np.geomspace(model.zero_crossing * 1.05, 1e8, 60)
    h = 1e-4 * x

    # Execute
    fd1 = (model.value(x + h) - model.value(x - h)) / (2 * h)
    fd2 = (model.derivative(x + h) - model.derivative(x - h)) / (2 * h)

    # Assert: docs/contract.md §1 asks for relative error < 1e-5 (O(h²) error ≈ 1e-8)
    np.testing.assert_allclose(model.derivative(x), fd1, rtol=1e-5)
    np.testing.assert_allclose(model.second_derivative(x), fd2, rtol=1e-5)


@pytest.mark.parametrize("model", [SGB, POWER])
def test_accuracy_is_flat_below_zero_crossing(model):
    # Prepare
    x = np.array([0.0, 1e-3, 0.1, 1.0, model.zero_crossing * 0.999])

    # Execute / Assert: a, a', a'' are all 0 where a = 0 (exact zeros by construction)
    assert np.all(model.value(x) == 0.0)
    assert np.all(model.derivative(x) == 0.0)
    assert np.all(model.second_derivative(x) == 0.0)


def test_powerlaw_known_values():
    # Prepare
    model = PowerLawAccuracy(a_max=1.0, kappa=10.0, exponent=0.5)

    # Execute / Assert: x₀ = (κ/a_max)^{1/γ} = 100 and a(400) = 1 − 10/20
    assert model.zero_crossing == pytest.approx(100.0, rel=1e-14)  # rounding only
    assert float(model.value(400.0)) == pytest.approx(0.5, rel=1e-14)
    assert make_accuracy("sgb").zero_crossing == SGB.zero_crossing


def test_outcome_count_and_enumeration_match_itertools():
    # Prepare: the slow obvious enumeration, by filtering the full product
    cases = [(1, 2), (3, 3), (10, 5), (6, 4)]
    for n, k in cases:
        slow = sorted(
            c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n
        )

        # Execute
        fast = enumerate_outcomes(n, k)

        # Assert
        assert count_outcomes(n, k) == len(slow) == fast.shape[0]
        assert [tuple(row) for row in fast.tolist()] == slow
    assert count_outcomes(10, 5) == 1001  # docs/contract.md §1


def test_outcome_probabilities_match_scipy(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4))
    outcomes = enumerate_outcomes(9, 4)

    # Execute
    fast = outcome_probabilities(outcomes, probs)

    # Assert: log-factorials vs scipy's pmf differ by rounding only
    np.testing.assert_allclose(fast, multinomial.pmf(outcomes, 9, probs), rtol=1e-12)
    assert fast.sum() == pytest.approx(1.0, abs=1e-12)  # sum of 220 terms, rounding


def test_conditional_weights(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3))
    outcomes = enumerate_outcomes(6, 3)
    p_n = outcome_probabilities(outcomes, probs)

    # Execute
    w = conditional_weights(outcomes, p_n)

    # Assert: rows sum to 1, zero where n_i = 0, ∝ P(n) with mass 1 − (1 − p_i)^N
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)  # rounding only
    assert np.all(w[(outcomes == 0).T] == 0.0)
    for i in range(3):
        mask = outcomes[:, i] >= 1
        expected = p_n[mask] / (1 - (1 - probs[i]) ** 6)
        np.testing.assert_allclose(w[i, mask], expected, rtol=1e-12)  # rounding only


def test_reservation_matches_spec_and_brute_force():
    # Prepare
    costs = np.array(SCENARIOS["scenario3"]["c"])
    grid = np.geomspace(1.0, 1e6, 400_001)

    # Execute
    f, m_res = reservation_utilities(costs, SGB, V)
    brute = np.maximum(
        0.0, (V * SGB.value(grid)[None, :] - costs[:, None] * grid[None, :]).max(axis=1)
    )

    # Assert: the spec's printed values, and a dense grid can only do as well
    np.testing.assert_allclose(m_res, SCENARIOS["scenario3"]["m_res"], rtol=RTOL_M)
    np.testing.assert_allclose(f, SCENARIOS["scenario3"]["f"], atol=ATOL_VALUE)
    assert np.all(brute <= f + 1e-9)  # f is the maximum; 1e-9 absorbs rounding
    np.testing.assert_allclose(brute, f, atol=1e-6)  # grid step ratio 3.5e-5 → 1e-8 gap


def test_reservation_powerlaw_closed_form():
    # Prepare: V κγ m^{−γ−1} = c gives m_res = (Vκγ/c)^{1/(γ+1)}; c = 0.05 → m = 400
    costs = np.array([0.1, 0.05])
    m_closed = (V * 8.0 * 0.5 / costs) ** (1 / 1.5)
    f_closed = V * (0.95 - 8.0 / np.sqrt(m_closed)) - costs * m_closed

    # Execute
    f, m_res = reservation_utilities(costs, POWER, V)

    # Assert: brentq to 1e-12 in m; f = 35 exactly for c = 0.05 by hand
    np.testing.assert_allclose(m_res, m_closed, rtol=1e-10)
    np.testing.assert_allclose(f, f_closed, rtol=1e-10)
    assert f[1] == pytest.approx(35.0, rel=1e-10)


def test_pooling_start_is_the_largest_root():
    # Prepare
    costs = np.array(SCENARIOS["scenario1"]["c"])
    f, _ = reservation_utilities(costs, SGB, V)

    # Execute
    m0 = pooling_start(costs, f, 10, SGB, V)
    beyond = np.geomspace(m0 * 1.001, (V + 1) / costs[0], 1000)

    # Assert: a root, with negative surplus to its right
    assert m0 is not None
    assert V * SGB.value(10 * m0) - costs[0] * m0 - f[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(V * SGB.value(10 * beyond) - costs[0] * beyond - f[0] < 0)


def test_binding_chain_by_hand():
    # Prepare / Execute: t₁ = 2·10 + 1 = 21, t₂ = 21 + 1·(20 − 10) = 31
    t = binding_chain([10.0, 20.0], [2.0, 1.0], [1.0, 0.0])

    # Assert
    np.testing.assert_allclose(t, [21.0, 31.0])


# ------------------------------------------------------------ derivatives of FM


def _fm_inputs(seed):
    rng = np.random.default_rng(seed)
    outcomes = enumerate_outcomes(6, 3)
    p_n = outcome_probabilities(outcomes, rng.dirichlet(np.ones(3)))
    weights = conditional_weights(outcomes, p_n)
    m = rng.uniform(80.0, 400.0, size=3)  # every n·m > x₀, away from the kink
    return outcomes, p_n, weights, m, rng


def test_fm_gradients_and_hessians_match_finite_differences(seed):
    # Prepare
    outcomes, p_n, weights, m, rng = _fm_inputs(seed)
    lam = rng.uniform(0.1, 2.0, size=3)
    eps = 1e-3 * m

    def fd(func, x):
        cols = []
        for j in range(x.size):
            e = np.zeros_like(x)
            e[j] = eps[j]
            cols.append((func(x + e) - func(x - e)) / (2 * eps[j]))
        return np.stack(cols, axis=-1)

    # Execute
    phi = lambda mm: expected_accuracy(mm, outcomes, p_n, SGB)  # noqa: E731
    grad = lambda mm: expected_accuracy_gradient(mm, outcomes, p_n, SGB)  # noqa: E731
    tbar = lambda mm: max_reward_values(mm, outcomes, weights, SGB, V)  # noqa: E731
    jac = lambda mm: max_reward_values_jacobian(mm, outcomes, weights, SGB, V)  # noqa: E731
    hess_l = max_reward_values_hessian(m, lam, outcomes, weights, SGB, V)
    fd_hess_l = fd(lambda mm: lam @ jac(mm), m)

    # Assert: central differences with step 1e-3·m are accurate to ~1e-6 relative
    np.testing.assert_allclose(grad(m), fd(phi, m), rtol=1e-5)
    np.testing.assert_allclose(
        expected_accuracy_hessian(m, outcomes, p_n, SGB), fd(grad, m), rtol=1e-5
    )
    np.testing.assert_allclose(jac(m), fd(tbar, m), rtol=1e-5)
    np.testing.assert_allclose(hess_l, fd_hess_l, rtol=1e-5)


def test_fm_vectorised_terms_match_python_loops(seed):
    # Prepare
    outcomes, p_n, weights, m, rng = _fm_inputs(seed)
    lam = rng.uniform(0.1, 2.0, size=3)

    # Execute: the obvious sums over outcomes
    phi = sum(p * SGB.value(n @ m) for n, p in zip(outcomes, p_n, strict=True))
    hess = sum(
        p * SGB.second_derivative(n @ m) * np.outer(n, n)
        for n, p in zip(outcomes, p_n, strict=True)
    )
    tbar = [
        sum(w * V * SGB.value(n @ m) for n, w in zip(outcomes, weights[i], strict=True))
        for i in range(3)
    ]
    hess_l = sum(
        sum(lam[i] * weights[i, r] for i in range(3))
        * V
        * SGB.second_derivative(n @ m)
        * np.outer(n, n)
        for r, n in enumerate(outcomes)
    )

    # Assert: same sums in another order, rounding only
    assert expected_accuracy(m, outcomes, p_n, SGB) == pytest.approx(
        float(phi), rel=1e-12
    )
    np.testing.assert_allclose(
        expected_accuracy_hessian(m, outcomes, p_n, SGB), hess, rtol=1e-10
    )
    np.testing.assert_allclose(
        max_reward_values(m, outcomes, weights, SGB, V), tbar, rtol=1e-12
    )
    np.testing.assert_allclose(
        max_reward_values_hessian(m, lam, outcomes, weights, SGB, V), hess_l, rtol=1e-10
    )


# ------------------------------------------------------------ the tables of §5


def _slow_expectations(res: ContractResult) -> np.ndarray:
    """E_{W_i}[v(r_i)] by explicit loops, with W_i rebuilt from scipy's pmf."""
    k = res.n_types
    pmf = [multinomial.pmf(n, res.n_participants, res.probs) for n in res.outcomes]
    out = np.zeros(k)
    for i in range(k):
        mass = 0.0
        total = 0.0
        for r, n in enumerate(res.outcomes):
            if n[i] >= 1:
                mass += pmf[r]
                total += pmf[r] * V * res.rewards[i, r]
        out[i] = total / mass
    return out


def _assert_contract_holds(res: ContractResult) -> None:
    """Feasibility for every outcome and IR/IC for every type, recomputed slowly."""
    tol = 1e-6 * V  # docs/contract.md §3: tolerance 1e-6·V in value units
    joint = res.accuracy.value(res.outcomes @ res.m)
    for i in range(res.n_types):
        present = res.outcomes[:, i] >= 1
        assert np.all(res.rewards[i, present] <= joint[present])  # exact: ratio ≤ 1
        assert np.all(res.rewards[i] >= 0.0)
        assert np.all(res.rewards[i, ~present] == 0.0)
    expect = _slow_expectations(res)
    np.testing.assert_allclose(expect, res.t, atol=tol)
    own = expect - res.costs * res.m
    assert np.all(own >= res.f - tol)
    for i in range(res.n_types):
        for j in range(res.n_types):
            assert own[i] >= expect[j] - res.costs[i] * res.m[j] - tol
    assert res.checks.all_passed
    assert res.solver.success


def _assert_matches_table(res: ContractResult, row: dict) -> None:
    np.testing.assert_allclose(res.m_res, row["m_res"], rtol=RTOL_M, atol=1e-9)
    np.testing.assert_allclose(res.f, row["f"], atol=ATOL_VALUE)
    np.testing.assert_allclose(res.m, row["m"], rtol=RTOL_M)
    np.testing.assert_allclose(res.t, row["t"], atol=ATOL_T)
    np.testing.assert_allclose(res.u, row["u"], atol=ATOL_VALUE)
    np.testing.assert_allclose(res.t_bar, row["t_bar"], atol=ATOL_VALUE)
    assert res.expected_value == pytest.approx(row["E"], abs=ATOL_VALUE)


@pytest.mark.parametrize("name", ["scenario1", "scenario2"])
def test_multitype_table(name):
    # Prepare
    row = SCENARIOS[name]

    # Execute
    res = solve_contract(row["c"], [0.2] * 5, 10)

    # Assert
    _assert_matches_table(res, row)
    _assert_contract_holds(res)


@pytest.mark.slow
def test_multitype_table_scenario3():
    # Prepare
    row = SCENARIOS["scenario3"]

    # Execute
    res = solve_contract(row["c"], [0.2] * 5, 10)

    # Assert: IR binds for types 1, 3 and 5 (docs/contract.md §5)
    _assert_matches_table(res, row)
    _assert_contract_holds(res)
    np.testing.assert_allclose(res.rent[[0, 2, 4]], 0.0, atol=ATOL_VALUE)


@pytest.mark.parametrize("name", ["scenario1", "scenario2", "scenario3"])
def test_full_constraint_set_reaches_the_same_optimum(name):
    # Prepare: the simplified set is a restriction of the full one; at these optima it
    # loses nothing, so the all-pairs-IC problem must reproduce the table too.
    row = SCENARIOS[name]

    # Execute
    res = solve_contract(
        row["c"], [0.2] * 5, 10, constraints="full", complete_info=False
    )

    # Assert
    _assert_matches_table(res, row)
    _assert_contract_holds(res)


@pytest.mark.parametrize("row", TWO_TYPE, ids=["N10", "N50"])
def test_two_type_table(row):
    # Execute
    res = solve_contract([0.02, 0.01], row["p"], row["N"])

    # Assert: m_res, v(a(m_res)) and f of the two-type paragraph, then the table row
    np.testing.assert_allclose(res.m_res, [715.64, 1148.39], rtol=RTOL_M)
    np.testing.assert_allclose(
        V * SGB.value(res.m_res), [69.569, 75.645], atol=ATOL_VALUE
    )
    np.testing.assert_allclose(res.f, [55.256, 64.161], atol=ATOL_VALUE)
    np.testing.assert_allclose(res.m, row["m"], rtol=RTOL_M)
    np.testing.assert_allclose(res.t, row["t"], atol=ATOL_T)
    np.testing.assert_allclose(res.u, row["u"], atol=ATOL_VALUE)
    assert res.expected_value == pytest.approx(row["E"], abs=ATOL_VALUE)
    np.testing.assert_allclose(res.complete_info.m, row["m_ci"], rtol=RTOL_M)
    assert res.complete_info.expected_value == pytest.approx(
        row["E_ci"], abs=ATOL_VALUE
    )
    assert res.information_cost == pytest.approx(row["info_cost"], abs=ATOL_VALUE)
    np.testing.assert_allclose(res.rent, row["rent"], atol=ATOL_VALUE)
    _assert_contract_holds(res)


def test_powerlaw_contract_holds_and_constraint_sets_agree():
    # Prepare
    args = ([0.2, 0.1, 0.05], [0.3, 0.3, 0.4], 8)

    # Execute
    simp = solve_contract(*args, accuracy=POWER, complete_info=False)
    full = solve_contract(
        *args, accuracy=POWER, constraints="full", complete_info=False
    )

    # Assert: both optimal; the optimum is unique in m (strictly concave Φ)
    _assert_contract_holds(simp)
    _assert_contract_holds(full)
    np.testing.assert_allclose(full.m, simp.m, rtol=1e-6)  # solver precision, flat max
    assert full.expected_value == pytest.approx(simp.expected_value, abs=1e-8)


# ------------------------------------------------------------ recovery and benchmark


def test_recovered_rewards_have_the_promised_first_moments(seed):
    # Prepare
    outcomes, _, weights, m, rng = _fm_inputs(seed)
    t_bar = max_reward_values(m, outcomes, weights, SGB, V)
    t = t_bar * rng.uniform(0.3, 1.0, size=3)

    # Execute
    r = recover_rewards(outcomes, m, t, t_bar, SGB)

    # Assert: E_{W_i}[v(r_i)] = t_i (rounding only) and r never beats the joint model
    np.testing.assert_allclose(V * np.sum(weights * r, axis=1), t, rtol=1e-12)
    assert np.all(r <= SGB.value(outcomes @ m)[None, :])


def _slow_joint_size(n, costs, f, m_res, model):
    a_coef = float(np.sum(n / costs))
    b_coef = float(np.sum(n * f / costs))

    def h(x):
        return V * model.value(x) * a_coef - b_coef - x

    grid = np.geomspace(model.zero_crossing, V * model.supremum * a_coef + 10.0, 20_000)
    vals = h(grid)
    idx = np.flatnonzero((vals[:-1] >= 0) & (vals[1:] < 0))
    if idx.size == 0:
        return float(n @ m_res)
    return brentq(lambda x: float(h(x)), grid[idx[-1]], grid[idx[-1] + 1], xtol=1e-12)


@pytest.mark.parametrize("model", [SGB, POWER])
def test_complete_info_joint_sizes_match_scalar_root_finding(model, seed):
    # Prepare: random costs, some types too dear to train alone
    rng = np.random.default_rng(seed)
    costs = np.sort(rng.uniform(0.005, 0.6, size=3))[::-1]
    f, m_res = reservation_utilities(costs, model, V)
    outcomes = enumerate_outcomes(4, 3)

    # Execute
    fast = joint_sizes_complete_info(outcomes, costs, f, m_res, model, V)
    slow = [_slow_joint_size(n, costs, f, m_res, model) for n in outcomes]

    # Assert: both solve to ~1e-12; 1e-9 relative leaves room for the grid refinement
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    # fixed point: X* = Σ_j n_j (v(a(X*)) − f_j)/c_j wherever X* > 0
    pos = fast > 0
    rhs = (outcomes[pos] * ((V * model.value(fast[pos]))[:, None] - f) / costs).sum(1)
    np.testing.assert_allclose(rhs, fast[pos], rtol=1e-9)


# ------------------------------------------------------------ starts and outputs


def test_start_at_zero_is_refused():
    # Execute / Assert: m = 0 is a spurious stationary point (docs/contract.md §2)
    with pytest.raises(ValueError, match="m_start"):
        solve_contract([0.2, 0.1], [0.5, 0.5], 10, m_start=[0.0, 0.0])


def test_no_pooling_contract_warns_and_uses_fallback_start(caplog):
    # Prepare: c_1 = 5 makes v(a(m)) < 5m for all m > 0 with one participant
    caplog.set_level(logging.WARNING, logger="rewards.contract.solve")

    # Execute
    res = solve_contract([5.0, 4.0], [0.5, 0.5], 1, complete_info=False)

    # Assert: the fallback start 2x₀/N, a warning, and the trivial contract m ≈ 0
    assert not res.pooling_found
    np.testing.assert_allclose(res.m_start, 2 * SGB.zero_crossing)
    assert "No pooling contract" in caplog.text
    # m ends below x₀, where a ≡ 0; 1e-9 allows a solver that stops just above it
    assert res.expected_value == pytest.approx(0.0, abs=1e-9)
    assert res.checks.all_passed


def test_same_inputs_same_result():
    # Execute
    a = solve_contract([0.2, 0.1], [0.4, 0.6], 6)
    b = solve_contract([0.2, 0.1], [0.4, 0.6], 6)

    # Assert: deterministic (nothing random; timing fields aside)
    da, db = a.to_dict(), b.to_dict()
    da["solver"].pop("time_s")
    db["solver"].pop("time_s")
    assert da == db


def test_to_dict_is_json_ready_and_complete():
    # Prepare
    res = solve_contract([0.2, 0.1], [0.4, 0.6], 6)

    # Execute
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))

    # Assert: docs/contract.md §4 fields
    assert d["n_outcomes"] == 7
    type_keys = ["cost", "prob", "m", "t", "t_bar", "f", "m_res", "u", "rent"]
    type_keys += ["m_ci", "u_ci"]
    check_keys = ["feasible", "ir", "ic", "first_moment", "monotone", "worst_slack"]
    assert set(d["types"][0]) >= set(type_keys)
    assert set(d["solver"]) >= {"success", "iterations", "constr_violation", "time_s"}
    assert set(d["checks"]) >= set(check_keys)
    assert set(d["complete_info"]) == {"expected_value", "t", "m"}
    assert d["expected_accuracy"] == pytest.approx(d["expected_value"] / V, rel=1e-15)
    assert d["information_cost"] == pytest.approx(
        d["complete_info"]["expected_value"] - d["expected_value"], abs=1e-12
    )
    assert d["types"][1]["m"] == res.m[1]
    assert d["pooling_start"]["found"] is True
    without = solve_contract([0.2, 0.1], [0.4, 0.6], 6, complete_info=False)
    assert without.to_dict()["complete_info"] is None


def test_plots_are_drawn():
    # Prepare
    res = solve_contract(
        SCENARIOS["scenario1"]["c"], [0.2] * 5, 10, complete_info=False
    )

    # Execute
    figures = [plot(res) for plot in (plot_menu, plot_rewards, plot_contributions)]

    # Assert: one panel for the menu and contributions, one row per type for rewards
    assert [len(f.axes) for f in figures] == [1, res.n_types, 1]
    assert all(ax.has_data() for f in figures for ax in f.axes)


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"costs": [0.1, 0.2]}, "costs"),  # increasing
        ({"costs": [0.2, 0.2]}, "costs"),  # not strict
        ({"costs": [0.2, -0.1]}, "costs"),  # negative
        ({"costs": [0.2]}, "costs"),  # K < 2
        ({"costs": [0.2, float("nan")]}, "costs"),
        ({"probs": [0.5, 0.6]}, "probs"),  # sum 1.1
        ({"probs": [1.2, -0.2]}, "probs"),  # negative
        ({"probs": [1.0]}, "probs"),  # wrong length
        ({"n_participants": 0}, "n_participants"),
        ({"n_participants": -3}, "n_participants"),
        ({"value_scale": 0.0}, "value_scale"),
        ({"objective_scale": -1.0}, "objective_scale"),
        ({"gtol": 0.0}, "gtol"),
        ({"maxiter": 0}, "maxiter"),
        ({"constraints": "relaxed"}, "constraints"),
        ({"max_outcomes": 5}, "max_outcomes"),  # N = 10, K = 2 gives 11 outcomes
        ({"m_start": [-1.0, 5.0]}, "m_start"),
        ({"m_start": [1.0, 1.0]}, "m_start"),  # n·m ≤ x₀ everywhere
    ],
)
def test_bad_input_is_refused(kwargs, match):
    # Prepare
    args = {"costs": [0.2, 0.1], "probs": [0.5, 0.5], "n_participants": 10, **kwargs}
    costs, probs, n = args.pop("costs"), args.pop("probs"), args.pop("n_participants")

    # Execute / Assert
    with pytest.raises(ValueError, match=match):
        solve_contract(costs, probs, n, **args)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: SGBAccuracy(k=0.0), "k"),
        (lambda: SGBAccuracy(a_opt=-1.0), "a_opt"),
        (lambda: SGBAccuracy(a_opt=5.0, k=1000.0), "a_opt"),  # positive at its minimum
        (lambda: PowerLawAccuracy(a_max=1.0, kappa=-1.0, exponent=0.5), "kappa"),
        (lambda: PowerLawAccuracy(a_max=1.0, kappa=1.0, exponent=0.0), "exponent"),
        (lambda: make_accuracy("logistic"), "kind"),
        (lambda: make_accuracy("powerlaw", a_max=1.0), "kappa"),
        (lambda: enumerate_outcomes(0, 3), "n_participants"),
    ],
)
def test_bad_accuracy_and_primitive_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_participants": 2.5}, "n_participants"),
        ({"n_participants": True}, "n_participants"),
        ({"accuracy": "sgb"}, "accuracy"),
        ({"complete_info": 1}, "complete_info"),
    ],
)
def test_wrong_types_are_refused(kwargs, match):
    # Prepare
    n = kwargs.pop("n_participants", 4)

    # Execute / Assert
    with pytest.raises(TypeError, match=match):
        solve_contract([0.2, 0.1], [0.5, 0.5], n, **kwargs)
