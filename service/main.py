"""The application factory: ``create_app(settings)``; ``soilwatch serve`` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.api.middleware import install_middleware
from service.api.problems import install_problem_handlers
from service.api.routes import api_router, scans, zones
from service.core.config import Settings, get_settings
from service.core.security import FailureLimiter, install_log_redaction
from service.db import make_engine, make_sessionmaker

__all__ = ["create_app"]

DESCRIPTION = """
Soil-and-water-conservation remote-sensing supervision (水土保持遥感监管).

Authenticate with `Authorization: Bearer <token>` (tokens come from `soilwatch admin create-user`).
Errors are `application/problem+json`. Compliance categories: `compliant` 合规,
`suspected_unapproved` 疑似未批先建, `suspected_out_of_bounds` 疑似超出防治责任范围,
`suspected_relocated` 疑似建设地点变更.
"""


def create_app(settings: Settings | None = None, *, scan_worker: bool = True) -> FastAPI:
    """Build the app on its own engine; the database must be migrated (``soilwatch db upgrade``).

    With ``scan_worker`` (the default) a background thread runs the queued scans while the app runs
    (:class:`service.scan_worker.ScanWorker`); it picks up scans a previous run left unfinished. At
    startup what a crash left of uploads is removed (:func:`_clean_data_dir`).
    """
    from soilwatch import __version__

    settings = settings or get_settings()
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_clean_data_dir, settings, sessions)
        worker = None
        if scan_worker:
            from service.scan_worker import ScanWorker

            worker = app.state.scan_worker = ScanWorker(sessions, settings)
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)  # joins the thread; keep the event loop free meanwhile
            engine.dispose()

    app = FastAPI(title="soilwatch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessions
    app.state.scan_worker = None
    app.state.auth_limiter = FailureLimiter(settings.auth_failures_per_minute, 60.0)
    install_problem_handlers(app)
    install_middleware(app, settings)  # request limits; CORS only when SOILWATCH_CORS_ORIGINS is set
    install_log_redaction()  # tokens, passwords and URL passwords never reach the logs (uvicorn access log too)
    app.include_router(api_router)
    app.include_router(scans.router, prefix=api_router.prefix)
    app.include_router(zones.router, prefix=api_router.prefix)
    return app


def _clean_data_dir(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Free what a crash or ``kill -9`` left in the data directory (never visible through the API): upload
    folders under ``tmp/`` and stored uploads whose imagery row was never committed."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from service.imagery import remove_orphan_imagery, remove_stale_temp
    from service.models import Imagery

    log = logging.getLogger(__name__)
    if removed := remove_stale_temp(settings.data_dir):
        log.info("removed %d leftover upload folder(s) under %s", removed, settings.data_dir / "tmp")
    try:
        with sessions() as session:
            known = set(session.scalars(select(Imagery.sha256)))
    except SQLAlchemyError as exc:  # the database is not reachable yet: the next start tries again
        log.warning("left unreferenced imagery files for the next start: %s", str(exc).splitlines()[0])
        return
    if removed := remove_orphan_imagery(settings.data_dir, known):
        log.info("removed %d imagery file(s) without a database row under %s", removed, settings.data_dir / "imagery")
