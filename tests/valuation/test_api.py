"""Tests of valuation/api.py and result.py (docs/cgm.md §5, docs/interface.md §6)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from valuation.api import (
    NonPositiveShapleyError,
    normalised_shapley,
    stable_coalitions,
    value_parties,
)
from valuation.coalition import coalition_key, parse_coalition_key, value_of_set
from valuation.result import PartyValues
from valuation.shapley import exact_shapley


def _gmm_parties(seed: int, n: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.uniform(0, 1, size=(n, 2))
    parties = [rng.normal(means[i], 0.1, size=(10 + 5 * i, 2)) for i in range(n)]
    pool = np.concatenate([rng.normal(m, 0.1, size=(40, 2)) for m in means])
    return parties, pool


def test_two_parties_hand_computed() -> None:
    # Prepare: D_0 = {0}, D_1 = {1}, G = {3} on the line, ℓ = 1, n_T = 3.
    k1, k2, k3 = (math.exp(-(d**2) / 2) for d in (1, 2, 3))
    v0 = 2 * (1 + k1 + k3) / 3 - 1
    v1 = 2 * (k1 + 1 + k2) / 3 - 1
    v01 = 2 * (1 + k1 + k3 + k1 + 1 + k2) / 6 - (2 + 2 * k1) / 4
    phi = [(v0 + v01 - v1) / 2, (v1 + v01 - v0) / 2]
    v_max = [
        2 * (1 + k1 + k3 + k3 + k2 + 1) / 6 - (2 + 2 * k3) / 4,
        2 * (k1 + 1 + k2 + k3 + k2 + 1) / 6 - (2 + 2 * k2) / 4,
    ]
    k_tt = (3 + 2 * (k1 + k2 + k3)) / 9
    # Execute
    res = value_parties(
        [np.array([[0.0]]), np.array([[1.0]])], np.array([[3.0]]), lengthscale=1.0
    )
    # Assert: rel 1e-12 covers a few dozen float operations.
    assert res.coalition_values == pytest.approx(
        {"0": v0, "1": v1, "0,1": v01}, rel=1e-12
    )
    assert res.shapley == pytest.approx(phi, rel=1e-12)
    assert res.v_max == pytest.approx(v_max, rel=1e-12)
    assert res.v_reference == pytest.approx(k_tt, rel=1e-12)
    top = int(np.argmax(phi))
    assert res.alpha[top] == 1.0
    assert res.alpha[1 - top] == pytest.approx(phi[1 - top] / phi[top], rel=1e-12)
    # C_top = both parties, C_other = itself.
    assert res.v_stable_lower[top] == pytest.approx(v01, rel=1e-12)
    assert res.v_stable_lower[1 - top] == pytest.approx([v0, v1][1 - top], rel=1e-12)
    assert res.v_grand == pytest.approx(v01, rel=1e-12)
    assert res.v_single == pytest.approx((v0, v1), rel=1e-12)
    assert res.lengthscale_bracket is None
    assert res.shapley_stderr is None


def test_exact_values_are_consistent(seed: int) -> None:
    # Prepare
    parties, pool = _gmm_parties(seed, 4)
    t = np.concatenate([*parties, pool])
    # Execute
    res = value_parties(parties, pool, lengthscale="auto", features="identity")
    # Assert: efficiency (rel 1e-9, docs/cgm.md §5.5) and every value by recomputation.
    assert sum(res.shapley) == pytest.approx(res.v_grand, rel=1e-9)
    assert len(res.coalition_values) == 2**4 - 1
    for key, v in res.coalition_values.items():
        s = np.concatenate([parties[i] for i in sorted(parse_coalition_key(key))])
        assert v == pytest.approx(value_of_set(s, t, res.lengthscale), rel=1e-9)
    assert min(res.v_single) >= 0  # the auto rule makes singletons valid
    assert res.lengthscale_bracket[1] == res.lengthscale
    assert res.party_sizes == (10, 15, 20, 25)
    assert (res.n_candidates, res.feature_dim, res.n_parties) == (160, 2, 4)
    assert list(res.coalition_values)[:4] == ["0", "1", "2", "3"]


def test_identical_parties_get_equal_values_and_tie(seed: int) -> None:
    # Prepare: parties 0 and 2 hold the same points.
    parties, pool = _gmm_parties(seed)
    parties[2] = parties[0].copy()
    # Execute
    res = value_parties(parties, pool, lengthscale=0.2)
    # Assert: rel 1e-12: only the tile positions differ; the tie puts both in C_0.
    assert res.shapley[0] == pytest.approx(res.shapley[2], rel=1e-12)
    assert res.v_stable_lower[0] == res.v_stable_lower[2]


def test_permutation_mode(seed: int, seed_alt: int) -> None:
    # Prepare
    parties, pool = _gmm_parties(seed, 4)
    exact = value_parties(parties, pool, lengthscale=0.3)
    # Execute
    a, b, c = (
        value_parties(
            parties,
            pool,
            lengthscale=0.3,
            shapley="permutation",
            n_permutations=3000,
            seed=s,
        )
        for s in (seed, seed, seed_alt)
    )
    # Assert: seed pairs; within 5 standard errors of exact (fixed seed).
    assert a == b
    assert a.shapley != c.shapley
    err = np.abs(np.array(a.shapley) - exact.shapley)
    assert np.all(err <= 5 * np.array(a.shapley_stderr) + 1e-12)
    keys = {coalition_key([i]) for i in range(4)} | {"0,1,2,3"}
    keys |= {coalition_key(c) for c in stable_coalitions(np.array(a.shapley))}
    assert set(a.coalition_values) == keys
    for key, v in a.coalition_values.items():
        assert v == exact.coalition_values[key]
    assert a.shapley_method == "permutation"
    assert "shapley_stderr" in a.to_dict()


def test_stable_coalitions_include_self_and_ties() -> None:
    phi = np.array([0.5, 0.2, 0.5 * (1 + 1e-14), 0.1])
    assert [sorted(c) for c in stable_coalitions(phi)] == [
        [0, 1, 2, 3],
        [1, 3],
        [0, 1, 2, 3],
        [3],
    ]


def test_max_shapley_not_positive_refused(seed: int) -> None:
    # Prepare: ℓ tiny: k ≈ δ, so v(S) ≈ 2/n_T − 1/|S| < 0 for every coalition.
    rng = np.random.default_rng(seed)
    parties = [rng.normal(size=(5, 2)) for _ in range(3)]
    # Execute / Assert
    with pytest.raises(NonPositiveShapleyError, match="max Shapley value"):
        value_parties(parties, rng.normal(size=(50, 2)), lengthscale=1e-3)
    with pytest.raises(NonPositiveShapleyError, match="max Shapley value"):
        normalised_shapley(np.array([0.0, -1.0]))


def test_result_json_round_trip(seed: int) -> None:
    # Prepare
    parties, pool = _gmm_parties(seed)
    res = value_parties(
        parties,
        pool,
        shapley="permutation",
        n_permutations=10,
        seed=seed,
        features="pca",
    )
    # Execute
    text = json.dumps(res.to_dict(), allow_nan=False)
    back = PartyValues.from_dict(json.loads(text))
    # Assert
    assert back == res
    assert list(res.to_dict())[:10] == [
        "lengthscale",
        "n_parties",
        "coalition_values",
        "shapley",
        "alpha",
        "v_single",
        "v_grand",
        "v_stable_lower",
        "v_max",
        "v_reference",
    ]


def test_exact_shapley_of_result_table(seed: int) -> None:
    # Prepare: rebuild the bitmask table from values.json's keys.
    parties, pool = _gmm_parties(seed)
    res = value_parties(parties, pool, lengthscale=0.25)
    table = np.zeros(8)
    for key, v in res.coalition_values.items():
        table[sum(1 << i for i in parse_coalition_key(key))] = v
    # Execute / Assert: same table, same function.
    np.testing.assert_array_equal(exact_shapley(table), res.shapley)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"party_features": []}, ValueError, "`party_features`"),
        ({"party_features": np.zeros((2, 3, 2))}, TypeError, "`party_features`"),
        ({"party_features": [np.zeros((2, 3))]}, ValueError, r"`party_features\[0\]`"),
        ({"party_features": [np.zeros((0, 2))]}, ValueError, r"`party_features\[0\]`"),
        ({"party_features": [np.full((2, 2), np.nan)]}, ValueError, "NaN or inf"),
        ({"party_features": [np.full((2, 2), np.inf)]}, ValueError, "NaN or inf"),
        ({"candidate_features": np.zeros((0, 2))}, ValueError, "`candidate_features`"),
        (
            {"candidate_features": np.full((3, 2), np.nan)},
            ValueError,
            "`candidate_features`",
        ),
        ({"lengthscale": 0.0}, ValueError, "`lengthscale`"),
        ({"lengthscale": -1.0}, ValueError, "`lengthscale`"),
        ({"lengthscale": "big"}, ValueError, "`lengthscale`"),
        ({"lengthscale": True}, TypeError, "`lengthscale`"),
        ({"shapley": "banzhaf"}, ValueError, "`shapley`"),
        (
            {"shapley": "permutation", "n_permutations": 1},
            ValueError,
            "`n_permutations`",
        ),
        ({"party_features": [np.ones((1, 2))] * 17}, ValueError, "'permutation'"),
        ({"chunk_size": 0}, ValueError, "`chunk_size`"),
        ({"device": "tpu"}, ValueError, "`device`"),
        ({"kernel_precision": "half"}, ValueError, "`kernel_precision`"),
    ],
)
def test_value_parties_bad_input(kwargs: dict, error: type, match: str) -> None:
    args = {
        "party_features": [np.zeros((2, 2)), np.ones((3, 2))],
        "candidate_features": np.ones((4, 2)),
        "lengthscale": 1.0,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        value_parties(**args)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"shapley": [1.0]}, "`shapley`"),
        ({"v_grand": float("nan")}, "`v_grand`"),
        ({"coalition_values": {"0,5": 1.0}}, "`coalition_values`"),
        ({"coalition_values": {"1,0": 1.0}}, "`key`"),
        ({"shapley_method": "other"}, "`shapley_method`"),
        ({"party_sizes": [1, 0]}, "`party_sizes`"),
        ({"bogus": 1}, "unknown keys"),
    ],
)
def test_result_bad_input(change: dict, match: str) -> None:
    data = {
        "lengthscale": 1.0,
        "n_parties": 2,
        "coalition_values": {"0": 0.1},
        "shapley": [0.1, 0.2],
        "alpha": [0.5, 1.0],
        "v_single": [0.1, 0.2],
        "v_grand": 0.3,
        "v_stable_lower": [0.1, 0.3],
        "v_max": [0.4, 0.4],
        "v_reference": 0.5,
        "lengthscale_bracket": None,
        "shapley_method": "exact",
        "party_sizes": [1, 2],
        "n_candidates": 3,
        "features": "identity",
        "feature_dim": 2,
    }
    PartyValues.from_dict(data)  # the base case is valid
    data.update(change)
    with pytest.raises(ValueError, match=match):
        PartyValues.from_dict(data)


def test_result_missing_key_refused() -> None:
    with pytest.raises(ValueError, match="missing keys"):
        PartyValues.from_dict({"lengthscale": 1.0})
