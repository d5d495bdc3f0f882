"""The application factory: ``create_app(settings)``; ``soilwatch serve`` runs it with uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api.problems import install_problem_handlers
from service.api.routes import api_router
from service.core.config import Settings, get_settings
from service.db import make_engine, make_sessionmaker

__all__ = ["create_app"]

DESCRIPTION = """
Soil-and-water-conservation remote-sensing supervision (水土保持遥感监管).

Authenticate with `Authorization: Bearer <token>` (tokens come from `soilwatch admin create-user`).
Errors are `application/problem+json`. Compliance categories: `compliant` 合规,
`suspected_unapproved` 疑似未批先建, `suspected_out_of_bounds` 疑似超出防治责任范围,
`suspected_relocated` 疑似建设地点变更.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on its own engine; the database must be migrated (``soilwatch db upgrade``)."""
    from soilwatch import __version__

    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="soilwatch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    install_problem_handlers(app)
    app.include_router(api_router)
    return app
