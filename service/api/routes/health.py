"""``GET /health``: liveness and database reachability; no token needed."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import SessionDep
from service.schemas import HealthPublic

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, summary="Service and database status")
def health(session: SessionDep) -> HealthPublic:
    from soilwatch import __version__

    session.execute(text("SELECT 1"))
    return HealthPublic(status="ok", database=session.get_bind().dialect.name, version=__version__)
