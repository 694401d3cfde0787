import numpy as np
import pytest

from data.h5 import POOL_PARTY, read_h5, write_h5
from data.sources import (
    MAX_CLASSES,
    MIN_PARTY_ROWS,
    check_classes,
    check_labels,
    check_party_rows,
    gmm_source,
    load_party_files,
    load_source,
    load_xy,
    stratified_test_split,
)
from data.torch_data import PartyDataset


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [
        ("mnist5k", (5000, 1, 28, 28), 10),
        ("digits", (1797, 1, 8, 8), 10),
        ("breast_cancer", (569, 30), 2),
    ],
)
def test_builtin_sources(name, shape, n_classes):
    src = load_source(name, seed=0)
    assert src.x.shape == shape
    assert src.x.dtype == np.float32
    assert src.y.dtype == np.int64
    assert src.n_classes == n_classes
    if src.layout == "image":
        assert src.x.min() >= 0.0
        assert src.x.max() <= 1.0


def test_mnist5k_is_permuted_and_balanced(seed, seed_alt):
    a, b = load_source("mnist5k", seed=seed), load_source("mnist5k", seed=seed_alt)
    assert np.bincount(a.y).tolist() == [500] * 10
    # the file is sorted by label; a seeded permutation must break that order
    assert not np.all(np.diff(a.y) >= 0)
    assert not np.array_equal(a.y, b.y)


def test_gmm_has_paper_variance():
    src = gmm_source(50_000, seed=1)
    means = np.asarray(src.meta["gmm_means"])
    resid = src.x - means[src.y]
    # 50k draws: the sample variance is within ~2% of 1/200
    np.testing.assert_allclose(resid.var(0), 1 / 200, rtol=0.03)


def test_stratified_test_split_counts(seed):
    y = np.repeat([0, 1, 2], [10, 25, 3])
    train, test = stratified_test_split(y, 0.2, seed=seed)
    # ⌊0.2·M_c + 0.5⌋ per class: 2, 5, 1
    assert np.bincount(y[test]).tolist() == [2, 5, 1]
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(y)


def _party(path, x, y):
    np.savez(path, x=x, y=y)
    return str(path)


def test_party_files_uint8_images_scaled(tmp_path):
    x = np.full((4, 8, 8), 255, dtype=np.uint8)
    p = _party(tmp_path / "a.npz", x, np.arange(4))
    (xa, _), _ = load_party_files([p, p])
    assert xa.shape == (4, 1, 8, 8)
    assert xa.max() == 1.0


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((0, 2)), np.zeros(0, dtype=int), "zero rows"),
        (np.array([[np.nan, 1.0]]), np.array([0]), "NaN"),
        (np.zeros((3, 2)), np.zeros(2, dtype=int), "3 rows"),
        (np.zeros((2, 2)), np.array([0, -1]), "negative"),
        (np.full((2, 4, 4), 2.0), np.array([0, 1]), r"\[0, 1\]"),
    ],
)
def test_bad_party_files(tmp_path, x, y, match):
    p = _party(tmp_path / "bad.npz", x, y)
    with pytest.raises(ValueError, match=match):
        load_party_files([p, p])


def test_party_file_without_x(tmp_path):
    p = tmp_path / "nox.npz"
    np.savez(p, y=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="`x` is missing"):
        load_party_files([str(p), str(p)])


def test_party_files_shapes_must_agree(tmp_path):
    a = _party(tmp_path / "a.npz", np.zeros((2, 3)), np.zeros(2, dtype=int))
    b = _party(tmp_path / "b.npz", np.zeros((2, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="differs"):
        load_party_files([a, b])


def test_write_h5_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "f.h5"
    write_h5(
        path,
        {"x": np.ones((2, 3), np.float32), "y": np.arange(2)},
        {
            "party_id": 0,
            "n_parties": 2,
            "source": "s",
            "split": "uniform",
            "n_classes": 2,
            "layout": "vector",
            "seed": 1,
        },
    )
    data, attrs = read_h5(path, POOL_PARTY)
    assert data["x"].shape == (2, 3)
    assert attrs["schema_version"] == 1
    assert attrs["source"] == "s"
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]  # no temp file left


def test_read_h5_reports_missing_attribute(tmp_path):
    path = tmp_path / "f.h5"
    write_h5(path, {"x": np.ones((2, 3)), "y": np.arange(2)}, {"party_id": 0})
    with pytest.raises(ValueError, match="lacks attribute `n_parties`"):
        read_h5(path, POOL_PARTY)


def test_party_dataset_with_workers(tmp_path):
    import torch

    path = tmp_path / "p.h5"
    x = np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2)
    write_h5(path, {"x": x, "y": np.arange(6)}, {})
    ds = PartyDataset(path)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    xs = torch.cat([b[0] for b in loader])
    np.testing.assert_array_equal(xs.numpy(), x)
    assert ds[5][1].item() == 5


def test_x_checked_after_the_float32_cast(tmp_path):
    p = _party(tmp_path / "big.npz", np.full((8, 2), 1e39), np.zeros(8, dtype=int))
    with pytest.raises(ValueError, match="beyond float32's range"):
        load_xy(p)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(2**24, True), (2**30, True), (2**24 + 1, False), (2**63 - 1, False)],
)
def test_integer_x_must_survive_the_cast(tmp_path, value, ok):
    x = np.full((8, 2), value, dtype=np.int64)
    p = _party(tmp_path / "int.npz", x, np.zeros(8, dtype=int))
    if ok:
        xf, _ = load_xy(p)
        assert xf.astype(np.int64).tolist() == x.tolist()
    else:
        with pytest.raises(ValueError, match="float32 cannot store"):
            load_xy(p)


def test_valid_float64_x_stored_as_plain_cast(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 3)) * 1e5
    p = _party(tmp_path / "ok.npz", x, np.zeros(8, dtype=int))
    xf, _ = load_xy(p)
    assert xf.tobytes() == x.astype(np.float32).tobytes()


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.full(4, 2**64 - 1, dtype=np.uint64), "relabel"),
        (np.full(4, 1e12), "relabel"),
        (np.full(4, 10_000), "C <= 10000"),
        (np.array([0.0, 0.5, 1.0, 1.0]), "integer labels"),
    ],
)
def test_labels_checked_before_the_int64_cast(y, match):
    with pytest.raises(ValueError, match=match):
        check_labels(y, 4, "f.npz")


def test_labels_below_the_bound_kept():
    y = check_labels(np.array([0, MAX_CLASSES - 1], dtype=np.uint64), 2, "f.npz")
    assert y.dtype == np.int64
    assert y.tolist() == [0, MAX_CLASSES - 1]


def test_check_classes_compact_and_two_classes():
    ys = [np.array([0, 1]), np.array([1, 2])]
    assert check_classes(ys, ["a", "b"], n_parties=2) == 3
    with pytest.raises(ValueError, match=r"b: has label 3 .* class 2"):
        check_classes([np.array([0, 1]), np.array([3])], ["a", "b"], n_parties=2)
    with pytest.raises(ValueError, match="only class 0"):
        check_classes([np.array([0, 0]), np.array([1])], ["a", "t"], n_parties=1)


def test_check_party_rows_names_the_party():
    check_party_rows([MIN_PARTY_ROWS] * 2, ["a", "b"])
    with pytest.raises(
        ValueError, match=f"b: 6 rows; every party needs >= {MIN_PARTY_ROWS}"
    ):
        check_party_rows([MIN_PARTY_ROWS, 6], ["a", "b"])
