"""Demo imagery: a synthetic but realistic before/after pair in CGCS2000 / Gauss-Krüger, and its truth.

The pair is rendered by :mod:`detector.synthetic` block by block and written as 4-band uint16
GeoTIFFs in the band order Chinese satellites deliver (blue, green, red, NIR; named in the band
descriptions), dated by an ``ACQ_DATE`` tag, in EPSG:4548 (CGCS2000 / 3-degree Gauss-Krüger CM
117E, the zone of Tianjin), near 蓟州区. The true change mask is kept so the demo can say how
many of the planted construction sites were found, and how many patches are false alarms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.windows import Window

from detector import synthetic
from detector.io import RasterOutput, write_rasters
from detector.vectorize import merge_fragments, to_crs_coords, vectorize_tile

__all__ = ["DemoPair", "make_demo_pair", "truth_polygons", "score_patches", "DEMO_CRS"]

DEMO_CRS = "EPSG:4548"
DEMO_ORIGIN = (512_000.0, 4_436_000.0)  # easting, northing of the top-left corner: ~40.07 N, 117.14 E
BEFORE_DATE, AFTER_DATE = "2023-06-15", "2024-06-15"
_BLOCK = 512


@dataclass(frozen=True)
class DemoPair:
    before: Path
    after: Path
    truth: Path
    spec: synthetic.SceneSpec


def _blocks(
    spec: synthetic.SceneSpec, progress: Callable[[int, int], None] | None = None
) -> Iterator[tuple[Window, list[np.ndarray]]]:
    total = (-(-spec.height // _BLOCK)) * (-(-spec.width // _BLOCK))
    done = 0
    for row in range(0, spec.height, _BLOCK):
        for col in range(0, spec.width, _BLOCK):
            if progress is not None:
                progress(done, total)
            done += 1
            h, w = min(_BLOCK, spec.height - row), min(_BLOCK, spec.width - col)
            before, after, change = synthetic.render_window(
                spec, row_off=row, col_off=col, height=h, width=w, dtype="uint16"
            )
            # red, green, blue, nir -> blue, green, red, nir: the order GF-1/2/6 deliver
            yield Window(col, row, w, h), [before[[2, 1, 0, 3]], after[[2, 1, 0, 3]], change[None].astype(np.uint8)]


def make_demo_pair(
    out_dir: Path,
    *,
    size: int = 2048,
    resolution_m: float = 1.0,
    seed: int = 7,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoPair:
    """Write ``demo_<date>.tif`` (before, after) and ``demo_truth.tif`` into ``out_dir``.

    Existing files are reused (the scene is deterministic) unless ``overwrite`` is given.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = synthetic.make_spec(height=size, width=size, resolution_m=resolution_m, seed=seed)
    pair = DemoPair(
        before=out_dir / f"demo_{BEFORE_DATE}.tif",
        after=out_dir / f"demo_{AFTER_DATE}.tif",
        truth=out_dir / "demo_truth.tif",
        spec=spec,
    )
    if not overwrite and all(p.exists() for p in (pair.before, pair.after, pair.truth)):
        return pair
    base = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "crs": DEMO_CRS,
        "transform": Affine(resolution_m, 0, DEMO_ORIGIN[0], 0, -resolution_m, DEMO_ORIGIN[1]),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    image = {**base, "count": 4, "dtype": "uint16", "predictor": 2}
    bands = ("blue", "green", "red", "nir")
    outputs = [
        RasterOutput(pair.before, image, {"ACQ_DATE": BEFORE_DATE, "SENSOR": "synthetic, GF-2-like"}, bands),
        RasterOutput(pair.after, image, {"ACQ_DATE": AFTER_DATE, "SENSOR": "synthetic, GF-2-like"}, bands),
        RasterOutput(pair.truth, {**base, "count": 1, "dtype": "uint8"}, {"MEANING": "1 = new disturbance"}),
    ]
    write_rasters(outputs, _blocks(spec, progress), overwrite=True)
    return pair


def truth_polygons(change: np.ndarray, transform: Affine, crs: str = DEMO_CRS) -> gpd.GeoDataFrame:
    """Polygons of a 0/1 change mask ``(h, w)`` on the grid ``transform``."""
    frags = merge_fragments(
        vectorize_tile(change.astype(np.float32), change > 0, col_off=0, row_off=0, seam_edges=(False,) * 4)
    )
    geoms = to_crs_coords([f.geometry for f in frags], transform)
    return gpd.GeoDataFrame(geometry=geoms, crs=crs)


def score_patches(
    patches: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, min_area_m2: float = 200.0
) -> dict[str, float]:
    """Object-level scores: a patch is a hit when IoU ≥ 0.25 with a true site or it covers ≥ 50 % of one.

    True sites smaller than ``min_area_m2`` (planar area in the projected CRS) are not counted.
    """
    t = truth[truth.geometry.area >= min_area_m2].geometry.to_numpy()
    p = patches.to_crs(truth.crs).geometry.to_numpy() if len(patches) else np.array([])
    hit_p = np.zeros(len(p), bool)
    hit_t = np.zeros(len(t), bool)
    if len(p) and len(t):
        tree = shapely.STRtree(t)
        pi, ti = tree.query(p, predicate="intersects")
        inter = shapely.area(shapely.intersection(p[pi], t[ti]))
        union = shapely.area(shapely.union(p[pi], t[ti]))
        ok = (inter / union >= 0.25) | (inter / shapely.area(t[ti]) >= 0.5)
        hit_p[pi[ok]] = True
        hit_t[ti[ok]] = True
    return {
        "true_sites": float(len(t)),
        "found": float(hit_t.sum()),
        "patches": float(len(p)),
        "false_alarms": float(len(p) - hit_p.sum()),
        "object_recall": float(hit_t.mean()) if len(t) else float("nan"),
        "object_precision": float(hit_p.mean()) if len(p) else float("nan"),
    }
