"""The one exception a user can fix: exit 2, one stderr line (docs/interface.md §3)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input, config or a missing/stale upstream: ``synthreward`` exits 2."""
