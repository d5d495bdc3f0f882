"""A small review world for the map tests: two 640 px GeoTIFFs near 蓟州区, three approved projects, two
priority zones and five patches (one per planted bare-soil rectangle), judged and ranked by the service.

Pixels are 1 m in CGCS2000 / Gauss–Krüger CM 117E (EPSG:4548); the seeded district 120225 covers them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
from affine import Affine
from shapely.geometry import box, mapping

from tests.fixtures import field_scene, write_tif

__all__ = [
    "ORIGIN",
    "SQUARES",
    "BEFORE",
    "AFTER",
    "ZONE_NAME",
    "write_imagery",
    "projects_geojson",
    "zones_geojson",
    "patch_frame",
    "png_bytes",
]

ORIGIN = (512_000.0, 4_436_000.0)  # top-left easting/northing: ~40.07 N, 117.14 E
SIZE = 640
#: (row, col, height, width) in pixels = metres; one patch each.
SQUARES = [(40, 40, 40, 40), (150, 140, 30, 50), (60, 220, 25, 36), (560, 60, 30, 30), (580, 540, 36, 44)]
BEFORE, AFTER = dt.date(2023, 6, 1), dt.date(2024, 6, 1)


def _rect(row: float, col: float, height: float, width: float) -> object:
    x0, y0 = ORIGIN[0] + col, ORIGIN[1] - row
    return box(x0, y0 - height, x0 + width, y0)


def write_imagery(folder: Path) -> tuple[Path, Path]:
    before, after = field_scene(SIZE, SIZE, squares=SQUARES, seed=3)
    transform = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])
    folder.mkdir(parents=True, exist_ok=True)
    return (write_tif(folder / f"{BEFORE}_before.tif", before, crs="EPSG:4548", transform=transform),
            write_tif(folder / f"{AFTER}_after.tif", after, crs="EPSG:4548", transform=transform))  # fmt: skip


def projects_geojson() -> bytes:
    """P-A covers patch 0 (合规); P-B half of patch 1 (疑似超出); P-C lies 40 m from patch 2 (疑似建设地点变更)."""
    shapes = [
        ("P-A", "蓟州区某道路工程", "天津某路桥公司", _rect(30, 30, 60, 60)),
        ("P-B", "蓟州区某物流园", "天津某物流有限公司", _rect(145, 130, 40, 35)),
        ("P-C", "蓟州区某光伏电站", "天津某新能源公司", _rect(20, 280, 20, 20)),
    ]
    frame = gpd.GeoDataFrame(
        {"项目代码": [s[0] for s in shapes], "项目名称": [s[1] for s in shapes], "建设单位": [s[2] for s in shapes],
         "批复文号": ["蓟水许〔2023〕1号"] * 3},
        geometry=[s[3] for s in shapes], crs="EPSG:4548",
    ).to_crs(4326)  # fmt: skip
    features = [{"type": "Feature", "geometry": mapping(g), "properties": {k: row[k] for k in frame.columns[:-1]}}
                for g, (_, row) in zip(frame.geometry, frame.iterrows(), strict=True)]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


#: The water-source zone around patch 3 (疑似未批先建, the smaller of the two: ranked first only thanks to it).
ZONE_NAME = "于桥水库饮用水水源保护区"


def zones_geojson() -> bytes:
    """A 水源保护区 around patch 3 (+50) and a 陡坡 area that holds no patch."""
    shapes = [(ZONE_NAME, "水源保护区", _rect(540, 40, 70, 80)), ("蓟州区某陡坡区", "陡坡", _rect(300, 300, 100, 100))]
    frame = gpd.GeoDataFrame({"名称": [s[0] for s in shapes], "类型": [s[1] for s in shapes]},
                             geometry=[s[2] for s in shapes], crs="EPSG:4548").to_crs(4326)  # fmt: skip
    features = [{"type": "Feature", "geometry": mapping(g), "properties": {"名称": n, "类型": k}}
                for g, n, k in zip(frame.geometry, frame["名称"], frame["类型"], strict=True)]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


def patch_frame() -> gpd.GeoDataFrame:
    """The detector-style patches (EPSG:4548), dated like the imagery so chips find their tiles."""
    n = len(SQUARES)
    return gpd.GeoDataFrame(
        {"confidence": [0.9 - 0.05 * i for i in range(n)], "before_date": [BEFORE] * n, "after_date": [AFTER] * n,
         "model": ["baseline@test"] * n, "source_before": ["before.tif"] * n, "source_after": ["after.tif"] * n},
        geometry=[_rect(*s) for s in SQUARES], crs="EPSG:4548",
    )  # fmt: skip


def png_bytes() -> bytes:
    """A 2×2 PNG, as a field photo."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()
