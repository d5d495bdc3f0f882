"""Test data helpers: tiny GeoTIFFs written with rasterio under tmp_path, with explicit profiles.

Import as ``from tests.fixtures import write_tif``; the pytest fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

#: CGCS2000 / 3-degree Gauss-Kruger CM 117E (Tianjin is in this zone), metres, easting without zone prefix.
GK_CRS = "EPSG:4548"
GK_ORIGIN = (500_000.0, 4_400_000.0)  # ~39.7 N, 117 E: near 蓟州区

VEG = (60, 95, 50, 170)  # red, green, blue, nir (uint8) of a green crop
SOIL = (175, 150, 120, 120)


def write_tif(
    path: Path,
    data: np.ndarray,
    *,
    crs: str | None = GK_CRS,
    transform: Affine | None = None,
    nodata: float | None = None,
    order: str = "rgbn",
    tags: dict[str, str] | None = None,
    mask: np.ndarray | None = None,
    **profile: Any,
) -> Path:
    """Write ``data`` ``(bands, h, w)`` given in red, green, blue[, nir] order.

    ``order="bgrn"`` stores it in the GF-2 band order (blue, green, red, nir) with no colour
    interpretation, as delivered by Chinese satellites. ``mask`` (bool, True = valid) becomes an
    internal per-dataset mask band, as a cloud mask would be.
    """
    bands, h, w = data.shape
    if order == "bgrn":
        data = data[[2, 1, 0, 3]] if bands == 4 else data[[2, 1, 0]]
    prof: dict[str, Any] = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": bands,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform or Affine(1.0, 0, GK_ORIGIN[0], 0, -1.0, GK_ORIGIN[1]),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
        "compress": "deflate",
    }
    if order in ("bgrn", "gray"):
        prof["photometric"] = "MINISBLACK"  # as delivered: no colour interpretation, 4th band not alpha
    elif bands >= 4:
        # GDAL's default for 4-band 8-bit is RGB + alpha; the 4th band here is NIR, not a mask
        prof.update(photometric="RGB", alpha="unspecified")
    prof.update(profile)
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
        if order == "rgbn" and bands == 3:
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if tags:
            dst.update_tags(**tags)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype(np.uint8))
    return path


def field_scene(
    h: int = 240, w: int = 240, *, squares: list[tuple[int, int, int, int]] | None = None, bands: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Before: a green crop field with a little noise; after: the same with bare-soil rectangles.

    ``squares`` are ``(row, col, height, width)`` in pixels; returns uint8 arrays ``(bands, h, w)``.
    """
    rng = np.random.default_rng(seed)
    veg = np.array(VEG[:bands], dtype=np.float32)[:, None, None]
    soil = np.array(SOIL[:bands], dtype=np.float32)[:, None, None]
    before = veg + rng.normal(0, 3, (bands, h, w))
    after = veg + rng.normal(0, 3, (bands, h, w))
    for r, c, sh, sw in squares if squares is not None else [(80, 80, 40, 40)]:
        after[:, r : r + sh, c : c + sw] = soil + rng.normal(0, 3, (bands, sh, sw))
    return np.clip(before, 0, 255).astype(np.uint8), np.clip(after, 0, 255).astype(np.uint8)


class MarkerModel:
    """Test oracle: probability = the after image's red band on the [0, 1] scale.

    Paint the truth into the red band (255 inside, 0 outside, on a before image with red 0) and
    run with ``match_histograms=False``: the detector must then return exactly the painted shapes.
    """

    def __init__(self, *, tile_size: int = 64, margin_px: int = 4) -> None:
        from models.base import ModelInfo

        self.info = ModelInfo(
            name="marker", version="test", tile_size=tile_size, margin_px=margin_px, batch_size=3, single_date=True
        )
        self.calls = 0

    def predict(self, x: np.ndarray, bands: Any) -> np.ndarray:
        self.calls += 1
        return np.clip(x[:, -1, 0], 0.0, 1.0).astype(np.float32)


def marker_pair(h: int, w: int, painted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Before all dark; after with red = 255 where ``painted`` (bool ``(h, w)``) is True. uint8, 3 bands."""
    before = np.full((3, h, w), 40, dtype=np.uint8)
    before[0] = 0
    after = before.copy()
    if painted is not None:
        after[0][painted] = 255
    return before, after


def shared_data() -> Path | None:
    """The real labelled data (``SOILWATCH_SHARED_DATA`` or ``<repo>/../shared/data``), or None."""
    import os

    env = os.environ.get("SOILWATCH_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None
