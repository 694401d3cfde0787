"""Tests of the cosine game, its Shapley values and the sv_check (docs/cgsv.md §8)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rewards.cgsv.cosine_game import (
    cosine_game_values,
    exact_shapley_cosine,
    mc_permutations,
    mc_shapley_cosine,
    sv_check,
    sv_check_setting,
)

# --- the cosine game ----------------------------------------------------------


def _brute_force_shapley(u: np.ndarray) -> np.ndarray:
    n = u.shape[0]
    grand = u.sum(0)

    def v(members):
        if not members:
            return 0.0
        s = u[list(members)].sum(0)
        return float(s @ grand / (np.linalg.norm(s) * np.linalg.norm(grand)))

    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for c in itertools.combinations(others, size):
                phi[i] += w * (v((*c, i)) - v(c))
    return phi


def test_cosine_game_values_match_direct(seed):
    # Prepare
    u = np.random.default_rng(seed).standard_normal((5, 20))
    grand = u.sum(0)
    # Execute
    table = cosine_game_values(u)
    # Assert: incremental Gram sums vs direct cosines, float64 to 1e-12
    for mask in range(1, 32):
        s = u[[i for i in range(5) if mask >> i & 1]].sum(0)
        direct = s @ grand / (np.linalg.norm(s) * np.linalg.norm(grand))
        assert table[mask] == pytest.approx(direct, abs=1e-12)
    assert table[0] == 0.0


def test_exact_shapley_cosine_two_parties_by_hand():
    # Prepare: u_N = (2, 1); v({0}) = 2/√5, v({1}) = 1/√5, v(N) = 1
    u = np.array([[2.0, 0.0], [0.0, 1.0]])
    s5 = math.sqrt(5.0)
    # Execute
    phi = exact_shapley_cosine(u)
    # Assert: φ_0 = (2/√5 + 1 − 1/√5)/2
    np.testing.assert_allclose(phi, [(1 + 1 / s5) / 2, (1 - 1 / s5) / 2], rtol=1e-14)


def test_exact_shapley_cosine_efficiency_and_brute_force(seed):
    # Prepare
    u = np.random.default_rng(seed).standard_normal((4, 10))
    # Execute
    phi = exact_shapley_cosine(u)
    # Assert: Σφ = v(N) = 1 (float64, 1e-12); equals the subset formula
    assert phi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(phi, _brute_force_shapley(u), rtol=0, atol=1e-12)


def test_exact_shapley_cosine_symmetric_parties_equal():
    # Prepare: parties 0 and 1 hold the same vector
    u = np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 3.0]])
    # Execute
    phi = exact_shapley_cosine(u)
    # Assert
    assert phi[0] == pytest.approx(phi[1], abs=1e-14)


def test_mc_all_permutations_at_n5_equals_exact(seed):
    # Prepare: 5! = 120 ≤ K = 150, so every order is used once
    u = np.random.default_rng(seed).standard_normal((5, 1000))
    # Execute
    phi_mc = mc_shapley_cosine(u, 150, seed=seed)
    phi = exact_shapley_cosine(u)
    # Assert: docs/cgsv.md §8 band, L1 < 1e-9
    assert np.abs(phi_mc - phi).sum() < 1e-9


def test_mc_sampled_permutations_seed_pair(seed, seed_alt):
    # Prepare: 6! = 720 > K = 20
    u = np.random.default_rng(0).standard_normal((6, 30))
    # Execute
    a = mc_shapley_cosine(u, 20, seed=seed)
    b = mc_shapley_cosine(u, 20, seed=seed)
    c = mc_shapley_cosine(u, 20, seed=seed_alt)
    # Assert: each order's marginals sum to v(N) = 1, so Σφ̄ = 1 (float64, 1e-12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == pytest.approx(1.0, abs=1e-12)


def test_mc_permutations_default():
    # Prepare / Execute / Assert: ⌈ln 20 / 0.02⌉ = ⌈149.79⌉
    assert mc_permutations() == 150


def test_sv_check_setting_small(seed):
    # Prepare / Execute
    row = sv_check_setting(5, 64, trials=3, seed=seed)
    again = sv_check_setting(5, 64, trials=3, seed=seed)
    # Assert: N = 5 Monte Carlo is exact; ψ is close but not equal to φ
    assert row.mc_l1_mean < 1e-9
    assert 0 < row.psi_l1_mean < 0.2
    assert row.psi_pearson_mean > 0.5
    keep = [k for k in row.to_dict() if not k.endswith("time_s")]
    assert {k: row.to_dict()[k] for k in keep} == {k: again.to_dict()[k] for k in keep}


def test_sv_check_rows_follow_settings(seed):
    # Prepare / Execute
    rows = sv_check([(5, 8), (6, 8)], trials=1, n_permutations=10, seed=seed)
    # Assert
    assert [(r.n_parties, r.dim) for r in rows] == [(5, 8), (6, 8)]


# --- bad inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: exact_shapley_cosine(np.ones((1, 3))), "`U`"),
        (lambda: exact_shapley_cosine(np.ones((21, 3))), "`U`"),
        (lambda: mc_shapley_cosine(np.ones((3, 3)), 0, seed=0), "`K`"),
        (lambda: mc_permutations(eps=0.0), "eps"),
        (lambda: mc_permutations(delta=1.0), "delta"),
        (lambda: sv_check_setting(5, 0, trials=1, seed=0), "dim"),
        (lambda: sv_check_setting(5, 10, trials=0, seed=0), "trials"),
    ],
)
def test_bad_inputs(call, match):
    # Prepare / Execute / Assert
    with pytest.raises(ValueError, match=match):
        call()


def test_zero_grand_vector_fails_efficiency():
    # Prepare: u_N = 0, so v(N) = 0 and Σφ cannot be 1
    u = np.array([[1.0, 0.0], [-1.0, 0.0]])
    # Execute / Assert
    with pytest.raises(RuntimeError, match="efficiency"):
        exact_shapley_cosine(u)


def test_mc_sampled_matches_slow_loop(seed):
    # Prepare: 7! > K = 40, orders drawn from default_rng(seed) one at a time
    u = np.random.default_rng(seed).standard_normal((7, 50))
    grand = u.sum(0)
    rng = np.random.default_rng(seed)
    slow = np.zeros(7)
    for _ in range(40):
        order = rng.permutation(7)
        prev, s = 0.0, np.zeros(50)
        for i in order:
            s = s + u[i]
            v = s @ grand / (np.linalg.norm(s) * np.linalg.norm(grand))
            slow[i] += v - prev
            prev = v
    # Execute
    fast = mc_shapley_cosine(u, 40, seed=seed)
    # Assert: float64 sums in another order, 1e-12
    np.testing.assert_allclose(fast, slow / 40, rtol=0, atol=1e-12)


def test_sv_check_cosine_distance_small(seed):
    # Prepare / Execute
    row = sv_check_setting(6, 200, trials=2, n_permutations=20, seed=seed)
    # Assert: normalised ψ and φ nearly parallel; distances in [0, 2]
    assert 0 <= row.psi_cos_dist_mean < 0.01
    assert 0 <= row.mc_cos_dist_mean <= 2
