"""Helpers for tests/training: a tiny fake change dataset in the layout of shared/data (seeded), and test models.

Layout made by :func:`make_fake_dataset` (all under ``tmp_path``)::

    pngset/A|B|label/p0.png, p1.png      48x64 RGB PNG pairs
    tifset/A|B/city.tif, label/city.png  6-band uint16 GeoTIFF (B02, B03, B04, B08, B11, B12), 10 m, EPSG:32650
    sparse/A|B|label|valid/s0.png        like pngset, labels count only where valid/ != 0
    geotiff/RGB.png                      not a change set: skipped
    landcover_x/image|mask/...           not a change set: skipped

Every change is a rectangle that is pure red in the after image over a grey scene (r = g = b),
so the test model "perfect" (red minus green of the after image > 0.5) finds exactly the labels
after normalisation, and "empty" finds nothing. With ``broken=True``, pngset/B/p1.png is garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from PIL import Image

from models.base import ModelInfo

__all__ = ["RuleModel", "make_fake_dataset"]

H, W = 48, 64
#: (row0, row1, col0, col1) of the changed rectangles of each pair
PNG_CHANGES = {"p0": [(8, 20, 10, 30)], "p1": [(30, 44, 40, 60), (4, 10, 4, 10)]}
TIF_CHANGES = {"city": [(10, 30, 20, 44)]}
SPARSE_CHANGES = {"s0": [(10, 30, 10, 30)]}
#: rows 0..SPARSE_VALID_ROWS of the sparse pair are labelled; the rest is ignored
SPARSE_VALID_ROWS = 20
S2_DESCRIPTIONS = ("B02 blue", "B03 green", "B04 red", "B08 NIR", "B11 SWIR1", "B12 SWIR2")


def _grey(rng: np.random.Generator, scale: int) -> np.ndarray:
    """(h, w) smooth grey scene, values 25 %-70 % of ``scale``."""
    base = rng.uniform(0.25, 0.70, size=(H // 4, W // 4))
    return (np.kron(base, np.ones((4, 4))) * scale).astype(np.float64)


def _label(changes: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    lab = np.zeros((H, W), dtype=np.uint8)
    for r0, r1, c0, c1 in changes:
        lab[r0:r1, c0:c1] = 255
    return lab


def _write_png_pair(set_dir: Path, name: str, changes: Sequence[tuple[int, int, int, int]], rng: np.random.Generator,
                    valid_rows: int | None = None) -> None:
    grey = _grey(rng, 255)
    before = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
    after = before.copy()
    lab = _label(changes)
    after[lab > 0] = (255, 0, 0)
    for sub, arr in (("A", before), ("B", after), ("label", lab)):
        (set_dir / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(set_dir / sub / f"{name}.png")
    if valid_rows is not None:
        (set_dir / "valid").mkdir(exist_ok=True)
        valid = np.zeros((H, W), dtype=np.uint8)
        valid[:valid_rows] = 1
        Image.fromarray(valid).save(set_dir / "valid" / f"{name}.png")


def _write_tif_pair(set_dir: Path, name: str, changes: Sequence[tuple[int, int, int, int]],
                    rng: np.random.Generator) -> None:
    grey = _grey(rng, 10000)
    before = np.repeat(grey[None], 6, axis=0).astype(np.uint16)  # B02, B03, B04, B08, B11, B12
    after = before.copy()
    lab = _label(changes)
    after[:, lab > 0] = 300
    after[2, lab > 0] = 9000  # B04 red high, every other band low: pure red
    profile = {"driver": "GTiff", "width": W, "height": H, "count": 6, "dtype": "uint16",
               "crs": "EPSG:32650", "transform": Affine(10.0, 0, 500000.0, 0, -10.0, 4000000.0)}
    for sub, arr in (("A", before), ("B", after)):
        (set_dir / sub).mkdir(parents=True, exist_ok=True)
        with rasterio.open(set_dir / sub / f"{name}.tif", "w", **profile) as dst:
            dst.write(arr)
            dst.descriptions = S2_DESCRIPTIONS
    (set_dir / "label").mkdir(exist_ok=True)
    Image.fromarray(lab).save(set_dir / "label" / f"{name}.png")


def make_fake_dataset(root: Path, *, seed: int = 0, broken: bool = False) -> Path:
    """Write the fake dataset under ``root`` (see module docstring); with ``broken``, ``pngset/B/p1.png``
    is truncated garbage."""
    rng = np.random.default_rng(seed)
    for name, changes in PNG_CHANGES.items():
        _write_png_pair(root / "pngset", name, changes, rng)
    for name, changes in TIF_CHANGES.items():
        _write_tif_pair(root / "tifset", name, changes, rng)
    for name, changes in SPARSE_CHANGES.items():
        _write_png_pair(root / "sparse", name, changes, rng, valid_rows=SPARSE_VALID_ROWS)
    (root / "geotiff").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "geotiff" / "RGB.png")
    (root / "landcover_x" / "image").mkdir(parents=True)
    (root / "landcover_x" / "mask").mkdir()
    if broken:
        (root / "pngset" / "B" / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    return root


class RuleModel:
    """Test model: after-image red minus green above 0.5 (``perfect`` on the fake data), or nothing."""

    def __init__(self, *, empty: bool = False, tile_size: int = 512, margin_px: int = 4) -> None:
        self.empty = empty
        self.info = ModelInfo(name="empty" if empty else "perfect", version="test", threshold=0.5,
                              margin_px=margin_px, tile_size=tile_size, batch_size=1)

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        if self.empty:
            return np.zeros((x.shape[0], *x.shape[-2:]), dtype=np.float32)
        return (x[:, 1, 0] - x[:, 1, 1] > 0.5).astype(np.float32)
