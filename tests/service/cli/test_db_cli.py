"""``soilwatch db upgrade`` and the migrations against the ORM models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from shapely.geometry import Point, box
from sqlalchemy import inspect
from typer.testing import CliRunner

from service.cli.db import db_app
from service.core.config import get_settings
from service.db import alembic_config, make_engine, make_sessionmaker, session_scope
from service.models import Base, District, set_geometry

runner = CliRunner()


@pytest.fixture
def env_url(empty_database_url, monkeypatch):
    monkeypatch.setenv("SOILWATCH_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    yield empty_database_url
    get_settings.cache_clear()


def test_upgrade_creates_every_table(env_url):
    result = runner.invoke(db_app, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert "revision head" in result.output
    engine = make_engine(env_url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    # Twice is harmless.
    assert runner.invoke(db_app, ["upgrade"]).exit_code == 0
    head = ScriptDirectory.from_config(alembic_config(env_url)).get_current_head()
    assert runner.invoke(db_app, ["current"]).output.strip() == head
    engine.dispose()


def test_migrations_match_the_models(env_url):
    assert runner.invoke(db_app, ["upgrade"]).exit_code == 0
    engine = make_engine(env_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    # PostGIS's own table, the GiST indexes and SQLite's R*Tree of patches (migration 0006) are not in the models.
    diff = [d for d in diff if not _postgis_extra(d)]
    assert diff == []


def _postgis_extra(entry) -> bool:
    kind, obj = entry[0], entry[1]
    if kind == "remove_table":
        return obj.name == "spatial_ref_sys" or obj.name.startswith("patches_rtree")
    if kind == "remove_index":
        return obj.name.endswith("_gist")
    return False


def test_geometry_round_trips(env_url):
    assert runner.invoke(db_app, ["upgrade"]).exit_code == 0
    engine = make_engine(env_url)
    factory = make_sessionmaker(engine)
    shape = box(117.1, 40.0, 117.2, 40.1).union(Point(117.5, 40.2).buffer(0.01))
    with session_scope(factory) as session:
        district = District(code="1", name="x")
        set_geometry(district, shape)
        session.add(district)
    with session_scope(factory) as session:
        stored = session.get(District, "1")
        assert stored is not None and stored.geometry is not None
        assert stored.geometry.normalize().equals_exact(shape.normalize(), 1e-12)
        assert stored.min_x == pytest.approx(117.1) and stored.max_y == pytest.approx(40.21)
    engine.dispose()
