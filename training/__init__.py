"""soilwatch training package (see README)."""
