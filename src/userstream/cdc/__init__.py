"""cdc stage."""
