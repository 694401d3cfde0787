"""Tests for rewards/cgm/allocation.py (docs/cgm.md §6)."""

from __future__ import annotations

import functools
import json
import logging
import math

import numpy as np
import pytest

from rewards.cgm.allocation import (
    InfeasibleRewardError,
    fixed_rho,
    reward_values,
    rho_interval,
    solve_rho,
)

# HiGHS works to primal/dual feasibility tolerances of 1e-7 (its defaults).
LP_TOL = 1e-7


def _random_instance(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    phi = rng.uniform(0.05, 1.0, n)
    alpha = phi / phi.max()
    v_max = rng.uniform(0.2, 1.0, n)
    v_single = v_max * rng.uniform(0.05, 0.6, n)
    v_stable = v_max * rng.uniform(0.05, 0.9, n)
    return alpha, v_single, v_stable, v_max


# ----------------------------------------------------------------- known answers


def test_reward_values_known_answer() -> None:
    # Prepare
    alpha = [1.0, 0.25, 0.04]
    # Execute
    r = reward_values(alpha, 0.5, 3.0)
    # Assert: 3·(1, 0.5, 0.2); exact up to one rounding of x**0.5
    np.testing.assert_allclose(r, [3.0, 1.5, 0.6], rtol=1e-15)


def test_solve_rho_two_parties_known_answer() -> None:
    # Prepare: ρ ≤ log(1/0.5)/log(1/0.25) = 1/2 from party 1's lower bound vs
    # party 0's v_max; then u = min(log 1, log 0.5 − ½·log 0.25) = 0.
    alpha, v_single, v_stable, v_max = [1.0, 0.25], [0.2, 0.1], [0.3, 0.5], [1.0, 0.5]
    # Execute
    res = solve_rho(alpha, v_single, v_stable, v_max, condition="stable")
    # Assert
    assert res.rho == pytest.approx(0.5, abs=LP_TOL)
    assert res.v_star == pytest.approx(1.0, rel=LP_TOL)
    np.testing.assert_allclose(res.reward_values, [1.0, 0.5], rtol=LP_TOL)
    assert res.rho_interval == pytest.approx((0.0, 0.5), abs=1e-12)  # exact logs
    assert res.violations == ()
    assert res.lower_bound == (0.3, 0.5)
    assert res.condition == "stable"


def test_solve_rho_individual_uses_v_single() -> None:
    # Prepare: lower = v_single = (0.2, 0.1) gives ρ_hi = log(1/0.1)/log 4 > 1 → ρ = 1,
    # v* = min(1, 0.5/0.25) = 1.
    alpha, v_single, v_stable, v_max = [1.0, 0.25], [0.2, 0.1], [0.3, 0.5], [1.0, 0.5]
    # Execute
    res = solve_rho(alpha, v_single, v_stable, v_max, condition="individual")
    # Assert
    assert res.rho == pytest.approx(1.0, abs=LP_TOL)
    assert res.v_star == pytest.approx(1.0, rel=LP_TOL)
    assert res.lower_bound == (0.2, 0.1)


def test_equal_alpha_gives_rho_one_and_equal_rewards() -> None:
    # Prepare: all α = 1, so ρ only enters the objective (+0.001ρ) → ρ = 1
    alpha = [1.0, 1.0, 1.0]
    v_max = [0.5, 0.4, 0.6]
    lower = [0.1, 0.2, 0.3]
    # Execute
    res = solve_rho(alpha, lower, lower, v_max)
    # Assert: v* = min v_max
    assert res.rho == pytest.approx(1.0, abs=LP_TOL)
    np.testing.assert_allclose(res.reward_values, [0.4, 0.4, 0.4], rtol=LP_TOL)


def test_lower_bound_le_zero_is_floored() -> None:
    # Prepare: a negative lower bound has no log; it is replaced by 1e-7
    alpha, lower, v_max = [1.0, 0.5], [-0.2, 0.0], [0.8, 0.6]
    # Execute
    res = solve_rho(alpha, lower, lower, v_max)
    # Assert: bounds never bind → ρ = 1, v* = min(0.8, 0.6/0.5) = 0.8
    assert res.rho == pytest.approx(1.0, abs=LP_TOL)
    assert res.v_star == pytest.approx(0.8, rel=LP_TOL)
    assert all(math.isfinite(r) for r in res.reward_values)
    assert res.lower_bound == (-0.2, 0.0)


# ------------------------------------------------------------ LP vs closed form


@pytest.mark.parametrize("n", [2, 3, 5])
def test_lp_satisfies_constraints_and_beats_grid(n: int, seed: int) -> None:
    # Prepare
    rng = np.random.default_rng([seed, n])
    for _ in range(40):
        alpha, v_single, v_stable, v_max = _random_instance(rng, n)
        if rho_interval(alpha, v_stable, v_max).feasible:
            break
    else:
        raise RuntimeError("no feasible instance drawn")
    la, ll, lv = np.log(alpha), np.log(v_stable), np.log(v_max)
    # Execute
    res = solve_rho(alpha, v_single, v_stable, v_max)
    # Assert: every constraint holds (to the LP tolerance)
    r = np.asarray(res.reward_values)
    u = math.log(res.v_star)
    assert 0.0 <= res.rho <= 1.0
    assert np.all(np.log(r) <= lv + LP_TOL)
    assert np.all(np.log(r) >= ll - LP_TOL)
    # Assert: optimal vs a brute-force grid over ρ (u at its largest feasible value)
    grid = np.linspace(0.0, 1.0, 20001)
    u_hi = np.min(lv[None, :] - grid[:, None] * la[None, :], axis=1)
    u_lo = np.max(ll[None, :] - grid[:, None] * la[None, :], axis=1)
    ok = u_lo <= u_hi
    best_grid = np.max((u_hi + 1e-3 * grid)[ok])
    lp_obj = u + 1e-3 * res.rho
    assert lp_obj >= best_grid - LP_TOL
    # the grid step 5e-5 moves the objective by at most 5e-5·(max|log α| + 0.001)
    assert lp_obj <= best_grid + 5e-5 * (np.abs(la).max() + 1e-3) + LP_TOL


def test_lp_agrees_with_closed_form(seed: int) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    n_feasible = n_infeasible = 0
    for trial in range(150):
        n = 2 + trial % 5
        alpha, v_single, v_stable, v_max = _random_instance(rng, n)
        iv = rho_interval(alpha, v_stable, v_max)
        if abs(iv.rho_hi - iv.rho_lo) < 1e-6:
            continue  # on the boundary HiGHS's tolerance decides; no cross-check
        # Execute / Assert
        if not iv.feasible:
            n_infeasible += 1
            with pytest.raises(InfeasibleRewardError):
                solve_rho(alpha, v_single, v_stable, v_max)
            continue
        n_feasible += 1
        res = solve_rho(alpha, v_single, v_stable, v_max)
        assert res.rho == pytest.approx(iv.rho_hi, abs=LP_TOL)
        u_star = np.min(np.log(v_max) - iv.rho_hi * np.log(alpha))
        assert math.log(res.v_star) == pytest.approx(u_star, abs=LP_TOL)
        assert res.rho_interval == (iv.rho_lo, iv.rho_hi)
    assert n_feasible > 20
    assert n_infeasible > 5


def test_rewards_monotone_in_shapley(seed: int) -> None:
    # Prepare: Shapley values with a tie; generous bounds so ρ > 0
    rng = np.random.default_rng(seed)
    phi = np.array([0.3, 0.1, 0.3, 0.05, 0.2, 0.6])
    alpha = phi / phi.max()
    v_max = rng.uniform(0.5, 1.0, phi.size)
    lower = np.full(phi.size, 0.01)
    # Execute
    lp = solve_rho(alpha, lower, lower, v_max)
    fixed = [fixed_rho(alpha, lower, lower, v_max, rho) for rho in (0.25, 1.0)]
    # Assert: strictly increasing in φ for ρ > 0, equal φ equal r
    for res in [lp, *fixed]:
        assert res.rho > 0
        r = np.asarray(res.reward_values)
        order = np.argsort(phi, kind="stable")
        assert np.all(np.diff(r[order][[0, 1, 2, 4, 5]]) > 0)
        assert r[0] == r[2]
        assert r[np.argmax(phi)] == pytest.approx(res.v_star, rel=1e-15)  # α = 1


# -------------------------------------------------------------------- infeasible


def test_infeasible_names_both_pairs() -> None:
    # Prepare (by hand, α = (1, e^-1, e^-2)): party 0's lower e^-0.3 vs party 1's
    # v_max e^-1 needs ρ ≥ (−0.3 + 1)/1 = 0.7; party 2's lower e^-1.4 vs party 1's
    # v_max e^-1 needs ρ ≤ (−1 + 1.4)/1 = 0.4. Every other pair is looser.
    alpha = np.exp([0.0, -1.0, -2.0])
    lower = np.exp([-0.3, -5.0, -1.4])
    v_max = np.exp([0.0, -1.0, -1.2])
    # Execute
    with pytest.raises(InfeasibleRewardError) as info:
        solve_rho(alpha, lower, lower, v_max, condition="stable")
    # Assert
    msg = str(info.value)
    assert "\n" not in msg
    assert "ρ ≥ 0.7 (party 0's lower bound vs party 1's v_max)" in msg
    assert "ρ ≤ 0.4 (party 2's lower bound vs party 1's v_max)" in msg
    assert "gan.n_candidates" in msg
    assert '"individual"' in msg
    assert info.value.interval.lo_pair == (0, 1)
    assert info.value.interval.hi_pair == (2, 1)
    assert isinstance(info.value, ValueError)


def test_infeasible_negative_rho_hi() -> None:
    # Prepare: party 1 (α = e^-1) needs 0.5 but v* ≤ v_max_0 = 0.4 and α^ρ ≤ 1:
    # ρ ≤ log(0.4/0.5)/1 = −0.223 < 0
    alpha, lower, v_max = [1.0, math.exp(-1.0)], [0.1, 0.5], [0.4, 0.9]
    # Execute
    with pytest.raises(
        InfeasibleRewardError, match="party 1's lower bound vs party 0's"
    ):
        solve_rho(alpha, lower, lower, v_max, condition="individual")
    iv = rho_interval(alpha, lower, v_max)
    # Assert
    assert iv.rho_hi == pytest.approx(math.log(0.8), rel=1e-12)  # exact logs
    assert iv.lo_pair is None
    assert not iv.feasible


@pytest.mark.parametrize(
    ("lower", "v_max", "match"),
    [
        ([0.5, 0.3], [0.4, 0.9], "party 0's lower bound exceeds its own v_max"),
        (
            [0.3, 0.5],
            [0.4, 0.9],
            r"party 1's lower bound exceeds party 0's v_max \(equal",
        ),
    ],
)
def test_infeasible_equal_alpha(
    lower: list[float], v_max: list[float], match: str
) -> None:
    # Prepare: equal α, so ρ cannot help; lower_i > v_max_j is infeasible
    alpha = [1.0, 1.0]
    # Execute / Assert
    with pytest.raises(InfeasibleRewardError, match=match):
        solve_rho(alpha, lower, lower, v_max)


# ---------------------------------------------------------------------- fixed ρ


def test_fixed_rho_zero_and_one() -> None:
    # Prepare
    alpha, lower, v_max = [1.0, 0.5, 0.25], [0.01, 0.01, 0.01], [0.9, 0.3, 0.2]
    # Execute
    zero = fixed_rho(alpha, lower, lower, v_max, 0.0)
    one = fixed_rho(alpha, lower, lower, v_max, 1)
    # Assert: ρ = 0 → every r = v* = min v_max = 0.2;
    # ρ = 1 → v* = min(0.9, 0.3/0.5, 0.2/0.25) = 0.6, r = (0.6, 0.3, 0.15)
    np.testing.assert_allclose(zero.reward_values, [0.2, 0.2, 0.2], rtol=1e-15)
    assert one.v_star == pytest.approx(0.6, rel=1e-15)  # one division
    np.testing.assert_allclose(one.reward_values, [0.6, 0.3, 0.15], rtol=1e-15)
    assert one.violations == ()
    assert np.all(np.asarray(one.reward_values) <= np.asarray(v_max))


def test_fixed_rho_reports_violations(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: ρ = ½, v* = min(1/1, 0.5/0.5) = 1, r_1 = 0.5 < lower_1 = 0.9
    alpha, lower, v_max = [1.0, 0.25], [0.3, 0.9], [1.0, 0.5]
    # Execute
    with caplog.at_level(logging.WARNING, logger="rewards.cgm.allocation"):
        res = fixed_rho(alpha, lower, lower, v_max, 0.5, condition="individual")
    # Assert
    assert res.v_star == pytest.approx(1.0, rel=1e-15)
    assert len(res.violations) == 1
    assert res.violations[0].startswith("party 1:")
    assert "party 1" in caplog.text
    # the chosen ρ lies above ρ_hi = log(1/0.9)/log 4 (exact logs)
    assert res.rho_interval[1] == pytest.approx(
        math.log(1 / 0.9) / math.log(4), rel=1e-12
    )


def test_to_dict_is_plain_json() -> None:
    # Prepare
    res = solve_rho([1.0, 0.25], [0.2, 0.1], [0.3, 0.5], [1.0, 0.5])
    # Execute
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    # Assert
    assert set(d) == {
        "condition",
        "rho",
        "v_star",
        "reward_values",
        "lower_bound",
        "v_max",
        "rho_interval",
        "violations",
    }
    assert d["reward_values"] == list(res.reward_values)


# ------------------------------------------------------------------- bad input


GOOD = {"alpha": [1.0, 0.5], "v_single": [0.1, 0.1], "v_stable_lower": [0.2, 0.2]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": [1.0, 0.0]}, r"`alpha`.*party 1"),
        ({"alpha": [1.0, -0.3]}, r"`alpha`.*-0.3.*party 1"),
        ({"alpha": [1.2, 0.5]}, r"`alpha`.*party 0"),
        ({"v_max": [0.5, 0.0]}, r"`v_max`.*party 1"),
        ({"v_max": [-1.0, 0.5]}, r"`v_max`.*party 0"),
        ({"v_stable_lower": [np.nan, 0.2]}, r"`v_stable_lower`.*finite"),
        ({"v_single": [0.1]}, r"`v_single`.*`v_stable_lower`"),
        ({"v_max": [0.5, 0.5, 0.5]}, r"one entry per party"),
        ({"alpha": []}, r"`alpha`.*non-empty"),
        ({"condition": "all"}, r"`condition`.*'all'"),
        ({"rho": 1.5}, r"`rho`.*1.5"),
        ({"rho": -0.1}, r"`rho`.*-0.1"),
        ({"rho": float("nan")}, r"`rho`.*nan"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    # Prepare
    args = {**GOOD, "v_max": [0.5, 0.5], **kwargs}
    rho = args.pop("rho", None)
    # Execute / Assert
    fn = solve_rho if rho is None else functools.partial(fixed_rho, rho=rho)
    with pytest.raises(ValueError, match=match):
        fn(**args)


def test_bad_rho_type() -> None:
    with pytest.raises(TypeError, match="`rho`"):
        fixed_rho(**GOOD, v_max=[0.5, 0.5], rho=True)


def test_reward_values_bad_v_star() -> None:
    with pytest.raises(ValueError, match="`v_star`"):
        reward_values([1.0], 0.5, 0.0)


def test_reward_values_bad_v_star_type() -> None:
    # a bool is never a number (data.checks)
    with pytest.raises(TypeError, match="`v_star`"):
        reward_values([1.0], 0.5, True)


def test_allocate_excludes_a_negative_alpha_known_answer() -> None:
    # Prepare: parties 0 and 2 are the solve_rho example (ρ = 1/2, v* = 1);
    # party 1 has α < 0 and is left out with r_1 = v(D_1) (docs/cgm.md §6.4).
    from rewards.cgm.allocation import allocate

    alpha, single = [1.0, -0.5, 0.25], [0.2, 0.05, 0.1]
    stable, vmax = [0.3, 0.05, 0.5], [1.0, 0.4, 0.5]
    # Execute
    res = allocate(alpha, single, stable, vmax)
    # Assert
    assert res.excluded == (1,)
    assert res.rho == pytest.approx(0.5, abs=1e-9)
    assert res.v_star == pytest.approx(1.0, rel=1e-9)
    np.testing.assert_allclose(res.reward_values, [1.0, 0.05, 0.5], rtol=1e-9)
    assert res.to_dict()["excluded"] == [1]
    with pytest.raises(ValueError, match="must lie in"):
        allocate(alpha, single, stable, vmax, nonpositive="fail")
    with pytest.raises(ValueError, match="no entry > 0"):
        allocate([0.0, -1.0], [0.1, 0.1], [0.1, 0.1], [1.0, 1.0])
    plain = allocate([1.0, 0.25], [0.2, 0.1], [0.3, 0.5], [1.0, 0.5])
    assert "excluded" not in plain.to_dict()  # rewards.json bytes unchanged
