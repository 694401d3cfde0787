"""Fidelity measures and the quality gate (docs/cgm.md §3.6): known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from gan.fidelity import (
    correlation_difference,
    ks_statistic,
    std_ratios,
    table_fidelity,
    tv_distance,
)
from gan.quality import gate_failures, gate_measures, gate_message


# ----------------------------------------------------------------- KS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_matches_scipy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=300)
    b = rng.normal(0.3, 1.2, size=170)
    ai = rng.integers(0, 5, 200).astype(float)  # heavy ties
    bi = rng.integers(1, 7, 90).astype(float)
    # scipy's exact statistic; both are max |F - G| over the same points
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_statistic(ai, bi) == pytest.approx(ks_2samp(ai, bi).statistic, abs=1e-12)


def test_ks_obvious_cases():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([0, 0], [1, 1]) == 1.0
    assert ks_statistic([0, 1], [0, 0]) == 0.5
    with pytest.raises(ValueError, match="need >= 1"):
        ks_statistic([], [1.0])


# ----------------------------------------------------------------- TV
def test_tv_matches_the_obvious_loop():
    rng = np.random.default_rng(3)
    for _ in range(5):
        p, q = rng.integers(0, 20, 6), rng.integers(1, 20, 6)
        pn, qn = p / p.sum(), q / q.sum()
        want = sum(abs(pn[i] - qn[i]) for i in range(6)) / 2
        assert tv_distance(p, q) == pytest.approx(want, abs=1e-12)
    assert tv_distance([1, 0], [0, 1]) == 1.0
    with pytest.raises(ValueError, match="equal-length"):
        tv_distance([1, 2], [1, 2, 3])


# ----------------------------------------------------------------- correlation
def test_correlation_difference_matches_corrcoef():
    rng = np.random.default_rng(4)
    r = rng.normal(size=(200, 4))
    r[:, 1] += r[:, 0]
    f = rng.normal(size=(150, 4))
    cr, cf = np.corrcoef(r, rowvar=False), np.corrcoef(f, rowvar=False)
    want = np.mean(
        [abs(cr[i, j] - cf[i, j]) for i in range(4) for j in range(i + 1, 4)]
    )
    assert correlation_difference(r, f) == pytest.approx(want, abs=1e-12)
    assert correlation_difference(r, r) == pytest.approx(0.0, abs=1e-12)


def test_correlation_difference_constant_columns():
    rng = np.random.default_rng(5)
    r = rng.normal(size=(100, 3))
    r[:, 1] = r[:, 0] + 0.1 * rng.normal(size=100)
    # a column constant in the real rows is skipped
    r_const = np.hstack([r, np.ones((100, 1))])
    f_const = np.hstack([r, rng.normal(size=(100, 1))])
    assert correlation_difference(r_const, f_const) == pytest.approx(0.0, abs=1e-12)
    # a column that collapsed in the fake rows scores |rho_real| on its pairs
    f = r.copy()
    f[:, 0] = 0.0
    cr = np.corrcoef(r, rowvar=False)
    want = (abs(cr[0, 1]) + abs(cr[0, 2]) + 0.0) / 3
    assert correlation_difference(r, f) == pytest.approx(want, abs=1e-12)


def test_std_ratios():
    r = np.array([[0.0, 1.0, 5.0], [2.0, 3.0, 5.0]])
    f = np.array([[0.0, 1.0, 0.0], [1.0, 5.0, 9.0]])
    np.testing.assert_allclose(std_ratios(r, f), [0.5, 2.0])


def test_table_fidelity_per_column():
    lay = [
        {"name": "a", "kind": "continuous", "start": 0, "size": 1},
        {"name": "c", "kind": "categorical", "start": 1, "size": 2},
    ]
    real = np.array([[0.0, 1, 0], [1.0, 1, 0], [2.0, 0, 1], [3.0, 0, 1]])
    fake = np.array([[0.0, 1, 0], [0.0, 1, 0], [0.0, 1, 0], [3.0, 0, 1]])
    out = table_fidelity(real, fake, lay)
    assert out["ks"] == {"a": pytest.approx(0.5)}  # F_fake(0) = 3/4, F_real(0) = 1/4
    assert out["tv"] == {"c": pytest.approx(0.25)}  # (1/2, 1/2) vs (3/4, 1/4)
    sr = np.std([0.0, 0, 0, 3]) / np.std([0.0, 1, 2, 3])
    assert out["std_ratio"]["a"] == pytest.approx(sr)
    assert out["median_ks"] == pytest.approx(0.5)
    assert out["median_tv"] == pytest.approx(0.25)


# ----------------------------------------------------------------- the gate
def test_gate_passes_faithful_and_names_collapse():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(500, 3))
    good = rng.normal(size=(500, 3))
    collapsed = 0.05 * rng.normal(size=(500, 3))
    assert gate_failures(gate_measures(real, good), {}, 0.5) == []
    fails = gate_failures(gate_measures(real, collapsed), {}, 0.5)
    assert len(fails) == 1
    assert fails[0].startswith("std ratio 0.0")


def test_gate_images_use_the_spread():
    rng = np.random.default_rng(7)
    real = rng.random((50, 1, 4, 4))
    real[:, :, 0, :] = 0.0  # an empty border does not count
    m = gate_measures(real, real * 0.1)
    assert m["spread_ratio"] == pytest.approx(0.1)
    assert "spread 0.100" in gate_failures(m, {}, 0.1)[0]


@pytest.mark.parametrize(
    ("quality", "n_fail"),
    [
        ({"real_test_acc": 0.96, "label_agreement": 0.94, "tstr_acc": 0.82}, 0),
        ({"real_test_acc": 0.96, "label_agreement": 0.2, "tstr_acc": 0.82}, 1),
        ({"real_test_acc": 0.96, "label_agreement": 0.2, "tstr_acc": 0.15}, 2),
        ({"real_test_acc": 0.12, "label_agreement": 0.1, "tstr_acc": 0.1}, 0),
        ({}, 0),
    ],
)
def test_gate_skill_over_chance(quality, n_fail):
    # chance 0.1; skill = (v - chance) / (real - chance), fails below 0.25;
    # a real classifier within 0.05 of chance cannot judge (row 4)
    assert len(gate_failures({}, quality, 0.1)) == n_fail


def test_gate_thresholds_on_table_measures():
    ok = {"median_ks": 0.1, "median_tv": 0.05, "corr_diff": 0.02}
    assert gate_failures(ok, {}, 0.5) == []
    bad = {"median_ks": 0.3, "median_tv": 0.26, "corr_diff": 0.4}
    names = [f.split(" 0.")[0] for f in gate_failures(bad, {}, 0.5)]
    assert names == [
        "median KS",
        "median categorical TV",
        "pairwise-correlation difference",
    ]


def test_gate_message_is_one_line_with_the_fix():
    msg = gate_message(["median KS 0.400 (> 0.25)", "TSTR 0.5 near chance"])
    assert "\n" not in msg
    assert "median KS 0.400" in msg
    assert "gan.epochs" in msg
    assert "data.party_size" in msg
