"""Engine and session factory for SQLite (embedded default) and PostgreSQL + PostGIS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.core.config import Settings

__all__ = ["make_engine", "make_sessionmaker", "session_scope", "alembic_config", "upgrade_database"]


def make_engine(settings: Settings | str) -> Engine:
    """An engine for ``settings.resolved_database_url`` (or a URL string).

    SQLite gets foreign keys on, WAL journaling and a busy timeout so that the API and a background
    scan can share the file; the parent directory is created. PostgreSQL connections are pinged before
    use and time out after 10 s, so the service recovers by itself when the server restarts.
    """
    url = make_url(settings if isinstance(settings, str) else settings.resolved_database_url)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # A connection dropped by a database restart is noticed at checkout (pre-ping) and replaced; a
        # server that does not answer fails the request after connect_timeout instead of hanging it.
        kwargs["pool_pre_ping"] = True
        if url.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Reads through a memory map (no read() call per page) and a bigger page cache than the 2 MB default:
    # with a million patches a list request touches thousands of pages (BENCHMARKS.md, issue 5).
    cursor.execute("PRAGMA mmap_size=1073741824")  # 1 GiB of address space, pages shared with the OS cache
    cursor.execute("PRAGMA cache_size=-16384")  # 16 MiB per connection
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    """An Alembic ``Config`` for the service migrations against ``url`` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (creates the PostGIS extension on PostgreSQL)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
