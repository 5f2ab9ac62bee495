"""Small shared helpers: atomic writes, run records, device choice."""
