"""``soilwatch db backup`` / ``restore``: the database and the data directory's files in one tar file.

A backup is an uncompressed tar (imagery is already compressed; tar streams files of any size) holding

- ``manifest.json``: format, time, database kind, Alembic revision, row counts per table, data_dir, files;
- ``database.sqlite`` — made with SQLite's online backup API (:meth:`sqlite3.Connection.backup`), a
  consistent snapshot taken while the service keeps reading and writing (WAL mode: writers are not
  blocked) — or ``database.pgdump`` — ``pg_dump -Fc``, one consistent snapshot (a single transaction);
- ``data/…``: the files under ``data_dir`` (imagery, photos, nightly reports), without the SQLite file
  itself, ``tmp/`` (uploads in flight) and ``chips/`` (a cache, rebuilt on demand).

The database is copied first, then the files: a file uploaded meanwhile is in the tar without its row
(harmless); files are only added, never rewritten, by the service, so every row's file is there.

Restore writes the database back (SQLite: the backup API again, so the target file is replaced through
SQLite with its locks and WAL; PostgreSQL: ``pg_restore --clean --if-exists --single-transaction``),
checks the row counts against the manifest and unpacks the files into ``data_dir``. It refuses a
database that already holds rows unless ``force``. Stop the service (and ``soilwatch scan``) first.
Imagery rows store their file's path as it was under the backed-up ``data_dir``: restore with the same
``SOILWATCH_DATA_DIR``. A backup of an older release is restored as it was; run ``soilwatch db upgrade``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import URL, make_url

from service.core.config import Settings
from service.db import make_engine
from service.errors import ConfigError, ConflictError, ServiceError

__all__ = [
    "BackupError",
    "BackupReport",
    "backup",
    "restore",
    "row_counts",
    "find_pg_tool",
    "FORMAT",
    "SKIPPED_DIRS",
    "PG_LIB_DIR",
]

FORMAT = "soilwatch-backup/1"
#: Top-level folders of data_dir that are not backed up: uploads in flight and the chip cache.
SKIPPED_DIRS = ("tmp", "chips")
_SQLITE_MEMBER = "database.sqlite"
_PG_MEMBER = "database.pgdump"
_IGNORED_TABLES = {"alembic_version", "spatial_ref_sys"}
#: Where Debian/Ubuntu install the PostgreSQL tools of each version (``<version>/bin``), searched after PATH.
PG_LIB_DIR = Path("/usr/lib/postgresql")


class BackupError(ServiceError, RuntimeError):
    """A backup or restore could not be made; the message says why and what to do."""


@dataclass
class BackupReport:
    """What a backup or restore did: the file, the database kind, its revision, rows per table and files."""

    path: Path
    dialect: str
    revision: str | None
    rows: dict[str, int]
    files: int
    bytes: int
    warnings: list[str] = field(default_factory=list)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table (Alembic's and PostGIS's own tables left out)."""
    names = sorted(set(inspect(engine).get_table_names()) - _IGNORED_TABLES)
    with engine.connect() as conn:
        return {name: int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in names}


def _revision(engine: Engine) -> str | None:
    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def find_pg_tool(name: str) -> str:
    """The path of ``pg_dump`` / ``pg_restore``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(PG_LIB_DIR.glob(f"*/bin/{name}"), key=lambda p: _version_key(p.parts[-3]))
    if versions:
        return str(versions[-1])
    raise BackupError(
        f"{name} not found on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL client tools "
        "(e.g. apt install postgresql-client-15) at least as new as the server"
    )


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection options for the PostgreSQL tools; the password goes in the environment, never in argv
    (where ``ps`` would show it)."""
    env = dict(os.environ)
    args = ["--no-password"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {result.returncode}): {message[-1] if message else 'no message'}")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be backed up or restored; set a file URL")
    return Path(url.database)


def _data_files(data_dir: Path, skip: set[Path]) -> Iterator[Path]:
    if not data_dir.is_dir():
        return
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        if rel.parts[0] in SKIPPED_DIRS or path.resolve() in skip or not path.is_file() or path.is_symlink():
            continue
        yield path


def backup(settings: Settings, dest: Path, *, files: bool = True, overwrite: bool = False) -> BackupReport:
    """Write a backup of the database (and, with ``files``, of ``data_dir``) to ``dest`` (a tar file).

    Safe while the service runs. ``dest`` is written beside itself and renamed into place when complete,
    so a cut-off backup never looks like a finished one.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise ConflictError(f"{str(dest)!r} exists; choose another name or pass --overwrite")
    url = make_url(settings.resolved_database_url)
    engine = make_engine(settings)
    dialect = engine.dialect.name
    try:
        rows = row_counts(engine)
        revision = _revision(engine)
    finally:
        engine.dispose()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".soilwatch-backup-") as work:
        work_dir = Path(work)
        skip: set[Path] = set()
        if dialect == "sqlite":
            source = _sqlite_path(url)
            skip = {source.resolve(), Path(f"{source}-wal").resolve(), Path(f"{source}-shm").resolve()}
            db_file, member = work_dir / _SQLITE_MEMBER, _SQLITE_MEMBER
            src = sqlite3.connect(source, timeout=30)
            dst = sqlite3.connect(db_file)
            try:
                src.backup(dst)  # one consistent snapshot; writers in WAL mode carry on meanwhile
                # the counts in the manifest are those of the snapshot, not of the live file
                rows = {t: int(dst.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in rows}
                revision = _sqlite_revision(dst)
            finally:
                dst.close()
                src.close()
        elif dialect == "postgresql":
            db_file, member = work_dir / _PG_MEMBER, _PG_MEMBER
            args, env = _pg_args(url)
            _run([find_pg_tool("pg_dump"), "-Fc", "--no-owner", "--no-acl", *args, "-f", str(db_file),
                  "--dbname", str(url.database)], env, "pg_dump")  # fmt: skip
            rows = _dump_row_counts(db_file, rows)
        else:
            raise BackupError(f"backups of {dialect!r} databases are not supported; use SQLite or PostgreSQL")
        data_files = list(_data_files(settings.data_dir, skip)) if files else []
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "dialect": dialect,
            "revision": revision,
            "rows": rows,
            "data_dir": str(settings.data_dir.resolve()),
            "files": [str(p.relative_to(settings.data_dir)) for p in data_files],
        }
        partial = work_dir / "backup.tar"
        total = 0
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            payload = json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8")
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(payload), int(dt.datetime.now(dt.UTC).timestamp())
            tar.addfile(info, io.BytesIO(payload))
            tar.add(db_file, arcname=member)
            for path in data_files:
                tar.add(path, arcname=f"data/{path.relative_to(settings.data_dir).as_posix()}", recursive=False)
                total += path.stat().st_size
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, dest)
    return BackupReport(dest, dialect, revision, rows, len(data_files), total)


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _dump_row_counts(dump: Path, live: dict[str, int]) -> dict[str, int]:
    """Row counts of the tables as dumped (the live counts may have moved on while pg_dump ran): counted
    from the COPY data of a plain-text rendering of the dump's data section."""
    result = subprocess.run(
        [find_pg_tool("pg_restore"), "--data-only", "-f", "-", str(dump)], capture_output=True, check=False
    )
    if result.returncode != 0:
        return live
    counts = dict.fromkeys(live, 0)
    current: str | None = None
    for line in result.stdout.split(b"\n"):
        if current is None:
            if line.startswith(b"COPY "):
                name = line.split(b" ", 2)[1].decode().split(".")[-1].strip('"')
                current = name if name in counts else None
        elif line == b"\\.":
            current = None
        else:
            counts[current] += 1
    return counts


def _manifest(tar: tarfile.TarFile, src: Path) -> dict[str, Any]:
    try:
        member = tar.extractfile("manifest.json")
    except KeyError:
        member = None
    if member is None:
        raise BackupError(f"{str(src)!r} has no manifest.json: not a soilwatch backup")
    manifest: dict[str, Any] = json.loads(member.read().decode("utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{str(src)!r} is in format {manifest.get('format')!r}; this release reads {FORMAT!r}")
    return manifest


def _has_rows(engine: Engine) -> list[str]:
    names = sorted(set(inspect(engine).get_table_names()) - _IGNORED_TABLES)
    with engine.connect() as conn:
        return [n for n in names if conn.execute(text(f'SELECT 1 FROM "{n}" LIMIT 1')).first() is not None]


def restore(settings: Settings, src: Path, *, force: bool = False) -> BackupReport:
    """Restore the backup ``src`` into the configured database and ``data_dir``.

    Refuses (ConflictError) when the database already holds rows, unless ``force``. Raises
    :class:`BackupError` when the backup is unreadable, of the other database kind, or when the restored
    row counts differ from the manifest's.
    """
    src = Path(src)
    if not src.is_file():
        raise BackupError(f"backup {str(src)!r} does not exist")
    url = make_url(settings.resolved_database_url)
    engine = make_engine(settings)
    dialect = engine.dialect.name
    try:
        occupied = _has_rows(engine)
    finally:
        engine.dispose()
    with tarfile.open(src, "r:*") as tar:
        manifest = _manifest(tar, src)
        if manifest["dialect"] != dialect:
            raise BackupError(
                f"{str(src)!r} is a {manifest['dialect']} backup and the database is {dialect}; restore it into "
                f"a {manifest['dialect']} database (SOILWATCH_DATABASE_URL)"
            )
        if occupied and not force:
            raise ConflictError(
                f"the database already holds rows (in {', '.join(occupied[:4])}…); restore into an empty database "
                "or pass --force to replace everything in it"
            )
        warnings: list[str] = []
        with tempfile.TemporaryDirectory(prefix="soilwatch-restore-") as work:
            work_dir = Path(work)
            if dialect == "sqlite":
                tar.extract(_SQLITE_MEMBER, work_dir, filter="data")
                target = _sqlite_path(url)
                target.parent.mkdir(parents=True, exist_ok=True)
                source = sqlite3.connect(work_dir / _SQLITE_MEMBER)
                dest = sqlite3.connect(target, timeout=30)
                try:
                    source.backup(dest)  # replaces every page of the target through SQLite (locks, WAL)
                finally:
                    dest.close()
                    source.close()
            else:
                tar.extract(_PG_MEMBER, work_dir, filter="data")
                args, env = _pg_args(url)
                _run([find_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-acl",
                      "--single-transaction", "--exit-on-error", *args, "--dbname", str(url.database),
                      str(work_dir / _PG_MEMBER)], env, "pg_restore")  # fmt: skip
        engine = make_engine(settings)
        try:
            rows = row_counts(engine)
            revision = _revision(engine)
        finally:
            engine.dispose()
        expected = {k: v for k, v in manifest["rows"].items()}
        if {k: rows.get(k) for k in expected} != expected:
            diff = {k: (v, rows.get(k)) for k, v in expected.items() if rows.get(k) != v}
            raise BackupError(f"restored row counts differ from the backup's (table: backup, restored): {diff}")
        files = total = 0
        data_dir = settings.data_dir
        for member in tar.getmembers():
            if not member.name.startswith("data/") or not member.isfile():
                continue
            member.name = member.name.removeprefix("data/")
            tar.extract(member, data_dir, filter="data")  # refuses absolute paths, '..' and links out
            files += 1
            total += member.size
        if manifest.get("data_dir") and Path(manifest["data_dir"]) != data_dir.resolve():
            warnings.append(
                f"the backup was taken with data_dir {manifest['data_dir']!r}; imagery rows point there — set "
                "SOILWATCH_DATA_DIR to that path (or link it) before serving"
            )
        if files != len(manifest.get("files", [])):
            warnings.append(f"{len(manifest.get('files', []))} files listed in the manifest, {files} restored")
    return BackupReport(src, dialect, revision, rows, files, total, warnings)
