"""The gan stage's quality gate on a starved CTGAN (issue 16, docs/cgm.md §3.6).

A table pool of 3 small parties, CTGAN trained for 1 epoch (1 batch): ``warn`` logs
one line naming the failed measures and finishes the stage; ``fail`` exits 2 after
writing any output (no manifest), so ``value`` refuses; ``off`` says nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.pipeline.tables import write_patients_csv

PARTIES = ("a", "b", "c")


def _csv(path: Path, n: int = 150, seed: int = 0) -> Path:
    """Label = smoker (easy to learn); two continuous columns, two categoricals."""
    write_patients_csv(path, PARTIES, "site", n, seed)
    return path


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    csv = _csv(root / "t.csv")
    sets = [
        "data.source=table",
        f'data.table_files=["{csv}"]',
        "data.label_column=outcome",
        "data.party_column=site",
        "gan.epochs=1",
        "gan.batch_size=60",
        "gan.n_candidates=300",
        "gan.quality_epochs=10",
    ]
    return root, sets


def _run(stage, run, sets, *extra):
    argv = [stage, "--run-dir", str(run), "--quiet"]
    for s in [*sets, *extra]:
        argv += ["--set", s]
    return main(argv)


def _gate_lines(capsys):
    err = capsys.readouterr().err.splitlines()
    return [line for line in err if "gan quality gate:" in line]


def test_warn_logs_one_line_and_finishes(pooled, capsys):
    root, sets = pooled
    run = root / "warn"
    assert _run("pool", run, sets) == 0
    capsys.readouterr()
    assert _run("gan", run, sets, "gan.quality_gate=warn") == 0
    lines = _gate_lines(capsys)
    assert len(lines) == 1
    msg = lines[0]
    assert " WARNING " in msg
    assert "gan.epochs" in msg  # the fix
    assert any(m in msg for m in ("KS", "TV", "correlation", "std ratio", "chance"))
    quality = json.loads((run / "gan" / "quality.json").read_text())
    assert quality["gate_failures"]  # recorded with the measures
    assert set(quality["ks"]) == {"age", "bmi"}
    assert set(quality["tv"]) == {"region", "smoker"}
    assert (run / "gan" / "manifest.json").is_file()
    assert (run / "gan" / "fidelity.png").stat().st_size > 0
    body = json.loads((run / "gan" / "manifest.json").read_text())
    assert body["outputs"]["fidelity"]["path"] == "gan/fidelity.png"


def test_fail_exits_2_before_value(pooled, capsys):
    root, sets = pooled
    run = root / "fail"
    assert _run("pool", run, sets) == 0
    capsys.readouterr()
    assert _run("gan", run, sets, "gan.quality_gate=fail") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "gan quality gate:" in err[0]
    # judged before any output: nothing new in gan/, no manifest, value refuses
    assert sorted(p.name for p in (run / "gan").iterdir()) == []
    assert _run("value", run, sets, "gan.quality_gate=fail") == 2
    assert "gan" in capsys.readouterr().err
    assert not (run / "value" / "manifest.json").exists()


def test_off_is_silent(pooled, capsys):
    root, sets = pooled
    run = root / "off"
    assert _run("pool", run, sets) == 0
    capsys.readouterr()
    assert _run("gan", run, sets, "gan.quality_gate=off") == 0
    assert _gate_lines(capsys) == []
    quality = json.loads((run / "gan" / "quality.json").read_text())
    assert "gate_failures" not in quality
    assert "median_ks" in quality  # still measured


def test_ctgan_without_a_schema_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    sets = ["data.source=breast_cancer", "data.split=uniform", "gan.model=ctgan"]
    assert _run("pool", run, sets) == 0
    capsys.readouterr()
    assert _run("gan", run, sets) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "[gan] model" in err[0]
    assert not (run / "gan").exists()


def test_auto_training_length_per_model():
    from gan.ctgan import CTGAN_BATCH, CTGAN_EPOCHS
    from pipeline.config import GanConfig
    from pipeline.gan_model import training_length

    g = GanConfig()
    assert training_length(g, "dcgan", 5000) == (30, 64)  # the demo's numbers
    assert training_length(g, "mlp", 5000) == (30, 64)
    assert training_length(g, "ctgan", 50_000) == (CTGAN_EPOCHS, CTGAN_BATCH)
    # a small table: >= 25 steps an epoch, a multiple of the pack, <= the rows
    assert training_length(g, "ctgan", 2_645) == (CTGAN_EPOCHS, 100)
    assert training_length(g, "ctgan", 90) == (CTGAN_EPOCHS, 10)
    assert training_length(g, "ctgan", 4) == (CTGAN_EPOCHS, 4)
    g = GanConfig(epochs=3, batch_size=10)
    assert training_length(g, "ctgan", 5000) == (3, 10)
