"""Run a change model on every labelled pair and score it per set and overall.

The model sees exactly what the detector gives it (:mod:`models.base`): both dates normalised by
:func:`training.data.normalise_pair`, the bands it requires plus the optional ones the data has, and
big images in windows of ``info.tile_size`` with ``info.margin_px`` of context on each side, which is
thrown away, so windows join without seams. Probabilities are thresholded at ``info.threshold``
(or an override) and scored with :mod:`training.metrics`.

By default the thresholded map is scored as it is. With ``as_detected`` it first goes through the raster steps
that ``soilwatch detect`` applies before it writes patches (:func:`detected_mask`): the morphological clean-up,
small holes filled, patches under the minimum area dropped - so the scores are those of the patches a bureau gets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.windows import Window
from scipy import ndimage

from detector.pipeline import DetectOptions
from detector.tiling import make_tiles
from detector.vectorize import clean_mask
from models.base import BAND_NAMES, ChangeModel
from training.data import ChangePair, DataIndex, read_pair
from training.errors import EvaluationError
from training.metrics import (
    HIT_COVER,
    HIT_IOU,
    OBJECT_RULE,
    ObjectCounts,
    PixelCounts,
    min_area_px,
    score_objects,
    score_pixels,
)

__all__ = [
    "EvalReport",
    "PairResult",
    "SetResult",
    "check_withhold",
    "detected_mask",
    "evaluate",
    "model_bands",
    "predict_pair",
    "score_pair",
    "scoring_rule",
    "tile_windows",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairResult:
    """Scores of one pair; ``min_area_px`` is the object-size cut used for it."""

    set_name: str
    name: str
    pixel: PixelCounts
    objects: ObjectCounts
    min_area_px: int


@dataclass
class SetResult:
    """Pooled scores of one set: pixel counts and object tallies added over its pairs."""

    resolution_m: list[float] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)

    @property
    def pixel(self) -> PixelCounts:
        return sum((p.pixel for p in self.pairs), PixelCounts())

    @property
    def objects(self) -> ObjectCounts:
        return sum((p.objects for p in self.pairs), ObjectCounts())

    def as_dict(self) -> dict[str, Any]:
        res = sorted(set(round(r, 3) for r in self.resolution_m))
        return {
            "pixel": self.pixel.as_dict(),
            "object": self.objects.as_dict(),
            "pairs": len(self.pairs),
            "resolution_m": res[0] if len(res) == 1 else res,
            "per_pair": {
                p.name: {"pixel": p.pixel.as_dict(), "object": p.objects.as_dict(), "min_area_px": p.min_area_px}
                for p in self.pairs
            },
        }


@dataclass
class EvalReport:
    """Everything :func:`evaluate` measured; :meth:`as_dict` is the JSON report."""

    model: dict[str, Any]
    data: str
    rule: dict[str, Any]
    sets: dict[str, SetResult]

    @property
    def overall_pixel(self) -> PixelCounts:
        return sum((s.pixel for s in self.sets.values()), PixelCounts())

    @property
    def overall_objects(self) -> ObjectCounts:
        return sum((s.objects for s in self.sets.values()), ObjectCounts())

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "rule": self.rule,
            "sets": {k: v.as_dict() for k, v in self.sets.items()},
            "overall": {
                "pixel": self.overall_pixel.as_dict(),
                "object": self.overall_objects.as_dict(),
                "pairs": sum(len(s.pairs) for s in self.sets.values()),
            },
        }


def check_withhold(model: ChangeModel, withhold: Sequence[str]) -> tuple[str, ...]:
    """``withhold`` as a tuple, after checking that each is a band name the model does not require; else
    :class:`EvaluationError` naming the bands that may be withheld."""
    unknown = [b for b in withhold if b not in BAND_NAMES]
    if unknown:
        raise EvaluationError(f"unknown band(s) {unknown!r} to withhold; bands are named {list(BAND_NAMES)!r}")
    required = [b for b in withhold if b in model.info.required_bands]
    if required:
        raise EvaluationError(f"model {model.info.label!r} requires {required!r}: only its optional bands "
                              f"{list(model.info.optional_bands)!r} can be withheld")
    return tuple(withhold)


def model_bands(model: ChangeModel, available: Sequence[str]) -> tuple[str, ...]:
    """Bands to hand ``model``: its required bands plus the optional ones in ``available``, in
    :data:`models.base.BAND_NAMES` order (RGB first). Raises :class:`EvaluationError` if a required one is missing."""
    info = model.info
    missing = [b for b in info.required_bands if b not in available]
    if missing:
        raise EvaluationError(
            f"model {info.label!r} needs bands {missing!r} that the data lacks (has {tuple(available)!r}); "
            "evaluate it on sets that have them (--sets)"
        )
    wanted = set(info.required_bands) | {b for b in info.optional_bands if b in available}
    return tuple(b for b in BAND_NAMES if b in wanted)


_Window = tuple[slice, slice]


def tile_windows(h: int, w: int, tile_size: int, margin_px: int) -> Iterator[tuple[_Window, _Window]]:
    """Windows covering an ``h`` x ``w`` image: yields ``(core, outer)`` pairs of ``(row, col)`` slices.

    Cores tile the image without overlap, each at most ``tile_size - 2 * margin_px`` pixels a side;
    the outer window adds up to ``margin_px`` of context on each side, clipped at the image edge. An
    image no bigger than ``tile_size`` both ways is one window (core = outer = whole image).
    """
    if tile_size <= 2 * margin_px or margin_px < 0:
        raise ValueError(f"tile_size {tile_size!r} must exceed twice margin_px {margin_px!r}")
    if h <= tile_size and w <= tile_size:
        whole = (slice(0, h), slice(0, w))
        yield whole, whole
        return
    for tile in make_tiles(Window(0, 0, w, h), tile_size=tile_size, margin=margin_px):
        core, read = tile.core, tile.read
        yield (
            (slice(core.row_off, core.row_off + core.height), slice(core.col_off, core.col_off + core.width)),
            (slice(read.row_off, read.row_off + read.height), slice(read.col_off, read.col_off + read.width)),
        )


def predict_pair(
    model: ChangeModel, before: np.ndarray | None, after: np.ndarray, bands: Sequence[str], *,
    withhold: Sequence[str] = ()
) -> np.ndarray:
    """Change probability float32 ``(h, w)`` for a normalised pair (float32 ``(bands, h, w)`` in [0, 1],
    bands named by ``bands``), run in windows of ``model.info.tile_size`` with ``margin_px`` context. Bands in
    ``withhold`` are not handed to the model (see :func:`check_withhold`). ``before=None``: one date, for a
    model with ``info.single_date`` (bare soil)."""
    use = model_bands(model, [b for b in bands if b not in withhold])
    idx = [list(bands).index(b) for b in use]
    x = np.stack([after[idx]] if before is None else [before[idx], after[idx]])  # (dates, c, h, w)
    h, w = x.shape[-2:]
    out = np.zeros((h, w), dtype=np.float32)
    for core, outer in tile_windows(h, w, model.info.tile_size, model.info.margin_px):
        window = np.ascontiguousarray(x[:, :, outer[0], outer[1]])[None]
        prob = np.asarray(model.predict(window, use))
        if prob.shape != (1, *window.shape[-2:]):
            raise EvaluationError(
                f"model {model.info.label!r} returned shape {prob.shape!r} for input {window.shape!r}; "
                "predict must return (batch, h, w)"
            )
        rs = slice(core[0].start - outer[0].start, core[0].stop - outer[0].start)
        cs = slice(core[1].start - outer[1].start, core[1].stop - outer[1].start)
        out[core] = prob[0, rs, cs]
    if not np.isfinite(out).all():
        raise EvaluationError(f"model {model.info.label!r} returned NaN or infinite probabilities")
    return out


# soilwatch detect's defaults: opening then closing by this many pixels; image edges it leaves out
DETECT_OPEN_PX = DetectOptions.open_px
DETECT_CLOSE_PX = DetectOptions.close_px
DETECT_BORDER_PX = DetectOptions.border_px
_FOUR = ndimage.generate_binary_structure(2, 1)


def detected_mask(prob: np.ndarray, threshold: float, min_px: int) -> np.ndarray:
    """The change raster behind the patches ``soilwatch detect`` writes for ``prob`` of a whole image: the
    image's outer ``border_px`` left out, thresholded, opened and closed (:func:`detector.vectorize.clean_mask`),
    holes under ``min_px`` pixels filled and patches (4-connected, as the detector's polygons) under ``min_px``
    pixels dropped. Only the polygon simplification (at most half a pixel) and the sliver filter are not
    reproduced."""
    b = DETECT_BORDER_PX
    inside = np.zeros(prob.shape, dtype=bool)
    inside[b : prob.shape[0] - b, b : prob.shape[1] - b] = True
    mask = clean_mask(prob >= threshold, inside, open_px=DETECT_OPEN_PX, close_px=DETECT_CLOSE_PX)
    # a hole is a background component (8-connected: the complement of 4-connected patches) off the border
    holes, n_holes = ndimage.label(~mask, structure=np.ones((3, 3), dtype=bool))
    if n_holes:
        area = np.bincount(holes.ravel(), minlength=n_holes + 1)
        edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        fill = area < min_px
        fill[0] = False
        fill[edge] = False
        mask |= fill[holes]
    patches, n = ndimage.label(mask, structure=_FOUR)
    if n:
        keep = np.bincount(patches.ravel(), minlength=n + 1) >= min_px
        keep[0] = False
        mask = keep[patches]
    return mask


def score_pair(
    pair: ChangePair, prob: np.ndarray, threshold: float, min_area_m2: float, *, as_detected: bool = False
) -> PairResult:
    """Threshold ``prob`` (``>= threshold`` is change) and score it against the pair's label; with
    ``as_detected`` the map first goes through the detector's raster steps (:func:`detected_mask`)."""
    cut = min_area_px(min_area_m2, pair.resolution_m)
    pred = detected_mask(prob, threshold, cut) if as_detected else prob >= threshold
    return PairResult(
        set_name=pair.set_name,
        name=pair.name,
        pixel=score_pixels(pred, pair.label, pair.valid),
        objects=score_objects(pred, pair.label, pair.valid, min_area_px=cut),
        min_area_px=cut,
    )


def _describe_model(model: ChangeModel, spec: str) -> dict[str, Any]:
    info = model.info
    return {
        "spec": spec,
        "name": info.name,
        "version": info.version,
        "label": info.label,
        "tile_size": info.tile_size,
        "margin_px": info.margin_px,
        "extra": info.extra,
    }


def evaluate(
    model: ChangeModel,
    index: DataIndex,
    *,
    spec: str | None = None,
    threshold: float | None = None,
    min_area_m2: float = 200.0,
    on_pair: Callable[[PairResult], None] | None = None,
    withhold: Sequence[str] = (),
    as_detected: bool = False,
) -> EvalReport:
    """Run ``model`` on every pair of ``index`` and score it.

    Args:
        model: any :class:`models.base.ChangeModel`.
        index: the pairs to run on (:func:`training.data.index_data`).
        spec: how the model was named (registry name or weights path), recorded in the report.
        threshold: probability at or above which a pixel is change; None = ``model.info.threshold``.
        min_area_m2: predicted objects smaller than this (m²) are dropped before object scoring.
        on_pair: called after each pair (progress reporting).
        withhold: optional bands (e.g. ``("nir",)``) kept from the model although the data has them, to measure
            what they add. A band the model requires, or an unknown name, raises :class:`EvaluationError`.
        as_detected: score the map after the detector's own clean-up and area filter (:func:`detected_mask`)
            instead of the bare thresholded map.
    """
    withhold = check_withhold(model, withhold)
    thr = model.info.threshold if threshold is None else float(threshold)
    if not 0.0 < thr < 1.0 or math.isnan(thr):
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    min_area_px(min_area_m2, 1.0)  # validates min_area_m2 before any work
    sets: dict[str, SetResult] = {}
    for set_name, files in index.sets.items():
        result = sets.setdefault(set_name, SetResult())
        for f in files:
            pair = read_pair(f)
            prob = predict_pair(model, pair.before, pair.after, pair.bands, withhold=withhold)
            pr = score_pair(pair, prob, thr, min_area_m2, as_detected=as_detected)
            result.pairs.append(pr)
            result.resolution_m.append(pair.resolution_m)
            log.info("%s/%s: pixel F1 %.3f", set_name, f.name, pr.pixel.f1)
            if on_pair is not None:
                on_pair(pr)
    return EvalReport(
        model=_describe_model(model, spec or model.info.label), data=str(index.root),
        rule=scoring_rule(thr, min_area_m2, withhold, as_detected=as_detected), sets=sets
    )


def scoring_rule(
    threshold: float, min_area_m2: float, withhold: Sequence[str] = (), *, as_detected: bool = False
) -> dict[str, Any]:
    """How a report's scores were counted (its ``rule``)."""
    scored = (
        f"the map as soilwatch detect writes it (the image's outer {DETECT_BORDER_PX} px left out, thresholded, "
        f"opened by {DETECT_OPEN_PX} px and closed by {DETECT_CLOSE_PX} px, holes and 4-connected patches under the "
        "minimum area filled/dropped)"
        if as_detected
        else "the thresholded map before any area filter"
    )
    return {
        "threshold": threshold,
        "min_area_m2": min_area_m2,
        "connectivity": 8,
        "hit_iou": HIT_IOU,
        "hit_cover": HIT_COVER,
        "as_detected": as_detected,
        "pixels": f"valid pixels only; pixel scores of {scored}; pooled by counts",
        "objects": OBJECT_RULE,
        "withheld_bands": list(withhold),
    }
