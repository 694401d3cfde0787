"""Adult as a pipeline source (``data.source = "adult"``, docs/cgm.md §2.6)."""

from __future__ import annotations

import numpy as np
import pytest

from data.adult import (
    ADULT_ROWS,
    FEATURE_COLUMNS,
    NUMERIC_COLUMNS,
    STRING_COLUMNS,
    adult_cells,
    load_adult_pool,
    read_adult,
)
from data.splits import _CELL_MATRICES, matrix_counts, split_indices


@pytest.fixture(scope="module")
def raw():
    return read_adult()


def _cells_of(pool):
    """Cells of every party row, recovered from the decoded gender and income."""
    out = []
    for x, y in pool.parties:
        gender = pool.schema.decode(x)["gender"]
        s = (gender == "Male").astype(np.int64)  # Female < Male, sorted
        out.append(np.bincount(2 * s + y, minlength=4))
    return np.array(out)


@pytest.mark.parametrize("kind", ["unequal", "equaldisjoint"])
def test_sex_matrix_splits_allocate_the_cells_exactly(kind):
    pool, meta = load_adult_pool("sex", split=kind, seed=np.random.SeedSequence(3))
    sizes = {len(y) for _, y in pool.parties}
    assert len(sizes) == 1  # equal party sizes P
    p = sizes.pop()
    assert p > 400  # the Female >50K cell bounds P (about 500 at 24,000 rows)
    want = matrix_counts(_CELL_MATRICES[(kind, 4)], p)
    np.testing.assert_array_equal(_cells_of(pool), want)
    assert meta == {
        "adult_group": "sex",
        "groups": ["Female", "Male"],
        "adult_rows": ADULT_ROWS,
    }


def test_cell_matrices_are_proportions():
    for m in _CELL_MATRICES.values():
        assert m.shape == (5, 4)
        assert (m.sum(axis=1) == 1000).all()
        assert (m > 0).all()


def test_schema_test_split_and_encoding(raw):
    pool, _ = load_adult_pool("sex", split="uniform", seed=np.random.SeedSequence(0))
    s = pool.schema
    assert s.names == FEATURE_COLUMNS
    assert {c.name for c in s.continuous} == set(NUMERIC_COLUMNS)
    assert {c.name for c in s.categorical} == set(STRING_COLUMNS)
    assert s.label == "income"
    assert s.classes == ("<=50K", ">50K")
    # rows: ADULT_ROWS in all, the test set stratified over the 4 cells
    n_train = sum(len(y) for _, y in pool.parties)
    assert n_train + len(pool.test[1]) == ADULT_ROWS
    # continuous columns are z-scored with the pooled training statistics
    x_tr = np.concatenate([x for x, _ in pool.parties])
    idx = [c.start for c in s.continuous]
    # float32 z-scores of ~19,000 rows: mean/std agree to ~1e-5
    np.testing.assert_allclose(x_tr[:, idx].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(x_tr[:, idx].std(0), 1.0, atol=1e-4)
    # categorical spans are one-hot, with levels from the Adult file
    for c in s.categorical:
        np.testing.assert_array_equal(x_tr[:, c.span].sum(1), 1.0)
        assert set(c.categories) <= set(np.asarray(raw[c.name]).astype(str))
    assert "?" in s.column("workclass").categories
    # decoded ages are the file's integers (float32 z-score round-off < 1e-3)
    ages = s.decode(x_tr)["age"]
    np.testing.assert_allclose(ages, np.round(ages), atol=1e-3)
    assert set(np.round(ages).astype(int)) <= set(np.asarray(raw["age"]).tolist())


def test_test_set_stratified_over_cells(raw):
    pool, _ = load_adult_pool(
        "sex", split="uniform", seed=np.random.SeedSequence(1), test_fraction=0.25
    )
    x_te, y_te = pool.test
    s = (pool.schema.decode(x_te)["gender"] == "Male").astype(np.int64)
    got = np.bincount(2 * s + y_te, minlength=4)
    x_tr = np.concatenate([x for x, _ in pool.parties])
    y_tr = np.concatenate([y for _, y in pool.parties])
    s_tr = (pool.schema.decode(x_tr)["gender"] == "Male").astype(np.int64)
    total = got + np.bincount(2 * s_tr + y_tr, minlength=4)
    # ⌊0.25·M_k + 0.5⌋ test rows of cell k
    np.testing.assert_array_equal(got, np.floor(0.25 * total + 0.5).astype(int))


def test_race_uses_the_ten_cell_matrices(raw):
    pool, meta = load_adult_pool(
        "race", split="unequal", seed=np.random.SeedSequence(0)
    )
    assert len(meta["groups"]) == 5
    assert len({len(y) for _, y in pool.parties}) == 1
    cols = {k: np.asarray(v) for k, v in raw.items()}
    _, cells, groups = adult_cells(cols, "race")
    assert groups == tuple(meta["groups"])
    assert cells.max() == 9


def test_seeded_and_reproducible():
    a, _ = load_adult_pool("sex", seed=np.random.SeedSequence(5))
    b, _ = load_adult_pool("sex", seed=np.random.SeedSequence(5))
    c, _ = load_adult_pool("sex", seed=np.random.SeedSequence(6))
    for (xa, ya), (xb, yb) in zip(a.parties, b.parties, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a.test[0], c.test[0])


def test_strata_only_change_matrix_splits():
    y = np.repeat([0, 1], 50)
    strata = np.tile(np.arange(4), 25)
    for kind in ("uniform", "dirichlet"):
        plain = split_indices(y, 5, kind, seed=0)
        with_strata = split_indices(y, 5, kind, seed=0, strata=strata)
        for p, q in zip(plain, with_strata, strict=True):
            np.testing.assert_array_equal(p, q)
    # without strata a 4-class pool keeps refusing the paper splits
    with pytest.raises(ValueError, match="5 or 10 classes"):
        split_indices(strata, 5, "unequal", seed=0)
