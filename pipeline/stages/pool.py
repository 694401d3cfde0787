"""The ``pool`` stage: party files and the held-out test set (docs/cgm.md §2).

Reads a built-in source or the user's party files, holds out a stratified test
set, splits the training pool into parties and writes ``pool/party_<i>.h5`` and
``pool/test.h5``. Everything is validated before the first file is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data.h5 import write_h5
from pipeline import manifest, paths
from pipeline.config import RunConfig
from pipeline.pool_sources import build_pool

logger = logging.getLogger(__name__)

TABLES = ("data",)


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
    built = build_pool(cfg, [src_ss, test_ss, split_ss])
    parties, test, n_classes = built.parties, built.test, built.n_classes
    layout, meta = built.layout, built.meta
    t0 = manifest.begin(run_dir, "pool")
    for stale in paths.stale_pool_parties(run_dir, len(parties)):
        stale.unlink()
        logger.info("removed %s, a party of an earlier, larger pool", stale)
    split = d.source if d.source in ("files", "table") else d.split
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
    inputs |= {f"table_file_{i}": Path(p) for i, p in enumerate(d.table_files)}
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
        metrics=rows | {"n_classes": n_classes} | built.metrics,
    )
    return outputs
