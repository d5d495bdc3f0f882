"""Image chips for review: a small RGB picture of a patch with its outline, from arrays (no files).

:func:`render_chip` stretches the pixels band by band between two percentiles of the valid pixels
(robust to a few saturated roofs or deep shadows), enlarges small crops with nearest-neighbour so the
pixels stay honest, and draws the patch outlines. :func:`encode_png` turns the result into PNG bytes.
Reading the crop is :func:`detector.io.read_rgb_window`'s job.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw
from shapely.geometry.base import BaseGeometry

__all__ = ["render_chip", "encode_png", "stretch"]

NO_DATA_RGB = (32, 32, 32)


def stretch(band: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """``band`` ``(h, w)`` of any dtype to uint8, linear between the ``percentiles`` of the valid pixels."""
    values = band[valid]
    if values.size == 0:
        return np.zeros(band.shape, dtype=np.uint8)
    lo, hi = np.percentile(values.astype(np.float64), percentiles)
    if not hi > lo:  # a flat crop: show it mid-grey rather than dividing by zero
        return np.full(band.shape, 128, dtype=np.uint8)
    scaled = (band.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def render_chip(
    rgb: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    transform: Affine | None = None,
    outlines: Iterable[BaseGeometry] = (),
    percentiles: tuple[float, float] = (2.0, 98.0),
    min_size: int = 256,
    max_scale: int = 8,
    color: tuple[int, int, int] = (255, 230, 0),
    line_px: int = 2,
) -> np.ndarray:
    """A review chip ``(H, W, 3)`` uint8 from ``rgb`` ``(3, h, w)`` (red, green, blue; any dtype).

    ``valid`` ``(h, w)`` bool marks pixels with data (others are dark grey and ignored by the
    stretch). ``outlines`` are polygons in the CRS of ``transform`` (the crop's affine transform; pixel
    coordinates ``(col, row)`` when it is None), drawn as closed lines ``line_px`` wide. Crops smaller
    than ``min_size`` on their longer side are enlarged by a whole factor (at most ``max_scale``).
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, h, w), got shape {rgb.shape!r}")
    _, h, w = rgb.shape
    if h == 0 or w == 0:
        raise ValueError(f"rgb is empty: shape {rgb.shape!r}")
    ok = np.ones((h, w), dtype=bool) if valid is None else valid.astype(bool)
    if ok.shape != (h, w):
        raise ValueError(f"valid has shape {ok.shape!r}, expected {(h, w)!r}")
    image = np.stack([stretch(rgb[i], ok, percentiles) for i in range(3)], axis=-1)
    image[~ok] = NO_DATA_RGB
    scale = int(min(max(1, math.ceil(min_size / max(h, w))), max_scale))
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    to_px = ~(transform or Affine.identity())
    pil = Image.fromarray(image, mode="RGB")
    draw = ImageDraw.Draw(pil)
    for geom in outlines:
        for ring in _rings(geom):
            cols, rows = to_px @ (ring[:, 0], ring[:, 1])
            points = [(float(c) * scale, float(r) * scale) for c, r in zip(cols, rows, strict=True)]
            if len(points) >= 2:
                draw.line(points + points[:1], fill=color, width=line_px, joint="curve")
    return np.asarray(pil)


def _rings(geom: BaseGeometry) -> list[np.ndarray]:
    rings: list[np.ndarray] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            rings.append(np.asarray(part.exterior.coords))
            rings.extend(np.asarray(r.coords) for r in part.interiors)
        elif part.geom_type in ("LineString", "LinearRing"):
            rings.append(np.asarray(part.coords))
        elif hasattr(part, "geoms"):
            rings.extend(_rings(part))
    return rings


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.dtype} {image.shape!r}")
    out = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()
