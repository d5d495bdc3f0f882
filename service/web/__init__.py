"""The review map (一张图): a single-page app served by ``soilwatch serve`` at ``/map``.

Plain HTML, CSS and JavaScript under ``static/`` with Leaflet vendored (``static/vendor/README.md``), so
the page works with no internet. It talks only to the API under ``/api/v1``; the token is kept in the
browser's sessionStorage. The page routes carry no ``/api/v1`` prefix and are left out of the OpenAPI docs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "page_routes"]

STATIC_DIR = Path(__file__).parent / "static"
_router = APIRouter(include_in_schema=False)


@_router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/map", status_code=307)


@_router.get("/map")
def review_map() -> FileResponse:
    # no-cache: a new release's page must not run against a stale cached script list
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def page_routes() -> list[BaseRoute]:
    """``/`` (redirect), ``/map`` (the page) and ``/map/static/…`` (its files)."""
    return [*_router.routes, Mount("/map/static", app=StaticFiles(directory=STATIC_DIR), name="map-static")]
