"""``soilwatch eval --as-detected`` scores the raster of the patches ``soilwatch detect`` writes (the CLI flag is
tested in test_eval_cli.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.features import rasterize

from detector.pipeline import DetectOptions, detect_unit, finish_patches, plan_detection
from models.base import ModelInfo
from tests.fixtures import write_tif
from training.evaluate import detected_mask


def test_detected_mask_by_hand() -> None:
    prob = np.zeros((40, 40), dtype=np.float32)
    prob[8:20, 8:20] = 0.9  # a patch of 144 px ...
    prob[12:15, 11:16] = 0.1  # ... with a 15 px hole, more than closing fills: filled as under 20 px
    prob[35, 5] = 0.9  # a 1 px speck: opened away
    prob[25:29, 3:7] = 0.6  # 16 px: under the minimum area of 20 px, dropped
    prob[0:12, 30:40] = 0.7  # on the image edge: the outer 2 px are not the detector's
    prob[24:38, 15:33] = 0.95
    prob[28:34, 20:28] = 0.2  # a 48 px hole: kept
    mask = detected_mask(prob, 0.5, 20)
    assert mask[9:19, 9:19].all()
    assert not mask[35, 5] and not mask[25:29, 3:7].any()
    assert mask[3:11, 31:37].all() and not mask[0:2].any() and not mask[:, 38:].any()
    assert not mask[29:33, 21:27].any() and mask[25:27, 16:32].all()
    # opening rounds the corners (4-neighbour cross), as in the detector
    assert not mask[8, 8] and mask[8, 9]
    # the bare threshold keeps everything at or above 0.5
    assert (prob >= 0.5).sum() > mask.sum()


class _DiffModel:
    """A change "model" that is a fixed function of the pair: how far the two dates differ, so that its map has
    specks, lines, holes and patches of every size."""

    def __init__(self) -> None:
        self.info = ModelInfo(name="diff", version="test", margin_px=8, tile_size=96, batch_size=2)

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        d = np.abs(x[:, 1] - x[:, 0]).mean(axis=1)
        return np.clip(d * 3.0, 0.0, 1.0).astype(np.float32)


def test_detected_mask_is_what_the_detector_writes(tmp_path: Path) -> None:
    """The same probabilities through the real detector (tiles, seams, polygons, holes, minimum area) and through
    :func:`detected_mask` give the same pixels, up to the half-pixel simplification of the polygons and areas
    measured on the ellipsoid."""
    rng = np.random.default_rng(7)
    h, w = 230, 250
    before = rng.integers(90, 110, size=(3, h, w)).astype(np.uint8)
    after = before.copy()
    for _ in range(60):  # blocks of new ground, 2 to 30 px across, some on the image edge, some with a gap inside
        r, c, s = rng.integers(-5, h - 30), rng.integers(-5, w - 30), rng.integers(2, 31)
        r, c = max(r, 0), max(c, 0)
        after[:, r : r + s, c : c + s] = rng.integers(170, 200)
        if s > 8:
            g = rng.integers(1, s // 2)
            after[:, r + 3 : r + 3 + g, c + 3 : c + 3 + g] = before[:, r + 3 : r + 3 + g, c + 3 : c + 3 + g]
    for _ in range(40):  # small blocks around the minimum area
        r, c, s = rng.integers(0, h - 6), rng.integers(0, w - 6), rng.integers(3, 7)
        after[:, r : r + s, c : c + s] = 190
    for _ in range(15):  # 1 px lines: tracks the opening removes
        r, c = rng.integers(0, h - 40), rng.integers(0, w - 40)
        after[:, r, c : c + 40] = 200
    speck = rng.random((h, w)) < 0.01
    after[:, speck] = 220
    b = write_tif(tmp_path / "before.tif", before)
    a = write_tif(tmp_path / "after.tif", after)
    model = _DiffModel()
    opts = DetectOptions(min_area_m2=12.0, match_histograms=False)
    plan = plan_detection(b, a, options=opts, model=model)
    prob = np.full((h, w), np.nan, dtype=np.float32)

    def keep(tile: object, p: np.ndarray, valid: np.ndarray) -> None:
        core = tile.core  # type: ignore[attr-defined]
        prob[core.row_off : core.row_off + core.height, core.col_off : core.col_off + core.width] = p

    patches = finish_patches(plan, detect_unit(plan, plan.area, model=model, on_tile=keep))
    assert not np.isnan(prob).any() and plan.tile_size < h  # several tiles, so seams were joined
    assert len(patches) > 10
    drawn = rasterize(patches.to_crs(plan.grid.crs).geometry, out_shape=(h, w), transform=plan.grid.transform) > 0
    ours = detected_mask(prob, model.info.threshold, int(np.ceil(opts.min_area_m2 / plan.resolution_m**2)))
    # 24 of ~15 900 pixels differ here; leaving out the border cut or the area filter makes it ~90, the opening ~900
    assert (drawn ^ ours).sum() <= 0.003 * ours.sum(), (drawn ^ ours).sum()
    bare = prob >= model.info.threshold
    assert (bare ^ ours).sum() > 0.05 * ours.sum()  # the clean-up mattered here, or the test would prove nothing
