"""Tables: the column schema, its encoding, and column-true export (docs/cgm.md §2.5).

A table's features are encoded into one float32 matrix ``x`` of width
:attr:`TableSchema.width`: a continuous column is one z-scored entry
``(value - mean) / std`` (statistics of the pooled training rows), a categorical
column a one-hot span of ``len(categories)`` entries (code k = position k of
``categories``). Labels are int codes into :attr:`TableSchema.classes`. The schema
JSON is stored in every pool HDF5 file (attribute ``table_schema``) and the pool
manifest, so later stages can decode rows (docs/interface.md §5.7).

:func:`write_party_table` writes encoded rows back as a Parquet or CSV table with
the original column names, decoded categories and label strings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from data.atomic import atomic_path

logger = logging.getLogger(__name__)

ColumnKind = Literal["continuous", "categorical"]
#: Most levels a categorical column (or the label) may have (docs/cgm.md §2.5).
MAX_LEVELS = 100
#: Name of the provenance column of exported tables (own / reward rows).
SOURCE_COLUMN = "source"
SCHEMA_ATTR = "table_schema"


@dataclass(frozen=True)
class Column:
    """One table column and its span in the encoded matrix.

    Attributes:
        name: the column's name in the user's table.
        kind: ``"continuous"`` or ``"categorical"``.
        start: first encoded entry of the column.
        size: encoded entries (1 for continuous, ``len(categories)`` otherwise).
        categories: categorical: the level strings, code k = position k.
        mean: continuous: encoded = (value - mean) / std.
        std: continuous: see ``mean`` (> 0).
    """

    name: str
    kind: ColumnKind
    start: int
    size: int
    categories: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "categorical"):
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}")
        want = 1 if self.kind == "continuous" else len(self.categories)
        if self.size != want or want < 1:
            raise ValueError(
                f"column {self.name!r}: size {self.size} but a {self.kind} column "
                f"with {len(self.categories)} categories has {want}"
            )
        if self.kind == "continuous" and not (np.isfinite(self.std) and self.std > 0):
            raise ValueError(f"column {self.name!r}: std must be > 0, got {self.std}")

    @property
    def span(self) -> slice:
        """The column's entries of an encoded row."""
        return slice(self.start, self.start + self.size)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the encoded entries: ``name``, or ``name=level`` per level."""
        if self.kind == "continuous":
            return (self.name,)
        return tuple(f"{self.name}={c}" for c in self.categories)


@dataclass(frozen=True)
class TableSchema:
    """The columns of an encoded table, its label column and class names.

    Attributes:
        columns: the feature columns, in encoded order (spans contiguous from 0).
        label: the label column's name.
        classes: label strings; label code k = ``classes[k]``.

    Example:
        >>> cols = {"age": np.array([20.0, 40.0]), "job": np.array(["b", "a"])}
        >>> s = TableSchema.fit(cols, "y", ["n", "y"])
        >>> s.width, s.feature_names
        (3, ('age', 'job=a', 'job=b'))
        >>> s.encode({"age": np.array([30.0]), "job": np.array(["b"])}).tolist()
        [[0.0, 0.0, 1.0]]
        >>> TableSchema.from_json(s.to_json()) == s
        True
    """

    columns: tuple[Column, ...]
    label: str
    classes: tuple[str, ...]
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = 0
        for c in self.columns:
            if c.start != start:
                raise ValueError(
                    f"column {c.name!r} starts at {c.start}, expected {start}"
                )
            start += c.size
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or self.label in names:
            raise ValueError(f"duplicate names in {names} (label {self.label!r})")
        if len(self.classes) < 1 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct and non-empty: {self.classes}")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    # ----------------------------------------------------------------- properties
    @property
    def width(self) -> int:
        """Encoded row width (sum of the column sizes)."""
        return sum(c.size for c in self.columns)

    @property
    def continuous(self) -> tuple[Column, ...]:
        """The continuous columns, in order."""
        return tuple(c for c in self.columns if c.kind == "continuous")

    @property
    def categorical(self) -> tuple[Column, ...]:
        """The categorical columns, in order."""
        return tuple(c for c in self.columns if c.kind == "categorical")

    @property
    def names(self) -> tuple[str, ...]:
        """The feature column names (label excluded), in order."""
        return tuple(c.name for c in self.columns)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the ``width`` encoded entries (``name`` or ``name=level``)."""
        return tuple(n for c in self.columns for n in c.feature_names)

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Raises:
            KeyError: if there is none.
        """
        return self._by_name[name]

    # ----------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the inverse of :meth:`from_dict`)."""
        cols = []
        for c in self.columns:
            d: dict[str, Any] = {"name": c.name, "kind": c.kind}
            d |= {"start": c.start, "size": c.size}
            if c.kind == "categorical":
                d["categories"] = list(c.categories)
            else:
                d |= {"mean": c.mean, "std": c.std}
            cols.append(d)
        return {"columns": cols, "label": self.label, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableSchema:
        """The schema of :meth:`to_dict`'s output."""
        cols = tuple(
            Column(
                name=c["name"],
                kind=c["kind"],
                start=int(c["start"]),
                size=int(c["size"]),
                categories=tuple(c.get("categories", ())),
                mean=float(c.get("mean", 0.0)),
                std=float(c.get("std", 1.0)),
            )
            for c in d["columns"]
        )
        return cls(cols, str(d["label"]), tuple(d["classes"]))

    def to_json(self) -> str:
        """The schema as a JSON string (floats round-trip exactly)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> TableSchema:
        """The schema of :meth:`to_json`'s output."""
        return cls.from_dict(json.loads(s))

    # ------------------------------------------------------------------- building
    @classmethod
    def fit(
        cls,
        columns: Mapping[str, NDArray],
        label: str,
        classes: tuple[str, ...] | list[str],
        *,
        categorical: tuple[str, ...] | list[str] | None = None,
        categories: Mapping[str, tuple[str, ...]] | None = None,
    ) -> TableSchema:
        """A schema fitted on training columns.

        Args:
            columns: name -> (n,) values, in the table's column order. Numeric
                columns not named in ``categorical`` are continuous (mean and
                population std of these rows; a constant column gets std 1).
            label: the label column's name.
            classes: the label strings.
            categorical: the categorical columns; default: every non-numeric one.
            categories: name -> levels, overriding the sorted levels of the rows
                (e.g. levels seen in the test rows too).

        Returns:
            The schema.
        """
        cols, start = [], 0
        for name, values in columns.items():
            v = np.asarray(values)
            is_cat = (
                name in categorical
                if categorical is not None
                else v.dtype.kind not in "iuf"
            )
            if is_cat:
                levels = (categories or {}).get(name) or level_strings(v)
                cols.append(Column(name, "categorical", start, len(levels), levels))
            else:
                f = v.astype(np.float64)
                std = float(f.std()) if f.size else 1.0
                std = std if std > 0 and np.isfinite(std) else 1.0
                mean = float(f.mean()) if f.size else 0.0
                cols.append(Column(name, "continuous", start, 1, mean=mean, std=std))
            start += cols[-1].size
        return cls(tuple(cols), label, tuple(str(c) for c in classes))

    # ----------------------------------------------------------- encode / decode
    def encode(self, columns: Mapping[str, NDArray]) -> NDArray[np.float32]:
        """Encode feature columns into the (n, width) float32 matrix.

        Args:
            columns: name -> (n,) values for every schema column (extra keys are
                ignored); categorical values are matched as strings.

        Returns:
            (n, width) float32: z-scored continuous entries, one-hot categoricals.

        Raises:
            ValueError: on a missing column, ragged lengths or an unknown level.
        """
        missing = [c.name for c in self.columns if c.name not in columns]
        if missing:
            raise ValueError(f"missing columns {missing}")
        n = len(np.asarray(columns[self.columns[0].name])) if self.columns else 0
        x = np.zeros((n, self.width), dtype=np.float32)
        for c in self.columns:
            v = np.asarray(columns[c.name])
            if v.shape != (n,):
                raise ValueError(f"column {c.name!r}: shape {v.shape}, expected ({n},)")
            if c.kind == "continuous":
                x[:, c.start] = (v.astype(np.float64) - c.mean) / c.std
            else:
                x[np.arange(n), c.start + self._codes(c, v)] = 1.0
        return x

    @staticmethod
    def _codes(c: Column, values: NDArray) -> NDArray[np.int64]:
        return codes_of(as_strings(values), c.categories, f"column {c.name!r}")

    def decode(self, x: NDArray) -> dict[str, NDArray]:
        """Decode encoded rows into named columns.

        Continuous entries are de-standardised (float64); a categorical column is
        the level of the argmax of its span (object array of strings), so soft or
        noisy one-hots (GAN outputs) decode too.

        Args:
            x: (n, width) encoded rows.

        Returns:
            name -> (n,) values, in schema order.

        Raises:
            ValueError: if ``x`` is not (n, width).
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"x must be (n, {self.width}), got shape {x.shape}")
        out: dict[str, NDArray] = {}
        for c in self.columns:
            if c.kind == "continuous":
                out[c.name] = x[:, c.start].astype(np.float64) * c.std + c.mean
            else:
                levels = np.array(c.categories, dtype=object)
                out[c.name] = levels[np.argmax(x[:, c.span], axis=1)]
        return out

    def encode_labels(self, values: NDArray) -> NDArray[np.int64]:
        """Label values (matched as strings) -> int codes into :attr:`classes`.

        Raises:
            ValueError: on a label not in :attr:`classes`.
        """
        return codes_of(as_strings(values), self.classes, f"label {self.label!r}")

    def decode_labels(self, y: NDArray) -> NDArray:
        """Int codes -> label strings (object array)."""
        return np.array(self.classes, dtype=object)[np.asarray(y, dtype=np.int64)]


def schema_of(attrs: Mapping[str, Any]) -> TableSchema | None:
    """The schema stored in HDF5 attributes (``table_schema``), or None.

    Example:
        >>> s = TableSchema.fit({"a": np.array([1.0, 3.0])}, "y", ["no", "yes"])
        >>> schema_of({SCHEMA_ATTR: s.to_json()}) == s, schema_of({})
        (True, None)
    """
    raw = attrs.get(SCHEMA_ATTR)
    return None if raw is None else TableSchema.from_json(raw)


def as_strings(values: NDArray) -> NDArray:
    """Values as an object array of strings; integral floats lose their ``.0``.

    Example:
        >>> as_strings(np.array([1.0, 2.5])).tolist()
        ['1', '2.5']
        >>> as_strings(np.array([True])).tolist()
        ['True']
    """
    v = np.asarray(values)
    if v.dtype.kind == "f":
        return np.array(
            [str(int(a)) if float(a).is_integer() else repr(float(a)) for a in v],
            dtype=object,
        )
    return np.array([str(a) for a in v.tolist()], dtype=object)


def level_strings(values: NDArray) -> tuple[str, ...]:
    """The sorted distinct levels of a column, as strings.

    Numeric columns sort numerically, and so do text columns whose every level
    reads as a number (a CSV category column of codes ``"2"``, ``"10"``; ties of
    equal numbers such as ``"1"`` and ``"1.0"`` break by the string); others sort
    as strings.

    Example:
        >>> level_strings(np.array([10, 9, 10]))
        ('9', '10')
        >>> level_strings(np.array(["10", "9", "2"], dtype=object))
        ('2', '9', '10')
        >>> level_strings(np.array(["b", "10", "a"], dtype=object))
        ('10', 'a', 'b')
    """
    v = np.asarray(values)
    if v.dtype.kind in "iufb":
        return tuple(as_strings(np.unique(v)).tolist())
    levels = set(as_strings(v).tolist())
    try:
        return tuple(sorted(levels, key=lambda s: (float(s), s)))
    except ValueError:
        return tuple(sorted(levels))


def codes_of(strings: NDArray, levels: tuple[str, ...], what: str) -> NDArray[np.int64]:
    """Positions of ``strings`` in ``levels``.

    Raises:
        ValueError: naming ``what`` and the first unknown value.
    """
    index = {s: k for k, s in enumerate(levels)}
    try:
        return np.fromiter((index[s] for s in strings), np.int64, len(strings))
    except KeyError as e:
        raise ValueError(
            f"{what}: value {e.args[0]!r} is not one of its {len(levels)} levels"
        ) from None


def write_party_table(
    path: str | Path,
    x: NDArray,
    y: NDArray,
    schema: TableSchema,
    *,
    source: NDArray | list[str] | None = None,
    fmt: Literal["parquet", "csv"] = "parquet",
) -> Path:
    """Write encoded rows as a column-true table, atomically (docs/cgm.md §2.5).

    The table has the schema's original column names (continuous columns
    de-standardised to float64, categoricals as their level strings), the label
    column as label strings and, when ``source`` is given, a ``source`` column
    (e.g. ``"own"`` / ``"reward"`` per row).

    Args:
        path: destination file.
        x: (n, width) encoded rows (e.g. a reward file's ``x``).
        y: (n,) int label codes.
        schema: the pool's schema (``Pool.schema``).
        source: optional (n,) per-row provenance strings.
        fmt: ``"parquet"`` or ``"csv"``.

    Returns:
        The destination path.

    Raises:
        ValueError: on mismatched lengths, a bad ``fmt`` or a name clash with
            ``source``.

    Example:
        >>> import tempfile, pyarrow.parquet as pq
        >>> s = TableSchema.fit({"a": np.array([1.0, 3.0])}, "y", ["no", "yes"])
        >>> d = tempfile.mkdtemp()
        >>> x, y = np.zeros((2, 1)), np.array([1, 0])
        >>> p = write_party_table(f"{d}/t.parquet", x, y, s)
        >>> pq.read_table(p).to_pydict()
        {'a': [2.0, 2.0], 'y': ['yes', 'no']}
    """
    import pyarrow as pa

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"Argument `fmt` must be 'parquet' or 'csv', got {fmt!r}")
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(f"x has {len(x)} rows but y has shape {y.shape}")
    cols: dict[str, Any] = {}
    for name, values in schema.decode(x).items():
        cols[name] = pa.array(values.tolist(), type=_arrow_type(values))
    cols[schema.label] = pa.array(schema.decode_labels(y).tolist(), type=pa.string())
    if source is not None:
        if SOURCE_COLUMN in cols:
            raise ValueError(f"the table already has a column {SOURCE_COLUMN!r}")
        src = np.asarray(source, dtype=object)
        if src.shape != y.shape:
            raise ValueError(f"source has shape {src.shape}, expected {y.shape}")
        cols[SOURCE_COLUMN] = pa.array([str(s) for s in src], type=pa.string())
    table = pa.table(cols)
    path = Path(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
    return path


def _arrow_type(values: NDArray) -> Any:
    import pyarrow as pa

    return pa.float64() if values.dtype.kind == "f" else pa.string()
