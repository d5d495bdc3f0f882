"""Pixel and object scores (training.metrics) on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    ObjectCounts,
    PixelCounts,
    min_area_px,
    score_objects,
    score_objects_by_confidence,
    score_pixels,
)


def _mask(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        m[r0:r1, c0:c1] = True
    return m


def test_pixel_counts_by_hand() -> None:
    truth = _mask((4, 4), (0, 2, 0, 2))  # 4 px
    pred = _mask((4, 4), (0, 2, 1, 3))  # 4 px, 2 overlap
    c = score_pixels(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 2, 2, 10)
    assert c.precision == 0.5 and c.recall == 0.5 and c.f1 == 0.5 and c.iou == pytest.approx(1 / 3)


def test_invalid_pixels_do_not_count_and_counts_pool() -> None:
    truth = _mask((4, 4), (0, 2, 0, 2))
    pred = _mask((4, 4), (0, 4, 0, 4))
    valid = _mask((4, 4), (0, 1, 0, 4))  # first row only: 2 tp, 2 fp
    c = score_pixels(pred, truth, valid)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 2, 0, 0)
    pooled = c + score_pixels(np.zeros((4, 4), bool), truth)
    assert (pooled.tp, pooled.fp, pooled.fn) == (2, 2, 4)


def test_empty_prediction_has_zero_recall_and_undefined_precision() -> None:
    c = score_pixels(np.zeros((3, 3), bool), _mask((3, 3), (0, 1, 0, 1)))
    assert c.recall == 0.0 and c.f1 == 0.0 and math.isnan(c.precision)
    assert c.as_dict()["precision"] is None and c.as_dict()["recall"] == 0.0


def test_min_area_px() -> None:
    assert min_area_px(200, 10.0) == 2
    assert min_area_px(200, 0.5) == 800
    assert min_area_px(200, 1.5) == 89
    assert min_area_px(0, 2.0) == 1
    with pytest.raises(ValueError, match="resolution_m"):
        min_area_px(200, 0)


def test_object_hit_by_iou() -> None:
    truth = _mask((20, 20), (0, 10, 0, 10))  # 100 px
    pred = _mask((20, 20), (0, 10, 6, 16))  # 100 px, overlap 40: IoU 40/160 = 0.25, cover 0.4
    c = score_objects(pred, truth)
    assert (c.predicted, c.hits, c.true, c.found) == (1, 1, 1, 1)
    pred = _mask((20, 20), (0, 10, 7, 17))  # overlap 30: IoU 0.176, cover 0.3 -> miss
    c = score_objects(pred, truth)
    assert (c.predicted, c.hits, c.true, c.found) == (1, 0, 1, 0)
    assert c.precision == 0.0 and c.recall == 0.0


def test_object_hit_by_cover_of_the_true_object() -> None:
    truth = _mask((30, 30), (0, 4, 0, 4))  # 16 px
    pred = _mask((30, 30), (0, 20, 0, 20))  # 400 px: IoU 0.04 but covers all of it
    c = score_objects(pred, truth)
    assert (c.hits, c.found) == (1, 1)


def test_eight_connectivity_and_min_area() -> None:
    pred = np.zeros((10, 10), bool)
    pred[0, 0] = pred[1, 1] = pred[2, 2] = True  # one diagonal object of 3 px
    pred[8:10, 8:10] = True  # 4 px
    truth = pred.copy()
    c = score_objects(pred, truth)
    assert (c.predicted, c.true, c.hits, c.found) == (2, 2, 2, 2)
    c = score_objects(pred, truth, min_area_px=4)  # the diagonal one is dropped; true objects stay
    assert (c.predicted, c.dropped_small, c.true, c.hits, c.found) == (1, 1, 2, 1, 1)
    assert c.precision == 1.0 and c.recall == 0.5


def test_one_prediction_finding_two_true_objects_and_false_alarms() -> None:
    truth = _mask((20, 40), (2, 6, 2, 6), (2, 6, 8, 12))
    pred = _mask((20, 40), (1, 7, 1, 13), (15, 19, 30, 38))  # covers both; plus a false alarm
    c = score_objects(pred, truth)
    assert (c.predicted, c.hits, c.true, c.found) == (2, 1, 2, 2)
    assert c.precision == 0.5 and c.recall == 1.0


def test_objects_use_valid_pixels() -> None:
    truth = _mask((10, 10), (0, 10, 0, 4))
    pred = _mask((10, 10), (0, 10, 0, 4), (0, 10, 7, 10))
    valid = _mask((10, 10), (0, 5, 0, 5))  # the second predicted object lies wholly outside
    c = score_objects(pred, truth, valid)
    assert (c.predicted, c.hits, c.true, c.found) == (1, 1, 1, 1)


def test_empty_and_pooled_objects() -> None:
    truth = _mask((8, 8), (0, 3, 0, 3))
    c = score_objects(np.zeros((8, 8), bool), truth)
    assert c.recall == 0.0 and math.isnan(c.precision) and c.as_dict()["precision"] is None
    pooled = c + ObjectCounts(predicted=2, hits=1, true=1, found=1)
    assert (pooled.predicted, pooled.true, pooled.found) == (2, 2, 1)
    assert PixelCounts().as_dict()["f1"] is None


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="one shape"):
        score_pixels(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_objects_by_confidence_skip_the_less_sure_patches() -> None:
    truth = _mask((20, 40), (2, 6, 2, 6), (2, 6, 8, 12), (12, 16, 20, 24))
    # the first prediction covers the first two true objects (sure), the second the third (unsure), the third
    # is a false alarm (half sure, half not: its mean decides)
    pred = _mask((20, 40), (1, 7, 1, 13), (12, 16, 20, 24), (15, 19, 30, 38))
    prob = np.where(pred, 0.55, 0.1)
    prob[1:7, 1:13] = 0.9
    prob[15:19, 30:34], prob[15:19, 34:38] = 0.9, 0.6  # mean 0.75
    every, sure, surest, none = score_objects_by_confidence(pred, prob, truth, cuts=(0.0, 0.7, 0.8, 0.95))
    plain = score_objects(pred, truth)
    assert (every.predicted, every.hits, every.found, every.true) == (plain.predicted, plain.hits, plain.found, 3)
    assert (every.predicted, every.hits, every.found) == (3, 2, 3)
    assert (sure.predicted, sure.hits, sure.found) == (2, 1, 2)  # the unsure hit goes, the 0.75 false alarm stays
    assert (surest.predicted, surest.hits, surest.found) == (1, 1, 2) and surest.precision == 1.0
    assert (none.predicted, none.found, none.true) == (0, 0, 3) and math.isnan(none.precision)
    small = score_objects_by_confidence(pred, prob, truth, min_area_px=20, cuts=(0.0,))[0]
    assert (small.predicted, small.dropped_small) == (2, 1)  # the 16 px object is under the minimum area
    with pytest.raises(ValueError, match="prob must have"):
        score_objects_by_confidence(pred, prob[:5], truth)
