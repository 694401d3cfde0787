"""Tests of the Nash bargaining solver (docs/nash.md §2, tests 1–6)."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.cgsv.gradient import aggregation_weights
from rewards.nash.bargaining import nbs, nbs_objective, objective_change


def _gains(g: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """g_kᵀ Gᵀα for every player k."""
    return g @ (g.T @ alpha)


# --- known answers ------------------------------------------------------------


@pytest.mark.parametrize("cos_target", [-0.9, -0.3, 0.0, 0.5, 0.99])
def test_k2_closed_form(seed, cos_target):
    # Prepare: two vectors at a chosen angle with different norms
    rng = np.random.default_rng(seed)
    u, v = np.linalg.qr(rng.normal(size=(64, 2)))[0].T
    g1 = 3.0 * u
    g2 = 0.7 * (cos_target * u + np.sqrt(1 - cos_target**2) * v)
    g = np.stack([g1, g2])
    cos = g1 @ g2 / (np.linalg.norm(g1) * np.linalg.norm(g2))
    # Execute
    r = nbs(g)
    # Assert: α_k = 1/(‖g_k‖·√(1 + cos θ)) (docs/nash.md §2 test 1); rtol 1e-9 (spec)
    expected = 1.0 / (np.linalg.norm(g, axis=1) * np.sqrt(1.0 + cos))
    assert r.success
    assert r.reason == "converged"
    np.testing.assert_allclose(r.alpha, expected, rtol=1e-9)
    # d ∝ ĝ_1 + ĝ_2
    d = g.T @ r.alpha
    bisector = g1 / np.linalg.norm(g1) + g2 / np.linalg.norm(g2)
    np.testing.assert_allclose(
        d / np.linalg.norm(d), bisector / np.linalg.norm(bisector)
    )


def test_orthogonal_rows_give_inverse_norms():
    # Prepare: M = diag(‖g_k‖²), so α_k = 1/‖g_k‖
    g = np.diag([1.0, 2.0, 4.0])
    # Execute
    r = nbs(g)
    # Assert: rtol 1e-12, a diagonal system converges to machine precision
    np.testing.assert_allclose(r.alpha, [1.0, 0.5, 0.25], rtol=1e-12)


def test_collinear_rows_are_fine(seed):
    # Prepare: [g, 2g], linearly dependent (docs/nash.md §2 test 4)
    g = np.random.default_rng(seed).normal(size=32)
    n = np.linalg.norm(g)
    # Execute
    r = nbs(np.stack([g, 2 * g]))
    # Assert: α = (1/(√2‖g‖), 1/(√8‖g‖)); rtol 1e-9 as in test 1
    assert r.success
    np.testing.assert_allclose(
        r.alpha, [1 / (np.sqrt(2) * n), 1 / (np.sqrt(8) * n)], rtol=1e-9
    )


def test_matches_slow_generic_minimiser(seed):
    # Prepare: minimise f(α) by scipy's BFGS over log α, an independent route
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(seed)
    g = rng.normal(0.3, 1.0, size=(4, 20))
    m = g @ g.T

    def fun(z):
        a = np.exp(z)
        return nbs_objective(a, m), (m @ a - 1.0 / a) * a

    slow = optimize.minimize(fun, np.zeros(4), jac=True, method="BFGS", tol=1e-12)
    # Execute
    r = nbs(g)
    # Assert: rtol 1e-6, BFGS's own accuracy on this problem
    np.testing.assert_allclose(r.alpha, np.exp(slow.x), rtol=1e-6)


# --- random feasible problems ------------------------------------------------


@pytest.mark.parametrize("k", [3, 5, 10, 20])
def test_random_feasible_problems(seed, k):
    # Prepare: G ~ N(0.5, 1), D = 512 (docs/nash.md §2 test 2)
    for rep in range(5):
        g = np.random.default_rng([seed, k, rep]).normal(0.5, 1.0, size=(k, 512))
        m = g @ g.T
        # Execute
        r = nbs(g)
        # Assert: scale-free residual, absolute residual, every player gains
        assert r.success, r
        assert r.residual < 1e-9
        assert np.max(np.abs(r.alpha * (m @ r.alpha) - 1.0)) < 1e-9
        assert np.linalg.norm(m @ r.alpha - 1.0 / r.alpha) < 1e-8
        assert np.min(_gains(g, r.alpha)) > 0
        np.testing.assert_allclose(_gains(g, r.alpha), 1.0 / r.alpha, rtol=1e-9)
        assert 1 <= r.iterations <= 25


def test_scale_equivariance_and_permutation(seed):
    # Prepare (docs/nash.md §2 test 5)
    rng = np.random.default_rng(seed)
    g = rng.normal(0.5, 1.0, size=(6, 40))
    perm = rng.permutation(6)
    # Execute
    base = nbs(g)
    scaled = nbs(1e3 * g)
    permuted = nbs(g[perm])
    # Assert: iterates on M̃ are identical, so 1e-12 leaves room only for rounding
    np.testing.assert_allclose(scaled.alpha, base.alpha / 1e3, rtol=1e-12)
    np.testing.assert_allclose(permuted.alpha, base.alpha[perm], rtol=1e-12)


# --- failure ------------------------------------------------------------------


@pytest.mark.parametrize("with_h", [False, True])
def test_conflicting_gradients_fail(seed, with_h):
    # Prepare: 0 ∈ conv{g, −g(, h)} (docs/nash.md §2 test 3)
    rng = np.random.default_rng(seed)
    g, h = rng.normal(size=(2, 50))
    rows = [g, -g, h] if with_h else [g, -g]
    # Execute
    r = nbs(np.stack(rows))
    # Assert
    assert not r.success
    assert r.alpha is None
    assert r.reason.startswith("unbounded")
    assert r.iterations <= 40


def test_conflict_in_convex_hull_without_opposite_pair():
    # Prepare: three directions 120° apart sum to 0 (0 ∈ conv, no pair opposite)
    ang = np.deg2rad([90.0, 210.0, 330.0])
    g = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    # Execute
    r = nbs(g)
    # Assert
    assert not r.success
    assert "0 in convex hull" in r.reason


def test_zero_matrix_is_degenerate():
    # Prepare / Execute
    r = nbs(np.zeros((3, 4)))
    # Assert
    assert not r.success
    assert r.reason == "degenerate"
    assert r.alpha is None


@pytest.mark.parametrize(
    ("g", "match"),
    [
        (np.zeros(3), "`g` must be"),
        (np.zeros((0, 3)), "`g` must be"),
        (np.zeros((2, 0)), "`g` must be"),
    ],
)
def test_bad_input(g, match):
    with pytest.raises(ValueError, match=match):
        nbs(g)


def test_ill_conditioned_float32_draws():
    # Prepare: rows g, −0.9g + 0.1ξ, h, −0.95h + 0.05ξ2 (docs/nash.md §2 test 6)
    rng = np.random.default_rng(6)
    iterations = []
    for _ in range(2000):
        g, h, xi, xi2 = rng.standard_normal((4, 128)).astype(np.float32)
        rows = np.stack([g, -0.9 * g + 0.1 * xi, h, -0.95 * h + 0.05 * xi2])
        # Execute
        r = nbs(rows)
        # Assert
        assert r.success, r
        assert np.min(_gains(rows.astype(np.float64), r.alpha)) > 0
        iterations.append(r.iterations)
    assert max(iterations) <= 30


def test_objective_change_matches_difference(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(3, 5))
    m = g @ g.T
    a = rng.uniform(0.5, 2.0, 3)
    d = rng.uniform(-0.2, 0.2, 3)
    # Execute
    got = objective_change(a, d, m, m @ a)
    # Assert: rtol 1e-10, the plain difference loses a few digits to cancellation
    expected = nbs_objective(a + d, m) - nbs_objective(a, m)
    assert got == pytest.approx(expected, rel=1e-10)


# --- use by the fl aggregator (docs/nash.md §6) -----------------------------------


def test_fl_aggregator_uses_nbs(seed):
    # Prepare
    u = np.random.default_rng(seed).normal(0.5, 1.0, size=(3, 30))
    # Execute
    w, failed = aggregation_weights("nash", [1, 1, 1], np.zeros(3), u, 0)
    # Assert: w = α/Σα and every party gains from the server step
    alpha = nbs(u).alpha
    assert not failed
    np.testing.assert_allclose(w, alpha / alpha.sum(), rtol=1e-12)
    assert np.min(u @ (u.T @ w)) > 0


def test_fl_aggregator_falls_back_on_conflict(seed):
    # Prepare: parties 0 and 1 upload opposite vectors
    g = np.random.default_rng(seed).normal(size=10)
    u = np.stack([g, -g, g])
    # Execute
    _w, failed = aggregation_weights("nash", [1, 1, 1], np.full(3, 1 / 3), u, 1)
    # Assert
    assert failed
