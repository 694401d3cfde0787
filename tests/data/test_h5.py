"""Atomic writers: content round-trips and outputs get ordinary permissions."""

from __future__ import annotations

import stat

import numpy as np

from data.h5 import read_h5, write_h5
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
