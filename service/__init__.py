"""soilwatch service package (see README)."""
