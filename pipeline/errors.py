"""The one exception a user can fix (docs/interface.md §3): exit code 2, one line on stderr."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input, config or a missing/stale upstream: ``synthreward`` exits 2."""
