"""``soilwatch db backup`` / ``restore`` on SQLite and PostgreSQL: round trip of every row and file,
refusal to overwrite, a backup taken while a writer writes is one consistent snapshot."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from shapely.geometry import box
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from service import backup as backups
from service.cli.db import db_app
from service.core.config import Settings, get_settings
from service.db import make_engine
from service.errors import ConflictError

PG_URL = os.environ.get("SOILWATCH_TEST_POSTGRES_URL")


def _dump(settings: Settings) -> dict[str, list[tuple]]:
    """Every row of every table, ordered, as plain tuples (geometry as the database returns it)."""
    engine = make_engine(settings)
    tables = sorted(set(inspect(engine).get_table_names()) - {"spatial_ref_sys"})
    out = {}
    with engine.connect() as conn:
        for name in tables:
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    engine.dispose()
    return out


@pytest.fixture
def fresh(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a new, empty database of the same kind and an empty data dir."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        yield Settings(data_dir=tmp_path / "restored", database_url=f"sqlite:///{tmp_path / 'restored.db'}",
                       _env_file=None)  # type: ignore[call-arg]  # fmt: skip
        return
    assert PG_URL is not None
    name = f"sw_r_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield Settings(data_dir=tmp_path / "restored", _env_file=None,  # type: ignore[call-arg]
                       database_url=url.set(database=name).render_as_string(hide_password=False))  # fmt: skip
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(settings: Settings, client, auth, add_patches) -> None:
    """Patches with a review (audit rows), a project, a photo and an imagery file on disk."""
    ids = add_patches([box(117.1, 40.0, 117.101, 40.001), box(117.2, 40.0, 117.201, 40.001)])
    etag = client.get(f"/api/v1/patches/{ids[0]}", headers=auth("inspector")).headers["etag"]
    review = client.post(f"/api/v1/patches/{ids[0]}/reviews", headers=auth("inspector") | {"If-Match": etag},
                         json={"verdict": "false_detection", "note": "阴影"})  # fmt: skip
    assert review.status_code in (200, 201), review.text
    (settings.data_dir / "photos" / str(ids[0])).mkdir(parents=True)
    (settings.data_dir / "photos" / str(ids[0]) / "a.jpg").write_bytes(b"\xff\xd8jpeg" * 100)
    (settings.data_dir / "imagery" / "ab").mkdir(parents=True)
    (settings.data_dir / "imagery" / "ab" / "ab12.tif").write_bytes(os.urandom(300_000))
    (settings.data_dir / "chips").mkdir()
    (settings.data_dir / "chips" / "cache.png").write_bytes(b"cache")  # not backed up
    (settings.data_dir / "tmp").mkdir(exist_ok=True)
    (settings.data_dir / "tmp" / "upload.part").write_bytes(b"half")  # not backed up


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith("soilwatch.db")
        and p.relative_to(folder).parts[0] not in backups.SKIPPED_DIRS
    }


def test_round_trip_restores_every_row_and_file(client, auth, settings, add_patches, fresh, tmp_path):
    _seed(settings, client, auth, add_patches)
    before, files = _dump(settings), _files(settings.data_dir)
    assert before["audit_events"] and before["patches"] and len(files) == 2

    report = backups.backup(settings, tmp_path / "b.tar")
    assert report.files == 2 and report.rows["patches"] == 2 and report.revision is not None

    restored = backups.restore(fresh, tmp_path / "b.tar")
    assert restored.rows == report.rows
    assert _dump(fresh) == before
    assert _files(fresh.data_dir) == files
    assert not (fresh.data_dir / "chips").exists() and not (fresh.data_dir / "tmp").exists()
    assert any("data_dir" in w for w in restored.warnings)  # it was restored under another path

    with pytest.raises(ConflictError, match="--force"):  # now it holds rows
        backups.restore(fresh, tmp_path / "b.tar")
    backups.restore(fresh, tmp_path / "b.tar", force=True)
    assert _dump(fresh) == before


def test_restore_with_force_replaces_a_changed_database(client, auth, settings, add_patches, tmp_path):
    """Back up, change and wipe things, restore over the same database: back to the backed-up rows."""
    _seed(settings, client, auth, add_patches)
    before = _dump(settings)
    backups.backup(settings, tmp_path / "b.tar")
    add_patches([box(117.3, 40.1, 117.301, 40.101)])
    shutil.rmtree(settings.data_dir / "photos")
    with pytest.raises(ConflictError):
        backups.restore(settings, tmp_path / "b.tar")
    client.close()  # the service is stopped for a restore
    backups.restore(settings, tmp_path / "b.tar", force=True)
    assert _dump(settings) == before
    assert (settings.data_dir / "photos").is_dir()


def test_backup_while_a_writer_writes_is_consistent(settings, fresh, tmp_path):
    """A writer commits audit rows two at a time during the backup: the backup holds whole transactions only,
    and its manifest's counts are those of the snapshot."""
    engine = make_engine(settings)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            with engine.begin() as conn:
                for _ in range(2):
                    conn.execute(text("INSERT INTO audit_events (at, entity_type, entity_id, action) "
                                      "VALUES (CURRENT_TIMESTAMP, 'probe', 1, 'write')"))  # fmt: skip
            written[0] += 2

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 20:  # the writer is going
            stop.wait(0.01)
        report = backups.backup(settings, tmp_path / "b.tar", files=False)
        during = written[0]
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    assert 20 <= report.rows["audit_events"] <= written[0]
    assert report.rows["audit_events"] % 2 == 0, "a transaction was cut in half"
    backups.restore(fresh, tmp_path / "b.tar")
    restored = make_engine(fresh)
    with restored.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM audit_events WHERE entity_type = 'probe'")).scalar_one()
    restored.dispose()
    assert count == report.rows["audit_events"] and count % 2 == 0
    assert during >= 20


def test_cli_backup_restore_and_refusals(settings, fresh, tmp_path, monkeypatch):
    runner = CliRunner()
    target = tmp_path / "cli.tar"
    monkeypatch.setenv("SOILWATCH_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("SOILWATCH_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        result = runner.invoke(db_app, ["backup", str(target)])
        assert result.exit_code == 0, result.output
        assert "backed up" in result.output and target.is_file()
        again = runner.invoke(db_app, ["backup", str(target)])
        assert again.exit_code != 0 and "--overwrite" in str(again.exception)
        assert runner.invoke(db_app, ["backup", str(target), "--overwrite"]).exit_code == 0
        refused = runner.invoke(db_app, ["restore", str(target)])  # the source database holds rows
        assert refused.exit_code != 0 and "--force" in str(refused.exception)

        monkeypatch.setenv("SOILWATCH_DATABASE_URL", fresh.resolved_database_url)
        monkeypatch.setenv("SOILWATCH_DATA_DIR", str(fresh.data_dir))
        get_settings.cache_clear()
        result = runner.invoke(db_app, ["restore", str(target)])
        assert result.exit_code == 0, result.output
        assert "restored" in result.output and "soilwatch db upgrade" in result.output
    finally:
        get_settings.cache_clear()
    assert _dump(fresh) == _dump(settings)


def test_not_a_backup_and_wrong_kind_are_clear_errors(settings, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(Exception, match="tar|manifest"):
        backups.restore(settings, junk)
    other = "postgresql" if settings.resolved_database_url.startswith("sqlite") else "sqlite"
    import io
    import json
    import tarfile

    fake = tmp_path / "other.tar"
    with tarfile.open(fake, "w") as tar:
        payload = json.dumps({"format": backups.FORMAT, "dialect": other, "rows": {}}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(backups.BackupError, match=f"is a {other} backup"):
        backups.restore(settings, fake, force=True)


def test_missing_pg_tools_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(backups, "PG_LIB_DIR", tmp_path / "nothing")
    with pytest.raises(backups.BackupError, match="pg_dump not found.*install"):
        backups.find_pg_tool("pg_dump")
    (tmp_path / "lib" / "15" / "bin").mkdir(parents=True)
    (tmp_path / "lib" / "9.6" / "bin").mkdir(parents=True)
    for version in ("15", "9.6"):
        (tmp_path / "lib" / version / "bin" / "pg_dump").write_text("")
    monkeypatch.setattr(backups, "PG_LIB_DIR", tmp_path / "lib")
    assert backups.find_pg_tool("pg_dump") == str(tmp_path / "lib" / "15" / "bin" / "pg_dump")
