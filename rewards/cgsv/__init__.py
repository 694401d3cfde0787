"""cgsv wing."""
