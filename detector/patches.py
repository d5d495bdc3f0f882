"""Patch attributes: area on the ellipsoid, centroid in CGCS2000, stable ids, the attribute table.

Areas are geodesic areas on the GRS80 (CGCS2000) ellipsoid, computed from the polygon's vertices
in CGCS2000 longitude/latitude (EPSG:4490): exact for any projection of the input, so "correct to
1 % anywhere in China" holds with a wide margin. This is what an equal-area projection approximates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from shapely.geometry import Polygon

__all__ = ["PatchSource", "to_lonlat", "geodesic_area_m2", "build_patches", "COLUMNS", "M2_PER_MU"]

M2_PER_MU = 10_000 / 15  # 1 亩 = 666.67 m²; 1 hectare = 15 亩
CGCS2000 = "EPSG:4490"
_GEOD = Geod(ellps="GRS80")

#: Output columns in order (names fit the 10-character limit of Shapefile where possible).
COLUMNS = (
    "patch_id",
    "area_m2",
    "area_mu",
    "lon",
    "lat",
    "confidence",
    "conf_max",
    "change_type",
    "before_date",
    "after_date",
    "source_before",
    "source_after",
    "model",
)
_CHANGE_TYPES = {"new": "新增", "bare": "现状裸露"}


@dataclass(frozen=True)
class PatchSource:
    """Where the patches came from; written into every row."""

    before_date: str | None
    after_date: str | None
    source_before: str | None
    source_after: str
    model: str
    change_type: str = "new"  # "new" (two dates) or "bare" (single date: current bare soil)


def _transformer(crs: CRS) -> Transformer:
    return Transformer.from_crs(ProjCRS.from_user_input(crs.to_wkt()), CGCS2000, always_xy=True)


def to_lonlat(geoms: Sequence[Polygon], crs: CRS) -> list[Polygon]:
    """Reproject polygons to CGCS2000 longitude/latitude (x = lon, y = lat)."""
    tr = _transformer(crs)
    arr = np.array(geoms, dtype=object)
    return list(shapely.transform(arr, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))))


def geodesic_area_m2(lonlat_geoms: Sequence[Polygon]) -> np.ndarray:
    """Area in m² on the CGCS2000 ellipsoid of polygons given in longitude/latitude."""
    return np.array([abs(_GEOD.geometry_area_perimeter(g)[0]) for g in lonlat_geoms], dtype=np.float64)


def _patch_id(year: str, lonlat: Polygon, source: PatchSource) -> str:
    # the same input gives the same id; the form follows ids seen in practice ("2017_7897489_49687")
    key = shapely.to_wkb(shapely.set_precision(lonlat, 1e-7), output_dimension=2) + (
        f"|{source.source_before}|{source.source_after}|{source.model}".encode()
    )
    digest = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return f"{year}_{digest % 10_000_000:07d}_{(digest // 10_000_000) % 100_000:05d}"


def build_patches(
    geoms: Sequence[Polygon],
    n_px: Sequence[int],
    prob_sum: Sequence[float],
    prob_max: Sequence[float],
    *,
    crs: CRS,
    source: PatchSource,
    min_area_m2: float,
    out_crs: CRS | None = None,
) -> gpd.GeoDataFrame:
    """The patch table: one row per polygon of at least ``min_area_m2``, sorted north to south.

    ``geoms`` are in ``crs``; the table's geometry is in ``out_crs`` (default ``crs``).
    """
    lonlat = to_lonlat(geoms, crs) if geoms else []
    area = geodesic_area_m2(lonlat)
    keep = np.flatnonzero(area >= min_area_m2)
    year = (source.after_date or "0000")[:4]
    rows = []
    for i in keep:
        centroid = lonlat[i].centroid if lonlat[i].is_valid else lonlat[i].representative_point()
        rows.append(
            {
                "patch_id": _patch_id(year, lonlat[i], source),
                "area_m2": round(float(area[i]), 1),
                "area_mu": round(float(area[i]) / M2_PER_MU, 2),
                "lon": round(centroid.x, 7),
                "lat": round(centroid.y, 7),
                "confidence": round(prob_sum[i] / max(n_px[i], 1), 3),
                "conf_max": round(float(prob_max[i]), 3),
                "change_type": source.change_type,
                "before_date": source.before_date,
                "after_date": source.after_date,
                "source_before": source.source_before,
                "source_after": source.source_after,
                "model": source.model,
                "geometry": geoms[i],
            }
        )
    gdf = gpd.GeoDataFrame(rows, columns=[*COLUMNS, "geometry"], geometry="geometry", crs=crs)
    gdf = gdf.sort_values(["lat", "lon"], ascending=[False, True], kind="stable").reset_index(drop=True)
    if out_crs is not None and CRS.from_user_input(out_crs) != crs:
        gdf = gdf.to_crs(out_crs)
    return gdf
