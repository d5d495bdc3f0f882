"""``soilwatch db``: database migrations, backup and restore."""

from __future__ import annotations

from pathlib import Path

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


@db_app.command("backup")
def backup(
    path: Path = typer.Argument(..., dir_okay=False, help="The backup file to write (a tar), e.g. soilwatch.tar."),
    files: bool = typer.Option(True, "--files/--no-files", help="Also the data directory's imagery and photos."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace PATH if it exists."),
) -> None:
    """Back up the database and the data directory into one tar file, while the service runs.

    SQLite: the online backup API (a consistent snapshot). PostgreSQL: pg_dump -Fc (needs the client tools
    on PATH or in /usr/lib/postgresql/*/bin). Imagery, photos and nightly reports are added from
    SOILWATCH_DATA_DIR (not tmp/ nor the chips cache).

    Example: soilwatch db backup backups/soilwatch-2026-11-23.tar
    """
    from service import backup as backups
    from service.core.config import get_settings

    settings = get_settings()
    report = backups.backup(settings, path, files=files, overwrite=overwrite)
    typer.echo(
        f"backed up {_safe_url(settings.resolved_database_url)} (revision {report.revision}, "
        f"{sum(report.rows.values()):,} rows) and {report.files} files ({report.bytes:,} bytes) to {report.path}"
    )


@db_app.command("restore")
def restore(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A file made by soilwatch db backup."),
    force: bool = typer.Option(False, "--force", help="Replace a database that already holds rows."),
) -> None:
    """Restore a backup into the configured database and data directory. Stop the service first.

    Refuses a database that already holds rows unless --force; checks the restored row counts against the
    backup. A backup from an older release is restored as it was: run soilwatch db upgrade afterwards.

    Example: soilwatch db restore backups/soilwatch-2026-11-23.tar
    """
    from service import backup as backups
    from service.core.config import get_settings

    settings = get_settings()
    report = backups.restore(settings, path, force=force)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"restored {sum(report.rows.values()):,} rows (revision {report.revision}) into "
        f"{_safe_url(settings.resolved_database_url)} and {report.files} files into {settings.data_dir}"
    )
    typer.echo("next: soilwatch db upgrade (if this release is newer than the backup), then soilwatch serve")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
