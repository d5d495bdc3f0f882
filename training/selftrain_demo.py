"""Measure ``soilwatch train --self-train`` scene by scene on a labelled change set (model card, issue #4).

Self-training adapts a model to one new image pair without labels (:mod:`training.bureau`). To measure
it the way it is used, each pair of a set in the ``<set>/A|B|label`` layout is handled as its own scene:

1. A and B are written as GeoTIFFs (the file's own values, e.g. 0-255, on a UTM 50N grid at the set's
   resolution), so they go through the detector's reading and radiometric scaling as a bureau's would;
2. the model is self-trained on that pair alone with the product code (:func:`training.bureau.finetune`
   with ``self_train=True``, no labels, default settings unless given);
3. the init and the adapted model are scored on the whole pair with the rules of ``soilwatch eval``
   (:func:`training.evaluate.predict_pair` / :func:`training.evaluate.score_pair`, threshold of the
   model, objects under 200 m² dropped); pixel counts and object tallies are pooled over the set.

The labels are used for scoring only. This is transductive, as a scan would be (adapt on the night's
images, then detect on them); use a model that never saw the set (a ``changenet_loso_<set>`` run), or the
init scores are in-sample::

    soilwatch train --config training/configs/changenet_loso_dsifn.yaml -o /tmp/loso_dsifn.pt
    python -m training.selftrain_demo --init /tmp/loso_dsifn.pt --set dsifn_changeformer --json out.json

Exit code 2, with a message, when the shared data is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.bureau_demo import _data_root, _f

__all__ = ["main", "run_pair", "write_geotiff"]

#: CRS of the GeoTIFFs written for PNG pairs (UTM zone 50N, eastern China); the origin is arbitrary.
_CRS = "EPSG:32650"
_ORIGIN = (500_000.0, 3_500_000.0)


def write_geotiff(data: np.ndarray, path: Path, resolution_m: float, bands: tuple[str, ...]) -> Path:
    """Write ``data`` (bands, h, w) in the file's own units as a north-up GeoTIFF at ``resolution_m``,
    band descriptions = ``bands``; uint8 when the values fit, else float32."""
    import rasterio
    from affine import Affine

    fits = bool(np.all((data >= 0) & (data <= 255) & (data == np.round(data))))
    arr = data.astype(np.uint8 if fits else np.float32)
    transform = Affine(resolution_m, 0, _ORIGIN[0], 0, -resolution_m, _ORIGIN[1])
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
               "dtype": arr.dtype.name, "crs": _CRS, "transform": transform}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, name in enumerate(bands, start=1):
            dst.set_band_description(i, name)
    return path


def run_pair(files: Any, init: str, workdir: Path, cfg: Any) -> dict[str, Any]:
    """Self-train ``init`` on one pair (see the module docstring); returns both models' pair scores."""
    from models import load_model
    from training.bureau import finetune, load_init
    from training.data import read_image, read_pair
    from training.evaluate import predict_pair, score_pair

    pair = read_pair(files)
    raw_a, raw_b = read_image(files.before), read_image(files.after)
    a = write_geotiff(raw_a.data, workdir / f"{files.name}_A.tif", pair.resolution_m, raw_a.bands)
    b = write_geotiff(raw_b.data, workdir / f"{files.name}_B.tif", pair.resolution_m, raw_b.bands)
    out = workdir / f"{files.name}.pt"
    t0 = time.time()
    res = finetune(a, b, None, out, init=init, cfg=cfg, progress=lambda line: None)
    wall = time.time() - t0
    row: dict[str, Any] = {"pair": files.name, "wall_s": round(wall, 1), "train_s": round(res.seconds, 1),
                           "pseudo_labels": res.meta["data"]["pseudo_labels"]}
    for key, spec in (("init", load_init(init)[2]), ("adapted", out)):
        model = load_model(spec)
        prob = predict_pair(model, pair.before, pair.after, pair.bands)
        row[key] = score_pair(pair, prob, model.info.threshold, cfg.min_area_m2)
    return row


def _pooled(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    from training.metrics import ObjectCounts, PixelCounts

    px = sum((r[key].pixel for r in rows), PixelCounts())
    ob = sum((r[key].objects for r in rows), ObjectCounts())
    return {"pixel": px.as_dict(), "object": ob.as_dict()}


def main(argv: list[str] | None = None) -> int:
    from training.bureau import FinetuneConfig
    from training.data import index_data

    p = argparse.ArgumentParser(prog="python -m training.selftrain_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="shared data folder (default: env SOILWATCH_SHARED_DATA, else ../shared/data)")
    p.add_argument("--set", required=True, help="the labelled set to adapt to, pair by pair (e.g. dsifn_changeformer)")
    p.add_argument("--init", required=True, help="'shipped' or a ChangeNet .pt file (one that never saw --set)")
    p.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=FinetuneConfig.crop, help="training window side (multiple of 16)")
    p.add_argument("--json", help="write the pooled and per-pair scores here")
    args = p.parse_args(argv)
    root = _data_root(args.data)
    if not (root / args.set).is_dir():
        print(f"shared data not found: {str(root / args.set)!r} is missing. Point --data or SOILWATCH_SHARED_DATA at "
              "the shared/data folder (see ../shared/data/README.md); nothing was run.", file=sys.stderr)
        return 2
    pairs = index_data(root, sets=[args.set]).sets.get(args.set, [])
    if not pairs:
        print(f"no pairs found in {str(root / args.set)!r}", file=sys.stderr)
        return 2
    cfg = FinetuneConfig(steps=args.steps, seed=args.seed, crop=args.crop, self_train=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="selftrain_demo_") as tmp:
        for files in pairs:
            row = run_pair(files, args.init, Path(tmp), cfg)
            i, a = row["init"], row["adapted"]
            print(f"{files.name}: pixel F1 {_f(i.pixel.f1)} -> {_f(a.pixel.f1)}, objects found "
                  f"{i.objects.found}/{i.objects.true} -> {a.objects.found}/{a.objects.true}, predicted "
                  f"{i.objects.predicted} -> {a.objects.predicted} ({row['wall_s']} s)", file=sys.stderr, flush=True)
            rows.append(row)
    pooled = {k: _pooled(rows, k) for k in ("init", "adapted")}
    print(f"| {args.set} ({len(rows)} pairs, each self-trained alone) | px P | px R | px F1 | obj P | obj R |")
    print("|---|---|---|---|---|---|")
    for k, label in (("init", f"init {Path(args.init).name}"), ("adapted", f"self-trained, {args.steps} steps")):
        px, ob = pooled[k]["pixel"], pooled[k]["object"]
        print(f"| {label} | {_f(px['precision'])} | {_f(px['recall'])} | {_f(px['f1'])} | {_f(ob['precision'])} | "
              f"{_f(ob['recall'])} |")
    if args.json:
        out = {"set": args.set, "init": args.init, "config": {"steps": args.steps, "seed": args.seed,
               "crop": args.crop, "self_train": True}, "pooled": pooled,
               "per_pair": [{"pair": r["pair"], "wall_s": r["wall_s"], "train_s": r["train_s"],
                             "pseudo_labels": r["pseudo_labels"],
                             **{k: {"pixel": r[k].pixel.as_dict(), "object": r[k].objects.as_dict()}
                                for k in ("init", "adapted")}} for r in rows]}
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
