"""nash wing."""
