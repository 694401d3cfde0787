"""contract wing."""
