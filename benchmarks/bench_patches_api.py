"""``GET /api/v1/patches`` latency with many patches in the database under concurrent clients (issue 5).

Goal in the issue: p95 under 100 ms with 1,000,000 patches and 20 concurrent clients.

Setup: a fresh SQLite database in ``benchmarks/out/patches_api/`` (git-ignored), or with
``--database-url postgresql+psycopg://…/NAME`` a PostgreSQL + PostGIS database NAME dropped and created
again on that server (``bash dev/postgres.sh`` gives a test cluster; use a name other than the one the
URL's server needs), migrated, seeded with
the two districts and users of ``tests/service/conftest.py`` (its ``_seed``), then filled with
``--patches`` synthetic patches by SQLAlchemy Core ``insert()`` executemany in chunks of 50,000 rows
built directly (WKB geometry, bbox columns, dates, categories, priorities, review states), not through
the API. Patches are small squares (200 m² - 2 ha) spread over the two districts' boxes; categories
55 % compliant, 20 % suspected_relocated, 12 % suspected_out_of_bounds, 8 % suspected_unapproved,
5 % too_small; priority 0 (85 %) or 1-3; 90 % unreviewed. Then ``ANALYZE`` (PostgreSQL: ``VACUUM
ANALYZE``). ``--reuse`` keeps an existing database of the same size (migrating it to the head first).

Load: ``soilwatch serve --no-upgrade --workers N`` (``--workers``, default 1; the real app) on 127.0.0.1
and a free port, as a subprocess; ``--clients`` threads (default 20), each with its own ``httpx.Client``, each
sending ``--requests`` requests (default 50) back to back, cycling through a seeded mix of queries
(admin / district supervisor, no filter, category, district + status + min area, bbox, date range,
pages up to offset 10,000). 5 warm-up requests per server worker first, not counted. Latency is client-side wall time
per request. The 1-minute load average is printed before, during (mean and max of 1 s samples) and
after the load, and the CPU seconds per request of the server (all its processes) and of the clients.

Run: ``.venv/bin/python benchmarks/bench_patches_api.py [--patches 1000000] [--clients 20] [--requests 50]
[--workers 1] [--reuse] [--database-url URL]``
Prints Markdown tables (all requests, and per query kind).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine, func, select, table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "patches_api"
sys.path.insert(0, str(ROOT))

from benchmarks.seed import CATEGORIES, build_database, insert_patches, seed_users  # noqa: E402
from benchmarks.seed import free_port as _free_port  # noqa: E402
from benchmarks.seed import pct as _pct  # noqa: E402
from service.db import make_engine, upgrade_database  # noqa: E402


def _queries(rng: random.Random, n: int) -> list[tuple[str, str, dict]]:
    """``n`` (kind, user, params) tuples in a seeded mix."""
    out = []
    for _ in range(n):
        kind = rng.choice(["all", "category", "district_status_area", "bbox", "dates", "deep_page"])
        page = {"offset": rng.choice([0, 0, 50, 100, 500]), "limit": 50}
        if kind == "all":
            out.append((kind, "admin", page))
        elif kind == "category":
            out.append((kind, "supervisor", {**page, "category": rng.choice(CATEGORIES[1:4])}))
        elif kind == "district_status_area":
            out.append((kind, "city_viewer", {**page, "district": "120225", "review_status": "unreviewed",
                                              "min_area_m2": rng.choice([1000, 5000, 10000])}))  # fmt: skip
        elif kind == "bbox":
            lon, lat = rng.uniform(117.0, 117.75), rng.uniform(39.9, 40.25)
            out.append((kind, "supervisor", {**page, "bbox": f"{lon},{lat},{lon + 0.05},{lat + 0.05}"}))
        elif kind == "dates":
            start = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(0, 1000))
            out.append((kind, "admin", {**page, "after_from": start.isoformat(),
                                        "after_to": (start + dt.timedelta(days=30)).isoformat()}))  # fmt: skip
        else:
            out.append((kind, "admin", {"offset": rng.choice([5000, 10000]), "limit": 50}))
    return out


def _fresh_postgres(url: str) -> None:
    """Drop and create the database of ``url`` on its server (connecting to its ``postgres`` database)."""
    target = make_url(url)
    if target.database in (None, "", "postgres", "template0", "template1"):
        sys.exit(f"--database-url names database {target.database!r}; name one the benchmark may drop, e.g. …/bench")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def _prepare(url: str, n: int, seed: int, reuse: bool, token_file: Path) -> tuple[dict[str, str], float]:
    """The users' tokens and the fill seconds (NaN when reused) of a database at ``url`` with ``n`` patches."""
    if reuse and token_file.exists():
        upgrade_database(url)  # a database filled before a new migration gets it (0006: list indexes)
        engine = make_engine(url)
        with engine.connect() as conn:
            have = conn.scalar(select(func.count()).select_from(table("patches")))
        engine.dispose()
        if have != n:
            sys.exit(f"{url} has {have} patches, not {n}; run without --reuse")
        return json.loads(token_file.read_text()), float("nan")
    if make_url(url).get_backend_name() == "sqlite":
        tokens, fill_s = build_database(Path(make_url(url).database or ""), n, seed)
    else:
        _fresh_postgres(url)
        tokens = seed_users(url)
        fill_s = insert_patches(url, n, np.random.default_rng(seed))
        vacuum = create_engine(make_url(url), isolation_level="AUTOCOMMIT")
        with vacuum.connect() as conn:  # visibility map for index-only scans, fresh statistics
            conn.exec_driver_sql("VACUUM ANALYZE patches")
        vacuum.dispose()
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(json.dumps(tokens))
    return tokens, fill_s


def _size_mb(url: str) -> float:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Path(parsed.database or "").stat().st_size / 2**20
    engine = make_engine(url)
    with engine.connect() as conn:
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0
    engine.dispose()
    return size / 2**20


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants (uvicorn workers), from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class _LoadSampler(threading.Thread):
    """The 1-minute load average every second while the load runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.samples.append(os.getloadavg()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--workers", type=int, default=1, help="soilwatch serve --workers")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--database-url", help="default: a SQLite file in benchmarks/out/patches_api/")
    parser.add_argument("--reuse", action="store_true", help="reuse the database if it has --patches")
    args = parser.parse_args()

    url = args.database_url or f"sqlite:///{OUT / f'soilwatch_{args.patches}.db'}"
    backend = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL + PostGIS"
    name = make_url(url).database if backend != "SQLite" else "sqlite"
    token_file = OUT.parent / f"patches_api_tokens_{name}_{args.patches}.json"
    if backend == "SQLite":
        token_file = OUT / f"soilwatch_{args.patches}.tokens.json"
    tokens, fill_s = _prepare(url, args.patches, args.seed, args.reuse, token_file)
    db_mb = _size_mb(url)

    port = _free_port()
    env = {**os.environ, "SOILWATCH_DATABASE_URL": url, "SOILWATCH_DATA_DIR": str(OUT / "data")}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/soilwatch"), "serve", "--no-upgrade", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    sampler = _LoadSampler()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"server did not start: {server.stderr.read().decode() if server.stderr else ''}")
            time.sleep(0.2)

        rng = random.Random(args.seed)
        with httpx.Client(timeout=120) as warm:
            for _ in range(args.workers):  # every worker process gets a warm-up share
                for _kind, user, params in _queries(rng, 5):
                    warm.get(f"{base}/patches", params=params, headers={"Authorization": f"Bearer {tokens[user]}"})

        results: list[tuple[str, float, int]] = []
        lock = threading.Lock()
        plans = [_queries(random.Random(args.seed * 1000 + c), args.requests) for c in range(args.clients)]
        start_gate = threading.Barrier(args.clients)

        def client(plan: list[tuple[str, str, dict]]) -> None:
            mine = []
            with httpx.Client(timeout=120) as http:
                start_gate.wait()
                for kind, user, params in plan:
                    t0 = time.perf_counter()
                    r = http.get(f"{base}/patches", params=params, headers={"Authorization": f"Bearer {tokens[user]}"})
                    mine.append((kind, time.perf_counter() - t0, r.status_code))
            with lock:
                results.extend(mine)

        threads = [threading.Thread(target=client, args=(p,)) for p in plans]
        load_before = os.getloadavg()[0]
        server_cpu0, client_cpu0 = _tree_cpu_s(server.pid), time.process_time()
        sampler.start()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        server_cpu, client_cpu = _tree_cpu_s(server.pid) - server_cpu0, time.process_time() - client_cpu0
        sampler.done.set()
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=30)

    during = sampler.samples or [load_after]
    ok = [ms * 1000 for _, ms, code in results if code == 200]
    bad = [code for _, _, code in results if code != 200]
    print(f"# GET /api/v1/patches: {args.patches:,} patches ({backend}), "
          f"{args.clients} clients x {args.requests} requests, {args.workers} server worker(s)\n")  # fmt: skip
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; database {db_mb:,.0f} MB, filled in "
          f"{fill_s:.0f} s; load wall {wall:.1f} s, {len(results) / wall:.1f} req/s; "
          f"non-200: {len(bad)} {sorted(set(bad))}; load average (1 min) {load_before:.2f} before, "
          f"{statistics.fmean(during):.1f} mean / {max(during):.1f} max during, {load_after:.2f} after; "
          f"CPU per request: server {server_cpu / len(results) * 1000:.1f} ms, "
          f"clients {client_cpu / len(results) * 1000:.1f} ms\n")  # fmt: skip
    print("| queries | requests | p50 ms | p95 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---|---|---|---|---|")

    def row(name: str, values: list[float]) -> None:
        print(f"| {name} | {len(values)} | {_pct(values, 50):.0f} | {_pct(values, 95):.0f} | {_pct(values, 99):.0f} | "
              f"{max(values):.0f} | {statistics.fmean(values):.0f} |")  # fmt: skip

    row("**all**", ok)
    for kind in ["all", "category", "district_status_area", "bbox", "dates", "deep_page"]:
        values = [ms * 1000 for k, ms, code in results if k == kind and code == 200]
        if values:
            row(kind, values)
    p95 = _pct(ok, 95)
    print(f"\ngoal p95 under 100 ms: {'met' if p95 < 100 else 'missed'} (p95 {p95:.0f} ms)")


if __name__ == "__main__":
    main()
