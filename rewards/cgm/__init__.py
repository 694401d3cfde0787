"""cgm wing."""
