"""Stage manifests, the one JSON encoder and CSV writer (docs/interface.md §5).

A stage (1) verifies its upstream manifests and the sha256 of every file it reads,
(2) deletes its own old manifest, (3) works, (4) writes outputs atomically, and
(5) writes ``manifest.json`` last, atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from data.atomic import OUTPUT_MODE, atomic_path
from data.h5 import package_version
from pipeline import paths
from pipeline.errors import UsageError

#: Every stage in run order, with the key its seed is derived from
#: (docs/interface.md §7). The one stage list: ``cli.STAGES`` is its keys.
STAGE_KEY = {
    "pool": 1,
    "gan": 2,
    "value": 3,
    "reward": 4,
    "sample": 5,
    "evaluate": 6,
    "fl": 7,
    "nash": 8,
    "contract": 9,
}


def stage_seed(root: int, stage: str) -> np.random.SeedSequence:
    """The stage's SeedSequence, derived by name: ``SeedSequence([root, key])``."""
    return np.random.SeedSequence([root, STAGE_KEY[stage]])


def stage_int_seed(root: int, stage: str) -> int:
    """A 32-bit integer seed for torch/Lightning, derived from the stage seed."""
    return int(stage_seed(root, stage).generate_state(1)[0])


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, float):
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        if math.isnan(obj):
            raise ValueError("NaN cannot be written to JSON")
    return obj


def dumps(obj: Any) -> str:
    r"""The one JSON encoder: indent 2, no NaN, ±inf written as ``"inf"``/``"-inf"``.

    Example:
        >>> dumps({"inv_temp": float("inf")})
        '{\n  "inv_temp": "inf"\n}\n'
    """
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_text(path: Path, text: str) -> Path:
    """Write text to a unique temp file in the same folder, then ``os.replace``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    r"""The one CSV convention: a header, then one line per row, ``\n`` line ends.

    Example:
        >>> csv_text(["a", "b"], [{"a": 1, "b": None}])
        'a,b\n1,\n'
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(
    path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Atomically write ``rows`` as CSV (:func:`csv_text`)."""
    return atomic_write_text(path, csv_text(columns, rows))


class CsvStream:
    """Stream CSV rows to ``<path>.partial``; rename it to ``path`` at the end.

    Every row is flushed, so a crash at round 199 keeps rounds 0-198 in the
    ``.partial`` file; only a completed stream appears under the final name.
    Use as a context manager: leaving it by an exception keeps the partial file.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("w", encoding="utf-8", newline="")
        self._writer = csv.DictWriter(
            self._file, fieldnames=list(columns), lineterminator="\n"
        )
        self._writer.writeheader()

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row and flush it to disk."""
        self._writer.writerow(row)
        self._file.flush()

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._file.close()
        if exc_type is None:
            os.chmod(self.partial, OUTPUT_MODE)
            os.replace(self.partial, self.path)


def write_json(path: Path, obj: Any) -> Path:
    """Atomically write ``obj`` with the one encoder."""
    return atomic_write_text(path, dumps(obj))


def read_json(path: Path) -> Any:
    """Read JSON written by :func:`write_json`."""
    with Path(path).open(encoding="utf-8") as f:
        return json.load(f)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entries(run: Path, files: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    """``{name: {path, sha256}}`` with paths relative to the run folder."""
    return {
        name: {"path": paths.relative(run, p), "sha256": sha256(p)}
        for name, p in files.items()
    }


def begin(run: Path, stage: str) -> float:
    """Delete the stage's old manifest (no stale "finished" marker); return t0."""
    paths.manifest(run, stage).unlink(missing_ok=True)
    paths.stage_dir(run, stage).mkdir(parents=True, exist_ok=True)
    return time.perf_counter()


def finish(
    run: Path,
    stage: str,
    *,
    config: Mapping[str, Any],
    seed: Any,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    started: float,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``DIR/<stage>/manifest.json`` last and atomically.

    Args:
        run: the run folder.
        stage: stage name.
        config: the resolved config tables this stage depends on.
        seed: the seeds used (root seed and derived ones).
        inputs: name -> file read.
        outputs: name -> file written.
        started: ``time.perf_counter()`` at the start of the stage.
        metrics: optional small results to copy into the manifest.

    Returns:
        The manifest as a dict.
    """
    body = {
        "stage": stage,
        "config": dict(config),
        "seed": seed,
        "version": package_version(),
        "inputs": file_entries(run, inputs),
        "outputs": file_entries(run, outputs),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if metrics is not None:
        body["metrics"] = dict(metrics)
    write_json(paths.manifest(run, stage), body)
    return body


def require(
    run: Path, stage: str, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """Read an upstream manifest and verify the sha256 of the outputs to be read.

    Args:
        run: the run folder.
        stage: the upstream stage.
        names: output names to verify (default: all outputs).

    Returns:
        The manifest.

    Raises:
        UsageError: if the manifest is missing, or a file is missing or changed.
    """
    mpath = paths.manifest(run, stage)
    if not mpath.is_file():
        raise UsageError(
            f"{mpath}: missing; run `synthreward {stage} --run-dir {run}` first"
        )
    body = read_json(mpath)
    outputs = body.get("outputs", {})
    for name in outputs if names is None else names:
        if name not in outputs:
            raise UsageError(f"{mpath}: lists no output {name!r}; rerun `{stage}`")
        entry = outputs[name]
        fpath = Path(run) / entry["path"]
        if not fpath.is_file():
            raise UsageError(f"{fpath}: missing; rerun `synthreward {stage}`")
        if sha256(fpath) != entry["sha256"]:
            raise UsageError(
                f"{fpath}: changed since the {stage} stage wrote it (sha256 "
                f"mismatch); rerun `synthreward {stage}`"
            )
    return body


def is_finished(run: Path, stage: str, config: Mapping[str, Any]) -> bool:
    """Whether ``all`` may skip the stage.

    True when the stage's manifest exists, its config equals ``config`` and every
    output still matches its sha256.
    """
    try:
        body = require(run, stage)
    except UsageError:
        return False
    return body.get("config") == json.loads(dumps(dict(config)))
