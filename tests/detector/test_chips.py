"""Review chips: the stretch and outline of :func:`detector.chips.render_chip`, and the crop reader."""

from __future__ import annotations

import io

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from shapely.geometry import box

from detector.chips import encode_png, render_chip, stretch
from detector.errors import NoOverlapError
from detector.io import read_rgb_window
from tests.fixtures import field_scene, write_tif


def test_stretch_uses_percentiles_of_valid_pixels():
    band = np.arange(100, dtype=np.uint16).reshape(10, 10)
    valid = np.ones_like(band, dtype=bool)
    valid[0, 0] = False
    band[0, 0] = 60000  # no-data value: must not flatten the stretch
    out = stretch(band, valid, (0, 100))
    assert out.dtype == np.uint8 and out[0, 1] == 0 and out[9, 9] == 255
    assert (stretch(np.full((3, 3), 7), np.ones((3, 3), bool)) == 128).all()


def test_render_chip_enlarges_and_draws_the_outline():
    rgb = np.zeros((3, 32, 64), dtype=np.uint16)
    rgb[:, :, 32:] = 1000
    transform = Affine(1.0, 0, 100.0, 0, -1.0, 200.0)  # 1 m pixels, top-left at (100, 200)
    image = render_chip(rgb, transform=transform, outlines=[box(110, 180, 120, 190)], min_size=256)
    assert image.shape == (128, 256, 3) and image.dtype == np.uint8  # enlarged 4x, whole pixels
    yellow = (image[..., 0] > 200) & (image[..., 1] > 200) & (image[..., 2] < 50)
    rows, cols = np.nonzero(yellow)
    assert cols.min() >= 10 * 4 - 3 and cols.max() <= 20 * 4 + 3 and rows.min() >= 10 * 4 - 3
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image))))
    assert np.array_equal(decoded, image)
    with pytest.raises(ValueError, match="3, h, w"):
        render_chip(np.zeros((4, 8, 8)))


def test_read_rgb_window_pads_outside_and_reduces_large_crops(tmp_path):
    before, _ = field_scene(100, 100, squares=[])
    path = write_tif(tmp_path / "a.tif", before, transform=Affine(1.0, 0, 1000.0, 0, -1.0, 5000.0))
    rgb, valid, transform = read_rgb_window(path, (990.0, 4950.0, 1020.0, 4990.0))  # 10 m off the left edge
    assert rgb.shape == (3, 40, 30) and valid.shape == (40, 30)
    assert not valid[:, :10].any() and valid[:, 10:].all()
    assert (transform.c, transform.f) == (990.0, 4990.0)
    assert abs(float(rgb[0][valid].mean()) - 60) < 3  # red of the green crop, RGB order from the band map
    small, ok, t = read_rgb_window(path, (1000.0, 4900.0, 1100.0, 5000.0), max_size=25)
    assert small.shape == (3, 25, 25) and ok.all() and t.a == pytest.approx(4.0)
    with pytest.raises(NoOverlapError):
        read_rgb_window(path, (0.0, 0.0, 10.0, 10.0))
