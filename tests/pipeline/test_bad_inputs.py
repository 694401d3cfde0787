"""Bad user data refused by ``pool`` before anything is written (issue 15).

Every case runs a bad command into a copy of a finished pool run: exit 2, exactly
one stderr line naming the file or key, no traceback, and the run folder left
byte-for-byte as it was (docs/interface.md §5.7).
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from data.sources import gmm_source
from pipeline.cli import main


def _good_parties() -> list[tuple[np.ndarray, np.ndarray]]:
    src = gmm_source(150, seed=7)
    return [(src.x[i::3].astype(np.float64), src.y[i::3]) for i in range(3)]


def _files_sets(files: list[Path], test_file: Path | None = None) -> list[str]:
    sets = ["data.source=files"]
    sets.append("data.party_files=[" + ",".join(f'"{f}"' for f in files) + "]")
    if test_file is not None:
        sets.append(f'data.test_file="{test_file}"')
    return sets


def _argv(stage: str, run: Path, sets: list[str]) -> list[str]:
    argv = [stage, "--run-dir", str(run), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    return argv


def _snapshot(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished pool run from three valid party files, and those files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    files = []
    for i, (x, y) in enumerate(_good_parties()):
        files.append(root / f"good_{i}.npz")
        np.savez(files[-1], x=x, y=y)
    assert main(_argv("pool", root / "run", _files_sets(files))) == 0
    return root / "run", files


# --- the bad files: each writes `path` and returns nothing --------------------


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


def _with_x(x, y=None):
    def write(path):
        xs, ys = _good_parties()[1]
        np.savez(path, x=xs if x is None else x, y=ys if y is None else y)

    return write


def _h5(build):
    def write(path):
        with h5py.File(path, "w") as f:
            build(f, path)

    return write


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    x, y = _good_parties()[1]
    np.savez(path, x=x, y=y)
    path.write_bytes(path.read_bytes()[:200])


def _member_not_array(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"not an array at all")
        z.writestr("y.npy", b"junk")


def _x_group(f, path):
    f.create_group("x").create_dataset("data", data=np.zeros((50, 2)))
    f["y"] = np.arange(50) % 5


def _external_raw(f, path):
    secret = path.parent / "secret.bin"
    secret.write_bytes(np.arange(100, dtype=np.float64).tobytes())
    f.create_dataset(
        "x", shape=(50, 2), dtype=np.float64, external=[(str(secret), 0, 800)]
    )
    f["y"] = np.arange(50) % 5


def _virtual(f, path):
    src = path.parent / "virtual_src.h5"
    with h5py.File(src, "w") as g:
        g["x"] = np.zeros((50, 2))
    layout = h5py.VirtualLayout(shape=(50, 2), dtype=np.float64)
    layout[:] = h5py.VirtualSource(str(src), "x", shape=(50, 2))
    f.create_virtual_dataset("x", layout)
    f["y"] = np.arange(50) % 5


def _external_link(f, path):
    other = path.parent / "other.h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.zeros((50, 2))
    f["x"] = h5py.ExternalLink(str(other), "/x")
    f["y"] = np.arange(50) % 5


def _strings(f, path):
    f["x"] = np.array([["a", "b"]] * 50, dtype=h5py.string_dtype())
    f["y"] = np.arange(50) % 5


def _not_hdf5(path):
    path.write_text("this is not HDF5\n")


def _one_row(path):
    x, y = _good_parties()[1]
    np.savez(path, x=x[:1], y=y[:1])


GAP = np.where(np.arange(50) % 2, 0, 7)  # classes 0 and 7, none of 1..6

# (case id, bad file name, writer, stage, extra match)
CASES = [
    ("x_beyond_float32", "bad.npz", _with_x(np.full((50, 2), 1e39)), "float32"),
    ("int_collapses", "bad.npz", _with_x(np.full((50, 2), 2**24 + 1)), "float32"),
    ("uint64_label", "bad.npz", _with_x(None, np.full(50, 2**64 - 1, np.uint64)), "y"),
    ("fraction_label", "bad.npz", _with_x(None, np.full(50, 0.5)), "integer"),
    ("huge_label", "bad.npz", _with_x(None, np.full(50, 10**12)), "relabel"),
    ("label_gaps", "bad.npz", _with_x(None, GAP), "relabel"),
    ("zero_byte_npz", "bad.npz", _empty, "NPZ"),
    ("truncated_npz", "bad.npz", _truncated, "NPZ"),
    ("member_not_array", "bad.npz", _member_not_array, "not a .npy array"),
    ("object_array", "bad.npz", _npz(x=np.array([{}] * 50), y=np.zeros(50)), "bj"),
    ("scalar_x", "bad.npz", _npz(x=np.float64(1.0), y=np.zeros(1)), "scalar"),
    ("x_is_group", "bad.h5", _h5(_x_group), "group"),
    ("not_hdf5", "bad.h5", _not_hdf5, "HDF5"),
    ("external_raw", "bad.h5", _h5(_external_raw), "external"),
    ("virtual", "bad.h5", _h5(_virtual), "virtual"),
    ("external_link", "bad.h5", _h5(_external_link), "external link"),
    ("string_x", "bad.h5", _h5(_strings), "real numbers"),
    ("one_row", "bad.npz", _one_row, ">= 7"),
]


@pytest.mark.parametrize(
    ("name", "writer", "match"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_party_file(finished, tmp_path, capsys, name, writer, match):
    run0, good = finished
    run = tmp_path / "run"
    shutil.copytree(run0, run)
    before = _snapshot(run)
    bad = tmp_path / name
    writer(bad)
    capsys.readouterr()
    # Execute
    rc = main(_argv("pool", run, _files_sets([good[0], bad, good[2]])))
    # Assert
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "[data] party_files" in err
    assert str(bad) in err
    assert match in err
    assert _snapshot(run) == before


def _one_class(tmp_path):
    files = []
    for i, (x, y) in enumerate(_good_parties()):
        files.append(tmp_path / f"one_class_{i}.npz")
        np.savez(files[-1], x=x, y=np.zeros_like(y))
    return _files_sets(files), "only class 0"


def _tiny_party_all(tmp_path):
    files = []
    for i, (x, y) in enumerate(_good_parties()):
        files.append(tmp_path / f"p{i}.npz")
        np.savez(files[-1], x=x[: 2 if i == 1 else None], y=y[: 2 if i == 1 else None])
    return _files_sets(files), "p1.npz"


def _bad_test_file(tmp_path):
    bad = tmp_path / "test.npz"
    bad.write_bytes(b"")
    files = []
    for i, (x, y) in enumerate(_good_parties()):
        files.append(tmp_path / f"p{i}.npz")
        np.savez(files[-1], x=x, y=y)
    return _files_sets(files, bad), "[data] test_file: " + str(bad)


def _small_builtin_parties(tmp_path):
    sets = ["data.source=gmm", "data.gmm_size=60", "data.split=uniform"]
    return [
        *sets,
        "data.n_parties=10",
    ], "[data] split: party 0: 5 rows; every party needs >= 7"


@pytest.mark.parametrize("stage", ["pool", "all"])
@pytest.mark.parametrize(
    "case", [_one_class, _tiny_party_all, _bad_test_file, _small_builtin_parties]
)
def test_data_later_stages_cannot_use(finished, tmp_path, capsys, stage, case):
    """Refused up front by pool, also when `all` runs it (issue 15 root cause 7)."""
    run = tmp_path / "run"
    shutil.copytree(finished[0], run)
    before = _snapshot(run)
    sets, match = case(tmp_path)
    capsys.readouterr()
    # Execute
    rc = main(_argv(stage, run, sets))
    # Assert
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert match in err
    assert _snapshot(run) == before
