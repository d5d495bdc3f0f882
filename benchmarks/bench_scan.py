"""Throughput of the nightly scan (``soilwatch scan``) on a generated 400 km² pair, local and on Dask.

Sizes: by default the 10,000 x 10,000 px pair of :mod:`benchmarks.bench_detect` (4 bands, uint16,
tiled deflate GeoTIFF, 2 m pixels = 400 km², EPSG:4548), made once by
``detector.demo.make_demo_pair(size=10000, resolution_m=2.0, seed=11)`` in ``benchmarks/out/scene<size>/``.
Each configuration scans an inbox holding the two dates (symlinks) into a fresh SQLite database: the
scenes are catalogued (SHA-256 + header), paired, planned, cut into 2,048 px units, detected with
``--model`` (default ``auto``, the nightly default: the learned changenet at this 2 m), merged, matched and
written, and the report is made. ``--self-train`` adapts the model to the pair first (``soilwatch scan
--self-train``; its time is inside ``plan_s`` and shown apart as ``self_train_s``). The timings are shown per
stage, so cataloguing, merging and writing are apart from inference; the scheduler overhead is the
detection wall time beyond the units' own compute time divided by the workers.

Run: ``.venv/bin/python benchmarks/bench_scan.py [--size 10000] [--workers 2] [--only local|dask] [--self-train]``;
prints a Markdown table and writes benchmarks/out/scan.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))


def _scene(size: int, resolution_m: float) -> tuple[Path, Path]:
    from detector.demo import make_demo_pair

    pair = make_demo_pair(OUT / f"scene{size}", size=size, resolution_m=resolution_m, seed=11)
    return pair.before, pair.after


def _planted(patches: list[Any], truth: Path) -> dict[str, float]:
    """The written patches against the scene's planted construction sites (``soilwatch demo``'s check)."""
    import geopandas as gpd

    from detector.demo import score_patches, truth_polygons
    from detector.io import read_small_raster
    from service.geometry import WGS84

    change, transform, crs = read_small_raster(truth)
    scores = score_patches(gpd.GeoDataFrame(geometry=patches, crs=WGS84), truth_polygons(change, transform,
                                                                                         crs.to_string()))
    return {k: round(v, 3) for k, v in scores.items()}


def _one(name: str, executor: Any, inbox: Path, unit_px: int, model: str = "auto", self_train: bool = False,
         self_train_steps: int = 100, truth: Path | None = None) -> dict[str, Any]:  # fmt: skip
    from sqlalchemy import func, select

    from service.core.config import Settings
    from service.db import make_engine, make_sessionmaker, upgrade_database
    from service.models import Patch, ScanUnit
    from service.nightly import NightlyOptions, run_nightly

    work = OUT / "scan" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = f"sqlite:///{work / 'soilwatch.db'}"
    upgrade_database(url)
    settings = Settings(data_dir=work, database_url=url, _env_file=None)  # type: ignore[call-arg]
    options = NightlyOptions(inbox=inbox, unit_px=unit_px, work_dir=work, model=model, self_train=self_train,
                             self_train_steps=self_train_steps, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    t0 = time.perf_counter()
    result = run_nightly(factory, settings, options, executor)
    wall = time.perf_counter() - t0
    with factory() as session:
        unit_s = float(session.scalar(select(func.sum(ScanUnit.seconds))) or 0.0)
        units = int(session.scalar(select(func.count()).select_from(ScanUnit)) or 0)
        shapes = [p.geometry for p in session.scalars(select(Patch))]
        geoms = sorted(g.normalize().wkb_hex for g in shapes)
    engine.dispose()
    t = result.timings
    detect_s = t.get("detect_s", 0.0)
    ideal = unit_s / executor.workers
    km2 = sum(j["area_km2"] for j in result.summary["jobs"])
    return {
        "name": name, "workers": executor.workers, "wall_s": round(wall, 1), "units": units, "km2": round(km2, 1),
        "patches": len(geoms), "patch_hash": hashlib.sha256("".join(geoms).encode()).hexdigest()[:16],
        **{k: round(v, 2) for k, v in t.items()},
        "unit_compute_s": round(unit_s, 1),
        "scheduler_overhead_s": round(detect_s - ideal, 1),
        "scheduler_overhead_pct_of_run": round(100 * (detect_s - ideal) / wall, 1),
        "km2_per_s": round(km2 / wall, 2), "km2_per_s_detect": round(km2 / detect_s, 2) if detect_s else None,
        "planted": _planted(shapes, truth) if truth is not None and truth.exists() else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--resolution-m", type=float, default=2.0)
    parser.add_argument("--unit-px", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=["local", "dask"], default=None)
    parser.add_argument("--model", default="auto", help="auto (the nightly default), baseline, changenet or a .pt")
    parser.add_argument("--self-train", action="store_true", help="adapt the model to the pair first")
    parser.add_argument("--self-train-steps", type=int, default=100)
    args = parser.parse_args()

    from service.nightly import DaskExecutor, LocalExecutor

    before, after = _scene(args.size, args.resolution_m)
    truth = before.with_name("demo_truth.tif")
    inbox = OUT / "scan" / f"inbox{args.size}"
    inbox.mkdir(parents=True, exist_ok=True)
    for f in (before, after):
        if not (inbox / f.name).exists():
            (inbox / f.name).symlink_to(f)
    rows = []
    load = [os.getloadavg()]
    if args.only in (None, "local"):
        executor = LocalExecutor(args.workers)
        try:
            rows.append(_one("local", executor, inbox, args.unit_px, args.model, args.self_train,
                             args.self_train_steps, truth))
        finally:
            executor.close()
        load.append(os.getloadavg())
    if args.only in (None, "dask"):
        import distributed

        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, host="127.0.0.1") as cluster, \
                distributed.Client(cluster) as client:  # fmt: skip
            start = time.perf_counter() - t0
            row = _one("dask", DaskExecutor(client=client), inbox, args.unit_px, args.model, args.self_train,
                       args.self_train_steps, truth)
            row["cluster_start_s"] = round(start, 1)
            rows.append(row)
        load.append(os.getloadavg())
    info = {"machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "size_px": args.size, "resolution_m": args.resolution_m, "unit_px": args.unit_px, "model": args.model,
            "self_train": args.self_train, "self_train_steps": args.self_train_steps if args.self_train else None,
            "load_average_1_5_15": [list(map(lambda v: round(v, 2), x)) for x in load], "runs": rows}  # fmt: skip
    (OUT / "scan.json").write_text(json.dumps(info, indent=2))
    cols = ["name", "workers", "wall_s", "catalogue_s", "plan_s", "self_train_s", "detect_s", "merge_s", "write_s",
            "report_s", "unit_compute_s", "scheduler_overhead_pct_of_run", "km2_per_s", "patches"]  # fmt: skip
    print(json.dumps({k: v for k, v in info.items() if k != "runs"}))
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    for r in rows:
        if r["planted"]:
            print(f"{r['name']}: planted sites found {r['planted']['found']:.0f} of {r['planted']['true_sites']:.0f}, "
                  f"{r['planted']['false_alarms']:.0f} of {r['planted']['patches']:.0f} patches false")
    if len(rows) == 2:
        print("same patches local and dask:", rows[0]["patch_hash"] == rows[1]["patch_hash"])


if __name__ == "__main__":
    main()
