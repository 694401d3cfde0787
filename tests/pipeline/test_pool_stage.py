import h5py
import numpy as np
import pytest

from data.splits import matrix_counts
from pipeline.cli import main

SOURCES = ["mnist5k", "digits", "breast_cancer", "gmm"]
SPLITS = [
    "equaldisjoint",
    "unequal",
    "uniform",
    "powerlaw",
    "classimbalance",
    "dirichlet",
]


def _pool(tmp_path, *sets, seed=0, name="run"):
    run = tmp_path / name
    argv = ["pool", "--run-dir", str(run), "--quiet", "--seed", str(seed)]
    for s in sets:
        argv += ["--set", s]
    return main(argv), run


def _arrays(run):
    out = []
    for p in sorted((run / "pool").glob("*.h5")):
        with h5py.File(p) as f:
            out.append((f["x"][()], f["y"][()]))
    return out


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("split", SPLITS)
def test_every_source_and_split(tmp_path, capsys, source, split):
    # Execute
    rc, run = _pool(
        tmp_path, f"data.source={source}", f"data.split={split}", "data.gmm_size=500"
    )
    # Assert
    err = capsys.readouterr().err
    if source == "breast_cancer" and split in ("equaldisjoint", "unequal"):
        assert rc == 2  # the paper's matrices need 5 or 10 classes
        assert "n_parties = 5 and 5 or 10 classes" in err
        assert not (run / "pool").exists()
        return
    assert rc == 0, err
    parties = _arrays(run)
    assert len(parties) == 6  # 5 parties + test
    with h5py.File(run / "pool" / "party_0.h5") as f:
        assert f.attrs["split"] == split
        assert f.attrs["n_parties"] == 5
        assert f.attrs["schema_version"] == 1
    assert (run / "pool" / "manifest.json").is_file()


@pytest.mark.parametrize(("source", "n_classes"), [("gmm", 5), ("digits", 10)])
@pytest.mark.parametrize("split", ["equaldisjoint", "unequal"])
def test_matrix_split_class_proportions(tmp_path, source, n_classes, split):
    from data.splits import _matrix_thousandths

    rc, run = _pool(
        tmp_path,
        f"data.source={source}",
        f"data.split={split}",
        "data.gmm_size=2000",
        "data.party_size=100",
    )
    assert rc == 0
    expected = matrix_counts(_matrix_thousandths(split, 5, n_classes), 100)
    for i in range(5):
        with h5py.File(run / "pool" / f"party_{i}.h5") as f:
            counts = np.bincount(f["y"][()], minlength=n_classes)
        np.testing.assert_array_equal(counts, expected[i])


def test_same_seed_identical_other_seed_differs(tmp_path):
    _, a = _pool(tmp_path, "data.source=digits", seed=1, name="a")
    _, b = _pool(tmp_path, "data.source=digits", seed=1, name="b")
    _, c = _pool(tmp_path, "data.source=digits", seed=2, name="c")
    for (xa, ya), (xb, yb) in zip(_arrays(a), _arrays(b), strict=True):
        assert xa.tobytes() == xb.tobytes()
        assert ya.tobytes() == yb.tobytes()
    assert any(
        xa.tobytes() != xc.tobytes()
        for (xa, _), (xc, _) in zip(_arrays(a), _arrays(c), strict=True)
    )


def _files(tmp_path, parties):
    paths = []
    for i, (x, y) in enumerate(parties):
        p = tmp_path / f"in_{i}.npz"
        np.savez(p, **({"x": x} if x is not None else {}), y=y)
        paths.append(str(p))
    return "data.party_files=[" + ",".join(f'"{p}"' for p in paths) + "]"


def _good(n=20):
    rng = np.random.default_rng(0)
    return rng.random((n, 3)), np.arange(n) % 2


def test_user_party_files(tmp_path):
    rc, run = _pool(
        tmp_path, "data.source=files", _files(tmp_path, [_good(), _good(30)])
    )
    assert rc == 0
    with h5py.File(run / "pool" / "party_1.h5") as f:
        assert f["x"].shape == (24, 3)  # 30 rows minus ⌊0.2·15 + 0.5⌋ = 3 per class
        assert f.attrs["split"] == "files"


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["data.sourse=gmm"], "[data] sourse: unknown key"),
        (["data.n_parties='x'"], "[data] n_parties: expected an integer"),
        (["data.n_parties=1"], "[data] n_parties"),
        (
            [
                "data.source=gmm",
                "data.gmm_size=20",
                "data.split=uniform",
                "data.n_parties=16",
            ],
            "party 15 empty",
        ),
        (
            ["data.source=gmm", "data.gmm_size=10", "data.split=uniform"],
            "[data] test_fraction: holds out no rows",
        ),
        (
            [
                "data.source=files",
                "data.party_files=['/nonexistent/a.h5', '/nonexistent/b.h5']",
            ],
            "/nonexistent/a.h5: file not found",
        ),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, sets, match):
    rc, run = _pool(tmp_path, *sets)
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert match in err
    assert "Traceback" not in err
    assert not (run / "pool").exists()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ((None, np.zeros(3, dtype=int)), "`x` is missing"),
        ((np.array([[np.nan, 1.0, 2.0]] * 4), np.zeros(4, dtype=int)), "NaN"),
        ((np.zeros((4, 3)), np.zeros(3, dtype=int)), "4 rows"),
        ((np.zeros((0, 3)), np.zeros(0, dtype=int)), "zero rows"),
    ],
)
def test_bad_party_file_exit_2(tmp_path, capsys, bad, match):
    rc, run = _pool(tmp_path, "data.source=files", _files(tmp_path, [_good(), bad]))
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert match in err
    assert "in_1.npz" in err
    assert not (run / "pool").exists()


def test_fewer_parties_remove_stale_party_files(tmp_path):
    rc, run = _pool(
        tmp_path, "data.source=gmm", "data.gmm_size=500", "data.split=uniform"
    )
    assert rc == 0
    keep = run / "pool" / "party_3.h5.bak"  # not a name pool writes: left alone
    keep.write_bytes(b"mine")
    # Execute
    rc, _ = _pool(
        tmp_path,
        "data.source=gmm",
        "data.gmm_size=500",
        "data.split=uniform",
        "data.n_parties=3",
    )
    # Assert
    assert rc == 0
    names = sorted(p.name for p in (run / "pool").iterdir())
    assert names == [
        "manifest.json",
        "party_0.h5",
        "party_1.h5",
        "party_2.h5",
        "party_3.h5.bak",
        "test.h5",
    ]
    assert keep.read_bytes() == b"mine"
