"""``soilwatch serve``: run the HTTP API with uvicorn."""

from __future__ import annotations

import typer

__all__ = ["serve"]


def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (default SOILWATCH_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default SOILWATCH_PORT, 8000)."),
    upgrade: bool = typer.Option(True, "--upgrade/--no-upgrade", help="Run database migrations first."),
    reload: bool = typer.Option(False, "--reload", help="Reload on code changes (development)."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="API processes (uvicorn workers); more use more cores. Not with --reload."
    ),
) -> None:
    """Serve the supervision API; docs at http://HOST:PORT/docs.

    Each worker is a process with its own database connections; on SQLite they share the file (WAL).

    Example: soilwatch serve --port 8000 --workers 2
    """
    if reload and workers > 1:
        raise typer.BadParameter(
            f"--workers {workers} does not go with --reload; drop one of them", param_hint="--workers"
        )
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
        workers=workers,
    )
