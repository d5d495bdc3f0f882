"""``/projects``: the approved-project list (监管清单)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/projects", tags=["projects"])
