"""``soilwatch admin``: districts from a boundary file, users with a token printed once."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import box
from sqlalchemy import select
from typer.testing import CliRunner

from service.cli.admin import admin_app
from service.cli.db import db_app
from service.core.config import get_settings
from service.core.security import hash_token
from service.db import make_engine, make_sessionmaker
from service.models import ApiToken, District, User

runner = CliRunner()


@pytest.fixture
def migrated(empty_database_url, monkeypatch):
    monkeypatch.setenv("SOILWATCH_DATABASE_URL", empty_database_url)
    get_settings.cache_clear()
    assert runner.invoke(db_app, ["upgrade"]).exit_code == 0
    yield empty_database_url
    get_settings.cache_clear()


@pytest.fixture
def districts_file(tmp_path):
    path = tmp_path / "districts.gpkg"
    gpd.GeoDataFrame(
        {"区划代码": [120225, 120223], "区划名称": ["蓟州区", "静海区"]},
        geometry=[box(117.0, 39.9, 117.8, 40.3), box(116.7, 38.5, 117.3, 39.1)],
        crs="EPSG:4326",
    ).to_file(path)
    return path


def test_import_districts_then_create_user(migrated, districts_file):
    result = runner.invoke(admin_app, ["import-districts", str(districts_file)])
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    again = runner.invoke(admin_app, ["import-districts", str(districts_file)])
    assert "0 created, 2 updated" in again.output

    result = runner.invoke(admin_app, ["create-user", "张三", "--role", "supervisor", "--district", "120225"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("sw_") and len(token) > 40

    engine = make_engine(migrated)
    with make_sessionmaker(engine)() as session:
        user = session.scalar(select(User).where(User.name == "张三"))
        assert user is not None and user.district_codes == ["120225"]
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert stored == [hash_token(token)] and token not in stored  # only the hash is kept
        assert session.get(District, "120225").name == "蓟州区"
    engine.dispose()


def test_create_user_errors_name_the_value(migrated, districts_file):
    runner.invoke(admin_app, ["import-districts", str(districts_file)])
    bad_role = runner.invoke(admin_app, ["create-user", "x", "--role", "boss", "--district", "120225"])
    assert bad_role.exit_code != 0 and "'boss'" in str(bad_role.exception)
    bad_district = runner.invoke(admin_app, ["create-user", "y", "--role", "viewer", "--district", "999"])
    assert bad_district.exit_code != 0 and "'999'" in str(bad_district.exception)
    runner.invoke(admin_app, ["create-user", "z", "--role", "viewer", "--district", "120225"])
    dup = runner.invoke(admin_app, ["create-user", "z", "--role", "viewer", "--district", "120225"])
    assert dup.exit_code != 0 and "already exists" in str(dup.exception)


def _token_row(url, token):
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        session.expunge_all()
    engine.dispose()
    return row


def test_tokens_expire_by_default_and_on_request(migrated, districts_file, monkeypatch):
    import datetime as dt

    assert runner.invoke(admin_app, ["import-districts", str(districts_file)]).exit_code == 0
    monkeypatch.setenv("SOILWATCH_TOKEN_LIFETIME_DAYS", "7")
    get_settings.cache_clear()
    result = runner.invoke(admin_app, ["create-user", "li", "--role", "viewer", "--district", "120225"])
    assert result.exit_code == 0, result.output
    first = _token_row(migrated, result.stdout.strip().splitlines()[-1])
    lifetime = first.expires_at.replace(tzinfo=dt.UTC) - first.created_at.replace(tzinfo=dt.UTC)
    assert dt.timedelta(days=7) - dt.timedelta(seconds=5) < lifetime <= dt.timedelta(days=7)

    result = runner.invoke(admin_app, ["new-token", "li", "--expires-in", "12h"])
    assert result.exit_code == 0, result.output
    second = _token_row(migrated, result.stdout.strip().splitlines()[-1])
    lifetime = second.expires_at.replace(tzinfo=dt.UTC) - second.created_at.replace(tzinfo=dt.UTC)
    assert dt.timedelta(hours=12) - dt.timedelta(seconds=5) < lifetime <= dt.timedelta(hours=12)

    result = runner.invoke(admin_app, ["new-token", "li", "--expires-in", "never"])
    assert _token_row(migrated, result.stdout.strip().splitlines()[-1]).expires_at is None

    bad = runner.invoke(admin_app, ["new-token", "li", "--expires-in", "soon"])
    assert bad.exit_code != 0 and "'soon'" in bad.output


def test_revoke_by_prefix_id_and_user(migrated, districts_file):
    assert runner.invoke(admin_app, ["import-districts", str(districts_file)]).exit_code == 0
    created = runner.invoke(admin_app, ["create-user", "zhao", "--role", "viewer", "--district", "120225"])
    first = created.stdout.strip().splitlines()[-1]
    second = runner.invoke(admin_app, ["new-token", "zhao"]).stdout.strip().splitlines()[-1]
    third = runner.invoke(admin_app, ["new-token", "zhao"]).stdout.strip().splitlines()[-1]

    listing = runner.invoke(admin_app, ["list-tokens", "zhao"])
    assert listing.exit_code == 0 and listing.output.count("active") == 3
    assert first not in listing.output and first[:10] in listing.output  # prefixes only

    result = runner.invoke(admin_app, ["revoke-token", first[:10], "--reason", "laptop lost"])
    assert result.exit_code == 0, result.output
    assert _token_row(migrated, first).revoked and _token_row(migrated, first).revoked_at is not None
    assert not _token_row(migrated, second).revoked

    second_id = str(_token_row(migrated, second).id)
    assert runner.invoke(admin_app, ["revoke-token", second_id]).exit_code == 0
    assert _token_row(migrated, second).revoked and not _token_row(migrated, third).revoked

    result = runner.invoke(admin_app, ["revoke-token", "--user", "zhao"])
    assert "revoked 1 token(s); 2 already were" in result.output
    assert _token_row(migrated, third).revoked
    assert runner.invoke(admin_app, ["revoke-token", "sw_nosuchtoken"]).exit_code != 0
    assert runner.invoke(admin_app, ["revoke-token"]).exit_code == 2  # neither TOKEN nor --user
