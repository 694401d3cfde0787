"""Atomic writers and the user-file reader (docs/interface.md §5.7).

Writers round-trip with ordinary permissions; the reader refuses malformed files and
storage outside the file before reading any bytes.
"""

from __future__ import annotations

import stat

import h5py
import numpy as np
import pytest

from data.h5 import read_h5, read_xy_file, write_h5
from data.torch_data import PartyDataset
from pipeline.manifest import write_json


def test_write_h5_round_trip_and_mode(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_h5(tmp_path / "a.h5", {"x": x}, {"party_id": 3})
    data, attrs = read_h5(path, names=None)
    np.testing.assert_array_equal(data["x"], x)
    assert int(attrs["party_id"]) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]  # no temp file left


def test_write_json_mode(tmp_path):
    path = write_json(tmp_path / "b.json", {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _external_link_file(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.zeros((8, 2))
    path = tmp_path / "user.h5"
    with h5py.File(path, "w") as f:
        f["x"] = h5py.ExternalLink(str(other), "/x")
        f["y"] = np.zeros(8, dtype=np.int64)
        f.attrs["schema_version"] = 1
    return path


def test_read_xy_file_refuses_external_raw_storage_unread(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(16, dtype=np.float64).tobytes())
    path = tmp_path / "user.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "x", shape=(8, 2), dtype=np.float64, external=[(str(secret), 0, 128)]
        )
        f["y"] = np.zeros(8, dtype=np.int64)
    with pytest.raises(ValueError, match="stored in external files") as err:
        read_xy_file(path)
    assert str(path) in str(err.value)


def test_read_xy_file_refuses_external_link(tmp_path):
    with pytest.raises(ValueError, match="`x` is an external link"):
        read_xy_file(_external_link_file(tmp_path))


def test_party_dataset_refuses_external_link(tmp_path):
    with pytest.raises(ValueError, match="`x` is an external link"):
        PartyDataset(_external_link_file(tmp_path))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable NPZ file"),
        (b"PK\x03\x04 truncated", "not a readable NPZ file"),
        (b"\x93NUMPY garbage", "not a readable NPZ file"),
    ],
)
def test_read_xy_file_malformed_npz_one_line(tmp_path, content, match):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as err:
        read_xy_file(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)


def test_read_xy_file_npz_object_array_never_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="Object arrays cannot be loaded"):
        read_xy_file(path)
