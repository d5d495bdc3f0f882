"""One router per resource, collected into :data:`api_router` under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import credit, districts, exports, health, imagery, patches, projects, stats, users

__all__ = ["api_router"]

api_router = APIRouter(prefix="/api/v1")
for _module in (health, users, districts, projects, imagery, patches, exports, stats, credit):
    api_router.include_router(_module.router)
