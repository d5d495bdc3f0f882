"""``soilwatch demo-service``: the README's main command, end to end on the real demo scene, twice."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, func, select

from service.demo import ZONE_NAME
from service.models import Patch, PriorityZone, Project, User
from soilwatch.cli import main


@pytest.mark.slow
def test_demo_service_runs_the_whole_job_twice(tmp_path, capsys, monkeypatch):
    # The demo keeps to its own SQLite file even when the environment names another database.
    monkeypatch.setenv("SOILWATCH_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/not-this-one")
    args = ["demo-service", "--data-dir", str(tmp_path / "data"), "--rows", "12"]
    assert main(args) == 0
    first = capsys.readouterr().out
    for words in (
        "疑似未批先建",
        "suspected_unapproved",
        "疑似超出防治责任范围",
        "疑似建设地点变更",
        "合规",
        "http://127.0.0.1:8000/docs",
        "http://127.0.0.1:8000/map",
        "soilwatch serve",
        "蓟州区水土保持监管清单.zip: 6 projects imported",
        "priority zones 蓟州区重点监管区域.geojson: 1 imported",
    ):
        assert words in first, words  # fmt: skip
    planted = [line for line in first.splitlines() if " — " in line]
    assert len(planted) == 5 and all(line.endswith("as planted") for line in planted), planted
    assert len(re.findall(r"^  demo-(?:admin|supervisor|inspector) +sw_\S{20,}$", first, re.M)) == 3
    # the site left unapproved inside the water-source zone ranks first: its suspected category's priority (30
    # 疑似未批先建, or 10 when a project of its kind lies near enough to call it 疑似建设地点变更) + 50 (水源保护区)
    zone = re.escape(f"in priority zone {ZONE_NAME} (水源保护区 +50): ")
    zone_line = zone + r"(\S+) (?:疑似未批先建, priority 80|疑似建设地点变更, priority 60)$"
    ranked = re.findall(zone_line, first, re.M)
    assert ranked, first

    db = tmp_path / "data" / "demo" / "soilwatch.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        patches = conn.scalar(select(func.count()).select_from(Patch))
        assert conn.scalar(select(func.count()).select_from(Project)) == 7
        assert conn.scalar(select(func.count()).select_from(User)) == 3
        assert conn.scalar(select(func.count()).select_from(PriorityZone)) == 1
        top = conn.execute(select(Patch.patch_code, Patch.priority_zone_id).order_by(Patch.priority.desc())).first()
    engine.dispose()
    assert patches and patches > 20
    assert top is not None and top.priority_zone_id is not None and top.patch_code == ranked[0]

    # Again: the demo database is reset (same users, one scan, the same patches), the imagery reused.
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "scan 1 succeeded" in second and "database reset" in second
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Patch)) == patches
        assert conn.scalar(select(func.count()).select_from(User)) == 3
    engine.dispose()
