"""Pixel and object scores of the change class, accumulated over pairs.

Pixel scores (:class:`PixelCounts`) count true/false positives/negatives of the change class over
the *valid* pixels only, from the thresholded prediction as it is (no area filter); pairs and sets
are pooled by adding counts, so a big image weighs more than a small one.

Object scores (:class:`ObjectCounts`) follow the rule in :func:`score_objects`, written down once
in :data:`OBJECT_RULE` so that reports can quote it:

1. Objects are 8-connected components of the predicted mask and of the true mask (true mask = label
   on valid pixels).
2. Predicted objects smaller than ``min_area_px`` pixels (``min_area_m2 / resolution_m**2``, rounded
   up) are dropped before scoring, as the detector drops patches below the bureau's minimum area.
   Predicted objects without a single valid pixel (wholly in unlabelled area) are not scored.
3. A predicted object *hits* a true object when their IoU is at least 0.25 or it covers at least
   50 % of the true object (overlaps and unions are counted on valid pixels).
4. A true object is *found* when some kept predicted object hits it.
5. Object precision = predicted objects that hit something / kept predicted objects;
   object recall = found true objects / true objects.

A ratio with a zero denominator (no predicted pixels, no true objects, ...) is undefined: it is
NaN here and ``null`` in JSON reports, never silently 0 or 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "HIT_COVER",
    "HIT_IOU",
    "OBJECT_RULE",
    "ObjectCounts",
    "PixelCounts",
    "min_area_px",
    "score_objects",
    "score_objects_by_confidence",
    "score_pixels",
]

HIT_IOU = 0.25
HIT_COVER = 0.5
_EIGHT = np.ones((3, 3), dtype=bool)

OBJECT_RULE = (
    "objects = 8-connected components; predicted objects smaller than min_area_m2 / resolution_m^2 pixels "
    "are dropped; a predicted object hits a true object when IoU >= 0.25 or it covers >= 50% of it "
    "(valid pixels only); a true object is found when some predicted object hits it; "
    "object precision = hitting predicted objects / predicted objects, object recall = found / true objects"
)


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class PixelCounts:
    """Confusion counts of the change class over valid pixels; add two with ``+`` to pool them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    def as_dict(self) -> dict[str, float | int | None]:
        """Scores (None where undefined) and the counts they come from."""
        scores = {"precision": self.precision, "recall": self.recall, "f1": self.f1, "iou": self.iou}
        out: dict[str, float | int | None] = {k: None if math.isnan(v) else v for k, v in scores.items()}
        out.update(tp=self.tp, fp=self.fp, fn=self.fn, tn=self.tn)
        return out


@dataclass(frozen=True)
class ObjectCounts:
    """Object tallies (see the module docstring for the rule); add two with ``+`` to pool them."""

    predicted: int = 0  # kept predicted objects
    hits: int = 0  # kept predicted objects that hit a true object
    true: int = 0  # true objects
    found: int = 0  # true objects hit by some kept predicted object
    dropped_small: int = 0  # predicted objects dropped for being under the minimum area

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(
            self.predicted + other.predicted,
            self.hits + other.hits,
            self.true + other.true,
            self.found + other.found,
            self.dropped_small + other.dropped_small,
        )

    @property
    def precision(self) -> float:
        return _ratio(self.hits, self.predicted)

    @property
    def recall(self) -> float:
        return _ratio(self.found, self.true)

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            k: None if math.isnan(v) else v for k, v in {"precision": self.precision, "recall": self.recall}.items()
        }
        out.update(
            predicted=self.predicted, hits=self.hits, true=self.true, found=self.found, dropped_small=self.dropped_small
        )
        return out


def _check(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    valid = np.ones(truth.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if pred.ndim != 2 or pred.shape != truth.shape or valid.shape != truth.shape:
        raise ValueError(
            f"pred, truth and valid must be (h, w) arrays of one shape; got {pred.shape!r}, {truth.shape!r}, "
            f"{valid.shape!r}"
        )
    return pred, truth, valid


def score_pixels(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> PixelCounts:
    """Confusion counts of the change class.

    Args:
        pred, truth: bool ``(h, w)``, True = change.
        valid: bool ``(h, w)``, pixels that count; None = all.
    """
    pred, truth, valid = _check(pred, truth, valid)
    p, t = pred[valid], truth[valid]
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p & ~t))
    fn = int(np.count_nonzero(~p & t))
    return PixelCounts(tp=tp, fp=fp, fn=fn, tn=int(p.size) - tp - fp - fn)


def min_area_px(min_area_m2: float, resolution_m: float) -> int:
    """Smallest object kept, in pixels: ``ceil(min_area_m2 / resolution_m**2)``, at least 1.

    Args:
        min_area_m2: minimum patch area in square metres (>= 0).
        resolution_m: ground size of a pixel side in metres (> 0).
    """
    if not (math.isfinite(min_area_m2) and min_area_m2 >= 0):
        raise ValueError(f"min_area_m2 must be a finite number >= 0, got {min_area_m2!r}")
    if not (math.isfinite(resolution_m) and resolution_m > 0):
        raise ValueError(f"resolution_m must be a finite number > 0, got {resolution_m!r}")
    return max(1, math.ceil(min_area_m2 / resolution_m**2 - 1e-9))


def score_objects(
    pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, *, min_area_px: int = 1
) -> ObjectCounts:
    """Object tallies of one pair under the rule of the module docstring (:data:`OBJECT_RULE`).

    Args:
        pred, truth: bool ``(h, w)``, True = change.
        valid: bool ``(h, w)``, pixels that count; None = all. True objects are taken from
            ``truth & valid``; predicted objects from the whole ``pred`` (their area is their full size).
        min_area_px: predicted objects with fewer pixels are dropped before scoring.
    """
    t = _ObjectTable.of(pred, truth, valid, min_area_px)
    return t.counts(t.keep)


def score_objects_by_confidence(
    pred: np.ndarray, prob: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, *,
    min_area_px: int = 1, cuts: Sequence[float] = (0.5,)
) -> list[ObjectCounts]:
    """:func:`score_objects` once per cut in ``cuts``, keeping only the predicted objects whose confidence (the mean
    of ``prob`` float ``(h, w)`` over the object's pixels, as the detector's patch ``confidence``) is at least
    the cut: how precision and recall move when an inspector skips the less sure patches."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.shape != np.shape(pred):
        raise ValueError(f"prob must have pred's shape {np.shape(pred)!r}, got {prob.shape!r}")
    t = _ObjectTable.of(pred, truth, valid, min_area_px)
    mean = np.bincount(t.p_lab.ravel(), weights=prob.ravel(), minlength=t.p_area.size) / np.maximum(t.p_area, 1)
    return [t.counts(t.keep & (mean >= cut)) for cut in cuts]


@dataclass(frozen=True)
class _ObjectTable:
    """The objects of one pair under :data:`OBJECT_RULE`: predicted labels and sizes, which are kept, and the
    (predicted, true) pairs that hit."""

    p_lab: np.ndarray
    p_area: np.ndarray
    keep: np.ndarray  # per predicted label (0 = background, never kept)
    n_true: int
    dropped: int
    hit_p: np.ndarray  # predicted label of each hitting pair
    hit_t: np.ndarray  # true label of each hitting pair

    @classmethod
    def of(cls, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None, min_area_px: int) -> _ObjectTable:
        pred, truth, valid = _check(pred, truth, valid)
        if min_area_px < 1:
            raise ValueError(f"min_area_px must be >= 1, got {min_area_px!r}")
        p_lab, n_p = ndimage.label(pred, structure=_EIGHT)
        t_lab, n_t = ndimage.label(truth & valid, structure=_EIGHT)
        p_area = np.bincount(p_lab.ravel(), minlength=n_p + 1)
        p_area_valid = np.bincount(p_lab[valid], minlength=n_p + 1)
        keep = (p_area >= min_area_px) & (p_area_valid > 0)
        keep[0] = False
        dropped = int(np.count_nonzero(p_area[1:] < min_area_px))
        none = np.zeros(0, dtype=np.int64)
        if not keep.any() or n_t == 0:
            return cls(p_lab, p_area, keep, n_t, dropped, none, none)
        t_area = np.bincount(t_lab.ravel(), minlength=n_t + 1)
        both = valid & (p_lab > 0) & (t_lab > 0) & keep[p_lab]
        # sparse intersection table: one entry per (predicted, true) pair that overlaps
        pairs, inter = np.unique(p_lab[both].astype(np.int64) * (n_t + 1) + t_lab[both], return_counts=True)
        pi, ti = pairs // (n_t + 1), pairs % (n_t + 1)
        iou = inter / (p_area_valid[pi] + t_area[ti] - inter)
        cover = inter / t_area[ti]
        hit = (iou >= HIT_IOU) | (cover >= HIT_COVER)
        return cls(p_lab, p_area, keep, n_t, dropped, pi[hit], ti[hit])

    def counts(self, kept: np.ndarray) -> ObjectCounts:
        """The tallies when only the predicted labels ``kept`` (a subset of :attr:`keep`) count."""
        on = kept[self.hit_p]
        return ObjectCounts(
            predicted=int(np.count_nonzero(kept)),
            hits=int(np.unique(self.hit_p[on]).size),
            true=self.n_true,
            found=int(np.unique(self.hit_t[on]).size),
            dropped_small=self.dropped,
        )
