"""The ``pool`` stage: party files and the held-out test set (docs/cgm.md §2).

Reads a built-in source or the user's party files, holds out a stratified test
set, splits the training pool into parties and writes ``pool/party_<i>.h5`` and
``pool/test.h5``. Everything is validated before the first file is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from data.h5 import write_h5
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
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.errors import UsageError

logger = logging.getLogger(__name__)

TABLES = ("data",)
T = TypeVar("T")


def _checked(key: str, thunk: Callable[[], T], hint: str = "") -> T:
    """``thunk()``, a ValueError becoming a UsageError that names ``[data] key``."""
    try:
        return thunk()
    except ValueError as e:
        raise UsageError(f"[data] {key}: {e}{hint}") from e


def _check_test(y_test: np.ndarray, test_fraction: float) -> None:
    if y_test.size == 0:
        raise UsageError(
            f"[data] test_fraction: holds out no rows (test_fraction = "
            f"{test_fraction}); raise it or set data.test_file"
        )


def _from_builtin(cfg: RunConfig, seeds: list[np.random.SeedSequence]):
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
    return parties, (src.x[test], src.y[test]), src.n_classes, src.layout, src.meta


def _from_files(cfg: RunConfig, seeds: list[np.random.SeedSequence]):
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
    return parties, test, n_classes, layout_of(parties[0][0]), {}


def run(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> dict[str, Path]:
    """Write the party files and the test set.

    Args:
        cfg: the run config (reads ``[data]``).
        run_dir: the run folder.
        progress: unused (the stage is fast).

    Returns:
        Output name -> path.

    Raises:
        UsageError: on unreadable user files or a split impossible for the data.
    """
    d = cfg.data
    src_ss, test_ss, split_ss, _ = manifest.stage_seed(cfg.seed, "pool").spawn(4)
    build = _from_files if d.source == "files" else _from_builtin
    parties, test, n_classes, layout, meta = build(cfg, [src_ss, test_ss, split_ss])
    t0 = manifest.begin(run_dir, "pool")
    for stale in paths.stale_pool_parties(run_dir, len(parties)):
        stale.unlink()
        logger.info("removed %s, a party of an earlier, larger pool", stale)
    split = "files" if d.source == "files" else d.split
    common = {"n_parties": len(parties), "source": d.source, "split": split}
    common |= {"n_classes": n_classes, "layout": layout, "seed": cfg.seed, **meta}
    outputs: dict[str, Path] = {}
    for i, (x, y) in enumerate(parties):
        outputs[f"party_{i}"] = write_h5(
            paths.pool_party(run_dir, i),
            {"x": x.astype(np.float32), "y": y.astype(np.int64)},
            {"party_id": i, **common},
        )
        counts = np.bincount(y, minlength=n_classes).tolist()
        logger.info("party %d: %d rows, class counts %s", i, len(y), counts)
    outputs["test"] = write_h5(
        paths.pool_test(run_dir),
        {"x": test[0].astype(np.float32), "y": test[1].astype(np.int64)},
        {k: v for k, v in common.items() if k != "n_parties"},
    )
    inputs = {f"party_file_{i}": Path(p) for i, p in enumerate(d.party_files)}
    inputs |= {"test_file": Path(d.test_file)} if d.test_file else {}
    rows = {"party_sizes": [len(y) for _, y in parties], "n_test": len(test[1])}
    manifest.finish(
        run_dir,
        "pool",
        config=cfg.tables(*TABLES),
        seed={"root": cfg.seed, "stage_key": manifest.STAGE_KEY["pool"]},
        inputs=inputs,
        outputs=outputs,
        started=t0,
        metrics=rows | {"n_classes": n_classes},
    )
    return outputs
