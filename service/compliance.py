"""Wiring of :mod:`service.matching` to the database: judge patches and re-judge when the list changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.models import User

__all__ = ["rematch_areas"]


def rematch_areas(session: Session, areas: list[Any], *, reason: str, user: User | None = None) -> int:
    """Re-judge the patches near ``areas`` (geometries that changed); returns how many changed category."""
    return 0
