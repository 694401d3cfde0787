"""The table schema, its encoding and the column-true export (docs/cgm.md §2.5)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from data.tables import Column, TableSchema, write_party_table


def _columns(rng: np.random.Generator, n: int = 50) -> dict[str, np.ndarray]:
    return {
        "age": rng.normal(40.0, 12.0, n),
        "job": rng.choice(np.array(["clerk", "nurse", "pilot"], dtype=object), n),
        "hours": rng.integers(10, 60, n).astype(np.float64),
        "city": rng.choice(np.array(["Oslo", "Rome"], dtype=object), n),
    }


def _schema(cols: dict[str, np.ndarray]) -> TableSchema:
    return TableSchema.fit(cols, "income", ("<=50K", ">50K"))


def test_json_round_trip_is_exact():
    s = _schema(_columns(np.random.default_rng(0)))
    back = TableSchema.from_json(s.to_json())
    assert back == s
    assert back.to_json() == s.to_json()
    assert back.column("age").mean == s.column("age").mean  # JSON floats round-trip


def test_layout_and_statistics_known_answer():
    cols = {"a": np.array([1.0, 3.0]), "c": np.array(["y", "x"], dtype=object)}
    s = TableSchema.fit(cols, "label", ("0", "1"))
    a, c = s.columns
    assert (a.kind, a.start, a.size, a.mean, a.std) == ("continuous", 0, 1, 2.0, 1.0)
    assert (c.kind, c.start, c.size, c.categories) == ("categorical", 1, 2, ("x", "y"))
    assert s.width == 3
    assert s.continuous == (a,)
    assert s.categorical == (c,)
    assert s.feature_names == ("a", "c=x", "c=y")
    # slow obvious encoding of each row
    want = [[(1.0 - 2.0) / 1.0, 0.0, 1.0], [(3.0 - 2.0) / 1.0, 1.0, 0.0]]
    np.testing.assert_array_equal(s.encode(cols), np.array(want, dtype=np.float32))


def test_decode_inverts_encode():
    cols = _columns(np.random.default_rng(1))
    s = _schema(cols)
    x = s.encode(cols)
    assert x.dtype == np.float32
    assert x.shape == (50, s.width)
    back = s.decode(x)
    assert list(back) == list(cols)
    for name in ("job", "city"):
        assert back[name].tolist() == cols[name].tolist()
    for name in ("age", "hours"):
        # float32 storage of z-scores: ~1e-7 relative error times std ~12
        np.testing.assert_allclose(back[name], cols[name], rtol=1e-5, atol=1e-4)


def test_decode_takes_argmax_of_soft_one_hots():
    cols = {"c": np.array(["a", "b", "c"], dtype=object)}
    s = TableSchema.fit(cols, "y", ("0",))
    soft = np.array([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]])
    assert s.decode(soft)["c"].tolist() == ["b", "a"]


def test_declared_categorical_numeric_column():
    cols = {"zip": np.array([10, 9, 10])}
    s = TableSchema.fit(cols, "y", ("0", "1"), categorical=["zip"])
    assert s.column("zip").categories == ("9", "10")  # numeric order, as strings
    assert s.encode(cols).tolist() == [[0, 1], [1, 0], [0, 1]]


def test_unknown_level_and_bad_width_refused():
    s = TableSchema.fit({"c": np.array(["a", "b"], dtype=object)}, "y", ("0", "1"))
    with pytest.raises(ValueError, match="'zzz' is not one of its 2 levels"):
        s.encode({"c": np.array(["zzz"], dtype=object)})
    with pytest.raises(ValueError, match="missing columns"):
        s.encode({"d": np.array(["a"])})
    with pytest.raises(ValueError, match=r"x must be \(n, 2\)"):
        s.decode(np.zeros((2, 3)))


def test_inconsistent_columns_refused():
    with pytest.raises(ValueError, match="starts at 1"):
        TableSchema((Column("a", "continuous", 1, 1),), "y", ("0",))
    with pytest.raises(ValueError, match="size 2"):
        Column("a", "continuous", 0, 2)
    with pytest.raises(ValueError, match="std must be > 0"):
        Column("a", "continuous", 0, 1, std=0.0)
    with pytest.raises(ValueError, match="duplicate"):
        TableSchema((Column("y", "continuous", 0, 1),), "y", ("0",))


def test_labels_round_trip():
    s = TableSchema.fit({"a": np.zeros(3)}, "income", ("<=50K", ">50K"))
    codes = s.encode_labels(np.array([">50K", "<=50K", ">50K"], dtype=object))
    assert codes.tolist() == [1, 0, 1]
    assert s.decode_labels(codes).tolist() == [">50K", "<=50K", ">50K"]
    with pytest.raises(ValueError, match="label 'income'"):
        s.encode_labels(np.array(["?"], dtype=object))


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_party_table_reads_back_column_true(tmp_path, fmt):
    cols = _columns(np.random.default_rng(2), n=20)
    s = _schema(cols)
    y = np.random.default_rng(3).integers(0, 2, 20)
    source = ["own"] * 12 + ["reward"] * 8
    path = write_party_table(
        tmp_path / f"t.{fmt}", s.encode(cols), y, s, source=source, fmt=fmt
    )
    if fmt == "parquet":
        table = pq.read_table(path)
    else:
        opts = pacsv.ConvertOptions(column_types={"job": pa.string()})
        table = pacsv.read_csv(path, convert_options=opts)
    assert table.column_names == ["age", "job", "hours", "city", "income", "source"]
    got = table.to_pydict()
    assert got["job"] == cols["job"].tolist()
    assert got["city"] == cols["city"].tolist()
    assert got["income"] == [("<=50K", ">50K")[k] for k in y]
    assert got["source"] == source
    # float32 z-scores decoded: ~1e-7 relative error times std ~12
    np.testing.assert_allclose(got["age"], cols["age"], rtol=1e-5, atol=1e-4)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_party_table_refuses_bad_input(tmp_path):
    s = TableSchema.fit({"a": np.zeros(2)}, "y", ("0", "1"))
    with pytest.raises(ValueError, match="fmt"):
        write_party_table(tmp_path / "t", np.zeros((2, 1)), np.zeros(2), s, fmt="xls")
    with pytest.raises(ValueError, match="y has shape"):
        write_party_table(tmp_path / "t", np.zeros((2, 1)), np.zeros(3), s)
    assert not list(tmp_path.iterdir())
