"""``data.source = "table"``: CSV/Parquet parties through the pool stage (issue 16).

The good table round-trips column-true; every bad table exits 2 with one stderr
line naming the key and writes nothing (docs/cgm.md §2.5, docs/interface.md §5.7).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from data.table_source import RawTable, TableError, check_levels
from data.tables import MAX_LEVELS, TableSchema, write_party_table
from pipeline.cli import main
from pipeline.config import DataConfig, RunConfig
from pipeline.inputs import read_pool

PARTIES = ("clinic-a", "clinic-b", "clinic-c")


def _table(n: int = 90, seed: int = 0) -> dict[str, list]:
    """A small mixed table: 2 continuous, 2 categorical, string labels, 3 parties."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50.0, 10.0, n).round(1)
    smoker = rng.choice(["yes", "no"], n)
    return {
        "age": age.tolist(),
        "region": rng.choice(["north", "south", "east"], n).tolist(),
        "bmi": rng.normal(25.0, 4.0, n).round(2).tolist(),
        "smoker": smoker.tolist(),
        "outcome": np.where((age > 50) ^ (smoker == "yes"), "sick", "healthy").tolist(),
        "site": [PARTIES[i % 3] for i in range(n)],
    }


def _write_csv(path: Path, cols: dict[str, list]) -> Path:
    pacsv.write_csv(pa.table(cols), path)
    return path


def _sets(files: list[Path], *extra: str) -> list[str]:
    names = ",".join(f'"{f}"' for f in files)
    return [
        "data.source=table",
        f"data.table_files=[{names}]",
        "data.label_column=outcome",
        "data.party_column=site",
        *extra,
    ]


def _run(stage: str, run: Path, sets: list[str], quiet: bool = True) -> int:
    argv = [stage, "--run-dir", str(run), *(["--quiet"] if quiet else [])]
    for s in sets:
        argv += ["--set", s]
    return main(argv)


def test_csv_round_trips_column_true(tmp_path):
    cols = _table()
    csv = _write_csv(tmp_path / "t.csv", cols)
    run = tmp_path / "run"
    assert _run("pool", run, _sets([csv])) == 0
    pool = read_pool(run)
    schema = pool.schema
    assert schema is not None
    assert schema.names == ("age", "region", "bmi", "smoker")
    assert [c.kind for c in schema.columns] == [
        "continuous",
        "categorical",
        "continuous",
        "categorical",
    ]
    assert schema.classes == ("healthy", "sick")
    assert pool.attrs["party_names"] == json.dumps(list(PARTIES))
    # the schema is in every pool file and in the manifest
    for p in sorted((run / "pool").glob("*.h5")):
        with h5py.File(p) as f:
            assert TableSchema.from_json(f.attrs["table_schema"]) == schema
    body = json.loads((run / "pool" / "manifest.json").read_text())
    assert TableSchema.from_dict(body["metrics"]["table_schema"]) == schema
    # every row comes back: decode(encode(table)) keeps names, levels and labels
    xs = [pool.test[0], *(x for x, _ in pool.parties)]
    ys = [pool.test[1], *(y for _, y in pool.parties)]
    back = schema.decode(np.concatenate(xs))
    labels = schema.decode_labels(np.concatenate(ys))
    rows = set(zip(back["region"], back["smoker"], labels, strict=True))
    want = set(zip(cols["region"], cols["smoker"], cols["outcome"], strict=True))
    assert rows == want
    # float32 z-scores: ~1e-7 relative error times std ~10
    np.testing.assert_allclose(
        np.sort(back["age"]), np.sort(cols["age"]), rtol=0, atol=1e-4
    )
    # a Parquet written by the export library reads back with them
    x0, y0 = pool.parties[0]
    out = write_party_table(tmp_path / "p0.parquet", x0, y0, schema, source=None)
    table = pq.read_table(out)
    assert table.column_names == ["age", "region", "bmi", "smoker", "outcome"]
    got = table.to_pydict()
    assert set(got["region"]) == set(cols["region"])
    assert set(got["smoker"]) <= {"yes", "no"}
    assert set(got["outcome"]) == {"healthy", "sick"}


def test_one_file_per_party_parquet_and_test_file(tmp_path):
    cols = _table(n=120, seed=1)
    files = []
    for i, name in enumerate(PARTIES):
        part = {k: v[i::4] for k, v in cols.items() if k != "site"}
        files.append(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(part), files[-1])
    test = {k: v[3::4] for k, v in cols.items() if k != "site"}
    test_file = _write_csv(tmp_path / "test.csv", test)
    run = tmp_path / "run"
    sets = _sets(files, f'data.test_file="{test_file}"', "data.test_fraction=0")
    assert _run("pool", run, sets) == 0
    pool = read_pool(run)
    assert [len(y) for _, y in pool.parties] == [30, 30, 30]  # nothing held out
    assert len(pool.test[1]) == 30
    assert pool.schema.decode_labels(pool.test[1]).tolist() == test["outcome"]


def test_declared_categorical_and_impute(tmp_path, capsys):
    cols = _table(seed=2)
    cols["grade"] = [i % 4 for i in range(90)]  # numeric, declared categorical
    cols["bmi"][5] = None
    cols["region"][7] = None
    csv = _write_csv(tmp_path / "t.csv", cols)
    run = tmp_path / "run"
    cat = 'data.categorical=["region","smoker","grade"]'
    sets = _sets([csv], cat, "data.missing=impute")
    assert _run("pool", run, sets, quiet=False) == 0
    log = capsys.readouterr().err
    schema = read_pool(run).schema
    assert schema.column("grade").categories == ("0", "1", "2", "3")
    assert "'bmi': imputed 1 missing cells with the median" in log
    assert "'region': imputed 1 missing cells with the most frequent level" in log
    assert "table columns (declared)" in log
    assert "party 0 (clinic-a): 6 of 30 rows held out" in log


# --- bad tables: exit 2, one line, nothing written ----------------------------


def _no_party(cols):
    del cols["site"]


def _one_row_party(cols):
    cols["site"][0] = "lonely"


def _nan_cell(cols):
    cols["bmi"][4] = float("nan")


def _one_class(cols):
    cols["outcome"] = ["sick"] * len(cols["outcome"])


def _many_levels(cols):
    n = len(cols["age"])
    cols["region"] = [f"r{i}" for i in range(n)]


BAD = {
    "missing party column": (_no_party, "[data] party_column:", "no column 'site'"),
    "party with one row": (_one_row_party, "[data] table_files:", "'lonely': 1 rows"),
    "NaN cell": (_nan_cell, "[data] missing:", "column 'bmi' has 1 rows"),
    "one class": (_one_class, "[data] label_column:", "one class ('sick')"),
    "10,000 levels": (_many_levels, "[data] categorical:", "10000 levels"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_table_exits_2_writes_nothing(tmp_path, capsys, case):
    build, key, what = BAD[case]
    n = 10_000 if case == "10,000 levels" else 90
    cols = _table(n=n)
    build(cols)
    csv = _write_csv(tmp_path / "bad.csv", cols)
    run = tmp_path / "run"
    assert _run("pool", run, _sets([csv])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert key in err[0]
    assert what in err[0]
    assert not run.exists()


@pytest.mark.parametrize(
    ("levels", "ok"), [(MAX_LEVELS, True), (MAX_LEVELS + 1, False)]
)
def test_level_cap_boundary(levels, ok):
    n = 2 * levels
    values = np.array([f"l{i % levels}" for i in range(n)], dtype=object)
    raw = RawTable(
        {"c": values},
        np.array(["a", "b"] * levels, dtype=object),
        np.zeros(n, np.int64),
        ("p",),
        ("c",),
    )
    if ok:
        assert check_levels([raw], "y") == ("a", "b")
    else:
        with pytest.raises(TableError, match=f"{levels} levels"):
            check_levels([raw], "y")


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda t: t.pop("bmi"), "feature columns"),
        (lambda t: t.update(outcome=["dead"] * len(t["outcome"])), "'dead'"),
    ],
)
def test_bad_test_file_exits_2(tmp_path, capsys, change, what):
    cols = _table()
    csv = _write_csv(tmp_path / "t.csv", cols)
    test = {k: v[:20] for k, v in _table(seed=9).items() if k != "site"}
    change(test)
    test_file = _write_csv(tmp_path / "test.csv", test)
    run = tmp_path / "run"
    sets = _sets([csv], f'data.test_file="{test_file}"', "data.test_fraction=0")
    assert _run("pool", run, sets) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "[data] test_file:" in err[0]
    assert what in err[0]
    assert not run.exists()


def test_n_parties_of_a_table_config():
    files = ("a.csv", "b.csv", "c.csv")
    many = RunConfig(data=DataConfig(source="table", table_files=files))
    one = RunConfig(data=DataConfig(source="table", table_files=files[:1]))
    assert many.n_parties == 3  # one file per party
    assert one.n_parties == DataConfig().n_parties  # unknown before the file is read


def test_too_many_parties_for_exact_shapley_exit_2_before_writing(tmp_path, capsys):
    # Prepare: one table file whose party column names 17 parties; value.shapley is
    # "exact" (the default), which the config alone could not check
    cols = _table(n=17 * 12)
    cols["site"] = [f"p{i % 17:02d}" for i in range(len(cols["site"]))]
    csv = _write_csv(tmp_path / "t.csv", cols)
    run = tmp_path / "run"
    # Act
    rc = _run("pool", run, _sets([csv], "value.shapley=exact"))
    # Assert
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "[value] shapley:" in err[0]
    assert "the data has 17" in err[0]
    assert not run.exists()
    # and 17 parties pass with permutation sampling
    assert _run("pool", run, _sets([csv], "value.shapley=permutation")) == 0


def test_numeric_category_codes_sort_as_numbers(tmp_path):
    # Prepare: a categorical column of numeric codes written as text, and numeric
    # labels; string order would put "10" before "2"
    cols = _table()
    n = len(cols["age"])
    cols["stage"] = [["2", "10", "9"][i % 3] for i in range(n)]
    cols["outcome"] = [10 if o == "sick" else 2 for o in cols["outcome"]]
    csv = _write_csv(tmp_path / "t.csv", cols)
    run = tmp_path / "run"
    # Act
    sets = _sets([csv], 'data.categorical=["region","smoker","stage"]')
    assert _run("pool", run, sets) == 0
    # Assert: numeric order for both, and the codes follow it
    schema = read_pool(run).schema
    assert schema.column("stage").categories == ("2", "9", "10")
    assert schema.classes == ("2", "10")
    pool = read_pool(run)
    x = np.concatenate([x for x, _ in pool.parties])
    y = schema.decode_labels(np.concatenate([y for _, y in pool.parties]))
    back = schema.decode(x)  # each row's label still follows the table's rule
    age = np.round(np.asarray(back["age"], float), 1)  # the CSV's one decimal
    sick = (age > 50) ^ (np.asarray(back["smoker"]) == "yes")
    assert y.tolist() == np.where(sick, "10", "2").tolist()
