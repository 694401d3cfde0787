"""Column-true reward tables: ``sample.export`` on a table pool (docs/cgm.md §2.5).

A CSV with string labels, two categorical columns and a party column goes through
pool → gan (a 1-epoch CTGAN) → value → reward → sample; the exported Parquet and
CSV files must have the original column names, category sets and label strings.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from tests.pipeline.tables import write_patients_csv

PARTIES = ("north bank", "south bank", "east bank")


def _csv(path):
    return write_patients_csv(path, PARTIES, "bank", n=180, seed=1)


def _run(stage, run, sets) -> int:
    argv = [stage, "--run-dir", str(run), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    return main(argv)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cols = _csv(root / "t.csv")
    sets = [
        "data.source=table",
        f'data.table_files=["{root / "t.csv"}"]',
        "data.label_column=outcome",
        "data.party_column=bank",
        "gan.epochs=1",
        "gan.batch_size=60",
        "gan.n_candidates=400",
        "gan.quality=false",
        "gan.quality_gate=off",
        "sample.workers=1",
        'sample.export=["parquet", "csv"]',
        "sample.export_with_own=true",
    ]
    for stage in ("pool", "gan", "value", "reward", "sample"):
        assert _run(stage, root / "run", sets) == 0, stage
    return root / "run", cols


def test_reward_tables_keep_names_levels_and_label_strings(exported) -> None:
    run, cols = exported
    for i in range(3):
        for table in (
            pq.read_table(run / "sample" / f"party_{i}.parquet"),
            pacsv.read_csv(run / "sample" / f"party_{i}.csv"),
        ):
            d = table.to_pydict()
            want = {"age", "region", "bmi", "smoker", "outcome", "source"}
            assert set(d) == want
            assert set(d["region"]) <= set(cols["region"])
            assert set(d["smoker"]) <= set(cols["smoker"])
            assert set(d["outcome"]) <= {"sick", "healthy"}
            assert set(d["source"]) <= {"own", "reward"}
            assert d["source"][0] == "own"


def test_own_rows_come_back_exactly(exported) -> None:
    run, cols = exported
    d = pq.read_table(run / "sample" / "party_0.parquet").to_pydict()
    names = json.loads((run / "pool" / "manifest.json").read_text())["metrics"]
    own = [j for j, s in enumerate(d["source"]) if s == "own"]
    mine = [j for j, b in enumerate(cols["bank"]) if b == names["party_names"][0]]
    # the party's training rows (some are held out): each own row is one of its rows
    originals = {
        (cols["region"][j], cols["smoker"][j], cols["outcome"][j]) for j in mine
    }
    assert all(
        (d["region"][j], d["smoker"][j], d["outcome"][j]) in originals for j in own
    )
    ages = np.array([cols["age"][j] for j in mine])
    for j in own:  # de-standardised to the stored float32 precision
        assert np.min(np.abs(ages - d["age"][j])) < 1e-3


def test_export_without_a_table_pool_is_refused(tiny_config, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    for stage in ("pool", "gan", "value", "reward"):
        assert (
            main(
                [stage, "--run-dir", str(run), "--config", str(tiny_config), "--quiet"]
            )
            == 0
        )
    argv = ["sample", "--run-dir", str(run), "--config", str(tiny_config), "--quiet"]
    capsys.readouterr()
    assert main([*argv, "--set", 'sample.export=["parquet"]']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "[sample] export" in err[0]
    assert not (run / "sample").exists() or not list((run / "sample").glob("*.parquet"))
