"""Soak run of the API fuzzing (issue #8): many more schemathesis cases than ``tests/service/test_fuzz.py``.

Setup: a fresh SQLite database (or, with ``--postgres URL``, a new database on that server) under
``benchmarks/out/fuzz_soak/`` (git-ignored), migrated and seeded with the districts and users of
``tests/service/conftest.py`` (its ``_seed``), then filled through the API by
:func:`tests.service.fuzzing.seed_service` (a project list, two tiles, a finished scan, a review, a photo).
Every operation is then fuzzed with ``--examples`` cases per token (admin, district supervisor,
inspector; then an invalid token) and generation mode (valid, invalid), seed ``--seed``.

Run: ``.venv/bin/python benchmarks/fuzz_soak.py [--examples 100] [--seed 1] [--postgres URL]``
Writes ``benchmarks/out/fuzz_soak/summary-<engine>-<seed>.json`` (cases, seconds, statuses, each
distinct failure with a curl reproduction, server tracebacks) and prints a one-line summary.
Exit code 1 when any failure was found.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "fuzz_soak"
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from service.core.config import Settings  # noqa: E402
from service.main import create_app  # noqa: E402
from tests.service.conftest import _seed  # noqa: E402
from tests.service.fuzzing import fuzz_app, seed_service  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="cases per operation, token and mode")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", help="a PostgreSQL+PostGIS server URL (a new database is made on it)")
    args = parser.parse_args()
    logging.getLogger("service.api.deps").setLevel(logging.ERROR)  # one warning per failed sign-in otherwise

    folder = OUT / f"run-{args.seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    admin_engine, db_name = None, None
    if args.postgres:
        db_name = f"sw_soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin_engine = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        url = make_url(args.postgres).set(database=db_name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{folder / 'soilwatch.db'}"
    engine_name = "postgresql" if args.postgres else "sqlite"
    try:
        tokens = _seed(url)
        settings = Settings(data_dir=folder / "data", database_url=url, _env_file=None)  # type: ignore[call-arg]
        with TestClient(create_app(settings)) as client:
            ids = seed_service(client, tokens, folder / "seed")
        started = time.perf_counter()
        unlimited = settings.model_copy(update={"auth_failures_per_minute": 10**9})
        valid = {name: tokens[name] for name in ("admin", "supervisor", "inspector")}
        report = fuzz_app(create_app(unlimited, scan_worker=False), valid, ids, max_examples=args.examples,
                          seed=args.seed)  # fmt: skip
        fuzz_app(create_app(settings, scan_worker=False), {"invalid": "sw_not-a-real-token"}, ids,
                 max_examples=args.examples, seed=args.seed, report=report)  # fmt: skip
        wall = time.perf_counter() - started
    finally:
        if admin_engine is not None:
            with admin_engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            admin_engine.dispose()
    summary = report.summary() | {
        "engine": engine_name,
        "examples": args.examples,
        "seed": args.seed,
        "wall_seconds": round(wall, 1),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    path = OUT / f"summary-{engine_name}-{args.seed}.json"
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    found = f"{len(report.failures)} distinct failures, {len(report.server_errors)} server tracebacks"
    ran = f"{report.cases} cases on {len(report.per_operation)} operations in {wall:.0f} s"
    print(f"{engine_name}: {ran}, {found} → {path}")
    if report.failures:
        print(report.describe())
    return 1 if report.failures or report.server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
