"""Subcommands the training package adds to ``soilwatch`` (registered as entry points in pyproject.toml)."""
