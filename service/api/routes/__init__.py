"""One router per resource, collected into :data:`api_router` under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import credit, districts, exports, health, imagery, map, patches, photos, projects, stats, users
from service.web import page_routes

__all__ = ["api_router"]

api_router = APIRouter(prefix="/api/v1")
for _module in (health, users, districts, projects, imagery, patches, photos, exports, stats, credit, map):
    api_router.include_router(_module.router)
# The review map page (/, /map, /map/static): routes appended directly carry no /api/v1 prefix.
api_router.routes.extend(page_routes())
