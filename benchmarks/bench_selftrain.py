"""Time and peak memory of ``soilwatch train --self-train`` on generated scene pairs of growing size.

Each size is a demo pair made by :mod:`detector.demo` (4 bands, uint16, tiled GeoTIFF, 2 m pixels, seed 11,
cached in ``benchmarks/out/``); each run is a fresh ``soilwatch -q train --before … --after … --self-train
--init shipped --steps N`` process, so peak RSS is that child's ``ru_maxrss``. From the weights' sidecar:
``prepare_seconds`` (checking the pair, fitting the radiometric scale, and predicting the whole overlap
once for the pseudo-labels) and ``train_seconds`` (the N steps).

Run: ``.venv/bin/python benchmarks/bench_selftrain.py [--sizes 2000 5000 10000] [--steps 100]``; prints a
Markdown table for BENCHMARKS.md and writes ``benchmarks/out/selftrain.json``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default benchmarks/out/selftrain.json)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    from detector.demo import make_demo_pair

    soilwatch = str(Path(sys.executable).with_name("soilwatch"))
    rows = []
    for size in args.sizes:
        pair = make_demo_pair(OUT / f"scene{size}", size=size, resolution_m=2.0, seed=11)
        weights = OUT / f"selftrained_{size}.pt"
        cmd = [soilwatch, "-q", "train", "--before", str(pair.before), "--after", str(pair.after), "--self-train",
               "--init", "shipped", "--steps", str(args.steps), "-o", str(weights), "--overwrite"]
        run = run_measured(cmd)
        side = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
        mpx = size * size / 1e6
        rows.append({"size_px": size, "mpx": mpx, "steps": args.steps, "wall_s": round(run["wall_s"], 1),
                     "prepare_s": side["prepare_seconds"], "train_s": side["train_seconds"],
                     "prepare_mpx_per_s": round(mpx / side["prepare_seconds"], 2),
                     "cpu_s": run["cpu_s"], "peak_rss_mb": run["peak_rss_mb"],
                     "pseudo_labels": side["data"]["pseudo_labels"], "device": side["device"],
                     "load_avg_1min": run["load_avg_1min"]})
        print(rows[-1], flush=True)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "runs": rows}
    (args.out or OUT / "selftrain.json").write_text(json.dumps(report, indent=2))
    print("\n| scene px | Mpx | wall s | prepare s (pseudo-labels) | Mpx/s prepared | train s | CPU s | peak RSS MB |"
          "\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size_px']}² | {r['mpx']:g} | {r['wall_s']} | {r['prepare_s']} | {r['prepare_mpx_per_s']} | "
              f"{r['train_s']} | {r['cpu_s']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
