"""Mosaics of several scenes of one date as a GDAL VRT (XML written here: the GDAL Python bindings are not
a dependency). The only module of :mod:`service.nightly` that opens rasters, besides the detector's own I/O.

The VRT is built on the grid of the first scene (pixel size and CRS); every scene must share that CRS,
band count and data type. Data bands read every scene (later scenes over earlier ones where both have
data, nodata honoured); a per-dataset mask band is the union of the scenes' masks, so areas between the
scenes read as "no data" and the detector never makes a patch there. The same scenes give the same
file, byte for byte, so a resumed run cuts the same units.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio
from rasterio.errors import RasterioError

from service.nightly.errors import MosaicError

__all__ = ["SceneHeader", "read_header", "write_mosaic", "is_tall"]

_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
               "float32": "Float32", "float64": "Float64"}  # fmt: skip


@dataclass(frozen=True)
class SceneHeader:
    path: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]  # GDAL order: x0, dx, rx, y0, ry, dy
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[str, ...]


def read_header(path: str) -> SceneHeader:
    try:
        with rasterio.open(path) as src:
            return SceneHeader(
                path=path,
                crs_wkt=src.crs.to_wkt() if src.crs else "",
                transform=tuple(src.transform.to_gdal()),  # type: ignore[arg-type]
                width=src.width,
                height=src.height,
                count=src.count,
                dtype=src.dtypes[0],
                nodata=src.nodata,
                descriptions=tuple(src.descriptions),
                colorinterp=tuple(ci.name for ci in src.colorinterp),
            )
    except RasterioError as exc:
        raise MosaicError(f"cannot read {path!r} for the mosaic ({exc}); check the file") from exc


def is_tall(path: str) -> bool:
    """True when the scene has more rows than columns (see ``square`` in :func:`write_mosaic`)."""
    head = read_header(path)
    return head.height > head.width


def write_mosaic(paths: list[str], out: Path, *, date: str | None = None, square: bool = True) -> Path:
    """Write a VRT mosaic of ``paths`` (same CRS, bands, dtype) to ``out`` (atomically); returns ``out``.

    ``square``: pad a mosaic taller than wide with empty (masked) columns on the east. This worked around
    a ``detector.align.bounds_of`` bug (tall images lost their southern rows) that is fixed since; the
    padding is harmless (masked, and units outside the footprints are skipped) and can go.
    """
    if not paths:
        raise MosaicError("no scenes to mosaic; give at least one")
    heads = [read_header(p) for p in paths]
    ref = heads[0]
    for h in heads[1:]:
        if (h.crs_wkt, h.count, h.dtype) != (ref.crs_wkt, ref.count, ref.dtype):
            raise MosaicError(
                f"{h.path!r} cannot join a mosaic with {ref.path!r}: CRS, band count or data type differ "
                f"({h.count} x {h.dtype} vs {ref.count} x {ref.dtype}); scan it on its own"
            )
    x0, dx, _, y0, _, dy = ref.transform
    if dx <= 0 or dy >= 0:
        raise MosaicError(f"{ref.path!r} is rotated or flipped; warp it to a north-up grid first (gdalwarp)")
    left = min(h.transform[0] for h in heads)
    top = max(h.transform[3] for h in heads)
    right = max(h.transform[0] + h.transform[1] * h.width for h in heads)
    bottom = min(h.transform[3] + h.transform[5] * h.height for h in heads)
    # snap the mosaic's origin onto the first scene's pixel grid, so its pixels are not resampled
    left = x0 + math.floor((left - x0) / dx + 1e-9) * dx
    top = y0 - math.floor((y0 - top) / -dy + 1e-9) * -dy
    width, height = math.ceil((right - left) / dx - 1e-9), math.ceil((top - bottom) / -dy - 1e-9)
    if square and height > width:
        width = height
    gdal_type = _GDAL_TYPES.get(ref.dtype)
    if gdal_type is None:
        raise MosaicError(f"data type {ref.dtype!r} of {ref.path!r} is not supported in a mosaic")
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(ref.crs_wkt)}</SRS>",
             f"  <GeoTransform>{left!r}, {dx!r}, 0.0, {top!r}, 0.0, {dy!r}</GeoTransform>"]  # fmt: skip
    if date:
        parts.append(f'  <Metadata><MDI key="ACQ_DATE">{escape(date)}</MDI></Metadata>')

    def rects(h: SceneHeader) -> str:
        hx0, hdx, _, hy0, _, hdy = h.transform
        xoff, yoff = (hx0 - left) / dx, (top - hy0) / -dy
        xsize, ysize = h.width * hdx / dx, h.height * hdy / dy
        return (f'<SrcRect xOff="0" yOff="0" xSize="{h.width}" ySize="{h.height}"/>'
                f'<DstRect xOff="{xoff!r}" yOff="{yoff!r}" xSize="{xsize!r}" ySize="{ysize!r}"/>')  # fmt: skip

    for band in range(1, ref.count + 1):
        parts.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{band}">')
        desc = ref.descriptions[band - 1] if band - 1 < len(ref.descriptions) else None
        if desc:
            parts.append(f"    <Description>{escape(desc)}</Description>")
        ci = ref.colorinterp[band - 1] if band - 1 < len(ref.colorinterp) else "undefined"
        parts.append(f"    <ColorInterp>{ci.capitalize() if ci != 'undefined' else 'Undefined'}</ColorInterp>")
        for h in heads:
            nodata = "" if h.nodata is None else f"<NODATA>{h.nodata!r}</NODATA>"
            parts.append(f"    <ComplexSource><SourceFilename relativeToVRT=\"0\">{escape(h.path)}</SourceFilename>"
                         f"<SourceBand>{band}</SourceBand>{rects(h)}{nodata}</ComplexSource>")  # fmt: skip
        parts.append("  </VRTRasterBand>")
    parts.append('  <MaskBand><VRTRasterBand dataType="Byte">')
    for h in heads:
        parts.append(f"    <ComplexSource><SourceFilename relativeToVRT=\"0\">{escape(h.path)}</SourceFilename>"
                     f"<SourceBand>mask,1</SourceBand>{rects(h)}<NODATA>0</NODATA></ComplexSource>")  # fmt: skip
    parts.append("  </VRTRasterBand></MaskBand>")
    parts.append("</VRTDataset>")
    text = "\n".join(parts) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.read_text(encoding="utf-8") == text:
        return out
    fd, tmp = tempfile.mkstemp(prefix=".mosaic-", suffix=".vrt", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out

