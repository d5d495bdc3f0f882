"""Geometry storage and the few geometry helpers the service needs.

Storage design (why one column type dispatches on the dialect)
---------------------------------------------------------------
PostgreSQL + PostGIS is the production database and SQLite the embedded default. GeoAlchemy2's
spatial types need SpatiaLite on SQLite, and this Python's ``sqlite3`` cannot even load extensions
(``enable_load_extension`` is compiled out), so SpatiaLite is not an option. The choice:

* :class:`GeometryType` is one ``TypeDecorator``. On PostgreSQL its column is a real PostGIS
  ``geometry(GEOMETRY, 4326)`` (GeoAlchemy2 ``Geometry``), so other tools (QGIS, SQL) see real
  geometry and a GiST index can be added; on SQLite it is a BLOB of ISO WKB. Python code always gets
  and gives :mod:`shapely` geometries in EPSG:4326 (lon, lat), on both.
* Every spatial table also carries ``min_x, min_y, max_x, max_y`` (degrees) columns with a composite
  B-tree index. Bbox filters (``GET /projects?bbox=``) are plain comparisons on them, so the same
  query and the same migration run on both databases; exact geometry maths (intersections, areas,
  distances) is done in shapely in a metric CRS (:mod:`service.matching`), not in SQL.
* Values cross the driver as hex EWKB text on PostgreSQL (PostGIS casts the untyped literal to
  geometry on input and prints geometry as hex EWKB on output), so no SQL function wrapping is
  needed and the compiled SQL is identical on both dialects.

This keeps one code path and one set of Alembic migrations; the cost is that spatial filtering
beyond bboxes happens in Python, which is fine for the list sizes of a city (thousands of projects,
tens of thousands of patches) and is what the matching benchmark measures.
"""

from __future__ import annotations

import math
from typing import Any

import shapely

# Imported eagerly: GeoAlchemy2 registers DDL event hooks on import, and importing it lazily in the
# middle of a CREATE TABLE would run its after_create hook without its before_create.
from geoalchemy2 import Geometry
from pyproj import CRS, Geod, Transformer
from shapely.geometry.base import BaseGeometry
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "GeometryType",
    "WGS84",
    "bbox_of",
    "geodesic_area_m2",
    "metric_crs_for",
    "reproject",
    "M2_PER_MU",
]

WGS84 = CRS.from_epsg(4326)
M2_PER_MU = 10000.0 / 15.0  # 1 亩 = 666.67 m²; 1 hectare = 15 亩
_GEOD = Geod(ellps="WGS84")


class GeometryType(TypeDecorator[BaseGeometry]):
    """A shapely geometry in EPSG:4326: PostGIS ``geometry`` on PostgreSQL, WKB BLOB elsewhere."""

    impl = LargeBinary
    cache_ok = True
    # Read by GeoAlchemy2's DDL hooks on PostgreSQL; the migrations create the GiST indexes themselves.
    spatial_index = False

    def load_dialect_impl(self, dialect: Dialect | None) -> TypeEngine[Any]:
        # GeoAlchemy2's DDL hooks call this with dialect=None to ask "is this spatial?"
        if dialect is None:
            return LargeBinary()
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Geometry(geometry_type="GEOMETRY", srid=4326, spatial_index=False))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, BaseGeometry):
            raise TypeError(f"expected a shapely geometry, got {type(value).__name__!r}")
        if dialect.name == "postgresql":
            return shapely.to_wkb(shapely.set_srid(value, 4326), hex=True, include_srid=True)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        data = getattr(value, "data", value)  # GeoAlchemy2 wraps PostGIS results in WKBElement
        if isinstance(data, memoryview):
            data = bytes(data)
        return shapely.from_wkb(data)


def bbox_of(geom: BaseGeometry) -> dict[str, float]:
    """``{"min_x", "min_y", "max_x", "max_y"}`` of a geometry, for the bbox columns."""
    min_x, min_y, max_x, max_y = geom.bounds
    return {"min_x": min_x, "min_y": min_y, "max_x": max_x, "max_y": max_y}


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area in m² of a lon/lat geometry on the WGS 84 ellipsoid (never in degrees)."""
    if geom.is_empty:
        return 0.0
    area, _ = _GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))
    return abs(area)


def metric_crs_for(lon: float, lat: float) -> CRS:
    """The UTM zone (WGS 84) around a point: a local metric CRS for areas and distances."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError(f"cannot pick a metric CRS at ({lon!r}, {lat!r}); the geometry is empty or invalid")
    zone = min(max(int((lon + 180) // 6) + 1, 1), 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def reproject(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    """``geom`` transformed from ``src`` to ``dst`` (x = lon/easting, y = lat/northing)."""
    if src == dst:
        return geom
    transformer = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: _transform_xy(transformer, xy))


def _transform_xy(transformer: Transformer, xy: Any) -> Any:
    import numpy as np

    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])
