"""Service test fixtures: the real app over HTTP on SQLite and (when configured) PostgreSQL + PostGIS.

Each test gets a fresh database cloned from a migrated, seeded template (a file copy on SQLite,
``CREATE DATABASE … TEMPLATE`` on PostgreSQL), so tests are isolated and migrations run once per
session. The PostgreSQL variant needs ``SOILWATCH_TEST_POSTGRES_URL`` (``bash dev/postgres.sh``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.core.config import Settings
from service.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from service.main import create_app
from service.models import District, set_geometry
from service.users import create_user

PG_ENV = "SOILWATCH_TEST_POSTGRES_URL"
PG_URL = os.environ.get(PG_ENV)

#: Two districts of Tianjin with rough boxes as boundaries (lon/lat).
DISTRICTS = {"120225": ("蓟州区", box(117.0, 39.9, 117.8, 40.3)), "120223": ("静海区", box(116.7, 38.5, 117.3, 39.1))}
#: name → (role, districts, all_districts)
USERS = {
    "admin": ("admin", [], True),
    "supervisor": ("supervisor", ["120225"], False),
    "inspector": ("inspector", ["120225"], False),
    "viewer": ("viewer", ["120225"], False),
    "supervisor_jinghai": ("supervisor", ["120223"], False),
    "city_viewer": ("viewer", [], True),
}


def _seed(url: str) -> dict[str, str]:
    upgrade_database(url)
    engine = make_engine(url)
    tokens: dict[str, str] = {}
    with session_scope(make_sessionmaker(engine)) as session:
        for code, (name, geom) in DISTRICTS.items():
            district = District(code=code, name=name)
            set_geometry(district, geom)
            session.add(district)
        session.flush()
        for name, (role, codes, everywhere) in USERS.items():
            _, tokens[name] = create_user(session, name, role, codes, all_districts=everywhere)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return tokens


@dataclass
class Template:
    url: str
    tokens: dict[str, str]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    return Template(url, _seed(url))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Template]:
    if not PG_URL:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (run: export {PG_ENV}=$(bash dev/postgres.sh))")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"sw_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield Template(url, _seed(url))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Template]:
    """A fresh, migrated, seeded database for one test: ``.url`` and the users' ``.tokens``."""
    if request.param == "sqlite":
        template: Template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "soilwatch.db"
        shutil.copyfile(make_url(template.url).database or "", path)
        yield Template(f"sqlite:///{path}", template.tokens)
        return
    template = request.getfixturevalue("pg_template")
    assert PG_URL is not None  # pg_template skipped otherwise
    name = f"sw_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template.url).database}"'))
    try:
        yield Template(make_url(PG_URL).set(database=name).render_as_string(hide_password=False), template.tokens)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(database: Template, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database.url, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(database: Template) -> Callable[[str], dict[str, str]]:
    """``auth("supervisor")`` → the Authorization header of that seeded user."""

    def headers(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {database.tokens[user]}"}

    return headers


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database (nothing migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if not PG_URL:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (run: export {PG_ENV}=$(bash dev/postgres.sh))")
    name = f"sw_e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def add_patches(settings: Settings) -> Callable[..., list[int]]:
    """``add_patches([polygon, …], after_date=…, scan_id=None)`` stores detector-style patches
    (lon/lat polygons) through :func:`service.patches.ingest_detections`; returns their ids."""
    import datetime as dt

    import geopandas as gpd

    from service.patches import ingest_detections

    def add(geoms: list, *, after_date: dt.date = dt.date(2024, 5, 1), scan_id: int | None = None) -> list[int]:
        frame = gpd.GeoDataFrame(
            {"confidence": [0.9] * len(geoms), "after_date": [after_date] * len(geoms), "model": ["test"] * len(geoms)},
            geometry=geoms,
            crs="EPSG:4326",
        )
        engine = make_engine(settings)
        with session_scope(make_sessionmaker(engine)) as session:
            ids = [p.id for p in ingest_detections(session, settings, frame, scan_id=scan_id)]
        engine.dispose()
        return ids

    return add
