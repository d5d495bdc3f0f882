"""Seeding and server helpers shared by the service benchmarks (``bench_patches_api.py``, ``bench_load.py``).

Databases are filled with SQLAlchemy Core ``insert()`` executemany in chunks, not through the API:
the two districts and six users of ``tests/service/conftest.py`` (its ``_seed``, which also migrates),
then synthetic patches (small squares, 200 m² - 2 ha, log-uniform, over the districts' boxes, lon/lat
EPSG:4326) and approved projects (rectangles 1-50 ha). Works on SQLite and PostgreSQL + PostGIS
(geometries go in as WKB on SQLite, as EWKB hex with SRID 4326 on PostGIS).

:func:`start_server` runs the real ``soilwatch serve --no-upgrade`` (one uvicorn process) as a subprocess
on 127.0.0.1 and waits for ``/api/v1/health``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import shapely
from sqlalchemy import column, insert, table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.db import make_engine  # noqa: E402
from tests.service.conftest import DISTRICTS, _seed  # noqa: E402

__all__ = [
    "ROOT",
    "DISTRICTS",
    "CATEGORIES",
    "CATEGORY_P",
    "STATUSES",
    "STATUS_P",
    "COLUMNS",
    "CHUNK",
    "patch_rows",
    "project_rows",
    "seed_users",
    "insert_patches",
    "insert_projects",
    "build_database",
    "free_port",
    "pct",
    "start_server",
    "stop_server",
]

CATEGORIES = ["compliant", "suspected_relocated", "suspected_out_of_bounds", "suspected_unapproved", "too_small"]
CATEGORY_P = [0.55, 0.20, 0.12, 0.08, 0.05]
STATUSES = ["unreviewed", "assigned", "reviewed", "closed"]
STATUS_P = [0.90, 0.04, 0.05, 0.01]
COLUMNS = (
    "patch_code", "district_code", "geometry", "area_m2", "area_mu", "lon", "lat", "before_date", "after_date",
    "confidence", "conf_max", "model", "category", "category_reason", "outside_share", "priority",
    "review_status", "version", "created_at", "updated_at", "min_x", "min_y", "max_x", "max_y",
)  # fmt: skip
PROJECT_COLUMNS = (
    "code", "name", "builder", "industry", "approval_authority", "approval_number", "approved_on",
    "declared_area_hm2", "vector_type", "district_code", "area_m2", "geometry", "attributes", "version",
    "created_at", "updated_at", "min_x", "min_y", "max_x", "max_y",
)  # fmt: skip
CHUNK = 50_000
M_PER_DEG_LAT = 111_320.0
NOW = dt.datetime(2024, 6, 1, 8, 0).strftime("%Y-%m-%d %H:%M:%S.%f")


def _wkb(geoms: np.ndarray, postgis: bool) -> list:
    if postgis:  # EWKB hex: PostGIS parses it straight into geometry(GEOMETRY, 4326)
        return list(shapely.to_wkb(shapely.set_srid(geoms, 4326), hex=True, include_srid=True))
    return list(shapely.to_wkb(geoms))


def patch_rows(
    rng: np.random.Generator,
    start: int,
    n: int,
    now: str = NOW,
    *,
    region: tuple[str, tuple[float, float, float, float]] | None = None,
    dates: tuple[dt.date, dt.date] | None = None,
    postgis: bool = False,
) -> list[dict]:
    """``n`` synthetic patch rows numbered from ``start``, spread over both districts' boxes.

    ``region`` = (district code, lon/lat bounds) puts them all there instead; ``dates`` = (before, after)
    gives them all these dates (e.g. those of an uploaded tile pair, so chips can be cut).
    """
    codes = list(DISTRICTS)
    district = rng.integers(0, len(codes), n)
    bounds = np.array([DISTRICTS[c][1].bounds for c in codes])[district]
    if region is not None:
        codes, district = [region[0]], np.zeros(n, dtype=int)
        bounds = np.tile(np.array(region[1], dtype=float), (n, 1))
    lon = rng.uniform(bounds[:, 0], bounds[:, 2])
    lat = rng.uniform(bounds[:, 1], bounds[:, 3])
    area = np.exp(rng.uniform(np.log(200.0), np.log(2e4), n))
    half_lat = np.sqrt(area) / 2 / M_PER_DEG_LAT
    half_lon = half_lat / np.cos(np.radians(lat))
    geoms = shapely.box(lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)
    wkb = _wkb(geoms, postgis)
    category = rng.choice(len(CATEGORIES), n, p=CATEGORY_P)
    status = rng.choice(len(STATUSES), n, p=STATUS_P)
    priority = np.where(rng.random(n) < 0.85, 0, rng.integers(1, 4, n))
    after = rng.integers(0, 3 * 365, n)
    conf = rng.uniform(0.5, 1.0, n)
    base = dt.date(2023, 1, 1)
    rows = []
    for i in range(n):
        after_date = base + dt.timedelta(days=int(after[i]))
        before_date = after_date - dt.timedelta(days=90)
        if dates is not None:
            before_date, after_date = dates
        rows.append({
            "patch_code": f"{after_date.year}_{codes[district[i]]}_{start + i:07d}",
            "district_code": codes[district[i]],
            "geometry": wkb[i],
            "area_m2": float(area[i]),
            "area_mu": float(area[i]) / (10000.0 / 15.0),
            "lon": float(lon[i]),
            "lat": float(lat[i]),
            "before_date": before_date.isoformat(),
            "after_date": after_date.isoformat(),
            "confidence": float(conf[i]),
            "conf_max": float(conf[i]),
            "model": "baseline",
            "category": CATEGORIES[category[i]],
            "category_reason": "synthetic",
            "outside_share": 0.0,
            "priority": int(priority[i]),
            "review_status": STATUSES[status[i]],
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "min_x": float(lon[i] - half_lon[i]),
            "min_y": float(lat[i] - half_lat[i]),
            "max_x": float(lon[i] + half_lon[i]),
            "max_y": float(lat[i] + half_lat[i]),
        })  # fmt: skip
    return rows


def project_rows(rng: np.random.Generator, start: int, n: int, *, postgis: bool = False) -> list[dict]:
    """``n`` approved projects (responsibility outlines, 1-50 ha rectangles) over both districts."""
    codes = list(DISTRICTS)
    district = rng.integers(0, len(codes), n)
    bounds = np.array([DISTRICTS[c][1].bounds for c in codes])[district]
    lon = rng.uniform(bounds[:, 0], bounds[:, 2])
    lat = rng.uniform(bounds[:, 1], bounds[:, 3])
    area = np.exp(rng.uniform(np.log(1e4), np.log(5e5), n))
    aspect = rng.uniform(0.5, 2.0, n)
    half_lat = np.sqrt(area / aspect) / 2 / M_PER_DEG_LAT
    half_lon = np.sqrt(area * aspect) / 2 / M_PER_DEG_LAT / np.cos(np.radians(lat))
    geoms = shapely.box(lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)
    wkb = _wkb(geoms, postgis)
    approved = rng.integers(0, 4 * 365, n)
    rows = []
    for i in range(n):
        k = start + i
        rows.append({
            "code": f"2021-{codes[district[i]]}-48-01-{k:06d}",
            "name": f"合成项目{k:05d}（{['道路', '住宅', '厂房', '光伏'][k % 4]}工程）",
            "builder": f"建设单位{k % 97:02d}有限公司",
            "industry": ["公路工程", "房地产工程", "工业园区工程", "光伏发电工程"][k % 4],
            "approval_authority": "天津市水务局",
            "approval_number": f"津水保〔2021〕{k}号",
            "approved_on": (dt.date(2020, 1, 1) + dt.timedelta(days=int(approved[i]))).isoformat(),
            "declared_area_hm2": float(area[i]) / 1e4,
            "vector_type": "responsibility",
            "district_code": codes[district[i]],
            "area_m2": float(area[i]),
            "geometry": wkb[i],
            "attributes": "{}",
            "version": 1,
            "created_at": NOW,
            "updated_at": NOW,
            "min_x": float(lon[i] - half_lon[i]),
            "min_y": float(lat[i] - half_lat[i]),
            "max_x": float(lon[i] + half_lon[i]),
            "max_y": float(lat[i] + half_lat[i]),
        })  # fmt: skip
    return rows


def seed_users(url: str) -> dict[str, str]:
    """Migrate ``url`` and add the districts and users of the service tests; returns name → API token."""
    return _seed(url)


def _insert(url: str, name: str, columns: Sequence[str], batches) -> float:  # type: ignore[no-untyped-def]
    target = table(name, *(column(c) for c in columns))  # untyped: WKB bytes and ISO strings go straight in
    engine = make_engine(url)
    t0 = time.perf_counter()
    done = 0
    for rows in batches:
        with engine.begin() as conn:
            conn.execute(insert(target), rows)
        done += len(rows)
        print(f"  {done:,} {name}, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return time.perf_counter() - t0


def insert_patches(url: str, n: int, rng: np.random.Generator, *, start: int = 0, **kw) -> float:  # type: ignore[no-untyped-def]
    """Insert ``n`` patches (:func:`patch_rows` keywords pass through); returns the seconds taken."""
    postgis = make_url(url).get_backend_name() == "postgresql"
    batches = (patch_rows(rng, start + s, min(CHUNK, n - s), postgis=postgis, **kw) for s in range(0, n, CHUNK))
    return _insert(url, "patches", COLUMNS, batches)


def insert_projects(url: str, n: int, rng: np.random.Generator) -> float:
    """Insert ``n`` approved projects; returns the seconds taken."""
    postgis = make_url(url).get_backend_name() == "postgresql"
    batches = (project_rows(rng, s, min(CHUNK, n - s), postgis=postgis) for s in range(0, n, CHUNK))
    return _insert(url, "projects", PROJECT_COLUMNS, batches)


def build_database(path: Path, n: int, seed: int) -> tuple[dict[str, str], float]:
    """A fresh SQLite file at ``path`` (its folder is emptied), migrated, seeded, with ``n`` patches;
    returns the users' tokens and the fill seconds."""
    if path.parent.exists():
        shutil.rmtree(path.parent)
    path.parent.mkdir(parents=True)
    url = f"sqlite:///{path}"
    tokens = seed_users(url)
    fill_s = insert_patches(url, n, np.random.default_rng(seed))
    return tokens, fill_s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def start_server(url: str, data_dir: Path, *, port: int | None = None, timeout_s: float = 60.0,
                 log: Path | None = None, workers: int = 1) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """``soilwatch serve --no-upgrade [--workers N]`` on 127.0.0.1 for ``url``; returns the process and the
    API base URL once ``/health`` answers. Its log goes to ``log`` (default: discarded)."""
    port = port or free_port()
    env = {**os.environ, "SOILWATCH_DATABASE_URL": url, "SOILWATCH_DATA_DIR": str(data_dir)}
    out = log.open("ab") if log else subprocess.DEVNULL
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("soilwatch")), "serve", "--no-upgrade", "--host", "127.0.0.1",
         "--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise SystemExit(f"soilwatch serve did not start on port {port}: {tail}")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen, timeout_s: float = 30.0) -> None:
    server.terminate()
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
