"""The ``soilwatch`` command group. Subcommands come from the packages through entry points."""

__all__ = ["__version__"]

__version__ = "0.1.0"
