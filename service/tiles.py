"""Web-map tiles (XYZ, Web Mercator) of the uploaded GeoTIFFs, rendered on request with rio-tiler.

rio-tiler does the tile maths and the warped read (any source CRS: CGCS2000 Gauss–Krüger zones, UTM,
EPSG:4490 …); this module picks the red, green and blue bands the way the detector does
(:func:`detector.io.inspect_raster`) and stretches each image with one range for all its tiles, so the
tiles of an image join without seams. The range (2–98 % of a ≤512 px preview, shared by the three
bands so colours stay true) is computed once per file and kept in memory.
Routes call :func:`render_tile` and never import rasterio.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from service.errors import NotFoundError
from service.models import Imagery

__all__ = ["TILE_SIZE", "TileStretch", "TileError", "render_tile", "image_stretch"]

TILE_SIZE = 256
#: Web Mercator zoom levels served; below MIN_ZOOM a tile would read a huge share of a city-wide mosaic.
MIN_ZOOM, MAX_ZOOM = 8, 22
_PREVIEW_PX = 512
TILE_CACHE_BYTES = 64 * 1024**2
_lock = threading.Lock()
_import_lock = threading.Lock()
_quiet: list[bool] = []


class TileError(NotFoundError):
    """The imagery file behind a tile is missing or unreadable."""

    title = "Tile not available"


@dataclass(frozen=True)
class TileStretch:
    """RGB band ``indexes`` (1-based) of a file and the ``(low, high)`` input range of each, mapped to 0–255."""

    indexes: tuple[int, int, int]
    ranges: tuple[tuple[float, float], ...]


def _rio_tiler() -> tuple[Any, Any]:
    """rio-tiler's ``Reader`` and ``errors``, imported on first use (a second off app start-up) under a lock:
    two tile requests importing it at once in the thread pool trip over its circular imports.

    Also silences its warning about files without overviews, once (``catch_warnings`` is not thread-safe):
    uploaded scenes rarely have overviews and read fast enough without; a city-wide mosaic should get them.
    """
    with _import_lock:
        from rio_tiler import errors
        from rio_tiler.io import Reader

        if not _quiet:
            warnings.filterwarnings("ignore", category=errors.NoOverviewWarning)
            _quiet.append(True)
    return Reader, errors


@lru_cache(maxsize=1)
def _web_mercator() -> Any:
    import morecantile

    return morecantile.tms.get("WebMercatorQuad")


def _key(path: str) -> tuple[str, float, int]:
    stat = Path(path).stat()
    return path, stat.st_mtime, stat.st_size


@lru_cache(maxsize=64)
def _stretch_cached(key: tuple[str, float, int]) -> TileStretch:
    from detector.io import inspect_raster

    Reader, _ = _rio_tiler()

    path = key[0]
    info = inspect_raster(path)
    names = info.bands.names
    indexes = tuple(info.bands.indexes[names.index(n)] for n in ("red", "green", "blue"))
    with Reader(path) as src:
        preview = src.preview(indexes=indexes, max_size=_PREVIEW_PX)
    # One range for the three bands (a linked stretch): true colours stay true, and a flat field's noise
    # is not blown up into coloured speckle as a per-band stretch would.
    valid = ~np.ma.getmaskarray(preview.array).any(axis=0)
    values = preview.array.data[:, valid].astype(np.float64)
    lo, hi = np.percentile(values, (2.0, 98.0)) if values.size else (0.0, 255.0)
    hi = hi if hi > lo else lo + 1.0
    ranges = [(float(lo), float(hi))] * 3
    return TileStretch(indexes=indexes, ranges=tuple(ranges))  # type: ignore[arg-type]


def image_stretch(path: str) -> TileStretch:
    """The band choice and stretch of the GeoTIFF at ``path`` (cached by path, mtime and size)."""
    with _lock:  # one preview read per file, even when the map asks for 20 tiles at once
        return _stretch_cached(_key(path))


class _TileCache:
    """Rendered tiles kept in memory up to ``max_bytes``, least recently used out first: inspectors pan back
    and forth over the same few hundred tiles, and a warped read costs 50–200 ms."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self.items: OrderedDict[tuple[Any, ...], bytes | None] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[bool, bytes | None]:
        with self.lock:
            if key not in self.items:
                return False, None
            self.items.move_to_end(key)
            return True, self.items[key]

    def put(self, key: tuple[Any, ...], value: bytes | None) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.size += len(value or b"")
            while self.size > self.max_bytes and self.items:
                self.size -= len(self.items.popitem(last=False)[1] or b"")


_cache = _TileCache(TILE_CACHE_BYTES)


def render_tile(imagery: Imagery, z: int, x: int, y: int) -> bytes | None:
    """PNG bytes (RGBA, 256 px) of Web Mercator tile ``z/x/y`` of ``imagery``; None when the tile misses it.

    Pixels outside the image or without data are transparent. Tiles are cached in memory by file (path,
    modification time and size), so a replaced file never serves old tiles.
    """
    if not imagery.path or not Path(imagery.path).exists():
        raise TileError(f"the file of imagery {imagery.id} ({imagery.filename!r}) is missing; upload it again")
    key = (*_key(imagery.path), z, x, y)
    hit, png = _cache.get(key)
    if not hit:
        png = _render(imagery, z, x, y)
        _cache.put(key, png)
    return png


def _render(imagery: Imagery, z: int, x: int, y: int) -> bytes | None:
    from morecantile import Tile
    from rasterio.errors import RasterioError

    from detector.errors import DetectorError

    Reader, errors = _rio_tiler()
    RioTilerError, TileOutsideBounds = errors.RioTilerError, errors.TileOutsideBounds

    if not MIN_ZOOM <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        return None
    tms = _web_mercator()
    tile = Tile(x, y, z)
    west, south, east, north = tms.bounds(tile)
    # The imagery's lon/lat bbox (kept by the upload) answers "does it touch?" far faster than rio-tiler's
    # own tile_exists, which reprojects the dataset's bounds on every call.
    if imagery.min_x is not None and (
        east <= imagery.min_x or west >= imagery.max_x or north <= imagery.min_y or south >= imagery.max_y
    ):
        return None
    try:
        stretch = image_stretch(imagery.path)
        with Reader(imagery.path, tms=tms) as src:
            # what Reader.tile does after its tile_exists check
            image = src.part(tms.xy_bounds(tile), dst_crs=tms.rasterio_crs, bounds_crs=tms.rasterio_crs,
                             height=TILE_SIZE, width=TILE_SIZE, max_size=None, indexes=stretch.indexes,
                             resampling_method="bilinear")  # fmt: skip
    except TileOutsideBounds:
        return None
    except (RioTilerError, RasterioError, DetectorError, OSError) as exc:
        raise TileError(f"cannot render a tile of imagery {imagery.id} ({imagery.filename!r}): {exc}") from exc
    if not image.mask.any():
        return None
    image = image.rescale(in_range=stretch.ranges)
    return image.render(img_format="PNG")
