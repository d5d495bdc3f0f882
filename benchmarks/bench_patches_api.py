"""``GET /api/v1/patches`` latency with many patches in the database under concurrent clients (issue 5).

Goal in the issue: p95 under 100 ms with 1,000,000 patches and 20 concurrent clients.

Setup: a fresh SQLite database in ``benchmarks/out/patches_api/`` (git-ignored), migrated, seeded with
the two districts and users of ``tests/service/conftest.py`` (its ``_seed``), then filled with
``--patches`` synthetic patches by SQLAlchemy Core ``insert()`` executemany in chunks of 50,000 rows
built directly (WKB geometry, bbox columns, dates, categories, priorities, review states), not through
the API. Patches are small squares (200 m² - 2 ha) spread over the two districts' boxes; categories
55 % compliant, 20 % suspected_relocated, 12 % suspected_out_of_bounds, 8 % suspected_unapproved,
5 % too_small; priority 0 (85 %) or 1-3; 90 % unreviewed. ``--reuse`` keeps an existing database of the
same size.

Load: ``soilwatch serve --no-upgrade`` (one uvicorn process, the real app) on 127.0.0.1 and a free
port, as a subprocess; ``--clients`` threads (default 20), each with its own ``httpx.Client``, each
sending ``--requests`` requests (default 50) back to back, cycling through a seeded mix of queries
(admin / district supervisor, no filter, category, district + status + min area, bbox, date range,
pages up to offset 10,000). 5 warm-up requests first, not counted. Latency is client-side wall time
per request.

Run: ``.venv/bin/python benchmarks/bench_patches_api.py [--patches 1000000] [--clients 20] [--requests 50] [--reuse]``
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
from sqlalchemy import func, select, table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "patches_api"
sys.path.insert(0, str(ROOT))

from benchmarks.seed import CATEGORIES, build_database  # noqa: E402
from benchmarks.seed import free_port as _free_port  # noqa: E402
from benchmarks.seed import pct as _pct  # noqa: E402
from service.db import make_engine  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="reuse benchmarks/out/patches_api if it has --patches")
    args = parser.parse_args()

    path = OUT / f"soilwatch_{args.patches}.db"
    token_file = path.with_suffix(".tokens.json")
    fill_s = float("nan")
    if args.reuse and path.exists() and token_file.exists():
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            have = conn.scalar(select(func.count()).select_from(table("patches")))
        engine.dispose()
        if have != args.patches:
            sys.exit(f"{path} has {have} patches, not {args.patches}; run without --reuse")
        tokens = json.loads(token_file.read_text())
    else:
        tokens, fill_s = build_database(path, args.patches, args.seed)
        token_file.write_text(json.dumps(tokens))
    db_mb = path.stat().st_size / 2**20

    port = _free_port()
    env = {**os.environ, "SOILWATCH_DATABASE_URL": f"sqlite:///{path}", "SOILWATCH_DATA_DIR": str(OUT / "data")}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/soilwatch"), "serve", "--no-upgrade", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
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
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)

    ok = [ms * 1000 for _, ms, code in results if code == 200]
    bad = [code for _, _, code in results if code != 200]
    print(f"# GET /api/v1/patches: {args.patches:,} patches (SQLite), "
          f"{args.clients} clients x {args.requests} requests\n")  # fmt: skip
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; database {db_mb:,.0f} MB, filled in "
          f"{fill_s:.0f} s; load wall {wall:.1f} s, {len(results) / wall:.1f} req/s; "
          f"non-200: {len(bad)} {sorted(set(bad))}\n")  # fmt: skip
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
