"""Bringing two dates onto one grid: overlap, ground resolution, the target window. Pure functions.

The "before" image's grid is the reference; the "after" image is warped onto it (see
:class:`detector.io.PairSource`). Nothing here opens a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Geod
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from detector.errors import CRSMissingError, NoOverlapError, ResolutionError

__all__ = ["Grid", "ground_resolution_m", "check_resolution", "overlap_window", "bounds_of"]

_GEOD = Geod(ellps="GRS80")  # the CGCS2000 ellipsoid; WGS 84 differs by 0.1 mm in the semi-minor axis

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class Grid:
    """A raster grid: ``crs``, ``transform`` and size in pixels (``width`` columns, ``height`` rows)."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    name: str = "image"

    @property
    def bounds(self) -> Bounds:
        """``(left, bottom, right, top)`` in ``crs`` units."""
        return bounds_of(self.transform, self.width, self.height)

    def require_crs(self) -> CRS:
        if self.crs is None:
            raise CRSMissingError(
                f"{self.name!r} has no coordinate reference system; georeference it "
                "(e.g. gdal_edit.py -a_srs EPSG:4549 file.tif) and try again"
            )
        return self.crs


def bounds_of(transform: Affine, width: int, height: int) -> Bounds:
    """``(left, bottom, right, top)`` of a grid: the extremes of its four corners (rotation allowed)."""
    corners = [transform @ (col, row) for col in (0, width) for row in (0, height)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return (min(xs), min(ys), max(xs), max(ys))


def ground_resolution_m(grid: Grid) -> float:
    """Mean ground size of one pixel side in metres (geodesic for geographic CRSs)."""
    crs = grid.require_crs()
    px_x = math.hypot(grid.transform.a, grid.transform.d)
    px_y = math.hypot(grid.transform.b, grid.transform.e)
    if crs.is_geographic:
        left, bottom, right, top = grid.bounds
        lat = (bottom + top) / 2
        lon = (left + right) / 2
        _, _, dx = _GEOD.inv(lon, lat, lon + px_x, lat)
        _, _, dy = _GEOD.inv(lon, lat, lon, lat + px_y)
        return math.sqrt(dx * dy)
    unit = ProjCRS.from_user_input(crs.to_wkt()).axis_info[0].unit_conversion_factor
    return math.sqrt(px_x * px_y) * unit


def check_resolution(grid: Grid, *, max_resolution_m: float) -> float:
    """Ground resolution in metres, or :class:`ResolutionError` when coarser than ``max_resolution_m``."""
    res = ground_resolution_m(grid)
    if res > max_resolution_m:
        raise ResolutionError(
            f"{grid.name!r} has {res:.2f} m pixels, coarser than the limit of {max_resolution_m:g} m; "
            "construction sites cannot be mapped from it (raise --max-resolution-m to accept it anyway)"
        )
    return res


def overlap_window(before: Grid, after: Grid, *, bounds: Bounds | None = None) -> Window:
    """The window of ``before``'s grid covered by ``after`` (and by ``bounds``, in before's CRS).

    Snapped outward to whole pixels and clipped to the before image. Raises :class:`NoOverlapError`
    naming both footprints when the images do not overlap.
    """
    b_crs, a_crs = before.require_crs(), after.require_crs()
    a_bounds = transform_bounds(a_crs, b_crs, *after.bounds, densify_pts=21)
    b_bounds = before.bounds
    left, bottom = max(b_bounds[0], a_bounds[0]), max(b_bounds[1], a_bounds[1])
    right, top = min(b_bounds[2], a_bounds[2]), min(b_bounds[3], a_bounds[3])
    if bounds is not None:
        left, bottom = max(left, bounds[0]), max(bottom, bounds[1])
        right, top = min(right, bounds[2]), min(top, bounds[3])
    if not (left < right and bottom < top):
        raise NoOverlapError(
            f"before and after do not overlap: {before.name!r} covers {_fmt(b_bounds)} and "
            f"{after.name!r} covers {_fmt(a_bounds)} (both in {b_crs.to_string()!r}"
            + (f", limited to {_fmt(bounds)}" if bounds else "")
            + f"); check the CRS of {after.name!r}"
        )
    win = from_bounds(left, bottom, right, top, transform=before.transform)
    col0, row0 = max(0, math.floor(win.col_off + 1e-6)), max(0, math.floor(win.row_off + 1e-6))
    col1 = min(before.width, math.ceil(win.col_off + win.width - 1e-6))
    row1 = min(before.height, math.ceil(win.row_off + win.height - 1e-6))
    if col1 - col0 < 1 or row1 - row0 < 1:
        raise NoOverlapError(f"before and after overlap by less than one pixel of {before.name!r}")
    return Window(col0, row0, col1 - col0, row1 - row0)


def _fmt(b: Bounds) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
