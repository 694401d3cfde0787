"""Data sources, splits, HDF5 schema and the party Dataset (docs/cgm.md §2)."""
