"""Bounded load test of the service on loopback while a scan runs (issue 8): latency per endpoint kind.

Goal in the issue: 50 concurrent clients for 60 s against list, detail, review and export endpoints
while a scan runs: no errors, p95 under 200 ms.

Setup (seeded, ``--seed``): a fresh database — an SQLite file in ``benchmarks/out/load/`` (git-ignored),
or with ``--database-url postgresql+psycopg://…`` a new database ``sw_load_<random>`` created on that
server and dropped at the end (``--keep`` keeps it) — migrated and seeded with the two districts and
six users of ``tests/service/conftest.py``, ``--projects`` approved projects (default 300) and
``--patches`` synthetic patches (default 20,000) by Core inserts (:mod:`benchmarks.seed`). Then the real
``soilwatch serve --no-upgrade`` (one uvicorn process, or ``--workers N``) starts on 127.0.0.1; two
``--tile-px`` GeoTIFF tiles (default 1,024 px, 4 bands, 1 m, EPSG:4548 near 蓟州区, the scan tests' field
scene) are uploaded
through ``POST /imagery``, ``--chip-patches`` (default 300) more patches are put inside their footprint
with their dates (so chips can be cut), and a scan of the pair is queued through ``POST /scans``; each
time it finishes another one is queued, so a scan runs during the whole load.

Load: ``--clients`` asyncio clients (default 50; one ``httpx.AsyncClient`` and connection each, one
event loop in this process) for ``--duration`` seconds (default 60), back to back (``--think-ms`` adds a
pause after each action), each picking a seeded random action:

* ``list`` 35 %: ``GET /patches`` as admin / district supervisor / city viewer with no filter, category,
  district + status + minimum area, 0.05° bbox, 30-day date range, or a page at offset 1,000-5,000;
* ``detail`` 20 %: ``GET /patches/{id}`` of a random patch;
* ``chips`` 15 %: ``GET /patches/{id}/chips/before|after.png`` of a patch on the tiles (rendered the
  first time, then from the cache);
* ``review`` 15 %: ``GET /patches/{id}`` (counted as ``detail``) then ``POST /patches/{id}/reviews``
  with its ETag in ``If-Match``, as the district inspector, on one of 100 "hot" patches, so that
  clients collide: 412/409 are correct answers and counted as **conflicts**, not errors;
* ``export`` 15 %: ``GET /exports/patches?format=geojson|csv`` for one category in 120225 over 90 days.

Reported per kind and overall: requests, p50/p95/p99/max ms (client-side wall time of every answered
request), **errors** (5xx and transport errors/timeouts), conflicts, other 4xx (unexpected), throughput,
load average (before, max during, after), the server's CPU seconds and the scans finished. Speed is
never asserted; the figures go to BENCHMARKS.md with the machine and load.

Run: ``.venv/bin/python benchmarks/bench_load.py [--clients 50] [--duration 60] [--database-url URL]
[--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.seed import (  # noqa: E402
    CATEGORIES,
    insert_patches,
    insert_projects,
    pct,
    seed_users,
    start_server,
    stop_server,
)
from service.db import make_engine  # noqa: E402

__all__ = ["LoadOptions", "run_load", "format_report", "main"]

OUT = ROOT / "benchmarks" / "out" / "load"
KINDS = ["list", "detail", "chips", "review", "export"]
WEIGHTS = [35, 20, 15, 15, 15]
TILE_DATES = (dt.date(2023, 6, 1), dt.date(2024, 6, 1))
HOT_PATCHES = 100
VERDICTS = ["confirmed_violation", "compliant", "not_construction", "false_detection"]


@dataclass
class LoadOptions:
    """What :func:`run_load` does; the command-line options of the same names."""

    clients: int = 50
    duration_s: float = 60.0
    patches: int = 20_000
    projects: int = 300
    chip_patches: int = 300
    tile_px: int = 1024
    think_ms: float = 0.0
    workers: int = 1  # API processes (soilwatch serve --workers)
    database_url: str | None = None  # None: a fresh SQLite file under out_dir
    seed: int = 5
    scan: bool = True
    keep: bool = False
    out_dir: Path = OUT
    timeout_s: float = 60.0  # per request; slower counts as a transport error
    min_requests: int = 0  # the clients go on past the duration until this many requests were made (smoke test)


@dataclass
class _Sample:
    kind: str
    ms: float | None  # None: no answer (transport error or timeout)
    status: int | None
    error: str = ""


@dataclass
class _State:
    base: str
    tokens: dict[str, str]
    all_ids: list[int]
    district_ids: list[int]
    chip_ids: list[int]
    hot_ids: list[int]
    samples: list[_Sample] = field(default_factory=list)
    scans_done: int = 0
    scan_failures: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- database
def _make_database(opts: LoadOptions) -> tuple[str, str | None]:
    """(url of a fresh empty database, name of the PostgreSQL database to drop afterwards or None)."""
    if opts.database_url is None:
        if opts.out_dir.exists():
            shutil.rmtree(opts.out_dir)
        opts.out_dir.mkdir(parents=True)
        return f"sqlite:///{opts.out_dir / 'load.db'}", None
    url = make_url(opts.database_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url {opts.database_url!r}: give a PostgreSQL server URL (SQLite is the default)")
    name = f"sw_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    return url.set(database=name).render_as_string(hide_password=False), name


def _drop_database(opts: LoadOptions, name: str) -> None:
    assert opts.database_url is not None  # only PostgreSQL databases are dropped
    admin = create_engine(opts.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _ids(url: str) -> tuple[list[int], list[int], list[int]]:
    """Patch ids: all, those of district 120225, those with both tiles' dates (on the tiles: chips)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, district_code, before_date, after_date FROM patches")).all()
    engine.dispose()
    dates = tuple(str(d) for d in TILE_DATES)
    all_ids = [r[0] for r in rows]
    district = [r[0] for r in rows if r[1] == "120225"]
    chips = [r[0] for r in rows if (str(r[2])[:10], str(r[3])[:10]) == dates]
    return all_ids, district, chips


# ----------------------------------------------------------------------------------------------- setup
def _upload_tiles(base: str, token: str, folder: Path, size: int) -> tuple[int, int, tuple[float, ...]]:
    """Upload the before/after tiles; returns their ids and lon/lat bounds well inside the after tile."""
    from tests.service.scan_files import write_pair

    squares = [(40, 40, 40, 40), (150, 140, 30, 50)] + [
        (r, c, 30 + (r + c) % 40, 30 + (r * 7 + c) % 50)
        for r in range(300, size - 100, 260)
        for c in range(300, size - 100, 260)
    ]  # more bare-soil sites on bigger tiles, so a scan writes a realistic number of patches
    before, after = write_pair(folder, size=size, squares=squares)
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[int] = []
    bounds: tuple[float, ...] = ()
    with httpx.Client(timeout=300) as http:
        for path, day in ((before, TILE_DATES[0]), (after, TILE_DATES[1])):
            r = http.post(f"{base}/imagery", headers=headers, files={"file": (path.name, path.read_bytes())},
                          data={"acquired_on": str(day), "sensor": "bench"})  # fmt: skip
            if r.status_code != 201:
                raise SystemExit(f"upload of {path.name} failed: {r.status_code} {r.text}")
            ids.append(int(r.json()["id"]))
            coords = np.array(r.json()["footprint"]["coordinates"][0])
            (left, bottom), (right, top) = coords.min(axis=0), coords.max(axis=0)
            dx, dy = (right - left) * 0.15, (top - bottom) * 0.15  # inside the (slightly rotated) footprint
            bounds = (float(left + dx), float(bottom + dy), float(right - dx), float(top - dy))
    return ids[0], ids[1], bounds


# ----------------------------------------------------------------------------------------------- clients
async def _timed(state: _State, kind: str, call) -> httpx.Response | None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    try:
        response = await call
    except httpx.HTTPError as exc:
        state.samples.append(_Sample(kind, None, None, f"{type(exc).__name__}: {exc}"[:200]))
        return None
    ms = (time.perf_counter() - t0) * 1000
    error = "" if response.status_code < 400 else response.text[:200]
    state.samples.append(_Sample(kind, ms, response.status_code, error))
    return response


def _list_params(rng: random.Random) -> tuple[str, dict]:
    page = {"offset": rng.choice([0, 0, 0, 50, 100, 500]), "limit": 50}
    choice = rng.randrange(6)
    if choice == 0:
        return "admin", page
    if choice == 1:
        return "supervisor", {**page, "category": rng.choice(CATEGORIES[1:4])}
    if choice == 2:
        return "city_viewer", {**page, "district": "120225", "review_status": "unreviewed",
                               "min_area_m2": rng.choice([1000, 5000, 10000])}  # fmt: skip
    if choice == 3:
        lon, lat = rng.uniform(117.0, 117.75), rng.uniform(39.9, 40.25)
        return "supervisor", {**page, "bbox": f"{lon:.4f},{lat:.4f},{lon + 0.05:.4f},{lat + 0.05:.4f}"}
    if choice == 4:
        start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(0, 1000))
        return "admin", {**page, "after_from": str(start), "after_to": str(start + dt.timedelta(days=30))}
    return "admin", {"offset": rng.choice([1000, 2000, 5000]), "limit": 50}


async def _action(state: _State, http: httpx.AsyncClient, rng: random.Random, kind: str) -> None:
    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {state.tokens[user]}"}

    if kind == "list":
        user, params = _list_params(rng)
        await _timed(state, kind, http.get("/patches", params=params, headers=auth(user)))
    elif kind == "detail":
        await _timed(state, kind, http.get(f"/patches/{rng.choice(state.all_ids)}", headers=auth("admin")))
    elif kind == "chips":
        pid, which = rng.choice(state.chip_ids), rng.choice(["before", "after"])
        await _timed(state, kind, http.get(f"/patches/{pid}/chips/{which}.png", headers=auth("viewer")))
    elif kind == "review":
        pid = rng.choice(state.hot_ids)
        got = await _timed(state, "detail", http.get(f"/patches/{pid}", headers=auth("inspector")))
        if got is None or got.status_code != 200:
            return
        body = {"verdict": rng.choice(VERDICTS), "note": f"load test {rng.random():.6f}", "photos": []}
        headers = {**auth("inspector"), "If-Match": got.headers.get("etag", "*")}
        await _timed(state, kind, http.post(f"/patches/{pid}/reviews", json=body, headers=headers))
    else:
        start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(0, 1000))
        params = {"format": rng.choice(["geojson", "csv"]), "district": "120225",
                  "category": rng.choice(CATEGORIES[1:4]), "after_from": str(start),
                  "after_to": str(start + dt.timedelta(days=90))}  # fmt: skip
        await _timed(state, kind, http.get("/exports/patches", params=params, headers=auth("supervisor")))


async def _client(state: _State, opts: LoadOptions, index: int, deadline: float) -> None:
    rng = random.Random(opts.seed * 1000 + index)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=state.base, timeout=opts.timeout_s, limits=limits) as http:
        while time.monotonic() < deadline or len(state.samples) < opts.min_requests:
            await _action(state, http, rng, rng.choices(KINDS, WEIGHTS)[0])
            if opts.think_ms:
                await asyncio.sleep(opts.think_ms / 1000)


async def _scans(state: _State, pair: tuple[int, int], deadline: float) -> None:
    """Keep one scan of the pair running until the deadline (queue the next when one ends)."""
    headers = {"Authorization": f"Bearer {state.tokens['supervisor']}"}
    body = {"before_imagery_id": pair[0], "after_imagery_id": pair[1]}
    async with httpx.AsyncClient(base_url=state.base, timeout=60) as http:
        while time.monotonic() < deadline:
            r = await http.post("/scans", json=body, headers=headers)
            if r.status_code != 202:
                state.scan_failures.append(f"POST /scans {r.status_code}: {r.text[:200]}")
                return
            scan_id = r.json()["id"]
            while True:
                await asyncio.sleep(0.5)
                status = (await http.get(f"/scans/{scan_id}", headers=headers)).json()
                if status["status"] in ("succeeded", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline + 120:
                    return
            if status["status"] == "succeeded":
                state.scans_done += 1
            else:
                state.scan_failures.append(f"scan {scan_id} {status['status']}: {status.get('message')}")


async def _sample_load(state: _State, deadline: float) -> None:
    while time.monotonic() < deadline:
        state.loads.append(os.getloadavg()[0])
        await asyncio.sleep(2.0)


async def _run(state: _State, opts: LoadOptions, pair: tuple[int, int] | None) -> float:
    deadline = time.monotonic() + opts.duration_s
    tasks = [_client(state, opts, i, deadline) for i in range(opts.clients)]
    tasks.append(_sample_load(state, deadline))
    scan_task = asyncio.create_task(_scans(state, pair, deadline)) if pair else None
    t0 = time.perf_counter()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    if scan_task is not None:  # the last scan may still run: do not wait for it
        scan_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scan_task
    return wall


# ----------------------------------------------------------------------------------------------- report
def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its child processes (``--workers``), from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _summary(samples: Sequence[_Sample]) -> dict:
    answered = [s.ms for s in samples if s.ms is not None]
    errors = [s for s in samples if s.status is None or s.status >= 500]
    return {
        "requests": len(samples),
        "p50_ms": pct(answered, 50),
        "p95_ms": pct(answered, 95),
        "p99_ms": pct(answered, 99),
        "max_ms": max(answered) if answered else float("nan"),
        "errors": len(errors),
        "conflicts": sum(1 for s in samples if s.status in (409, 412)),
        "unexpected_4xx": sum(
            1 for s in samples if s.status is not None and 400 <= s.status < 500 and s.status not in (409, 412)
        ),  # fmt: skip
    }


def run_load(opts: LoadOptions) -> dict:
    """Seed, serve, scan and load as described in the module docstring; returns the report (JSON-able)."""
    url, pg_name = _make_database(opts)
    server = None
    try:
        t0 = time.perf_counter()
        tokens = seed_users(url)
        rng = np.random.default_rng(opts.seed)
        insert_projects(url, opts.projects, rng)
        insert_patches(url, opts.patches, rng)
        seed_s = time.perf_counter() - t0
        data_dir = opts.out_dir / "data"
        server, base = start_server(url, data_dir, log=opts.out_dir / "server.log", workers=opts.workers)
        before_id, after_id, bounds = _upload_tiles(base, tokens["supervisor"], opts.out_dir / "tiles", opts.tile_px)
        if opts.chip_patches:
            insert_patches(url, opts.chip_patches, rng, start=opts.patches, region=("120225", bounds),
                           dates=TILE_DATES)  # fmt: skip
        all_ids, district_ids, chip_ids = _ids(url)
        hot = random.Random(opts.seed).sample(district_ids, min(HOT_PATCHES, len(district_ids)))
        state = _State(base, tokens, all_ids, district_ids, chip_ids or district_ids, hot)
        load_before = os.getloadavg()[0]
        cpu0 = _cpu_s(server.pid)
        wall = asyncio.run(_run(state, opts, (before_id, after_id) if opts.scan else None))
        server_cpu = _cpu_s(server.pid) - cpu0
        load_after = os.getloadavg()[0]
    finally:
        if server is not None:
            stop_server(server)
        if pg_name and not opts.keep:
            _drop_database(opts, pg_name)

    kinds = {k: _summary([s for s in state.samples if s.kind == k]) for k in KINDS}
    overall = _summary(state.samples)
    examples = sorted({f"{s.kind} {s.status}: {s.error}" for s in state.samples
                       if s.status is None or s.status >= 400 and s.status not in (409, 412)})[:10]  # fmt: skip
    return {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "database": make_url(url).get_backend_name(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "date": dt.date.today().isoformat(),
        "seed_s": seed_s,
        "wall_s": wall,
        "throughput_rps": overall["requests"] / wall if wall else float("nan"),
        "load_before": load_before,
        "load_max": max(state.loads, default=float("nan")),
        "load_mean": float(np.mean(state.loads)) if state.loads else float("nan"),
        "load_after": load_after,
        "server_cpu_s": server_cpu,
        "scans_finished": state.scans_done,
        "scan_failures": state.scan_failures,
        "overall": overall,
        "kinds": kinds,
        "error_examples": examples,
    }


def format_report(report: dict) -> str:
    """The report as Markdown: a summary line and a table per endpoint kind."""
    o = report["options"]
    failures = f" (failures: {'; '.join(report['scan_failures'])})" if report["scan_failures"] else ""
    lines = [
        f"# Load: {o['clients']} clients x {o['duration_s']:.0f} s, {report['database']}, "
        f"{o['workers']} API process{'es' if o['workers'] > 1 else ''}, "
        f"{o['patches']:,} + {o['chip_patches']} patches, {o['projects']} projects\n",
        f"Python {report['python']}, {report['cpus']} CPUs, {report['date']}; seeding {report['seed_s']:.0f} s; "
        f"{report['throughput_rps']:.1f} req/s; server CPU {report['server_cpu_s']:.0f} s in {report['wall_s']:.0f} s; "
        f"load average {report['load_before']:.2f} before, mean {report['load_mean']:.1f} / max "
        f"{report['load_max']:.1f} during, {report['load_after']:.2f} after; scans finished during the load: "
        f"{report['scans_finished']}{failures}\n",
        "| kind | requests | p50 ms | p95 ms | p99 ms | max ms | errors | conflicts | other 4xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, s in [("**all**", report["overall"]), *report["kinds"].items()]:
        lines.append(f"| {name} | {s['requests']} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['p99_ms']:.0f} | "
                     f"{s['max_ms']:.0f} | {s['errors']} | {s['conflicts']} | {s['unexpected_4xx']} |")  # fmt: skip
    p95 = report["overall"]["p95_ms"]
    lines.append(f"\ngoal (no errors, p95 under 200 ms): errors {report['overall']['errors']}, p95 {p95:.0f} ms — "
                 f"{'met' if report['overall']['errors'] == 0 and p95 < 200 else 'missed'}")  # fmt: skip
    if report["error_examples"]:
        lines.append(
            "\nerrors and unexpected answers (examples):\n" + "\n".join(f"- {e}" for e in report["error_examples"])
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    defaults = LoadOptions()
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds of load")
    parser.add_argument("--patches", type=int, default=defaults.patches)
    parser.add_argument("--projects", type=int, default=defaults.projects)
    parser.add_argument("--chip-patches", type=int, default=defaults.chip_patches)
    parser.add_argument("--tile-px", type=int, default=defaults.tile_px)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause after each action")
    parser.add_argument("--workers", type=int, default=1, help="API processes (soilwatch serve --workers)")
    parser.add_argument("--database-url", help="a PostgreSQL server: a new database is made on it (default SQLite)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-scan", action="store_true", help="no scan during the load")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--out-dir", type=Path, default=OUT, help="database, data dir, tiles and server log")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    opts = LoadOptions(
        clients=args.clients, duration_s=args.duration, patches=args.patches, projects=args.projects,
        chip_patches=args.chip_patches, tile_px=args.tile_px, think_ms=args.think_ms, workers=args.workers,
        database_url=args.database_url, seed=args.seed, scan=not args.no_scan, keep=args.keep,
        out_dir=args.out_dir,
    )  # fmt: skip
    report = run_load(opts)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return report


if __name__ == "__main__":
    main()
