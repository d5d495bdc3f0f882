"""Reproduce the "Bureau fine-tune" table of the model card on real georeferenced imagery (OSCD Sentinel-2).

For each city of ``oscd_s2`` (``../shared/data`` or env ``SOILWATCH_SHARED_DATA``) the change mask is
turned into what a bureau would hand over: polygons (one per 8-connected changed region, pixel edges
kept) in a Shapefile with GBK attributes (``图斑编号``, ``面积_m2``) in the city's UTM zone, i.e. another
CRS than the images (EPSG:4326). Then, per city, exactly as a bureau would run it::

    soilwatch train --before A/<city>.tif --after B/<city>.tif --labels <city>图斑.shp --init shipped \\
        --holdout east:0.3 --steps 100 --seed 0 -o <workdir>/<city>.pt

and the held-out (eastern 30 %) pixel and object scores of the init and the fine-tuned model are
collected into one table (markdown on stdout, JSON with ``--json``).

    python -m training.bureau_demo                       # beihai and abudhabi, init = shipped weights
    python -m training.bureau_demo --init /tmp/loso_oscd.pt --cities beihai,rennes
    python -m training.bureau_demo --init /tmp/loso_oscd.pt --self-train   # no labels in training; they only score

Options the demo does not know (``--self-train``, ``--lr``, ``--crop``, ...) are passed on to ``soilwatch train``.

Exit code 2, with a message, when the shared data is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["labels_to_shapefile", "main", "run_city"]

_SET = "oscd_s2"
DEFAULT_CITIES = ("beihai", "abudhabi")


def _data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SOILWATCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def labels_to_shapefile(label_png: Path, reference_tif: Path, out_shp: Path) -> int:
    """Vectorise a 0/255 change mask on the grid of ``reference_tif`` into a GBK Shapefile in the
    scene's UTM zone (``.cpg`` = GBK). Returns the number of polygons."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    from detector.io import inspect_raster
    from training.data import read_mask

    info = inspect_raster(reference_tif)
    mask = read_mask(label_png)
    if mask.shape != (info.height, info.width):
        raise ValueError(f"{label_png} is {mask.shape}, {reference_tif} is {(info.height, info.width)}")
    geoms = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, connectivity=8,
                                         transform=info.grid.transform) if v == 1]
    frame = gpd.GeoDataFrame(geometry=geoms, crs=info.grid.crs)
    frame = frame.to_crs(frame.estimate_utm_crs())
    frame.insert(0, "图斑编号", [f"{label_png.stem}-{i + 1:04d}" for i in range(len(frame))])
    frame.insert(1, "面积_m2", frame.geometry.area.round(1))
    frame.to_file(out_shp, engine="pyogrio", encoding="gbk")
    return len(frame)


def run_city(root: Path, city: str, workdir: Path, *, init: str, steps: int, seed: int, holdout: str,
             extra: list[str] | None = None) -> dict[str, Any]:
    """Fine-tune on one city through the ``soilwatch train`` command line; returns the sidecar's summary."""
    import soilwatch.cli

    a, b = root / _SET / "A" / f"{city}.tif", root / _SET / "B" / f"{city}.tif"
    shp = workdir / f"{city}图斑.shp"
    n = labels_to_shapefile(root / _SET / "label" / f"{city}.png", a, shp)
    out = workdir / f"{city}.pt"
    args = ["train", "--before", str(a), "--after", str(b), "--labels", str(shp), "--init", init,
            "--holdout", holdout, "--steps", str(steps), "--seed", str(seed), "-o", str(out), "--overwrite",
            *(extra or [])]
    print(f"\n$ soilwatch {' '.join(args)}", file=sys.stderr, flush=True)
    t0 = time.time()
    code = soilwatch.cli.main(args)
    if code != 0:
        raise SystemExit(f"soilwatch train failed for {city} (exit code {code})")
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    held = side["held_out"]
    mode = "self-trained" if side["finetune"].get("self_train") else "fine-tuned"
    return {"city": city, "polygons": n, "init": init, "steps": steps, "seed": seed, "holdout": held["region"],
            "mode": mode, "windows": held.get("training_windows"), "pseudo_labels": side["data"].get("pseudo_labels"),
            "wall_s": round(time.time() - t0, 1), "train_s": side["train_seconds"], "device": side["device"],
            "before": held["init"], "after": held["finetuned"], "weights": str(out), "sha256": side["sha256"]}


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of held-out scores, init vs fine-tuned."""
    head = ("| city | init | holdout | model | px P | px R | px F1 | obj P | obj R | obj F1 | objects pred/true |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        for label, s in (("init", r["before"]), (f"{r.get('mode', 'fine-tuned')} ({r['steps']} steps)", r["after"])):
            px, ob = s["pixel"], s["object"]
            lines.append(f"| {r['city']} | {Path(r['init']).name} | {r['holdout'].split(' ')[0]} | {label} | "
                         f"{_f(px['precision'])} | {_f(px['recall'])} | {_f(px['f1'])} | {_f(ob['precision'])} | "
                         f"{_f(ob['recall'])} | {_f(ob['f1'])} | {ob['predicted']}/{ob['true']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.bureau_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="shared data folder (default: env SOILWATCH_SHARED_DATA, else ../shared/data)")
    p.add_argument("--cities", default=",".join(DEFAULT_CITIES), help="comma-separated oscd_s2 cities")
    p.add_argument("--init", default="shipped", help="'shipped' or a ChangeNet .pt file")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", default="east:0.3")
    p.add_argument("--workdir", help="keep the label files and weights here (default: a temporary folder)")
    p.add_argument("--json", help="write the rows as JSON here")
    args, extra = p.parse_known_args(argv)
    root = _data_root(args.data)
    if not (root / _SET / "A").is_dir():
        print(f"shared data not found: {str(root / _SET)!r} is missing. Point --data or SOILWATCH_SHARED_DATA at "
              "the shared/data folder (see ../shared/data/README.md); nothing was run.", file=sys.stderr)
        return 2
    cities = [c.strip() for c in args.cities.split(",") if c.strip()]
    missing = [c for c in cities if not (root / _SET / "A" / f"{c}.tif").is_file()]
    if missing:
        print(f"no such oscd_s2 cities {missing!r} under {str(root)!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bureau_demo_") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [run_city(root, c, work, init=args.init, steps=args.steps, seed=args.seed, holdout=args.holdout,
                         extra=extra) for c in cities]
    print(table(rows))
    for r in rows:
        print(f"{r['city']}: {r['polygons']} polygons, {r['train_s']} s training, {r['wall_s']} s wall, {r['device']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
