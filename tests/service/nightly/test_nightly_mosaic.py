"""VRT mosaics of several scenes, and scene footprints, without a database."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from service.nightly.discover import _footprint
from service.nightly.errors import MosaicError
from service.nightly.mosaic import write_mosaic
from tests.fixtures import field_scene, write_tif

ORIGIN = (512_000.0, 4_436_000.0)


def _cut(path: Path, data: np.ndarray, row: int, col: int, h: int, w: int, crs: str = "EPSG:4548") -> str:
    t = Affine(1.0, 0, ORIGIN[0] + col, 0, -1.0, ORIGIN[1] - row)
    return str(write_tif(path, np.ascontiguousarray(data[:, row : row + h, col : col + w]), crs=crs, transform=t))


def test_a_mosaic_reads_every_scene_and_masks_the_gaps(tmp_path: Path) -> None:
    _, after = field_scene(200, 300)
    left = _cut(tmp_path / "l.tif", after, 0, 0, 200, 180)
    right = _cut(tmp_path / "r.tif", after, 20, 150, 180, 150)
    out = write_mosaic([left, right], tmp_path / "m.vrt", date="2024-06-01")
    assert write_mosaic([left, right], tmp_path / "m.vrt", date="2024-06-01") == out  # same input, same file
    with rasterio.open(out) as src:
        assert (src.width, src.height) == (300, 200) and src.tags()["ACQ_DATE"] == "2024-06-01"
        data, mask = src.read(), src.dataset_mask()
    assert np.array_equal(data[:, :, :180], after[:, :, :180])
    assert np.array_equal(data[:, 20:, 150:], after[:, 20:, 150:])
    assert mask[:20, 180:].max() == 0 and mask[20:].min() == 255  # the corner no scene covers is "no data"


def test_a_tall_mosaic_is_padded_square_and_scenes_must_share_a_crs(tmp_path: Path) -> None:
    _, after = field_scene(300, 100, squares=[])
    tall = _cut(tmp_path / "t.tif", after, 0, 0, 300, 100)
    with rasterio.open(write_mosaic([tall], tmp_path / "t.vrt")) as src:
        assert (src.width, src.height) == (300, 300) and src.dataset_mask()[:, 100:].max() == 0
    other = _cut(tmp_path / "o.tif", after, 0, 0, 100, 100, crs="EPSG:4549")
    with pytest.raises(MosaicError, match="CRS, band count or data type differ"):
        write_mosaic([tall, other], tmp_path / "x.vrt")


def test_footprints_of_scenes_that_are_not_square(tmp_path: Path) -> None:
    _, after = field_scene(300, 100, squares=[])
    fp = _footprint(Path(_cut(tmp_path / "t.tif", after, 0, 0, 300, 100)))
    left, bottom, right, top = fp.bounds
    # 300 m north-south, 100 m east-west; a degree of longitude is cos(40°) of a degree of latitude there
    assert (top - bottom) / (right - left) == pytest.approx(3 * math.cos(math.radians(40.06)), rel=0.01)
