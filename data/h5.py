"""HDF5 I/O for every run-folder file (docs/interface.md "Files in the run folder").

All HDF5 code of the project lives here: atomic writes (temporary name in the same
folder, then ``os.replace``), the schema of each file kind, and the reader of user
party files (HDF5 or NPZ with datasets ``x`` and ``y``).
"""

from __future__ import annotations

import json
import logging
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from data.atomic import atomic_path

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def package_version() -> str:
    """The installed synthreward version, or ``"0+unknown"`` from a bare checkout."""
    try:
        return metadata.version("synthreward")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class FileSchema:
    """Datasets and attributes a run-folder HDF5 file must carry.

    Attributes:
        kind: short name used in error messages.
        datasets: names of required datasets.
        attrs: names of required attributes (besides schema_version, created_by).
    """

    kind: str
    datasets: tuple[str, ...]
    attrs: tuple[str, ...]


POOL_PARTY = FileSchema(
    "pool party file",
    ("x", "y"),
    ("party_id", "n_parties", "source", "split", "n_classes", "layout", "seed"),
)
POOL_TEST = FileSchema(
    "pool test file", ("x", "y"), ("source", "n_classes", "layout", "seed")
)
CANDIDATES = FileSchema(
    "candidates file",
    ("x", "y"),
    ("generator", "n_candidates", "label_source", "seed"),
)
REWARD = FileSchema(
    "reward file",
    ("x", "y", "features", "candidate_index", "value_trace"),
    (
        "party_id",
        "shapley",
        "alpha",
        "reward_value",
        "achieved_value",
        "inv_temp",
        "seed",
        "lengthscale",
        "stop_reason",
        "start_value",
        "best_value",
        "n_rewards",
    ),
)


def _to_attr(name: str, value: Any) -> Any:
    if value is None:
        raise TypeError(f"HDF5 attribute `{name}` is None (h5py cannot store it)")
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return value


def write_h5(
    path: str | Path,
    datasets: Mapping[str, NDArray],
    attrs: Mapping[str, Any] | None = None,
    *,
    groups: Mapping[str, Mapping[str, NDArray]] | None = None,
) -> Path:
    """Write datasets and attributes atomically (temp file, then ``os.replace``).

    Every file also gets ``schema_version`` and ``created_by``. Lists, tuples and
    dicts in ``attrs`` are stored as JSON strings; bools as 0/1.

    Args:
        path: destination file.
        datasets: name -> array.
        attrs: name -> scalar or string (never None).
        groups: optional group name -> {dataset name -> array}.

    Returns:
        The destination path.

    Raises:
        TypeError: if an attribute is None.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arr in datasets.items():
            f.create_dataset(name, data=np.asarray(arr))
        for gname, members in (groups or {}).items():
            g = f.create_group(gname)
            for name, arr in members.items():
                g.create_dataset(name, data=np.asarray(arr))
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created_by"] = package_version()
        for name, value in (attrs or {}).items():
            f.attrs[name] = _to_attr(name, value)
    return path


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: str | Path) -> dict[str, Any]:
    """All attributes of an HDF5 file as plain Python values.

    Args:
        path: the file.

    Returns:
        name -> value (strings decoded, numpy scalars as Python scalars).
    """
    with h5py.File(path, "r") as f:
        return {k: _decode(v) for k, v in f.attrs.items()}


def read_h5(
    path: str | Path,
    schema: FileSchema | None = None,
    *,
    names: tuple[str, ...] | None = None,
) -> tuple[dict[str, NDArray], dict[str, Any]]:
    """Read datasets and attributes, checking the schema when given.

    Args:
        path: the file.
        schema: expected datasets and attributes; also checks ``schema_version``.
        names: datasets to read (default: every top-level dataset).

    Returns:
        (datasets, attrs).

    Raises:
        ValueError: if the file is missing, unreadable, or does not match ``schema``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _decode(v) for k, v in f.attrs.items()}
            if schema is not None:
                check_schema(path, f, schema)
            wanted = names or tuple(k for k in f if isinstance(f[k], h5py.Dataset))
            data = {k: f[k][()] for k in wanted}
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
    return data, attrs


def check_schema(path: Path, f: h5py.File, schema: FileSchema) -> None:
    """Raise ValueError naming the file when it does not match ``schema``."""
    version = f.attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: {schema.kind} has schema_version {version!r}, expected "
            f"{SCHEMA_VERSION}; rerun the stage that wrote it"
        )
    for name in schema.datasets:
        if name not in f:
            raise ValueError(f"{path}: {schema.kind} lacks dataset `{name}`")
    for name in schema.attrs:
        if name not in f.attrs:
            raise ValueError(f"{path}: {schema.kind} lacks attribute `{name}`")


def read_group(path: str | Path, group: str) -> dict[str, NDArray]:
    """Read every dataset of one HDF5 group."""
    with h5py.File(path, "r") as f:
        return {k: v[()] for k, v in f[group].items()}


#: dtype kinds a user's ``x``/``y`` may hold: bool, signed, unsigned, float.
NUMERIC_KINDS = "biuf"
#: What a bad user file is refused with (and nothing else escapes the reader).
_READ_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    KeyError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def check_numeric(path: str | Path, name: str, dtype: np.dtype) -> None:
    """Refuse a member that does not hold plain real numbers (strings, objects...).

    Raises:
        ValueError: naming the file and the member.
    """
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise ValueError(
            f"{path}: `{name}` must hold real numbers, got dtype {dtype}; store a "
            "plain numeric array"
        )


def local_dataset(f: h5py.File, name: str, path: str | Path) -> h5py.Dataset | None:
    """The dataset ``name`` of a user's HDF5 file, without reading its bytes.

    Only a dataset stored inside the file itself is accepted: external links, soft
    links, groups, virtual datasets and datasets with external raw storage are
    refused, so reading never pulls bytes of another file (docs/interface.md §5.7).

    Args:
        f: the open file.
        name: the member's name.
        path: the file, for messages.

    Returns:
        The dataset, or None when there is no member ``name``.

    Raises:
        ValueError: naming the file and the member.
    """
    link = f.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
        raise ValueError(
            f"{path}: `{name}` is {kind} link; store the data in the file itself"
        )
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: `{name}` must be a dataset, got an HDF5 group")
    if obj.is_virtual or obj.external:
        where = "a virtual dataset" if obj.is_virtual else "stored in external files"
        raise ValueError(
            f"{path}: `{name}` is {where}; store the data in the file itself"
        )
    if obj.shape is None:
        raise ValueError(f"{path}: `{name}` holds no data (empty dataspace)")
    check_numeric(path, name, obj.dtype)
    return obj


def _read_h5_xy(path: Path) -> dict[str, NDArray]:
    with h5py.File(path, "r") as f:
        members = {k: local_dataset(f, k, path) for k in ("x", "y")}
        return {k: d[()] for k, d in members.items() if d is not None}


def _read_npz_xy(path: Path) -> dict[str, NDArray]:
    arrays = {}
    z = np.load(path, allow_pickle=False)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError("a single .npy array, not an NPZ archive")
    with z:
        for k in ("x", "y"):
            if k not in z.files:
                continue
            arr = z[k]  # allow_pickle=False: object arrays raise, never unpickle
            if not isinstance(arr, np.ndarray):
                raise ValueError(f"member `{k}` is not a .npy array")
            check_numeric(path, k, arr.dtype)
            arrays[k] = arr
    return arrays


def read_xy_file(
    path: str | Path, *, require_y: bool = True
) -> tuple[NDArray, NDArray | None]:
    """Read a user data file (HDF5 or NPZ) holding datasets ``x`` and ``y``.

    Members must be plain numeric arrays stored in the file itself (HDF5 links,
    external or virtual storage and NPZ object arrays are refused before their
    bytes are read); any unreadable file gives one ``ValueError`` naming it.

    Args:
        path: ``.h5``/``.hdf5`` or ``.npz`` file.
        require_y: refuse a file without ``y``; when False a missing ``y`` is None
            (unlabelled candidates).

    Returns:
        (x, y) as stored.

    Raises:
        ValueError: if the file is missing, of an unknown type, malformed, or lacks
            x (or y).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        reader, kind = _read_h5_xy, "HDF5"
    elif suffix == ".npz":
        reader, kind = _read_npz_xy, "NPZ"
    else:
        raise ValueError(f"{path}: expected an .h5, .hdf5 or .npz file")
    try:
        arrays = reader(path)
    except _READ_ERRORS as e:
        msg = _one_line(e)
        if msg.startswith(f"{path}: "):
            raise ValueError(msg) from e
        raise ValueError(f"{path}: not a readable {kind} file ({msg})") from e
    for name in ("x", "y") if require_y else ("x",):
        if name not in arrays:
            raise ValueError(f"{path}: dataset `{name}` is missing")
    return arrays["x"], arrays.get("y")
