"""synthreward: incentive-aware collaborative machine learning with synthetic rewards.

The Python API (docs/api.md) runs the synthetic-data reward chain on arrays:

- :func:`pool_from_arrays`: parties and a held-out test set from (x, y);
- :func:`value`: Shapley values of the parties' data (docs/cgm.md §5);
- :func:`reward`: ρ-Shapley fair reward values (docs/cgm.md §6);
- :func:`sample`: each party's reward set drawn from the candidates (§7);
- :func:`evaluate`: each party's MMD² to the reference before and after (§8.1);
- :func:`downstream_accuracy`: a classifier trained on own rows, then with the
  reward (optionally down-weighted), tested on held-out rows (§8.2);
- :class:`PartyDataset`: a torch Dataset over a party file plus its reward file.

``import synthreward`` stays light: torch, scipy and h5py load on first use.

Example:
    >>> import synthreward
    >>> sorted(synthreward.__all__)[:3]
    ['PartyDataset', 'Pool', 'downstream_accuracy']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthreward.api import (
    Pool,
    downstream_accuracy,
    evaluate,
    pool_from_arrays,
    reward,
    sample,
    value,
)

if TYPE_CHECKING:
    from data.torch_data import PartyDataset

__all__ = [
    "PartyDataset",
    "Pool",
    "downstream_accuracy",
    "evaluate",
    "pool_from_arrays",
    "reward",
    "sample",
    "value",
]


def __getattr__(name: str) -> Any:
    """``PartyDataset`` is imported on first access (it loads torch)."""
    if name == "PartyDataset":
        from data.torch_data import PartyDataset

        return PartyDataset
    raise AttributeError(f"module 'synthreward' has no attribute {name!r}")
