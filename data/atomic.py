"""The one temp-file-and-rename used for every output file (HDF5, JSON, CSV, PNG, ckpt).

A writer writes to a unique temp name in the destination's folder and the file is
renamed onto its final name only when the writer returns; on any exception (also
``KeyboardInterrupt``) the temp file is removed and an existing file of that name is
left as it was. Unique temp names let two writers of the same file never collide.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OUTPUT_MODE", "atomic_path"]

OUTPUT_MODE = 0o644
"""Permissions of every output (mkstemp creates 0600; outputs are ordinary files)."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a unique temp path beside ``path``; rename it onto ``path`` on success.

    Args:
        path: the final file name; its folder is created if missing.

    Yields:
        The temp path to write (an empty file already exists there).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hi")
        >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
        ('hi', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, OUTPUT_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
