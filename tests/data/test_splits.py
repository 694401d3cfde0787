import numpy as np
import pytest

from data.splits import (
    classimbalance_classes,
    matrix_counts,
    powerlaw_sizes,
    proportion_matrix,
    split_indices,
)


def _labels(per_class: int, n_classes: int) -> np.ndarray:
    return np.repeat(np.arange(n_classes), per_class)


@pytest.mark.parametrize("kind", ["equaldisjoint", "unequal"])
@pytest.mark.parametrize("n_classes", [5, 10])
def test_matrix_split_counts_follow_the_paper_matrix(kind, n_classes, seed):
    # Prepare
    y = _labels(400, n_classes)
    p = proportion_matrix(kind, 5, n_classes)
    # Execute
    parts = split_indices(y, 5, kind, party_size=300, seed=seed)
    # Assert
    counts = np.array([np.bincount(y[i], minlength=n_classes) for i in parts])
    expected = matrix_counts(np.rint(p * 1000).astype(np.int64), 300)
    np.testing.assert_array_equal(counts, expected)
    # largest-remainder rounding stays within one row of p·P
    assert np.all(np.abs(counts - p * 300) < 1.0 + 1e-9)
    assert len(np.unique(np.concatenate(parts))) == 5 * 300  # disjoint


def test_matrix_rows_sum_to_one():
    for kind in ("equaldisjoint", "unequal"):
        for c in (5, 10):
            np.testing.assert_allclose(proportion_matrix(kind, 5, c).sum(1), 1.0)


def test_matrix_counts_exact_where_floats_would_floor_wrongly():
    # 0.29 · 800 = 231.99999999999997 in floating point; the exact count is 232.
    counts = matrix_counts(np.array([[290, 290, 195, 195, 5, 5, 5, 5, 5, 5]]), 800)
    assert counts[0, :4].tolist() == [232, 232, 156, 156]
    assert counts.sum() == 800


def test_auto_party_size_uses_whole_mnist_like_pool(seed):
    # 400 rows per class, as mnist5k after the test split: P = 800 for both matrices.
    y = _labels(400, 10)
    for kind in ("equaldisjoint", "unequal"):
        parts = split_indices(y, 5, kind, seed=seed)
        assert [len(p) for p in parts] == [800] * 5


@pytest.mark.parametrize(
    ("m", "expected"),
    [(3000, [70, 335, 600, 864, 1131]), (4000, [94, 447, 800, 1152, 1507])],
)
def test_powerlaw_sizes_match_spec_examples(m, expected):
    assert powerlaw_sizes(m, 5).tolist() == expected


def test_classimbalance_class_counts():
    assert classimbalance_classes(5, 10).tolist() == [1, 3, 5, 7, 10]


def test_classimbalance_party_labels(seed):
    # Prepare
    y = _labels(100, 10)
    # Execute
    parts = split_indices(y, 5, "classimbalance", seed=seed)
    # Assert: party i holds only its c_i lowest labels, P = M // N rows each
    for p, c in zip(parts, [1, 3, 5, 7, 10], strict=True):
        assert len(p) == 200
        assert set(np.unique(y[p])) == set(range(c))


def test_uniform_is_array_split(seed):
    parts = split_indices(np.zeros(11, dtype=int), 3, "uniform", seed=seed)
    assert sorted(len(p) for p in parts) == [3, 4, 4]
    assert sorted(np.concatenate(parts).tolist()) == list(range(11))


def test_dirichlet_respects_minimum_rows(seed):
    y = _labels(50, 5)
    parts = split_indices(y, 4, "dirichlet", dirichlet_alpha=0.5, seed=seed)
    assert min(len(p) for p in parts) >= 10
    assert len(np.unique(np.concatenate(parts))) == sum(len(p) for p in parts)


@pytest.mark.parametrize("kind", ["uniform", "powerlaw", "unequal", "dirichlet"])
def test_seed_pair(kind, seed, seed_alt):
    y = _labels(60, 5)
    a = split_indices(y, 5, kind, seed=seed)
    b = split_indices(y, 5, kind, seed=seed)
    c = split_indices(y, 5, kind, seed=seed_alt)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_parties": 1, "kind": "uniform"}, "n_parties"),
        ({"n_parties": 3, "kind": "unequal"}, "n_parties = 5"),
        ({"n_parties": 5, "kind": "nope"}, "kind"),
        ({"n_parties": 20, "kind": "uniform"}, "party 1[0-9] empty"),
        ({"n_parties": 5, "kind": "unequal", "party_size": 500}, "class"),
        ({"n_parties": 5, "kind": "uniform", "party_size": 0}, "party_size"),
        ({"n_parties": 5, "kind": "dirichlet", "dirichlet_alpha": 0.0}, "dirichlet"),
    ],
)
def test_bad_input(kwargs, match):
    y = _labels(2, 5)[:10]
    if kwargs.get("party_size") == 500:
        y = _labels(100, 5)
    with pytest.raises(ValueError, match=match):
        split_indices(y, seed=0, **kwargs)


def test_dirichlet_infinite_alpha_is_equal_shares():
    # α → ∞ is the limit of equal shares; rng.dirichlet(inf) would give NaN
    y = np.repeat(np.arange(5), 60)
    parts = split_indices(y, 3, "dirichlet", dirichlet_alpha=float("inf"), seed=0)
    assert [np.bincount(y[p], minlength=5).tolist() for p in parts] == [[20] * 5] * 3
