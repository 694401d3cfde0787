"""Sources of the ``pool`` stage: read and validate, nothing written (docs/cgm.md §2).

Each builder returns a :class:`Built`; every problem is a :class:`UsageError`
naming the ``[data]`` key, raised before the stage writes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from data.adult import load_adult_pool
from data.gmm_authors import authors_pool
from data.sources import (
    check_classes,
    check_party_rows,
    hold_out_per_party,
    layout_of,
    load_party_files,
    load_source,
    load_xy,
    stratified_test_split,
)
from data.splits import split_indices
from data.table_source import TableError, TablePool, load_table_pool
from data.tables import SCHEMA_ATTR
from pipeline.config import RunConfig
from pipeline.errors import UsageError
from valuation.limits import MAX_EXACT_PARTIES

logger = logging.getLogger(__name__)

T = TypeVar("T")
XY = tuple[NDArray[np.float32], NDArray[np.int64]]


@dataclass(frozen=True)
class Built:
    """A validated pool, ready to write.

    Attributes:
        parties: per party (x, y).
        test: the test set (x, y).
        n_classes: C.
        layout: ``"image"`` or ``"vector"``.
        meta: extra attributes of every pool file (e.g. ``table_schema``).
        metrics: extra entries of the pool manifest's metrics.
    """

    parties: list[XY]
    test: XY
    n_classes: int
    layout: str
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def _checked(key: str, thunk: Callable[[], T], hint: str = "") -> T:
    """``thunk()``, a ValueError becoming a UsageError that names ``[data] key``."""
    try:
        return thunk()
    except TableError as e:
        raise UsageError(f"[data] {e.key}: {e}{hint}") from e
    except ValueError as e:
        raise UsageError(f"[data] {key}: {e}{hint}") from e


def _check_test(y_test: np.ndarray, test_fraction: float) -> None:
    if y_test.size == 0:
        raise UsageError(
            f"[data] test_fraction: holds out no rows (test_fraction = "
            f"{test_fraction}); raise it or set data.test_file"
        )


def _from_builtin(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    d = cfg.data
    src_ss, test_ss, split_ss = seeds
    src = load_source(d.source, seed=src_ss, gmm_size=d.gmm_size)
    train, test = stratified_test_split(src.y, d.test_fraction, seed=test_ss)
    _check_test(test, d.test_fraction)
    kw = {"party_size": d.party_size, "n_classes": src.n_classes, "seed": split_ss}
    kw["dirichlet_alpha"] = d.dirichlet_alpha
    y_tr = src.y[train]
    parts = _checked("split", lambda: split_indices(y_tr, d.n_parties, d.split, **kw))
    names = [f"party {i}" for i in range(len(parts))]
    sizes = [len(p) for p in parts]
    hint = "; lower data.n_parties or give the parties more rows"
    _checked("split", lambda: check_party_rows(sizes, names), hint)
    xs, ys = src.x[train], src.y[train]
    parties = [(xs[p], ys[p]) for p in parts]
    test_xy = (src.x[test], src.y[test])
    return Built(parties, test_xy, src.n_classes, src.layout, src.meta)


def _from_files(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    d, names = cfg.data, list(cfg.data.party_files)
    parties = _checked("party_files", lambda: load_party_files(names))
    test = _checked("test_file", lambda: load_xy(d.test_file)) if d.test_file else None
    if test is not None and test[0].shape[1:] != parties[0][0].shape[1:]:
        raise UsageError(
            f"[data] test_file: {d.test_file}: per-sample shape {test[0].shape[1:]} "
            f"differs from the party files' {parties[0][0].shape[1:]}"
        )
    after = ""
    if test is None:
        parties, test = hold_out_per_party(parties, d.test_fraction, seed=seeds[1])
        after = f" left after the test split (data.test_fraction = {d.test_fraction})"
        _check_test(test[1], d.test_fraction)
    sizes, labels = [len(y) for _, y in parties], [y for _, y in [*parties, test]]
    _checked("party_files", lambda: check_party_rows(sizes, names, after))
    files = [*names, d.test_file or names[0]]
    n_classes = _checked(
        "party_files", lambda: check_classes(labels, files, n_parties=len(parties))
    )
    return Built(parties, test, n_classes, layout_of(parties[0][0]))


def _table_built(pool: TablePool, meta: dict[str, Any]) -> Built:
    """A table pool with its schema in every file and in the manifest (§2.5)."""
    schema = pool.schema
    names = list(pool.party_names)
    meta = {SCHEMA_ATTR: schema.to_json(), "party_names": names, **meta}
    metrics = {SCHEMA_ATTR: schema.to_dict(), "party_names": names}
    n_classes = len(schema.classes)
    return Built(pool.parties, pool.test, n_classes, "vector", meta, metrics)


def _from_table(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    d = cfg.data
    pool = _checked(
        "table_files",
        lambda: load_table_pool(
            d.table_files,
            label=d.label_column,
            party=d.party_column,
            categorical=d.categorical,
            missing=d.missing,
            test_file=d.test_file,
            test_fraction=d.test_fraction,
            seed=seeds[1],
        ),
    )
    return _table_built(pool, {})


def _from_adult(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    d = cfg.data
    hint = "; lower data.n_parties or give the parties more rows"
    try:
        pool, meta = load_adult_pool(
            d.adult_group,
            n_parties=d.n_parties,
            split=d.split,
            party_size=d.party_size,
            test_fraction=d.test_fraction,
            dirichlet_alpha=d.dirichlet_alpha,
            seed=seeds[0],
        )
    except FileNotFoundError as e:
        raise UsageError(f"[data] source: {e}") from e
    except ValueError as e:
        raise UsageError(f"[data] split: {e}{hint}") from e
    sizes = [len(y) for _, y in pool.parties]
    _checked("split", lambda: check_party_rows(sizes, list(pool.party_names)), hint)
    return _table_built(pool, meta)


def _from_gmm_authors(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    """The authors' simulated draw (``data.gmm_draw = "authors"``, docs/cgm.md §2.1)."""
    d = cfg.data
    args = (d.split, d.n_parties, d.party_size, d.test_fraction)
    parties, test, meta = _checked("gmm_draw", lambda: authors_pool(*args, seeds[1]))
    return Built(parties, test, len(meta["gmm_means"]), "vector", meta)


def build_pool(cfg: RunConfig, seeds: list[np.random.SeedSequence]) -> Built:
    """Read, validate and split the configured source (nothing written).

    Args:
        cfg: the run config (reads ``[data]``).
        seeds: the pool stage's source, test and split seeds.

    Raises:
        UsageError: naming the ``[data]`` key, on any problem.
    """
    if cfg.data.source == "gmm" and cfg.data.gmm_draw == "authors":
        return _from_gmm_authors(cfg, seeds)
    build = {"files": _from_files, "table": _from_table, "adult": _from_adult}
    built = build.get(cfg.data.source, _from_builtin)(cfg, seeds)
    _check_party_count(cfg, len(built.parties))
    return built


def _check_party_count(cfg: RunConfig, n: int) -> None:
    """The config check of ``value.shapley`` for a count only the data knows.

    With one table file the party column sets N, so the config checks cannot
    check N against exact Shapley; this does, before the pool stage writes.
    """
    if cfg.value.shapley == "exact" and n > MAX_EXACT_PARTIES:
        raise UsageError(
            f'[value] shapley: "exact" allows at most {MAX_EXACT_PARTIES} parties, '
            f'the data has {n}; set value.shapley = "permutation"'
        )
