"""The generic TOML → dataclass loader of the config (docs/interface.md §4).

``pipeline/config.py`` is the schema: one frozen dataclass per table, each field
typed and, where it has a range, annotated with a :class:`Bounds` beside it
(``n_parties: Annotated[int, Bounds(ge=2)] = 5``). This module knows nothing of
the tables: it walks any root dataclass whose dataclass-typed fields are tables.

Loading refuses unknown tables and keys (naming the nearest valid one), checks
types (a bool is never a number; an int is accepted for a float; lists become
tuples; every integer must fit in 64 bits), checks every field's bounds once (a
float must be finite unless its bounds opt out, docs/interface.md §4.5), then
constructs the dataclass, whose ``__post_init__`` keeps only the checks that span
keys. ``--set table.key=value``
and ``--seed`` edit the raw dict first, so overrides pass the same checks. Every
message reads ``[table] key: expected ..., got ...``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import UsageError

__all__ = [
    "Bounds",
    "ConfigError",
    "build",
    "fail",
    "load",
    "parse_set",
    "read_toml",
]

#: Every integer key must fit in a signed 64-bit integer (numpy, HDF5 attributes
#: and seeds all store int64); seeds are also ``< 2**63`` (docs/interface.md §4.5).
INT64_END = 2**63


class ConfigError(UsageError):
    """A config value is invalid; the message names ``[table] key``."""


def fail(table: str, key: str, expected: str, got: Any) -> typing.NoReturn:
    """Raise the one config message: ``[table] key: expected ..., got ...``."""
    raise ConfigError(f"[{table}] {key}: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class Bounds:
    """The range of a numeric field (or of each item of a list field).

    NaN is outside every range. A float must be finite unless ``finite=False``
    is declared beside a key where ``inf`` means something (``sample.inv_temp``:
    inf = greedy). A string value (``"auto"``) is never range-checked.

    Attributes:
        ge: value >= ge.
        gt: value > gt.
        le: value <= le.
        lt: value < lt.
        finite: refuse ±inf (the default; ``False`` where inf is meaningful).
        also: values accepted outside the range (``0`` = inherit).
        min_len: a list needs at least this many items.
        unique: a list must not repeat an item.
        expected: the message text, when the generated one does not fit.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True
    also: tuple[Any, ...] = ()
    min_len: int = 0
    unique: bool = False
    expected: str | None = None

    def admits(self, value: Any) -> bool:
        """Whether one scalar lies in the range (strings always do)."""
        if isinstance(value, str) or value in self.also:
            return True
        if isinstance(value, float) and (
            math.isnan(value) or (self.finite and math.isinf(value))
        ):
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def text(self, hint: Any) -> str:
        """The ``expected ...`` text for a field of type ``hint``.

        Example:
            >>> Bounds(ge=0, lt=1).text(float)
            'a number in [0, 1)'
            >>> Bounds(ge=1).text(int | Literal["auto"])
            'an integer >= 1 or "auto"'
            >>> Bounds(gt=0).text(float)
            'a finite number > 0'
        """
        if self.expected is not None:
            return self.expected
        args = _members(hint)
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        kind = "an integer" if int in args else "a number"
        if kind == "a number" and self.finite and (low is None or high is None):
            kind = "a finite number"
        if low is not None and high is not None:
            left = "[" if self.ge is not None else "("
            right = "]" if self.le is not None else ")"
            text = f"{kind} in {left}{_num(low)}, {_num(high)}{right}"
        elif low is not None:
            text = f"{kind} {'>=' if self.ge is not None else '>'} {_num(low)}"
        else:
            text = f"{kind} {'<=' if self.le is not None else '<'} {_num(high)}"
        if any(typing.get_origin(a) is Literal for a in args):
            text += ' or "auto"'
        return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _members(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union (or the hint itself)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return typing.get_args(hint)
    return (hint,)


def check_bounds(table: str, key: str, value: Any, hint: Any, bounds: Bounds) -> None:
    """Raise ConfigError unless ``value`` (or every item of a list) is in range.

    Example:
        >>> check_bounds("t", "k", 1, int, Bounds(ge=2))
        Traceback (most recent call last):
        ...
        pipeline.config_loader.ConfigError: [t] k: expected an integer >= 2, got 1
    """
    if isinstance(value, tuple):
        ok = (
            len(value) >= bounds.min_len
            and not (bounds.unique and len(set(value)) != len(value))
            and all(bounds.admits(v) for v in value)
        )
        got: Any = list(value)
    else:
        ok, got = bounds.admits(value), value
    if not ok:
        fail(table, key, bounds.text(hint), got)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
    return names[hint]


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` converted to ``hint``, or raise TypeError."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if isinstance(value, str) and value in typing.get_args(hint):
            return value
        raise TypeError
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError
        return tuple(_coerce(v, typing.get_args(hint)[0]) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if value in ("inf", "+inf"):
            return math.inf
        raise TypeError
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def _nearest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_int64(table: str, key: str, value: Any) -> None:
    """Refuse an integer (or list item) outside the signed 64-bit range.

    Example:
        >>> _check_int64("gan", "epochs", 2**64)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pipeline.config_loader.ConfigError: [gan] epochs: expected an integer below...
    """
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, int) and not -INT64_END <= v < INT64_END:
            got = list(value) if isinstance(value, tuple) else value
            fail(table, key, "an integer below 2**63 (a 64-bit integer)", got)


def _checked(cls: type, table: str, kwargs: dict[str, Any]) -> Any:
    """Check every field's bounds (given or default), then construct ``cls``.

    A float field without a declared :class:`Bounds` still gets the default one
    (any finite number).
    """
    hints = typing.get_type_hints(cls)
    extras = typing.get_type_hints(cls, include_extras=True)
    defaults = cls()
    for f in dataclasses.fields(cls):
        declared = [
            b
            for b in getattr(extras[f.name], "__metadata__", ())
            if isinstance(b, Bounds)
        ]
        if not declared and _has_float(hints[f.name]):
            declared = [Bounds()]
        value = kwargs.get(f.name, getattr(defaults, f.name))
        for bounds in declared:
            check_bounds(table, f.name, value, hints[f.name], bounds)
        _check_int64(table, f.name, value)
    return cls(**kwargs)


def _has_float(hint: Any) -> bool:
    """Whether ``hint`` admits a float (directly, in a union or as list items)."""
    if hint is float:
        return True
    return any(_has_float(a) for a in typing.get_args(hint) if a is not hint)


def _build_table(cls: type, table: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{table}]: expected a table, got {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(
                f"[{table}] {key}: unknown key{_nearest(key, valid)}; valid keys: "
                + ", ".join(valid)
            )
        try:
            kwargs[key] = _coerce(value, hints[key])
        except TypeError:
            fail(table, key, _type_name(hints[key]), value)
    return _checked(cls, table, kwargs)


def build(root: type, raw: dict[str, Any]) -> Any:
    """Validate a raw TOML dict and build the ``root`` dataclass.

    Fields of ``root`` whose type is a dataclass are tables; the others are root
    keys (reported as ``[root] key``).

    Args:
        root: the root config dataclass.
        raw: parsed TOML (tables as nested dicts).

    Returns:
        The frozen ``root`` instance.

    Raises:
        ConfigError: naming the table and key of the first problem found.
    """
    hints = typing.get_type_hints(root)
    names = [f.name for f in dataclasses.fields(root)]
    tables = {n: hints[n] for n in names if dataclasses.is_dataclass(hints[n])}
    valid = [n for n in names if n not in tables] + list(tables)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in tables:
            kwargs[key] = _build_table(tables[key], key, value)
        elif key in names:
            try:
                kwargs[key] = _coerce(value, hints[key])
            except TypeError:
                fail("root", key, _type_name(hints[key]), value)
        else:
            raise ConfigError(
                f"[{key}]: unknown table{_nearest(key, valid)}; valid: "
                + ", ".join(valid)
            )
    return _checked(root, "root", kwargs)


def parse_set(raw: str) -> tuple[list[str], Any]:
    """Parse one ``--set table.key=value`` (value as TOML, bare words as strings).

    Args:
        raw: the override text.

    Returns:
        (key path, value).

    Raises:
        ConfigError: if there is no ``=`` or the key is empty.

    Example:
        >>> parse_set("value.lengthscale=1.5")
        (['value', 'lengthscale'], 1.5)
        >>> parse_set("data.source=gmm")
        (['data', 'source'], 'gmm')
    """
    key, sep, text = raw.partition("=")
    path = [p.strip() for p in key.strip().split(".")]
    if not sep or not all(path):
        raise ConfigError(f"--set {raw!r}: expected table.key=value")
    try:
        value = tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return path, value


def load(
    root: type,
    path: str | Path | None,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
) -> Any:
    """Read a TOML file, apply ``--set`` overrides and ``--seed``, then validate.

    Args:
        root: the root config dataclass.
        path: the TOML file, or None for the defaults.
        overrides: ``table.key=value`` strings.
        seed: replaces the root ``seed`` when given.

    Returns:
        The frozen ``root`` instance.

    Raises:
        ConfigError: on an unreadable file, bad TOML, or any invalid value.
    """
    raw = {} if path is None else read_toml(Path(path))
    for item in overrides:
        keys, value = parse_set(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k} is not a table")
        node[keys[-1]] = value
    if seed is not None:
        if not 0 <= seed < INT64_END:
            raise ConfigError(
                f"--seed: expected an integer >= 0 and < 2**63 (the root seed), got "
                f"{seed}"
            )
        raw["seed"] = seed
    return build(root, raw)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the ``--config`` file, refusing what is not a readable UTF-8 TOML file.

    Args:
        path: the file.

    Returns:
        The parsed tables.

    Raises:
        ConfigError: one line naming the file: missing, a folder, unreadable, not
            UTF-8 text, or invalid TOML.
    """
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"--config {path}: file not found") from e
    except IsADirectoryError as e:
        raise ConfigError(f"--config {path}: is a folder, not a TOML file") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"--config {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at "
            f"offset {e.start}); TOML files are UTF-8"
        ) from e
    except tomllib.TOMLDecodeError as e:
        detail = " ".join(str(e).split())
        raise ConfigError(f"--config {path}: invalid TOML ({detail})") from e
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read ({e.strerror})") from e
