"""``soilwatch serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import typer

__all__ = ["serve"]


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default SOILWATCH_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default SOILWATCH_PORT, 8000)."),
    upgrade: bool = typer.Option(True, "--upgrade/--no-upgrade", help="Run database migrations first."),
    reload: bool = typer.Option(False, "--reload", help="Reload on code changes (development)."),
) -> None:
    """Serve the supervision API; docs at http://HOST:PORT/docs.

    Example: soilwatch serve --port 8000
    """
    import uvicorn

    from service.core.config import get_settings
    from service.db import upgrade_database

    settings = get_settings()
    if upgrade:
        upgrade_database(settings.resolved_database_url)
    uvicorn.run(
        "service.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
    )
