"""Reward values, reward realisation and gradient rewards (docs/cgm.md §6–§7, docs/cgsv.md)."""
