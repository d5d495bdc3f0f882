"""Shared helpers of the nightly-scan tests: run a scan in-process, read back the patches in a comparable form."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from service.core.config import Settings
from service.db import make_engine, make_sessionmaker
from service.models import Patch
from service.nightly import NightlyOptions, RunResult, SerialExecutor, run_nightly

UNIT_PX = 128


def options(inbox: Path | None, work: Path, **kw: Any) -> NightlyOptions:
    return NightlyOptions(inbox=inbox, unit_px=kw.pop("unit_px", UNIT_PX), work_dir=work, heartbeat_s=0.5,
                          _env_file=None, **kw)  # type: ignore[call-arg]  # fmt: skip


def fresh_sqlite(template: Any, tmp_path: Path, name: str) -> Settings:
    """Settings for a copy of the seeded SQLite ``template`` at ``tmp_path/<name>.db`` (data in ``tmp_path/<name>``)."""
    path = tmp_path / f"{name}.db"
    shutil.copyfile(make_url(template.url).database or "", path)
    return Settings(data_dir=tmp_path / name, database_url=f"sqlite:///{path}", _env_file=None)  # type: ignore[call-arg]


def run(settings: Settings, opts: NightlyOptions, executor: Any = None, **kw: Any) -> RunResult:
    engine = make_engine(settings)
    try:
        return run_nightly(make_sessionmaker(engine), settings, opts, executor or SerialExecutor(), **kw)
    finally:
        engine.dispose()


def patch_rows(url_or_settings: Any) -> list[tuple[Any, ...]]:
    """Every patch as (geometry WKB normalised, rounded area, category, change type, district), sorted."""
    engine = make_engine(url_or_settings)
    with make_sessionmaker(engine)() as session:
        rows = sorted(
            (p.geometry.normalize().wkb_hex, round(p.area_m2, 2), p.category, p.change_type, p.district_code,
             p.before_date, p.after_date)  # fmt: skip
            for p in session.scalars(select(Patch))
        )
    engine.dispose()
    return rows
