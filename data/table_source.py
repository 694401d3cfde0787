"""User tables as a pool source: ``data.source = "table"`` (docs/cgm.md §2.5).

One CSV or Parquet file with a party column, or one file per party, is read with
pyarrow and checked before anything is written: the label and party columns exist,
every party has enough rows, the label has ≥ 2 classes, no categorical column has
more than :data:`data.tables.MAX_LEVELS` levels, and missing cells (empty, ``NA``,
``NaN``, ``null``) are refused with the column and row count, or imputed from the
training rows (median / most frequent) when ``data.missing = "impute"``.

:func:`encode_parts` turns raw columns plus row indices into the encoded pool
(shared with the Adult source, data/adult.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data.sources import MIN_PARTY_ROWS, stratified_test_split
from data.tables import MAX_LEVELS, TableSchema, as_strings, codes_of, level_strings

logger = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
Parts = list[tuple[NDArray[np.float32], NDArray[np.int64]]]


class TableError(ValueError):
    """A refused table; ``key`` names the ``[data]`` key to blame."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class RawTable:
    """Raw columns of one or more files, concatenated.

    Attributes:
        features: name -> (n,) float64 (continuous, NaN = missing) or object
            strings (categorical, None = missing), in file column order.
        labels: (n,) object label strings.
        party: (n,) int64 file index (several files) or party-column value index.
        party_names: the party of each index.
        categorical: the categorical feature columns.
    """

    features: dict[str, NDArray]
    labels: NDArray
    party: NDArray[np.int64]
    party_names: tuple[str, ...]
    categorical: tuple[str, ...]


@dataclass(frozen=True)
class TablePool:
    """An encoded table pool.

    Attributes:
        parties: per party (x float32, y int64 codes).
        test: (x, y) of the held-out or given test rows.
        schema: the encoding.
        party_names: each party's name (party-column value or file name).
    """

    parties: Parts
    test: tuple[NDArray[np.float32], NDArray[np.int64]]
    schema: TableSchema
    party_names: tuple[str, ...]


def read_table_file(path: str) -> Any:
    """Read one CSV or Parquet file into a pyarrow Table.

    Raises:
        TableError: on an unknown suffix or an unreadable file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    kind = SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise TableError("table_files", f"{path}: expected a .csv or .parquet file")
    try:
        if kind == "parquet":
            return pq.read_table(path)
        opts = pacsv.ConvertOptions(strings_can_be_null=True)
        return pacsv.read_csv(path, convert_options=opts)
    except (OSError, pa.ArrowException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TableError("table_files", f"{path}: cannot read: {first}") from e


def _kind(name: str, typ: Any, declared: tuple[str, ...] | None, path: str) -> str:
    import pyarrow as pa

    t = pa.types
    numeric = t.is_integer(typ) or t.is_floating(typ) or t.is_decimal(typ)
    textual = (
        t.is_string(typ)
        or t.is_large_string(typ)
        or t.is_boolean(typ)
        or t.is_dictionary(typ)
    )
    if declared is not None:
        if name in declared:
            return "categorical"
        if numeric or t.is_null(typ):
            return "continuous"
        raise TableError(
            "categorical",
            f"{path}: column {name!r} ({typ}) is not numeric; add it to "
            'data.categorical or set data.categorical = "auto"',
        )
    if textual:
        return "categorical"
    if numeric or t.is_null(typ):
        return "continuous"
    raise TableError(
        "table_files",
        f"{path}: column {name!r} has type {typ}: neither numeric nor text",
    )


def _values(column: Any, kind: str) -> NDArray:
    """float64 with NaN (continuous) or object strings with None (categorical)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if kind == "continuous":
        if pa.types.is_null(col.type):
            return np.full(len(col), np.nan)
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    raw = col.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if raw.dtype.kind == "f":
        valid &= ~np.isnan(raw)
    out = np.full(len(col), None, dtype=object)
    if valid.any():
        out[valid] = as_strings(raw[valid])
    return out


def _missing(values: NDArray) -> NDArray[np.bool_]:
    if values.dtype.kind == "f":
        return np.isnan(values)
    return np.equal(values, None)  # elementwise on an object array


def read_tables(
    paths: list[str] | tuple[str, ...],
    *,
    label: str,
    party: str,
    categorical: tuple[str, ...] | str = "auto",
    with_party: bool = True,
) -> RawTable:
    """Read, type and concatenate the party (or test) files.

    With one file and ``with_party``, rows are assigned to parties by the
    ``party`` column (parties = its distinct values, sorted); with several files,
    file i is party i (a ``party`` column, if present, is dropped).

    Args:
        paths: the files.
        label: the label column.
        party: the party column.
        categorical: ``"auto"`` (text, bool and dictionary columns are
            categorical, numeric ones continuous; the inference is logged) or the
            categorical column names.
        with_party: False for a test file (no parties).

    Returns:
        The raw table (missing cells kept: see :func:`check_missing`).

    Raises:
        TableError: naming the file and the key to blame.
    """
    declared = None if categorical == "auto" else tuple(categorical)
    tables = [read_table_file(p) for p in paths]
    by_column = len(paths) == 1 and with_party
    first = tables[0]
    for p, t in zip(paths, tables, strict=True):
        need = [label, party] if by_column else [label]
        for key, name in zip(("label_column", "party_column"), need, strict=False):
            if name not in t.column_names:
                raise TableError(
                    key, f"{p}: no column {name!r} (columns: {t.column_names})"
                )
        if t.num_rows == 0:
            raise TableError("table_files", f"{p}: has zero rows")
    names = [c for c in first.column_names if c not in (label, party)]
    if not names:
        raise TableError("table_files", f"{paths[0]}: no feature columns")
    if declared is not None:
        unknown = [c for c in declared if c not in names]
        if unknown:
            raise TableError(
                "categorical", f"{paths[0]}: no feature column(s) {unknown}"
            )
    kinds = {c: _kind(c, first.schema.field(c).type, declared, paths[0]) for c in names}
    for p, t in zip(paths[1:], tables[1:], strict=True):
        other = [c for c in t.column_names if c not in (label, party)]
        if sorted(other) != sorted(names):
            raise TableError(
                "table_files", f"{p}: feature columns {other} differ from {names}"
            )
        for c in names:
            if _kind(c, t.schema.field(c).type, declared, p) != kinds[c]:
                raise TableError(
                    "table_files",
                    f"{p}: column {c!r} is {t.schema.field(c).type}, "
                    f"{kinds[c]} in {paths[0]}",
                )
    features = {
        c: np.concatenate([_values(t.column(c), kinds[c]) for t in tables])
        for c in names
    }
    labels = np.concatenate([_values(t.column(label), "categorical") for t in tables])
    if by_column:
        pv = _values(first.column(party), "categorical")
        _refuse_missing(paths[0], party, pv, "party_column")
        raw_party = first.column(party).to_numpy(zero_copy_only=False)
        party_names = level_strings(raw_party)
        party_idx = codes_of(pv, party_names, f"party column {party!r}")
    else:
        party_names = tuple(Path(p).name for p in paths)
        party_idx = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
    _refuse_missing(", ".join(paths), label, labels, "label_column")
    cats = tuple(c for c in names if kinds[c] == "categorical")
    return RawTable(features, labels, party_idx.astype(np.int64), party_names, cats)


def _refuse_missing(path: str, name: str, values: NDArray, key: str) -> None:
    rows = np.flatnonzero(_missing(values))
    if rows.size:
        raise TableError(
            key,
            f"{path}: column {name!r} has {rows.size} missing cells (first in data "
            f"row {rows[0] + 1}); fill them",
        )


def check_missing(path: str, raw: RawTable, missing: str) -> None:
    """Refuse missing feature cells unless ``missing == "impute"``.

    Raises:
        TableError: naming the first column with missing cells and its row count.
    """
    if missing == "impute":
        return
    for name, values in raw.features.items():
        rows = np.flatnonzero(_missing(values))
        if rows.size:
            raise TableError(
                "missing",
                f"{path}: column {name!r} has {rows.size} rows with a missing cell "
                f"(first: data row {rows[0] + 1}); fill them or set "
                'data.missing = "impute"',
            )


def impute(raws: list[RawTable], train_rows: NDArray[np.int64]) -> None:
    """Fill missing cells in place from the training rows of ``raws[0]``.

    Continuous columns get the median, categorical ones the most frequent level
    (ties: the first in level order) of the non-missing training cells.

    Raises:
        TableError: if a column has no non-missing training cell.
    """
    for name, values in raws[0].features.items():
        masks = [_missing(r.features[name]) for r in raws]
        if not any(m.any() for m in masks):
            continue
        train = values[train_rows][~masks[0][train_rows]]
        if train.size == 0:
            raise TableError(
                "missing", f"column {name!r}: no training row has a value to impute"
            )
        if values.dtype.kind == "f":
            fill: Any = float(np.median(train))
            how = "median"
        else:
            levels, counts = np.unique(train.astype(str), return_counts=True)
            fill, how = str(levels[int(np.argmax(counts))]), "most frequent level"
        for r, m in zip(raws, masks, strict=True):
            r.features[name][m] = fill
        n = sum(int(m.sum()) for m in masks)
        logger.info(
            "column %r: imputed %d missing cells with the %s %r", name, n, how, fill
        )


def check_levels(raws: list[RawTable], label: str) -> tuple[str, ...]:
    """The label classes (sorted levels of the party rows), checking level caps.

    Raises:
        TableError: on a label with < 2 or > MAX_LEVELS classes, a test label not
            among the classes, or a categorical column with > MAX_LEVELS levels.
    """
    classes = level_strings(raws[0].labels.astype(str))
    if len(classes) < 2:
        raise TableError(
            "label_column",
            f"label column {label!r} has one class ({classes[0]!r}) in the party "
            "rows; the GAN and the classifiers need >= 2",
        )
    if len(classes) > MAX_LEVELS:
        raise TableError(
            "label_column",
            f"label column {label!r} has {len(classes)} distinct values (at most "
            f"{MAX_LEVELS} classes); is it a class label?",
        )
    for r in raws[1:]:
        extra = sorted(set(r.labels.tolist()) - set(classes))
        if extra:
            raise TableError(
                "test_file", f"test labels {extra[:3]} never occur in the party rows"
            )
    for name in raws[0].categorical:
        n = len(set().union(*(set(r.features[name].tolist()) for r in raws)) - {None})
        if n > MAX_LEVELS:
            raise TableError(
                "categorical",
                f"column {name!r} has {n} levels (at most {MAX_LEVELS}, docs/cgm.md "
                "§2.5); drop it, bin it, or declare data.categorical without it",
            )
    return classes


def encode_parts(
    features: dict[str, NDArray],
    labels: NDArray[np.int64],
    parts: list[NDArray[np.int64]],
    test_rows: NDArray[np.int64],
    *,
    label: str,
    classes: tuple[str, ...],
    categorical: tuple[str, ...],
    test: tuple[dict[str, NDArray], NDArray[np.int64]] | None = None,
) -> tuple[Parts, tuple[NDArray[np.float32], NDArray[np.int64]], TableSchema]:
    """Encode party and test rows with a schema fitted on the pooled party rows.

    Continuous means/stds come from the party (training) rows; categorical
    levels are those of every row (parties and test), sorted.

    Args:
        features: name -> (n,) raw values of every row.
        labels: (n,) int label codes.
        parts: per party, row indices into ``features``.
        test_rows: test row indices into ``features`` (ignored with ``test``).
        label: the label column's name.
        classes: the label strings.
        categorical: the categorical columns.
        test: a separate test table (features, label codes) instead of rows.

    Returns:
        (parties, test (x, y), schema).
    """
    train = np.concatenate(parts)
    test_feats = (
        {c: v[test_rows] for c, v in features.items()} if test is None else test[0]
    )
    test_y = labels[test_rows] if test is None else test[1]
    cats = {
        c: level_strings(np.concatenate([features[c], test_feats[c]]).astype(str))
        for c in categorical
    }
    schema = TableSchema.fit(
        {c: v[train] for c, v in features.items()},
        label,
        classes,
        categorical=categorical,
        categories=cats,
    )
    x = schema.encode(features)
    parties = [(x[p], labels[p].astype(np.int64)) for p in parts]
    return parties, (schema.encode(test_feats), test_y.astype(np.int64)), schema


def load_table_pool(
    paths: list[str] | tuple[str, ...],
    *,
    label: str,
    party: str,
    categorical: tuple[str, ...] | str = "auto",
    missing: str = "refuse",
    test_file: str = "",
    test_fraction: float = 0.2,
    seed: np.random.SeedSequence | None = None,
) -> TablePool:
    """Read, check, split and encode user tables (docs/cgm.md §2.5).

    Without ``test_file``, each party holds out a stratified ``test_fraction`` of
    each class (party i with the i-th child of ``seed``), logged per party.

    Raises:
        TableError: naming the key and file of the first problem.
    """
    raw = read_tables(paths, label=label, party=party, categorical=categorical)
    _log_kinds(raw, categorical)
    test_raw = None
    if test_file:
        test_raw = read_tables(
            [test_file],
            label=label,
            party=party,
            categorical=categorical,
            with_party=False,
        )
        if sorted(test_raw.features) != sorted(raw.features):
            raise TableError(
                "test_file",
                f"{test_file}: feature columns {list(test_raw.features)} differ from "
                f"the party files' {list(raw.features)}",
            )
        kinds = [
            c
            for c in raw.features
            if (c in raw.categorical) != (c in test_raw.categorical)
        ]
        if kinds:
            raise TableError(
                "test_file", f"{test_file}: column {kinds[0]!r} has another type"
            )
    check_missing(", ".join(paths), raw, missing)
    if test_raw is not None:
        check_missing(test_file, test_raw, missing)
    raws = [raw] if test_raw is None else [raw, test_raw]
    classes = check_levels(raws, label)
    y = codes_of(raw.labels, classes, f"label {label!r}")
    _check_rows(raw, "")
    children = (seed or np.random.SeedSequence()).spawn(len(raw.party_names))
    parts, held = [], []
    for i, name in enumerate(raw.party_names):
        rows = np.flatnonzero(raw.party == i)
        if test_raw is None:
            tr, te = stratified_test_split(y[rows], test_fraction, seed=children[i])
            rows, out = rows[tr], rows[te]
            held.append(out)
            logger.info(
                "party %d (%s): %d of %d rows held out for the test set",
                i,
                name,
                out.size,
                rows.size + out.size,
            )
        parts.append(rows)
    test_rows = np.concatenate(held) if held else np.zeros(0, np.int64)
    sizes = [p.size for p in parts]
    if test_raw is None:
        after = f" after the test split (data.test_fraction = {test_fraction})"
        _check_rows(raw, after, sizes)
        if test_rows.size == 0:
            raise TableError(
                "test_fraction",
                f"holds out no rows (test_fraction = {test_fraction}); raise it or "
                "set data.test_file",
            )
    if missing == "impute":
        impute(raws, np.concatenate(parts))
    test = None
    if test_raw is not None:
        test = (test_raw.features, codes_of(test_raw.labels, classes, "test label"))
    parties, test_xy, schema = encode_parts(
        raw.features,
        y,
        parts,
        test_rows,
        label=label,
        classes=classes,
        categorical=raw.categorical,
        test=test,
    )
    return TablePool(parties, test_xy, schema, raw.party_names)


def _check_rows(raw: RawTable, after: str, sizes: list[int] | None = None) -> None:
    if sizes is None:
        sizes = np.bincount(raw.party, minlength=len(raw.party_names)).tolist()
    if len(sizes) < 2:
        raise TableError(
            "party_column",
            f"the table has one party ({raw.party_names[0]!r}); need >= 2",
        )
    for n, name in zip(sizes, raw.party_names, strict=True):
        if n < MIN_PARTY_ROWS:
            raise TableError(
                "table_files",
                f"party {name!r}: {n} rows{after}; every party needs >= "
                f"{MIN_PARTY_ROWS} (docs/interface.md §5.7)",
            )


def _log_kinds(raw: RawTable, categorical: tuple[str, ...] | str) -> None:
    how = "inferred from the column types" if categorical == "auto" else "declared"
    cont = [c for c in raw.features if c not in raw.categorical]
    logger.info(
        "table columns (%s): categorical %s, continuous %s; %d parties %s",
        how,
        list(raw.categorical),
        cont,
        len(raw.party_names),
        list(raw.party_names),
    )
