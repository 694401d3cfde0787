"""Tests for rewards/cgm/privacy.py: privacy measures and the guard (docs/cgm.md §8)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from rewards.cgm.privacy import (
    _mann_whitney_auc,
    dcr,
    membership_auc,
    min_distance_mask,
    near_copy_share,
    near_copy_threshold,
    nearest_distances,
    privacy_measures,
)


def _gaussian(seed: int, n: int, d: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# ---- nearest_distances ---------------------------------------------------------


def test_nearest_distances_by_hand_1d() -> None:
    x = [[0.0], [1.0], [5.0], [-2.0]]
    y = [[0.5], [4.0], [10.0]]
    np.testing.assert_allclose(nearest_distances(x, y), [0.5, 0.5, 1.0, 2.5])


def test_exclude_self_is_leave_one_out_by_index() -> None:
    pts = np.array([[0.0], [1.0], [3.0], [7.0], [7.0]])
    got = nearest_distances(pts, pts, exclude_self=True)
    # The duplicate 7.0 still counts for its twin: only the row itself is left out.
    np.testing.assert_allclose(got, [1.0, 1.0, 2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(nearest_distances(pts, pts), np.zeros(5), atol=1e-12)


@pytest.mark.parametrize(
    ("n_x", "n_y", "d", "chunk_size", "scale", "shift"),
    [
        (50, 40, 1, 7, 1.0, 0.0),
        (200, 300, 8, 64, 1.0, 0.0),
        (123, 77, 64, 4096, 1.0, 0.0),
        (100, 100, 5, 13, 1e-3, 1e4),  # far from the origin, close together
        (64, 90, 3, 1, 1e3, -5.0),
    ],
)
def test_nearest_distances_matches_cdist(
    n_x: int, n_y: int, d: int, chunk_size: int, scale: float, shift: float
) -> None:
    rng = np.random.default_rng(n_x * 1000 + d)
    x = rng.normal(size=(n_x, d)) * scale + shift
    y = rng.normal(size=(n_y, d)) * scale + shift
    want = cdist(x, y).min(axis=1)
    got = nearest_distances(x, y, chunk_size=chunk_size)
    assert got.shape == (n_x,)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 5, 4096])
def test_exclude_self_matches_cdist(chunk_size: int) -> None:
    x = _gaussian(3, 60, 4)
    full = cdist(x, x)
    np.fill_diagonal(full, np.inf)
    got = nearest_distances(x, x, chunk_size=chunk_size, exclude_self=True)
    np.testing.assert_allclose(got, full.min(axis=1), rtol=1e-9)


def test_copies_give_zero_and_float32_is_accepted() -> None:
    y = _gaussian(4, 30, 5).astype(np.float32) * 100 + 1000
    got = nearest_distances(y[::3], y)
    assert np.all(got == 0.0)  # exact recompute of the chosen pair
    assert got.dtype == np.float64


# ---- dcr ------------------------------------------------------------------------


def test_dcr_by_hand() -> None:
    train = [[0.0], [10.0]]
    reward = [[1.0], [2.0], [9.0]]  # distances 1, 2, 1
    holdout = [[4.0], [6.0]]  # distances 4, 4
    out = dcr(reward, train, holdout)
    assert out["reward_median"] == pytest.approx(1.0)
    assert out["reward_p5"] == pytest.approx(1.0)
    assert out["holdout_median"] == pytest.approx(4.0)
    assert out["holdout_p5"] == pytest.approx(4.0)
    assert out["ratio"] == pytest.approx(0.25)


def test_dcr_ratio_nan_when_holdout_median_zero() -> None:
    out = dcr([[1.0]], [[0.0]], [[0.0]])
    assert np.isnan(out["ratio"])


# ---- near copies ------------------------------------------------------------------


def test_near_copy_threshold_by_hand() -> None:
    train = [[0.0], [1.0], [3.0], [7.0], [15.0]]  # leave-one-out NN: 1, 1, 2, 4, 8
    assert near_copy_threshold(train, quantile=0.0) == pytest.approx(1.0)
    assert near_copy_threshold(train, quantile=0.5) == pytest.approx(2.0)
    assert near_copy_threshold(train, quantile=1.0) == pytest.approx(8.0)
    assert near_copy_threshold(train, quantile=0.75) == pytest.approx(4.0)


def test_near_copy_share_by_hand_is_strict() -> None:
    train = [[0.0], [10.0]]
    reward = [[0.0], [0.5], [1.0], [5.0]]  # distances 0, 0.5, 1, 5
    assert near_copy_share(reward, train, 1.0) == pytest.approx(0.5)
    assert near_copy_share(reward, train, 0.0) == pytest.approx(0.0)
    assert near_copy_share(reward, train, 6.0) == pytest.approx(1.0)


# ---- membership AUC ----------------------------------------------------------------


def test_mann_whitney_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    pos = rng.integers(0, 6, 40).astype(float)
    neg = rng.integers(0, 5, 55).astype(float)
    want = roc_auc_score(np.r_[np.ones(40), np.zeros(55)], np.r_[pos, neg])
    assert _mann_whitney_auc(pos, neg) == pytest.approx(want, rel=1e-12)


def test_membership_auc_by_hand() -> None:
    members = [[0.0], [1.0]]  # distances to reward: 0, 0
    holdout = [[3.0], [0.0]]  # distances: 2, 0 (a tie with both members)
    reward = [[0.0], [1.0]]
    # pairs: (0 vs 2) win, (0 vs 0) half, twice → (1 + 0.5) * 2 / 4
    assert membership_auc(members, holdout, reward) == pytest.approx(0.75)


def test_membership_auc_matches_sklearn() -> None:
    m, h, r = _gaussian(6, 40), _gaussian(7, 30), _gaussian(8, 25)
    scores = -np.r_[cdist(m, r).min(axis=1), cdist(h, r).min(axis=1)]
    want = roc_auc_score(np.r_[np.ones(40), np.zeros(30)], scores)
    assert membership_auc(m, h, r, chunk_size=7) == pytest.approx(want, rel=1e-12)


# ---- leaking vs non-leaking rewards ------------------------------------------------


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    return {"train": _gaussian(10, 300), "holdout": _gaussian(11, 300)}


def test_leaking_reward_is_flagged(real: dict[str, np.ndarray]) -> None:
    train, holdout = real["train"], real["holdout"]
    reward = train[np.random.default_rng(12).permutation(300)[:200]]  # exact copies
    threshold = near_copy_threshold(train)
    assert threshold > 0
    assert near_copy_share(reward, train, threshold) == pytest.approx(1.0)
    assert dcr(reward, train, holdout)["ratio"] == pytest.approx(0.0, abs=1e-12)
    assert membership_auc(train, holdout, reward) > 0.75


def test_independent_reward_does_not_leak(real: dict[str, np.ndarray]) -> None:
    train, holdout = real["train"], real["holdout"]
    reward = _gaussian(13, 300)  # the same distribution, drawn independently
    threshold = near_copy_threshold(train)
    assert near_copy_share(reward, train, threshold) < 0.05
    assert 0.7 < dcr(reward, train, holdout)["ratio"] < 1.4
    # standard error of the AUC here is about 0.024; allow four of them
    assert membership_auc(train, holdout, reward) == pytest.approx(0.5, abs=0.1)


def test_guard_removes_the_copies(real: dict[str, np.ndarray]) -> None:
    train, holdout = real["train"], real["holdout"]
    fresh = _gaussian(14, 200)
    candidates = np.vstack([fresh, train[:100]])  # the last 100 are copies
    threshold = near_copy_threshold(train)
    keep = min_distance_mask(candidates, train, threshold, chunk_size=64)
    assert keep.dtype == np.bool_
    assert keep.shape == (300,)
    assert not keep[200:].any()
    assert keep[:200].mean() > 0.95
    kept = candidates[keep]
    assert near_copy_share(kept, train, threshold) == pytest.approx(0.0)
    assert membership_auc(train, holdout, kept) == pytest.approx(0.5, abs=0.1)
    assert min_distance_mask(candidates, train, 0).all()


def test_guard_boundary_is_inclusive() -> None:
    keep = min_distance_mask([[0.0], [0.5], [2.0]], [[0.0], [1.0]], 0.5)
    assert keep.tolist() == [False, True, True]


# ---- bad input ----------------------------------------------------------------------

_X = np.zeros((3, 2))
_Y = np.ones((4, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: nearest_distances(_X, np.ones((4, 3))), ValueError, "same number"),
        (lambda: nearest_distances(np.zeros((0, 2)), _Y), ValueError, ">= 1 row"),
        (lambda: nearest_distances(np.zeros((3, 0)), _Y), ValueError, "column"),
        (lambda: nearest_distances(np.zeros(3), _Y), ValueError, "2-D"),
        (lambda: nearest_distances([[np.nan, 0.0]], _Y), ValueError, "finite"),
        (lambda: nearest_distances(_X, [[np.inf, 0.0]]), ValueError, "finite"),
        (lambda: nearest_distances(_X.astype(bool), _Y), TypeError, "numeric"),
        (lambda: nearest_distances([["a", "b"]], _Y), TypeError, "numeric"),
        (lambda: nearest_distances(_X, _Y, chunk_size=0), ValueError, "chunk_size"),
        (lambda: nearest_distances(_X, _Y, chunk_size=2.0), TypeError, "chunk_size"),
        (lambda: nearest_distances(_X, _Y, exclude_self=True), ValueError, "exclude"),
        (
            lambda: nearest_distances(_X[:1], _X[:1], exclude_self=True),
            ValueError,
            "exclude",
        ),
        (lambda: dcr(_X, _Y, np.ones((2, 5))), ValueError, "`holdout` has 5"),
        (lambda: dcr(_X, np.zeros((0, 2)), _Y), ValueError, "`train`"),
        (lambda: near_copy_threshold(_Y, quantile=1.5), ValueError, "quantile"),
        (lambda: near_copy_threshold(_Y, quantile=-0.1), ValueError, "quantile"),
        (lambda: near_copy_threshold(_Y, quantile=np.nan), ValueError, "quantile"),
        (lambda: near_copy_threshold(_Y, quantile="0.01"), TypeError, "quantile"),
        (lambda: near_copy_threshold(_Y, quantile=True), TypeError, "quantile"),
        (lambda: near_copy_threshold(_Y[:1]), ValueError, ">= 2 row"),
        (lambda: near_copy_share(_X, _Y, -1.0), ValueError, "threshold"),
        (lambda: near_copy_share(_X, _Y, np.inf), ValueError, "threshold"),
        (lambda: near_copy_share(_X, _Y, None), TypeError, "threshold"),
        (lambda: near_copy_share(_X, np.ones((4, 1)), 1.0), ValueError, "same"),
        (lambda: membership_auc(_X, _Y, np.ones((2, 1))), ValueError, "`reward`"),
        (lambda: membership_auc(_X, np.zeros((0, 2)), _Y), ValueError, "holdout"),
        (lambda: min_distance_mask(_X, _Y, -0.5), ValueError, "min_distance"),
        (lambda: min_distance_mask(_X, _Y, np.nan), ValueError, "min_distance"),
        (lambda: min_distance_mask(_X, _Y, "auto"), TypeError, "min_distance"),
        (lambda: min_distance_mask(_X, [[np.nan, 1.0]], 0.0), ValueError, "finite"),
    ],
)
def test_bad_input(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# ---- privacy_measures: every measure against a brute-force cdist oracle --------


def _oracle(parties, holdout, rewards, q=0.01):
    pooled = np.concatenate(parties)
    d_pp = cdist(pooled, pooled)
    np.fill_diagonal(d_pp, np.inf)
    thr = np.quantile(d_pp.min(axis=1), q)
    h_by = [cdist(holdout, p).min(axis=1) for p in parties]
    out = []
    for i, r in enumerate(rewards):
        if r is None or len(r) == 0:
            out.append(None)
            continue
        r_pool = cdist(r, pooled).min(axis=1)
        h_pool = cdist(holdout, pooled).min(axis=1)
        ratios = [
            None if j == i else np.median(cdist(r, p).min(axis=1)) / np.median(h_by[j])
            for j, p in enumerate(parties)
        ]
        members = -cdist(pooled, r).min(axis=1)
        non = -cdist(holdout, r).min(axis=1)
        labels = np.r_[np.ones(len(members)), np.zeros(len(non))]
        out.append(
            {
                "ratio": np.median(r_pool) / np.median(h_pool),
                "p5": np.percentile(r_pool, 5),
                "ratios": ratios,
                "share": np.mean(r_pool < thr),
                "auc": roc_auc_score(labels, np.r_[members, non]),
            }
        )
    return thr, out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_privacy_measures_match_a_brute_force_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parties = [rng.normal(size=(int(rng.integers(5, 40)), 4)) for _ in range(3)]
    holdout = rng.normal(size=(25, 4))
    rewards = [rng.normal(size=(17, 4)), None, np.concatenate([parties[0][:5]])]
    got = privacy_measures(parties, holdout, rewards, chunk_size=7)
    thr, want = _oracle(parties, holdout, rewards)
    # float64 distances by two different formulas: agree to rounding
    assert got["near_copy_threshold"] == pytest.approx(thr, rel=1e-9)
    for g, w in zip(got["parties"], want, strict=True):
        if w is None:
            assert g["dcr"] is None
            assert g["mia_auc"] is None
            continue
        assert g["dcr"]["ratio"] == pytest.approx(w["ratio"], rel=1e-9)
        assert g["dcr"]["reward_p5"] == pytest.approx(w["p5"], rel=1e-9, abs=1e-12)
        for a, b in zip(g["dcr_ratio_by_party"], w["ratios"], strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9)
        assert g["near_copy_share"] == pytest.approx(w["share"])
        assert g["mia_auc"] == pytest.approx(w["auc"], rel=1e-12)


def test_privacy_measures_flag_copies_of_training_rows() -> None:
    rng = np.random.default_rng(5)
    parties = [rng.normal(size=(200, 3)) for _ in range(2)]
    holdout = rng.normal(size=(200, 3))
    fresh = rng.normal(size=(150, 3))  # same distribution, never seen
    copies = parties[0][:150]
    out = privacy_measures(parties, holdout, [fresh, copies])
    clean, leak = out["parties"]
    assert leak["near_copy_share"] == 1.0
    assert clean["near_copy_share"] < 0.1
    assert leak["dcr"]["ratio"] < 1e-6 < clean["dcr"]["ratio"]
    assert leak["mia_auc"] > 0.6 > clean["mia_auc"] > 0.4


def test_privacy_measures_refuse_a_wrong_number_of_rewards() -> None:
    with pytest.raises(ValueError, match="one entry per party"):
        privacy_measures([np.zeros((3, 1)), np.ones((3, 1))], np.zeros((2, 1)), [None])
