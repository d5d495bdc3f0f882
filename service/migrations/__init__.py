"""Alembic migrations of the service database; run them with ``soilwatch db upgrade``."""
