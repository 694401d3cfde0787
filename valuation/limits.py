"""Size limits of the valuation, importable without torch (docs/cgm.md §5.5).

The config checks ``value.shapley`` against :data:`MAX_EXACT_PARTIES` before any
work starts, and :func:`valuation.api.value_parties` checks it again for library
callers; both read it from here.
"""

from __future__ import annotations

#: Exact Shapley is refused above this many parties (docs/cgm.md §5.5).
MAX_EXACT_PARTIES = 16
