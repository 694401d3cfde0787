"""MMD data valuation, coalition values and Shapley values (docs/cgm.md §4–§5)."""
