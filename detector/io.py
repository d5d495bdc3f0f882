"""The only module of the detector that opens paths: checks and reads image pairs, writes outputs.

Reading is windowed: nothing here ever holds a whole scene. The "after" image is read through a
:class:`rasterio.vrt.WarpedVRT` on the "before" grid unless both already share one grid. Outputs
are written to a hidden temporary file next to the target and renamed into place at the end, so a
failure never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from detector.align import Grid, ground_resolution_m
from detector.bands import BandMap, infer_bands, parse_bands
from detector.errors import (
    CRSMissingError,
    OutputExistsError,
    OutputPathError,
    RasterReadError,
    RasterTooLargeError,
)

__all__ = [
    "ReadLimits",
    "RasterInfo",
    "inspect_raster",
    "PairSource",
    "check_output_path",
    "write_patches",
    "ProbabilityWriter",
    "VECTOR_DRIVERS",
    "SHAPEFILE_NAMES",
    "RasterOutput",
    "read_small_raster",
    "write_rasters",
    "read_rgb_window",
]

log = logging.getLogger(__name__)

# Each block is read about once (plus tile margins), so GDAL's default block cache (5 % of RAM,
# 1.2 GB here) only inflates memory. Set before GDAL first sizes its cache; the environment wins.
os.environ.setdefault("GDAL_CACHEMAX", "256")
# A read that spans several compressed blocks (every tile, most cells of the radiometric sample)
# decodes them on all cores: measured 10-25 % less wall time on the 2-core machine, even with two
# tile threads. The environment wins here too (e.g. GDAL_NUM_THREADS=1 on a busy shared worker).
os.environ.setdefault("GDAL_NUM_THREADS", "ALL_CPUS")

#: Output drivers by file extension.
VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile"}
_SHP_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
#: Shapefile field names are at most 10 characters: these columns get fixed short names there.
SHAPEFILE_NAMES = {
    "change_type": "chg_type",
    "before_date": "bef_date",
    "after_date": "aft_date",
    "source_before": "src_before",
    "source_after": "src_after",
}
_DATE_TAGS = ("ACQ_DATE", "ACQUISITION_DATE", "ACQUISITIONDATE", "DATE_ACQUIRED", "IMAGING_DATE", "SCENE_DATE")
_DATE_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.]?(0[1-9]|1[0-2])(?:[-_.]?(0[1-9]|[12]\d|3[01]))?(?!\d)")


@dataclass(frozen=True)
class ReadLimits:
    """Refuse rasters beyond these: ``max_pixels`` per band, declared-size / file-size ratio, bands, and
    overview levels (a 10⁶ px wide image needs 12; hundreds are a hostile file, not imagery)."""

    max_pixels: int = 40_000_000_000
    max_compression_ratio: float = 5000.0
    max_bands: int = 64
    max_overviews: int = 32


@dataclass(frozen=True)
class RasterInfo:
    """What soilwatch needs to know about one image, read from its header."""

    path: str
    driver: str
    width: int
    height: int
    count: int
    dtype: str
    grid: Grid
    nodata: float | None
    bands: BandMap
    resolution_m: float
    date: str | None
    colorinterp: tuple[str, ...] = field(repr=False, default=())


def _parse_date(text: str) -> str | None:
    m = re.search(r"((?:19|20)\d{2})[-:/.]?(0[1-9]|1[0-2])[-:/.]?(0[1-9]|[12]\d|3[01])", text)
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            return None
    return None


def read_date(src: DatasetReader, path: str) -> str | None:
    """Acquisition date as ISO ``YYYY-MM-DD`` (or ``YYYY-MM``) from tags, then the file name."""
    tags = {k.upper(): v for k, v in src.tags().items()}
    with contextlib.suppress(RasterioError):
        tags.update({k.upper(): v for k, v in src.tags(ns="IMAGERY").items()})
    for key in (*_DATE_TAGS, "ACQUISITIONDATETIME"):
        if key in tags and (date := _parse_date(tags[key])):
            return date
    m = _DATE_IN_NAME.search(Path(path).stem)
    if m:
        year, month, day = m[1], m[2], m[3]
        if day:
            with contextlib.suppress(ValueError):
                return dt.date(int(year), int(month), int(day)).isoformat()
        return f"{year}-{month}"
    if "TIFFTAG_DATETIME" in tags:
        return _parse_date(tags["TIFFTAG_DATETIME"])
    return None


def _open(path: str | Path) -> DatasetReader:
    p = Path(path)
    if not p.exists() and "://" not in str(path) and not str(path).startswith("/vsi"):
        raise RasterReadError(f"{str(path)!r} does not exist")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"cannot read {str(path)!r} as a raster ({_short(exc)}); give a GeoTIFF or another GDAL raster"
        ) from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def inspect_raster(
    path: str | Path, *, bands: str | None = None, limits: ReadLimits | None = None, name: str | None = None
) -> RasterInfo:
    """Open, check and describe one image; raises a :class:`DetectorError` subclass naming the problem.

    Checks: readable by GDAL, at least 3 bands, a CRS, a sane declared size (not a decompression
    bomb), one image per file (a multi-page TIFF is refused), at most ``limits.max_bands`` bands and
    ``limits.max_overviews`` overview levels, and that its first and last blocks decode (catches truncated
    files early).
    """
    limits = limits or ReadLimits()
    label = name or str(path)
    with _open(path) as src:
        grid = Grid(src.crs, src.transform, src.width, src.height, name=label)
        if src.crs is None and src.gcps[0]:
            raise CRSMissingError(
                f"{label!r} is georeferenced by ground control points only; warp it first (gdalwarp) and try again"
            )
        grid.require_crs()
        if src.subdatasets:
            raise RasterReadError(
                f"{label!r} holds {len(src.subdatasets)} images (pages or subdatasets); upload one image per file"
            )
        if src.count > limits.max_bands:
            raise RasterTooLargeError(
                f"{label!r} has {src.count} bands, more than the limit of {limits.max_bands}; "
                "send the 3–4 bands the detector uses (e.g. gdal_translate -b 1 -b 2 -b 3 -b 4)"
            )
        if len(src.overviews(1)) > limits.max_overviews:
            raise RasterTooLargeError(
                f"{label!r} has {len(src.overviews(1))} overview levels, more than {limits.max_overviews}; "
                "rebuild them (gdaladdo)"
            )
        if src.width * src.height > limits.max_pixels:
            raise RasterTooLargeError(
                f"{label!r} declares {src.width} x {src.height} pixels, more than the limit of "
                f"{limits.max_pixels:,}; cut it into tiles"
            )
        declared = src.width * src.height * src.count * np.dtype(src.dtypes[0]).itemsize
        size = _file_size(path)
        if src.driver == "GTiff" and size and declared / size > limits.max_compression_ratio:
            raise RasterTooLargeError(
                f"{label!r} declares {declared / 1e9:.1f} GB of pixels but the file holds {size / 1e3:.0f} kB "
                f"(ratio {declared / size:,.0f}:1); it is empty, truncated or a decompression bomb"
            )
        band_map = parse_bands(bands, count=src.count) if bands else infer_bands(
            src.count, [ci.name for ci in src.colorinterp], list(src.descriptions)
        )
        _probe(src, label)
        return RasterInfo(
            path=str(path),
            driver=src.driver,
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=src.dtypes[0],
            grid=grid,
            nodata=src.nodata,
            bands=band_map,
            resolution_m=ground_resolution_m(grid),
            date=read_date(src, str(path)),
            colorinterp=tuple(ci.name for ci in src.colorinterp),
        )


def _file_size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _probe(src: DatasetReader, label: str) -> None:
    """Decode the first and the last block: truncated files lose their tail."""
    try:
        for col, row in ((0, 0), (src.width - 1, src.height - 1)):
            src.read(window=Window(col, row, 1, 1))
    except RasterioError as exc:
        raise RasterReadError(f"{label!r} is truncated or corrupt ({_short(exc)}); copy the file again") from exc


class PairSource:
    """Open before (optional) and after images for windowed reading on the before image's grid.

    ``read(window)`` returns ``(before, after, valid)``: arrays ``(bands, h, w)`` in file units
    (the file's dtype) and a bool ``(h, w)`` that is False wherever either date is nodata, masked (cloud mask
    band, alpha) or outside the image. Use as a context manager.

    GDAL dataset handles must not be shared between threads, so every thread that reads gets its
    own handles (opened on its first read, all closed on exit).
    """

    def __init__(self, before: RasterInfo | None, after: RasterInfo) -> None:
        self.before_info, self.after_info = before, after
        self.grid = (before or after).grid
        self._stack = contextlib.ExitStack()
        self._local = threading.local()
        self._lock = threading.Lock()

    def __enter__(self) -> PairSource:
        try:
            self._handles()  # open once here, so a problem shows before any work starts
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self._stack.close()

    def _handles(self) -> tuple[DatasetReader | None, Any]:
        handles = getattr(self._local, "handles", None)
        if handles is not None:
            return handles
        # Inside an explicit Env a dataset does not create (and later tear down) a thread-local GDAL
        # environment of its own; closing it from the main thread at exit then stays safe.
        with rasterio.Env(), contextlib.ExitStack() as opened:
            before = None if self.before_info is None else opened.enter_context(_open(self.before_info.path))
            after = opened.enter_context(_open(self.after_info.path))
            if self.before_info is not None and not self._same_grid():
                finer = self.after_info.resolution_m < self.before_info.resolution_m / 1.5
                after = opened.enter_context(
                    WarpedVRT(
                        after,
                        crs=self.grid.crs,
                        transform=self.grid.transform,
                        width=self.grid.width,
                        height=self.grid.height,
                        resampling=Resampling.average if finer else Resampling.bilinear,
                        add_alpha=after.nodata is None,
                    )
                )
            with self._lock:
                self._stack.enter_context(opened.pop_all())
        self._local.handles = (before, after)
        return self._local.handles

    def _same_grid(self) -> bool:
        b, a = self.before_info, self.after_info
        return b is not None and (
            b.grid.crs == a.grid.crs
            and b.grid.transform.almost_equals(a.grid.transform)
            and (b.width, b.height) == (a.width, a.height)
        )

    def read(self, window: Window) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        src_before, src_after = self._handles()
        try:
            after = src_after.read(indexes=list(self.after_info.bands.indexes), window=window)
            valid = self._valid(src_after, window)
            before = None
            if src_before is not None and self.before_info is not None:
                before = src_before.read(indexes=list(self.before_info.bands.indexes), window=window)
                valid &= self._valid(src_before, window)
        except RasterioError as exc:
            raise RasterReadError(
                f"reading window {_fmt_window(window)} failed ({_short(exc)}); one of "
                f"{[i.path for i in (self.before_info, self.after_info) if i]!r} is corrupt"
            ) from exc
        for arr in (before, after):
            if arr is not None and arr.dtype.kind == "f":
                valid &= np.all(np.isfinite(arr), axis=0)
        return before, after, valid

    @staticmethod
    def _valid(src: Any, window: Window) -> np.ndarray:
        """True where the dataset has data; no mask is read when GDAL says every pixel is valid."""
        h, w = int(window.height), int(window.width)
        if all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums) and src.nodata is None:
            return np.ones((h, w), dtype=bool)
        return src.dataset_mask(window=window) > 0  # type: ignore[no-any-return]

    def sample(
        self, area: Window, *, max_pixels: int = 1_000_000, cells: int = 8, cell: int = 128, workers: int = 1
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """A sample of ``area`` for radiometric statistics: all of it when small, else a grid of cells.

        ``workers`` threads read the cells (each decodes whole blocks: on a large scene this is the
        equivalent of reading a sixth of it); the sample is the same whatever the number.
        """
        if area.width * area.height <= max_pixels:
            return self.read(area)
        cw, ch = min(cell, int(area.width)), min(cell, int(area.height))
        windows = []
        for i in range(cells):
            for j in range(cells):
                row = int(area.row_off) + (int(area.height) - ch) * i // max(cells - 1, 1)
                col = int(area.col_off) + (int(area.width) - cw) * j // max(cells - 1, 1)
                windows.append(Window(col, row, cw, ch))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soilwatch-sample") as pool:
                parts = list(pool.map(self.read, windows))
        else:
            parts = [self.read(w) for w in windows]
        before = None if parts[0][0] is None else np.concatenate([p[0] for p in parts], axis=2)  # type: ignore[misc]
        return before, np.concatenate([p[1] for p in parts], axis=2), np.concatenate([p[2] for p in parts], axis=1)


def _fmt_window(w: Window) -> str:
    return f"(col {int(w.col_off)}, row {int(w.row_off)}, {int(w.width)} x {int(w.height)})"


# --- outputs -------------------------------------------------------------------------------------


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary file into place with the permissions a plain new file would get."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private (0600); outputs are for sharing
    os.replace(tmp, final)


def check_output_path(path: str | Path, *, overwrite: bool, kinds: dict[str, str] | None = None) -> Path:
    """Fail early, before any work, when ``path`` cannot be written (missing folder, exists, unknown type)."""
    p = Path(path)
    if kinds is not None and p.suffix.lower() not in kinds:
        raise OutputPathError(
            f"cannot tell the format of {str(p)!r} from its extension; use one of {sorted(kinds)!r}"
        )
    if not p.parent.exists():
        raise OutputPathError(f"the folder {str(p.parent)!r} of output {str(p)!r} does not exist; create it first")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{str(p)!r} exists; pass --overwrite to replace it")
    return p


def write_patches(gdf: Any, path: str | Path, *, overwrite: bool, layer: str = "patches") -> Path:
    """Write a GeoDataFrame of patches to GeoPackage, GeoJSON or Shapefile (by extension), atomically."""
    import pyogrio

    p = check_output_path(path, overwrite=overwrite, kinds=VECTOR_DRIVERS)
    driver = VECTOR_DRIVERS[p.suffix.lower()]
    tmpdir = Path(tempfile.mkdtemp(prefix=".soilwatch-", dir=p.parent))
    try:
        tmp = tmpdir / p.name
        kwargs: dict[str, Any] = {"driver": driver, "geometry_type": "Polygon"}
        if driver == "GPKG":
            kwargs["layer"] = layer
        if driver == "ESRI Shapefile":
            kwargs["encoding"] = "UTF-8"
            gdf = gdf.rename(columns=SHAPEFILE_NAMES)
        pyogrio.write_dataframe(gdf, tmp, **kwargs)
        if driver == "ESRI Shapefile":
            for ext in _SHP_SIDECARS:
                with contextlib.suppress(FileNotFoundError):
                    p.with_suffix(ext).unlink()
            for f in tmpdir.iterdir():
                _publish(f, p.with_suffix(f.suffix))
        else:
            _publish(tmp, p)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return p


class ProbabilityWriter:
    """Collects the probability raster window by window in a temporary GeoTIFF; ``commit`` makes the COG.

    Values are percent (uint8 0–100), 255 = no data. The raster covers ``area`` of ``grid``.
    """

    NODATA = 255

    def __init__(self, path: str | Path, grid: Grid, area: Window, *, overwrite: bool) -> None:
        self.path = check_output_path(path, overwrite=overwrite, kinds={".tif": "COG", ".tiff": "COG"})
        self.area = area
        fd, tmp = tempfile.mkstemp(prefix=".soilwatch-prob-", suffix=".tif", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        profile = {
            "driver": "GTiff",
            "width": int(area.width),
            "height": int(area.height),
            "count": 1,
            "dtype": "uint8",
            "crs": grid.crs,
            "transform": rasterio.windows.transform(area, grid.transform),
            "nodata": self.NODATA,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        # every pixel of the area is written once by exactly one tile core: no need to pre-fill
        self._ds = rasterio.open(self._tmp, "w", **profile)

    def write(self, window: Window, prob: np.ndarray, valid: np.ndarray) -> None:
        """``prob`` ``(h, w)`` in [0, 1] for ``window`` of the grid (not of the area)."""
        pct = np.where(valid, np.rint(prob * 100), self.NODATA).astype(np.uint8)
        local = Window(
            window.col_off - self.area.col_off, window.row_off - self.area.row_off, window.width, window.height
        )
        self._ds.write(pct[None], window=local)

    def commit(self) -> Path:
        self._ds.close()
        out_tmp = self._tmp.with_name(self._tmp.stem + "-cog.tif")
        try:
            rasterio.shutil.copy(self._tmp, out_tmp, driver="COG", compress="DEFLATE", overview_resampling="average")
            _publish(out_tmp, self.path)
        finally:
            for f in (self._tmp, out_tmp):
                with contextlib.suppress(FileNotFoundError):
                    f.unlink()
        return self.path

    def abort(self) -> None:
        if not self._ds.closed:
            self._ds.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()



@dataclass(frozen=True)
class RasterOutput:
    """One GeoTIFF for :func:`write_rasters`: path, rasterio profile and optional metadata."""

    path: Path
    profile: dict[str, Any]
    tags: dict[str, str] | None = None
    descriptions: tuple[str, ...] = ()


def write_rasters(
    outputs: list[RasterOutput], blocks: Iterator[tuple[Window, list[np.ndarray]]], *, overwrite: bool
) -> list[Path]:
    """Write several same-grid GeoTIFFs window by window (memory of one block each), atomically.

    ``blocks`` yields ``(window, [array (bands, h, w) for each output])``.
    """
    finals = [check_output_path(o.path, overwrite=overwrite, kinds={".tif": "", ".tiff": ""}) for o in outputs]
    tmps: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            dsts = []
            for o, final in zip(outputs, finals, strict=True):
                fd, tmp = tempfile.mkstemp(prefix=".soilwatch-", suffix=".tif", dir=final.parent)
                os.close(fd)
                tmps.append(tmp)
                dsts.append(stack.enter_context(rasterio.open(tmp, "w", **o.profile)))
            for window, arrays in blocks:
                for dst, data in zip(dsts, arrays, strict=True):
                    dst.write(data, window=window)
            for dst, o in zip(dsts, outputs, strict=True):
                if o.tags:
                    dst.update_tags(**o.tags)
                for i, d in enumerate(o.descriptions, start=1):
                    dst.set_band_description(i, d)
        for tmp, final in zip(tmps, finals, strict=True):
            _publish(Path(tmp), final)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return finals


def read_small_raster(path: str | Path, *, max_pixels: int = 50_000_000) -> tuple[np.ndarray, Any, Any]:
    """Whole first band of a small raster as ``(array (h, w), transform, crs)``; refuses large files."""
    with _open(path) as src:
        if src.width * src.height > max_pixels:
            raise RasterTooLargeError(f"{str(path)!r} is too large to read whole ({src.width} x {src.height})")
        return src.read(1), src.transform, src.crs


def read_rgb_window(
    path: str | Path,
    bounds: tuple[float, float, float, float],
    *,
    bands: str | None = None,
    max_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """The red, green and blue pixels of ``path`` inside ``bounds`` ``(left, bottom, right, top)`` in its CRS.

    Returns ``(rgb, valid, transform)``: ``rgb`` ``(3, h, w)`` in the file's dtype, ``valid`` ``(h, w)``
    bool (False outside the image and where it has no data) and the affine transform of the crop.
    The crop is snapped outward to whole pixels; one larger than ``max_size`` pixels on its longer
    side is read reduced (averaged), so a huge patch never reads a huge window. Bands come from
    ``bands`` (``--bands`` syntax) or are inferred as :func:`inspect_raster` does. Used for review
    chips (:func:`detector.chips.render_chip`).
    """
    from affine import Affine
    from rasterio.windows import from_bounds

    from detector.errors import NoOverlapError

    info = inspect_raster(path, bands=bands)
    indexes = [info.bands.indexes[info.bands.names.index(name)] for name in ("red", "green", "blue")]
    with _open(path) as src:
        raw = from_bounds(*bounds, transform=src.transform)
        col0, row0 = int(np.floor(raw.col_off + 1e-6)), int(np.floor(raw.row_off + 1e-6))
        col1 = int(np.ceil(raw.col_off + raw.width - 1e-6))
        row1 = int(np.ceil(raw.row_off + raw.height - 1e-6))
        width, height = max(col1 - col0, 1), max(row1 - row0, 1)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + width, src.width), min(row0 + height, src.height)
        if c1 <= c0 or r1 <= r0:
            raise NoOverlapError(f"bounds {bounds!r} lie outside {str(path)!r} ({src.bounds!r}, {src.crs})")
        scale = max(1.0, max(width, height) / max_size)
        out_w, out_h = max(1, round(width / scale)), max(1, round(height / scale))
        sx, sy = width / out_w, height / out_h
        # Read only the part inside the image (a boundless read would go through a VRT) and place it.
        x0, y0 = round((c0 - col0) / sx), round((r0 - row0) / sy)
        x1, y1 = max(x0 + 1, round((c1 - col0) / sx)), max(y0 + 1, round((r1 - row0) / sy))
        x1, y1 = min(x1, out_w), min(y1, out_h)
        part = src.read(
            indexes,
            window=Window(c0, r0, c1 - c0, r1 - r0),
            out_shape=(3, y1 - y0, x1 - x0),
            masked=True,
            resampling=Resampling.average if scale > 1 else Resampling.nearest,
        )
        rgb = np.zeros((3, out_h, out_w), dtype=part.dtype)
        valid = np.zeros((out_h, out_w), dtype=bool)
        rgb[:, y0:y1, x0:x1] = part.filled(0)
        valid[y0:y1, x0:x1] = ~np.ma.getmaskarray(part).any(axis=0)
        transform = src.window_transform(Window(col0, row0, width, height)) @ Affine.scale(sx, sy)
    return rgb, valid, transform
