"""The one temp-file-and-rename (data/atomic.py)."""

from __future__ import annotations

import pytest

from data.atomic import atomic_path


def test_failed_writer_leaves_the_old_file_and_no_temp(tmp_path):
    # Prepare: a finished output from an earlier run
    out = tmp_path / "values.json"
    out.write_text("old")

    # Execute: a writer that dies half-way
    def write_half() -> None:
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk"):
        write_half()
    # Assert: the old content is intact and nothing else is in the folder
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["values.json"]


def test_two_writers_of_one_file_get_distinct_temp_names(tmp_path):
    # Execute: nested writers of the same final name (two runs at once)
    out = tmp_path / "a.h5"
    with atomic_path(out) as first, atomic_path(out) as second:
        # Assert: they never share a temp file
        assert first != second
        assert first.parent == second.parent == tmp_path
        first.write_text("1")
        second.write_text("2")
    # the writer that finishes last wins, and no temp file remains
    assert out.read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]


def test_outputs_follow_the_umask(tmp_path):
    import os
    import stat

    from pipeline.manifest import CsvStream

    old = os.umask(0o077)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with CsvStream(tmp_path / "b.csv", ["a"]) as stream:
            stream.write({"a": 1})
    finally:
        os.umask(old)
    for name in ("a.json", "b.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
