"""Throughput and peak memory of ``soilwatch detect`` on a large generated scene pair.

Sizes: by default a 10,000 x 10,000 px pair (4 bands, uint16, tiled deflate GeoTIFF, 2 m pixels,
so 400 km²) generated once by :mod:`detector.demo` with seed 11 into ``benchmarks/out/``. Each
configuration runs in a fresh subprocess; peak RSS is that child's ``ru_maxrss``. Besides the
baseline it runs a no-op model (always 0) to show the I/O + vectorising ceiling.

Run: ``.venv/bin/python benchmarks/bench_detect.py [--size 10000] [--workers 1 2]``; results are
printed as a Markdown table to paste into BENCHMARKS.md, and written to benchmarks/out/detect.json,
with each run's CPU seconds (user + system, all threads) and the 1-minute load average before and
after it: on a shared machine the CPU time says what the run needed, the wall time what it got.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.child import run_measured  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"

NOOP = """
import sys, numpy as np
from detector.pipeline import DetectOptions, detect_pair
from models.base import ModelInfo
class Noop:
    info = ModelInfo(name="noop", version="0", tile_size=1024, margin_px=15, batch_size=1)
    def predict(self, x, bands):
        return np.zeros((x.shape[0],) + x.shape[3:], np.float32)
detect_pair(sys.argv[1], sys.argv[2], None, options=DetectOptions(workers=int(sys.argv[3])), model=Noop())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--resolution-m", type=float, default=2.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["noop", "baseline"],
                        help="noop, or names/weights for soilwatch detect --model (e.g. changenet, auto)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default benchmarks/out/detect.json)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from detector.demo import make_demo_pair

    t0 = time.perf_counter()
    pair = make_demo_pair(OUT / f"scene{args.size}", size=args.size, resolution_m=args.resolution_m, seed=11)
    gen_s = time.perf_counter() - t0
    mpx = args.size * args.size / 1e6
    km2 = mpx * args.resolution_m**2
    soilwatch = str(Path(sys.executable).with_name("soilwatch"))
    rows = []
    for model in args.models:
        for workers in args.workers:
            out = OUT / f"patches_{model}_{workers}.gpkg"
            if model == "noop":
                cmd = [sys.executable, "-c", NOOP, str(pair.before), str(pair.after), str(workers)]
            else:
                cmd = [
                    soilwatch,
                    "-q",
                    "detect",
                    "--model",
                    model,  # named: issue 3 measures the spectral baseline, whatever the CLI's default
                    "-b",
                    str(pair.before),
                    "-a",
                    str(pair.after),
                    "-o",
                    str(out),
                    "--overwrite",
                    "--workers",
                    str(workers),
                ]
            run = run_measured(cmd)
            wall = run.pop("wall_s")
            rows.append(
                {
                    "model": model,
                    "workers": workers,
                    "seconds": round(wall, 1),
                    "mpx_per_s": round(mpx / wall, 2),
                    "km2_per_s": round(km2 / wall, 2),
                    **run,
                }
            )
            print(rows[-1], flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "scene": {
            "size_px": args.size,
            "resolution_m": args.resolution_m,
            "mpx": mpx,
            "km2": km2,
            "generation_s": round(gen_s, 1),
        },
        "runs": rows,
    }
    (args.out or OUT / "detect.json").write_text(json.dumps(report, indent=2))
    print(
        "\n| model | workers | wall s | Mpx/s | km²/s at 2 m | CPU s | peak RSS MB | load avg before → after |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        lb, la = r["load_avg_1min"]
        print(
            f"| {r['model']} | {r['workers']} | {r['seconds']} | {r['mpx_per_s']} | {r['km2_per_s']} | "
            f"{r['cpu_s']} | {r['peak_rss_mb']} | {lb} → {la} |"
        )


if __name__ == "__main__":
    main()
