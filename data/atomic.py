"""The one temp-file-and-rename used for every output file (HDF5, JSON, CSV, PNG, ckpt).

A writer writes to a unique temp name in the destination's folder and the file is
renamed onto its final name only when the writer returns; on any exception (also
``KeyboardInterrupt``, a signal or a full disk) the temp file is removed and an
existing file of that name is left as it was. Unique temp names let two writers of
the same file never collide. Outputs get the permissions of an ordinary new file,
``0666 & ~umask`` (docs/interface.md §5.6), so ``umask 077`` keeps party rows
private.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "output_mode"]


def _current_umask() -> int:
    # /proc/self/status reads the umask without changing it (thread-safe); the
    # os.umask round trip is the portable fallback.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode() -> int:
    """Permissions of a new output: ``0o666 & ~umask``, as ``open()`` would give.

    Example:
        >>> old = os.umask(0o077)
        >>> oct(output_mode())
        '0o600'
        >>> _ = os.umask(old)
    """
    return 0o666 & ~_current_umask()


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
        os.chmod(tmp, output_mode())  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
