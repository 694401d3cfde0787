"""Stage manifests, the one JSON encoder and CSV writer (docs/interface.md §5).

A stage (1) verifies its upstream manifests and the sha256 of every file it reads,
(2) deletes its own old manifest, (3) works, (4) writes outputs atomically, and
(5) writes ``manifest.json`` last, atomically. Each manifest records the sha256 of
the upstream manifests the stage read (``upstream``), so a stage refuses an upstream
whose own ancestors changed since it ran (docs/interface.md §5.6).
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

from data.atomic import atomic_path, output_mode
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
            os.chmod(self.partial, output_mode())
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


#: (run folder, stage) -> sha256 of the upstream manifests read by `require` since
#: the last `finish` or `forget_reads`; `finish` records them as ``upstream``.
_READS: dict[tuple[str, str], str] = {}


def _run_key(run: Path) -> str:
    return str(Path(run).resolve())


def forget_reads(run: Path) -> None:
    """Forget the upstream manifests read so far for ``run`` (a stage starts)."""
    key = _run_key(run)
    for k in [k for k in _READS if k[0] == key]:
        del _READS[k]


def _rerun(run: Path, stage: str) -> str:
    return f"rerun `synthreward {stage} --run-dir {run}` (or `synthreward all`)"


def read_manifest(run: Path, stage: str) -> tuple[dict[str, Any], str]:
    """Read and parse a stage's manifest; return it with the sha256 of its bytes.

    Raises:
        UsageError: if it is missing, truncated or not a manifest (naming the file
            and the stage to rerun).
    """
    mpath = paths.manifest(run, stage)
    try:
        raw = mpath.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"{mpath}: missing; run `synthreward {stage} --run-dir {run}` first"
        ) from None
    except OSError as e:
        raise UsageError(
            f"{mpath}: unreadable ({e.strerror}); {_rerun(run, stage)}"
        ) from e
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(
            f"{mpath}: truncated or not JSON ({e}); {_rerun(run, stage)}"
        ) from e
    outputs = body.get("outputs") if isinstance(body, dict) else None
    upstream = body.get("upstream", {}) if isinstance(body, dict) else None
    if not (
        isinstance(outputs, dict)
        and isinstance(upstream, dict)
        and all(
            isinstance(e, dict) and {"path", "sha256"} <= e.keys()
            for e in outputs.values()
        )
    ):
        raise UsageError(f"{mpath}: not a stage manifest; {_rerun(run, stage)}")
    return body, hashlib.sha256(raw).hexdigest()


def _manifest_sha(run: Path, stage: str) -> str | None:
    try:
        return sha256(paths.manifest(run, stage))
    except OSError:
        return None


def _check_ancestors(run: Path, stage: str, body: Mapping[str, Any]) -> None:
    """Raise if an upstream manifest recorded by ``stage`` (transitively) changed."""
    seen: set[str] = set()
    todo = [(stage, body)]
    while todo:
        name, current = todo.pop()
        for up, recorded in sorted(current.get("upstream", {}).items()):
            if _manifest_sha(run, up) != recorded:
                raise UsageError(
                    f"{paths.manifest(run, name)}: stale: the {up} stage was rerun "
                    f"or removed after the {name} stage read it; {_rerun(run, name)}"
                )
            if up not in seen:
                seen.add(up)
                todo.append((up, read_manifest(run, up)[0]))


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

    ``upstream`` records the sha256 of every upstream manifest read through
    :func:`require` since the stage started (docs/interface.md §5.6).

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
    key = _run_key(run)
    upstream = {s: h for (r, s), h in sorted(_READS.items()) if r == key and s != stage}
    body = {
        "stage": stage,
        "config": dict(config),
        "seed": seed,
        "version": package_version(),
        "upstream": upstream,
        "inputs": file_entries(run, inputs),
        "outputs": file_entries(run, outputs),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if metrics is not None:
        body["metrics"] = dict(metrics)
    write_json(paths.manifest(run, stage), body)
    forget_reads(run)
    return body


def require(
    run: Path, stage: str, names: Iterable[str] | None = None, *, record: bool = True
) -> dict[str, Any]:
    """Read an upstream manifest and verify it and the outputs to be read.

    Verifies the sha256 of the outputs named, and that every manifest the upstream
    stage recorded as ``upstream`` (and theirs, transitively) is unchanged.

    Args:
        run: the run folder.
        stage: the upstream stage.
        names: output names to verify (default: all outputs).
        record: remember the manifest's sha256 for the reading stage's
            ``upstream`` (see :func:`finish`).

    Returns:
        The manifest.

    Raises:
        UsageError: if the manifest is missing, truncated or stale, or a file is
            missing or changed.
    """
    mpath = paths.manifest(run, stage)
    body, digest = read_manifest(run, stage)
    outputs = body["outputs"]
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
    _check_ancestors(run, stage, body)
    if record:
        _READS[(_run_key(run), stage)] = digest
    return body


def _inputs_unchanged(run: Path, body: Mapping[str, Any]) -> bool:
    """Whether every recorded input (user files included) still has its sha256."""
    for entry in body.get("inputs", {}).values():
        try:
            if sha256(Path(run) / entry["path"]) != entry["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def is_finished(run: Path, stage: str, config: Mapping[str, Any]) -> bool:
    """Whether ``all`` may skip the stage.

    True when the stage's manifest is readable and records ``upstream``, its config
    equals ``config``, every output still matches its sha256, every input (the
    user's party, test and candidates files included) still matches the sha256
    recorded when the stage ran, and no upstream manifest changed since
    (docs/interface.md §5.6).
    """
    try:
        body = require(run, stage, record=False)
    except UsageError:
        return False
    return (
        "upstream" in body
        and body.get("config") == json.loads(dumps(dict(config)))
        and _inputs_unchanged(run, body)
    )
