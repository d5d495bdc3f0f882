"""``soilwatch db``: database migrations."""

from __future__ import annotations

import typer

__all__ = ["db_app"]

db_app = typer.Typer(help="Create or migrate the service database.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Run the migrations up to REVISION (default: the latest).

    Uses SOILWATCH_DATABASE_URL, or the SQLite file in SOILWATCH_DATA_DIR.

    Example: soilwatch db upgrade
    """
    from service.core.config import get_settings
    from service.db import upgrade_database

    settings = get_settings()
    upgrade_database(settings.resolved_database_url, revision)
    typer.echo(f"database at {_safe_url(settings.resolved_database_url)} is at revision {revision}")


@db_app.command("current")
def current() -> None:
    """Print the revision the database is at.

    Example: soilwatch db current
    """
    from alembic.runtime.migration import MigrationContext

    from service.core.config import get_settings
    from service.db import make_engine

    engine = make_engine(get_settings())
    with engine.connect() as conn:
        typer.echo(MigrationContext.configure(conn).get_current_revision() or "empty")
    engine.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
