"""Tests of `pipeline.figures.save.save_figure` (atomic PNG outputs)."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from pipeline.figures.save import save_figure


def test_save_figure_writes_png_and_no_temp(tmp_path):
    # Prepare
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    # Execute
    out = save_figure(fig, path)
    # Assert
    assert out == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_failed_render_leaves_nothing(tmp_path, monkeypatch):
    # Prepare: savefig writes part of the temp file, then fails
    fig = Figure()
    path = tmp_path / "plot.png"

    def broken(fname, **kwargs):
        fname.write_bytes(b"\x89PNG partial")
        raise RuntimeError("render failed")

    monkeypatch.setattr(fig, "savefig", broken)
    # Execute / Assert
    with pytest.raises(RuntimeError, match="render failed"):
        save_figure(fig, path)
    assert list(tmp_path.iterdir()) == []
