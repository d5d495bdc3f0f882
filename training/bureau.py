"""Bureau fine-tuning: two GeoTIFFs plus the 图斑 polygons a bureau mapped by hand → a fine-tuned ChangeNet.

The realistic case of a water bureau (issue #4): it has a before and an after image of its own area
and the disturbance patches (扰动图斑) it digitised from them in earlier years, as a Shapefile (GBK or
UTF-8 attributes), GeoPackage or GeoJSON in whatever CRS. :func:`load_scene` brings them together
exactly as the detector would see them at inference:

- both images are checked and read through :mod:`detector.io` (:func:`detector.pipeline.plan_detection`
  and :class:`detector.io.PairSource`): the after image is warped onto the before image's grid
  (``WarpedVRT``) over their overlap, the bands the model needs are picked, and the radiometric scale
  (:mod:`detector.radiometry`) is fitted on the whole overlap, as ``soilwatch detect`` does;
- the label polygons are reprojected to the before image's CRS, turned into pixel coordinates of its
  grid once, and rasterised on the fly for each window (``rasterio.features.rasterize``: a pixel is
  change when its centre lies inside a polygon);
- an optional holdout region (eastern 30 %, a bounding box or a polygon file) is never touched by a
  training window and is where the init and the fine-tuned model are scored, with the pixel and
  object rules of ``soilwatch eval`` (:mod:`training.metrics`).

Training samples are random (seeded) windows in the trainer's form ``{"image": (2, c, h, w),
"mask": (1, h, w), "valid": (1, h, w)}``; half of them are centred near a labelled polygon. The
polygons are taken as the *complete* map of disturbance inside the images: anything not in them is
taught as "no change", so the label file must cover the whole overlap (or give a holdout for the rest).

**Self-training** (``FinetuneConfig.self_train``, ``soilwatch train --self-train``) needs no 图斑: the init
model predicts the whole overlap once (:meth:`BureauScene.make_pseudo_labels`), its confident pixels
become the labels (change where p >= ``pseudo_hi``, no change where p <= ``pseudo_lo``, the rest is not
trained on) and the same loop adapts the network to the new imagery. No labels are used for training, so
windows come from the whole overlap, holdout included; label polygons, when given, only score the holdout.
It can only sharpen what the init model already sees: a kind of site it misses everywhere stays missed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from training import augment
from training.errors import BureauDataError, TrainingError

__all__ = [
    "INIT_SHIPPED",
    "FinetuneConfig",
    "FinetuneResult",
    "Holdout",
    "BureauScene",
    "finetune",
    "load_init",
    "load_scene",
    "parse_holdout",
    "read_label_polygons",
    "rasterise",
]

log = logging.getLogger(__name__)

#: ``--init shipped``: the weights that come with soilwatch (``models/weights/changenet.pt``).
INIT_SHIPPED = "shipped"
#: A scene whose overlap has at most this many pixels is read (and normalised) once and kept in memory.
_CACHE_PX = 4_000_000
#: The holdout is scored in one piece; refuse holdouts larger than this (pixels).
_MAX_HOLDOUT_PX = 64_000_000
#: Self-training keeps the init model's probability of every overlap pixel in memory (1 byte each).
_MAX_PSEUDO_PX = 256_000_000
#: Pseudo-labels are predicted in blocks of this side (plus the model's margin) to bound memory.
_PSEUDO_BLOCK = 1024
#: At most this many confident-change pixels are kept as centres for focused training windows.
_MAX_FOCUS_POINTS = 200_000
_SIDES = ("east", "west", "north", "south")
_HOLDOUT_FRACTION = re.compile(r"^(east|west|north|south):(0?\.\d+|\d+(?:\.\d+)?%)$", re.IGNORECASE)


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tune. ``crop``: training window side in pixels (multiple of 16); ``lr``: AdamW
    peak learning rate; ``focus_change``: share of windows centred near a labelled polygon;
    ``freeze_blocks``: encoder stem + first blocks kept frozen, as in the original training;
    ``freeze_bn``: every BatchNorm keeps the init model's running statistics (its scale and shift still
    learn): one scene's windows, half of them centred on 图斑, would otherwise replace statistics learnt
    on many scenes within a few dozen steps;
    ``min_area_m2``: predicted objects below this are dropped when scoring objects (as ``soilwatch eval``);
    ``self_train``: learn from the init model's own confident predictions instead of label polygons
    (p >= ``pseudo_hi`` is change, p <= ``pseudo_lo`` no change, pixels in between are ignored)."""

    steps: int = 100
    batch_size: int = 8
    crop: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 20
    dice_weight: float = 1.0
    focus_change: float = 0.5
    jitter: float = 0.05
    shift_px: int = 1
    shift_prob: float = 0.3
    freeze_blocks: int = 3
    freeze_bn: bool = True
    seed: int = 0
    threads: int = 2
    log_every: int = 25
    min_area_m2: float = 200.0
    self_train: bool = False
    pseudo_hi: float = 0.7
    pseudo_lo: float = 0.3

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise TrainingError(f"steps and batch size must be >= 1, got {self.steps!r} and {self.batch_size!r}")
        if self.crop < 16 or self.crop % 16:
            raise TrainingError(f"the training window (crop) must be a multiple of 16 pixels, got {self.crop!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TrainingError(f"the learning rate must be a positive number, got {self.lr!r}")
        if not 0 <= self.focus_change <= 1:
            raise TrainingError(f"focus_change must be in [0, 1], got {self.focus_change!r}")
        if not 0 < self.pseudo_lo < self.pseudo_hi < 1:
            raise TrainingError(
                f"pseudo-label cut-offs must satisfy 0 < lo < hi < 1, got lo={self.pseudo_lo!r} hi={self.pseudo_hi!r}"
            )


# -- labels ---------------------------------------------------------------------------------------
def _file_hint(path: Path) -> str:
    if path.suffix.lower() == ".shp":
        return "a Shapefile needs its .shx, .dbf and .prj next to it (and a .cpg for the encoding)"
    return "give a Shapefile (.shp with its .shx, .dbf and .prj), a GeoPackage or a GeoJSON file"


def read_label_polygons(path: str | Path, crs: Any, *, layer: str | None = None, what: str = "label file") -> Any:
    """The polygons of a vector file, reprojected to ``crs``, as a ``GeoSeries`` of valid (multi)polygons.

    Only geometries are read, so the attribute encoding (GBK or UTF-8, ``.cpg`` or not) never matters.
    Points and lines are dropped with a warning. Raises :class:`BureauDataError` naming the file and the
    fix for a missing or unreadable file, several layers without ``layer``, no CRS (``.prj`` missing),
    a CRS that cannot be reprojected to ``crs``, and no polygon at all.
    """
    import geopandas as gpd
    import pyogrio
    import shapely

    path = Path(path)
    if not path.is_file():
        raise BureauDataError(f"{what} {str(path)!r} does not exist; {_file_hint(path)}")
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError and others for files GDAL cannot open
        raise BureauDataError(
            f"cannot read {what} {str(path)!r} as vector data ({_short(exc)}); {_file_hint(path)}"
        ) from exc
    if layer is None and len(layers) > 1:
        raise BureauDataError(f"{what} {str(path)!r} has {len(layers)} layers {layers!r}; name one with --labels-layer")
    if layer is not None and layer not in layers:
        raise BureauDataError(f"{what} {str(path)!r} has no layer {layer!r}; its layers are {layers!r}")
    try:
        try:
            frame = gpd.read_file(path, layer=layer, engine="pyogrio", columns=[])
        except UnicodeDecodeError:
            # field names cut at 10 bytes inside a UTF-8 character (DBF limit): only geometries are used,
            # so read the names as ISO-8859-1, which decodes any byte
            frame = gpd.read_file(path, layer=layer, engine="pyogrio", columns=[], encoding="ISO-8859-1")
    except Exception as exc:
        raise BureauDataError(f"cannot read {what} {str(path)!r} ({_short(exc)}); {_file_hint(path)}") from exc
    if len(frame) == 0:
        raise BureauDataError(
            f"{what} {str(path)!r} holds no features; export the 图斑 polygons into it (or pick the right layer)"
        )
    if frame.crs is None:
        raise BureauDataError(
            f"{what} {str(path)!r} has no coordinate reference system (no .prj); copy the .prj that came with it, "
            "or set one: ogr2ogr -a_srs EPSG:4490 fixed.shp " + path.name
        )
    geoms = frame.geometry[~frame.geometry.is_empty & frame.geometry.notna()]
    try:
        geoms = geoms.to_crs(crs)
    except Exception as exc:  # pyproj raises CRSError / ProjError
        raise BureauDataError(
            f"cannot reproject {what} {str(path)!r} from {frame.crs.to_string()!r} to the image CRS "
            f"{str(crs)!r} ({_short(exc)}); check its .prj or re-export it in the image's CRS"
        ) from exc
    bounds = geoms.total_bounds if len(geoms) else np.array([np.nan] * 4)
    if not np.all(np.isfinite(bounds)):
        raise BureauDataError(
            f"{what} {str(path)!r} cannot be reprojected from {frame.crs.to_string()!r} to the image CRS "
            f"{str(crs)!r} (coordinates fall outside that CRS); check that its .prj matches its coordinates"
        )
    geoms = geoms.make_valid()
    def polygonal(g: Any) -> Any:  # make_valid may return collections with lines or points in them
        return shapely.union_all([p for p in getattr(g, "geoms", [g]) if p.geom_type in ("Polygon", "MultiPolygon")])

    polys = geoms.apply(polygonal)
    polys = polys[~polys.is_empty]
    dropped = len(frame) - len(polys)
    if dropped:
        log.warning("%s %s: %d feature(s) without a polygon (points, lines or empty) were ignored", what, path, dropped)
    if len(polys) == 0:
        raise BureauDataError(
            f"{what} {str(path)!r} holds no polygons ({len(frame)} features, none polygonal); 图斑 must be polygons"
        )
    return gpd.GeoSeries(polys.values, crs=crs)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _to_pixels(geoms: Any, transform: Affine) -> list[Any]:
    """Shapely geometries in map coordinates → the same in (col, row) pixel coordinates of ``transform``."""
    from shapely import affinity

    inv = ~transform
    params = [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f]
    return [affinity.affine_transform(g, params) for g in geoms]


def rasterise(polygons_px: list[Any], window: Window, *, tree: Any = None) -> np.ndarray:
    """uint8 ``(h, w)`` mask of ``window``: 1 where a pixel centre lies inside one of ``polygons_px``
    (polygons in pixel coordinates of the grid the window is on); ``tree``: an STRtree of them, to skip the rest."""
    from rasterio.features import rasterize
    from shapely.geometry import box

    h, w = int(window.height), int(window.width)
    c0, r0 = float(window.col_off), float(window.row_off)
    if tree is not None:
        idx = tree.query(box(c0, r0, c0 + w, r0 + h))
        shapes = [polygons_px[i] for i in sorted(int(i) for i in idx)]
    else:
        shapes = list(polygons_px)
    if not shapes:
        return np.zeros((h, w), np.uint8)
    return rasterize(
        ((g, 1) for g in shapes), out_shape=(h, w), transform=Affine.translation(c0, r0), fill=0, dtype="uint8"
    )


# -- holdout --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Holdout:
    """A region kept out of training and used for scoring. ``spec``: as given; ``region_px``: a shapely
    polygon in pixel coordinates of the before image's grid (cut to the overlap)."""

    spec: str
    region_px: Any

    def describe(self) -> str:
        b = self.region_px.bounds
        return f"{self.spec} (cols {b[0]:.0f}-{b[2]:.0f}, rows {b[1]:.0f}-{b[3]:.0f}, {self.region_px.area:,.0f} px)"


def parse_holdout(spec: str, *, area: Window, transform: Affine, crs: Any) -> Holdout:
    """Turn ``--holdout`` into a :class:`Holdout` on the before image's grid.

    ``spec`` is one of: ``east:0.3`` (or ``west``, ``north``, ``south``; a fraction or ``30%`` of the overlap,
    east = the right-hand columns of a north-up image); ``minx,miny,maxx,maxy`` in the before image's CRS,
    optionally followed by ``@EPSG:4326`` (or another CRS) for the CRS of the numbers; or a polygon file
    (Shapefile, GeoPackage, GeoJSON, any CRS). Raises :class:`BureauDataError` when the region misses the
    overlap or leaves nothing to train on.
    """
    import geopandas as gpd
    from shapely.geometry import box

    area_px = box(area.col_off, area.row_off, area.col_off + area.width, area.row_off + area.height)
    text = spec.strip()
    m = _HOLDOUT_FRACTION.match(text)
    if m:
        side, amount = m.group(1).lower(), m.group(2)
        frac = float(amount[:-1]) / 100 if amount.endswith("%") else float(amount)
        if not 0 < frac < 1:
            raise BureauDataError(f"--holdout {spec!r}: the fraction must be between 0 and 1 (e.g. east:0.3)")
        c0, r0 = float(area.col_off), float(area.row_off)
        w, h = float(area.width), float(area.height)
        cut_c, cut_r = round(w * frac), round(h * frac)
        region = {
            "east": box(c0 + w - cut_c, r0, c0 + w, r0 + h),
            "west": box(c0, r0, c0 + cut_c, r0 + h),
            "north": box(c0, r0, c0 + w, r0 + cut_r),
            "south": box(c0, r0 + h - cut_r, c0 + w, r0 + h),
        }[side]
    elif Path(text).suffix.lower() in (".shp", ".gpkg", ".geojson", ".json") or Path(text).is_file():
        geoms = read_label_polygons(text, crs, what="holdout file")
        from shapely import union_all

        region = union_all(_to_pixels(geoms, transform))
    else:
        numbers, _, in_crs = text.partition("@")
        try:
            values = [float(v) for v in numbers.split(",")]
        except ValueError:
            values = []
        if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
            raise BureauDataError(
                f"--holdout {spec!r} is not east:0.3 (west/north/south), minx,miny,maxx,maxy[@EPSG:xxxx] "
                "with min < max, nor an existing polygon file"
            )
        bb = gpd.GeoSeries([box(*values).segmentize(max(values[2] - values[0], values[3] - values[1]) / 32)],
                           crs=in_crs.strip() or crs)
        try:
            bb = bb.to_crs(crs)
        except Exception as exc:
            raise BureauDataError(
                f"--holdout {spec!r}: cannot reproject the box to {str(crs)!r} ({_short(exc)}); check the @CRS"
            ) from exc
        region = _to_pixels(bb, transform)[0]
    region = region.intersection(area_px)
    if region.is_empty or region.area < 1:
        raise BureauDataError(
            f"--holdout {spec!r} does not overlap the images' common area; give a region inside it "
            "(coordinates in the before image's CRS unless @EPSG:xxxx is added)"
        )
    if area_px.difference(region).area < 1:
        raise BureauDataError(f"--holdout {spec!r} covers the whole common area, leaving nothing to train on")
    return Holdout(spec=text, region_px=region)


# -- the scene ------------------------------------------------------------------------------------
def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_record(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    return {"path": str(p), "name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)}


@dataclass
class BureauScene:
    """Two images on the before grid, their 图斑 labels and a holdout, ready to sample (use as a context manager).

    ``plan``: the detector's :class:`detector.pipeline.DetectionPlan` (bands, overlap ``area``, normaliser);
    ``bands``: the bands handed to the model, in its order; ``labels_px``: label polygons in pixel
    coordinates of the before grid (empty when self-training without labels); ``holdout``: the scored
    region, or None. After :meth:`make_pseudo_labels`, training targets come from the init model's
    probabilities instead of the polygons, and windows may fall in the holdout (its labels are not used).
    """

    plan: Any
    bands: tuple[str, ...]
    labels_px: list[Any]
    holdout: Holdout | None
    files: dict[str, Any] = field(default_factory=dict)
    _tree: Any = field(default=None, repr=False)
    _src: Any = field(default=None, repr=False)
    _cache: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _band_idx: list[int] = field(default_factory=list, repr=False)
    #: init model's change probability over ``area`` as uint8 (p * 255), set by :meth:`make_pseudo_labels`
    _pseudo: np.ndarray | None = field(default=None, repr=False)
    _pseudo_cut: tuple[int, int] = (0, 0)
    _focus_px: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from shapely import STRtree

        self._tree = STRtree(self.labels_px)
        names = list(self.plan.after.bands.names)
        self._band_idx = [names.index(b) for b in self.bands]

    @property
    def area(self) -> Window:
        return self.plan.area

    @property
    def resolution_m(self) -> float:
        return float(self.plan.resolution_m)

    def __enter__(self) -> BureauScene:
        from detector.io import PairSource

        self._src = PairSource(self.plan.before, self.plan.after).__enter__()
        if self.area.width * self.area.height <= _CACHE_PX:
            self._cache = self._read_raw(self.area)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._src is not None:
            self._src.__exit__(exc_type, exc, tb)
            self._src = None
        self._cache = None

    def _read_raw(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if self._src is None:
            raise RuntimeError("BureauScene is not open; use it as a context manager")
        before, after, ok = self._src.read(window)
        b01, a01 = self.plan.normaliser.apply(before, after)
        if not ok.all():  # as the detector: where a date has no data, the model sees the same pixels twice
            a01 = np.where(ok[None], a01, b01)
        img = np.stack([b01[self._band_idx], a01[self._band_idx]]).astype(np.float32, copy=False)
        return img, ok

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Normalised pixels of ``window`` (absolute on the before grid, inside :attr:`area`):
        ``(image float32 (2, c, h, w) in [0, 1], valid bool (h, w))``."""
        if self._cache is not None:
            r = int(window.row_off - self.area.row_off)
            c = int(window.col_off - self.area.col_off)
            rs, cs = slice(r, r + int(window.height)), slice(c, c + int(window.width))
            return self._cache[0][:, :, rs, cs], self._cache[1][rs, cs]
        return self._read_raw(window)

    def label(self, window: Window) -> np.ndarray:
        """uint8 ``(h, w)`` label of ``window``, rasterised from the polygons (1 = disturbance)."""
        return rasterise(self.labels_px, window, tree=self._tree)

    @property
    def self_training(self) -> bool:
        return self._pseudo is not None

    def make_pseudo_labels(self, model: Any, *, hi: float, lo: float) -> dict[str, Any]:
        """Predict the whole overlap with ``model`` (the init, before any training step) in blocks of
        ``_PSEUDO_BLOCK`` px with its margin, and use the result as the training target from now on:
        change where p >= ``hi``, no change where p <= ``lo``, ignored in between. Returns the shares of
        the overlap in each class (pixels without data in either date count as ignored)."""
        from training.evaluate import predict_pair, tile_windows

        a = self.area
        h, w = int(a.height), int(a.width)
        if h * w > _MAX_PSEUDO_PX:
            raise BureauDataError(
                f"the images' common area is {w} x {h} px, more than the {_MAX_PSEUDO_PX:,} px self-training keeps "
                "in memory; clip both images to the area to adapt to (e.g. gdal_translate -projwin) and run again"
            )
        prob = np.zeros((h, w), np.uint8)
        nodata = 0
        m = int(getattr(model.info, "margin_px", 0))
        for core, outer in tile_windows(h, w, _PSEUDO_BLOCK + 2 * m, m):
            (r0, r1), (c0, c1) = (outer[0].start, outer[0].stop), (outer[1].start, outer[1].stop)
            img, ok = self.read(Window(a.col_off + c0, a.row_off + r0, c1 - c0, r1 - r0))
            p = predict_pair(model, img[0], img[1], self.bands)
            p = np.where(ok, p, 0.5)  # no data in a date: neither change nor no change
            inner = (slice(core[0].start - r0, core[0].stop - r0), slice(core[1].start - c0, core[1].stop - c0))
            prob[core] = np.rint(p[inner] * 255).astype(np.uint8)
            nodata += int((~ok[inner]).sum())
        cut_hi, cut_lo = math.ceil(hi * 255), math.floor(lo * 255)
        self._pseudo, self._pseudo_cut = prob, (cut_hi, cut_lo)
        rows, cols = np.nonzero(prob >= cut_hi)
        change = len(rows)
        if change > _MAX_FOCUS_POINTS:
            keep = np.random.default_rng(0).choice(change, _MAX_FOCUS_POINTS, replace=False)
            rows, cols = rows[keep], cols[keep]
        self._focus_px = np.stack([rows + a.row_off, cols + a.col_off], axis=1).astype(np.float64)
        n = float(h * w)
        stable = int((prob <= cut_lo).sum())
        return {"hi": hi, "lo": lo, "change_share": round(change / n, 5), "no_change_share": round(stable / n, 5),
                "ignored_share": round(1 - (change + stable) / n, 5), "no_data_px": nodata}

    def target(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Training target of ``window``: ``(mask uint8 (h, w), trusted bool (h, w))`` — the rasterised
        polygons (all trusted), or after :meth:`make_pseudo_labels` the confident pseudo-labels."""
        if self._pseudo is None:
            lab = self.label(window)
            return lab, np.ones(lab.shape, bool)
        r = int(window.row_off - self.area.row_off)
        c = int(window.col_off - self.area.col_off)
        p = self._pseudo[r:r + int(window.height), c:c + int(window.width)]
        hi, lo = self._pseudo_cut
        return (p >= hi).astype(np.uint8), (p >= hi) | (p <= lo)

    def holdout_mask(self, window: Window) -> np.ndarray:
        """bool ``(h, w)``: True inside the holdout (all False without one)."""
        if self.holdout is None:
            return np.zeros((int(window.height), int(window.width)), bool)
        return rasterise([self.holdout.region_px], window).astype(bool)

    # -- sampling -----------------------------------------------------------------------------
    def _window_at(self, row: float, col: float, crop: int) -> Window:
        a = self.area
        r0 = int(np.clip(round(row - crop / 2), a.row_off, a.row_off + a.height - crop))
        c0 = int(np.clip(round(col - crop / 2), a.col_off, a.col_off + a.width - crop))
        return Window(c0, r0, crop, crop)

    def _in_training_part(self, window: Window) -> bool:
        if self.holdout is None or self.self_training:  # pseudo-labels never use the holdout's labels
            return True
        from shapely.geometry import box

        w = box(window.col_off, window.row_off, window.col_off + window.width, window.row_off + window.height)
        return w.intersection(self.holdout.region_px).area == 0

    def _random_point_in(self, poly: Any, rng: np.random.Generator) -> tuple[float, float]:
        from shapely.geometry import Point

        minx, miny, maxx, maxy = poly.bounds
        for _ in range(20):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if poly.contains(Point(x, y)):
                return y, x
        p = poly.representative_point()
        return p.y, p.x

    def sample_window(self, rng: np.random.Generator, crop: int, focus_change: float) -> Window:
        """A random ``crop`` x ``crop`` window inside the overlap and outside the holdout (anywhere when
        self-training); with probability ``focus_change`` centred (± crop/4) near a random point of a random
        label polygon (self-training: a random confidently changed pixel)."""
        a = self.area
        if crop > a.width or crop > a.height:
            raise BureauDataError(
                f"the images' common area is {int(a.width)} x {int(a.height)} px, smaller than the training window "
                f"of {crop} px; give a smaller --crop (a multiple of 16)"
            )
        points = self._focus_px  # set with the pseudo-labels: None when training on polygons
        has_focus = len(points) > 0 if points is not None else bool(self.labels_px)
        focus = has_focus and rng.random() < focus_change
        for _ in range(200):
            if focus:
                if points is not None:
                    row, col = points[int(rng.integers(len(points)))]
                else:
                    poly = self.labels_px[int(rng.integers(len(self.labels_px)))]
                    row, col = self._random_point_in(poly, rng)
                row += rng.integers(-crop // 4, crop // 4 + 1)
                col += rng.integers(-crop // 4, crop // 4 + 1)
            else:
                row = rng.uniform(a.row_off, a.row_off + a.height)
                col = rng.uniform(a.col_off, a.col_off + a.width)
            win = self._window_at(row, col, crop)
            if self._in_training_part(win):
                return win
            focus = focus and rng.random() < 0.9  # labels may all lie in the holdout: fall back to uniform
        raise BureauDataError(
            f"no {crop} x {crop} px training window fits outside the holdout "
            f"{self.holdout.spec if self.holdout else ''!r}; "
            "give a smaller --holdout or a smaller --crop"
        )

    def sample(self, rng: np.random.Generator, cfg: FinetuneConfig) -> augment.Sample:
        """One augmented training sample (``image`` (2, c, crop, crop), ``mask``, ``valid``)."""
        win = self.sample_window(rng, cfg.crop, cfg.focus_change)
        img, ok = self.read(win)
        mask, trusted = self.target(win)
        s: augment.Sample = {"image": np.ascontiguousarray(img), "mask": mask[None], "valid": (ok & trusted)[None]}
        s = augment.flip_rot(s, rng)
        if cfg.jitter > 0:
            s = augment.jitter_dates(s, rng, strength=cfg.jitter)
        if cfg.shift_px > 0 and rng.random() < cfg.shift_prob:
            s = augment.shift_after(s, rng, max_px=cfg.shift_px)
        return s

    def batch(self, rng: np.random.Generator, cfg: FinetuneConfig) -> dict[str, np.ndarray]:
        samples = [self.sample(rng, cfg) for _ in range(cfg.batch_size)]
        return {k: np.stack([s[k] for s in samples]) for k in ("image", "mask", "valid")}

    # -- scoring ------------------------------------------------------------------------------
    def holdout_window(self) -> Window:
        if self.holdout is None:
            raise BureauDataError("no holdout was given; pass --holdout east:0.3 (or a box or polygon file)")
        minx, miny, maxx, maxy = self.holdout.region_px.bounds
        win = Window(math.floor(minx), math.floor(miny), math.ceil(maxx) - math.floor(minx),
                     math.ceil(maxy) - math.floor(miny))
        if win.width * win.height > _MAX_HOLDOUT_PX:
            raise BureauDataError(
                f"the holdout {self.holdout.spec!r} spans {int(win.width)} x {int(win.height)} px, more than "
                f"{_MAX_HOLDOUT_PX:,} px scored in one piece; give a smaller --holdout"
            )
        return win

    def score(self, model: Any, *, min_area_m2: float = 200.0) -> dict[str, Any]:
        """Pixel and object scores of ``model`` on the holdout, with the rules of ``soilwatch eval``
        (threshold ``model.info.threshold``, objects under ``min_area_m2`` dropped, 8-connectivity)."""
        from training.evaluate import predict_pair
        from training.metrics import min_area_px, score_objects, score_pixels

        win = self.holdout_window()
        img, ok = self.read(win)
        valid = ok & self.holdout_mask(win)
        truth = self.label(win).astype(bool) & valid
        prob = predict_pair(model, img[0], img[1], self.bands)
        pred = prob >= model.info.threshold
        cut = min_area_px(min_area_m2, self.resolution_m)
        px = score_pixels(pred, truth, valid)
        ob = score_objects(pred, truth, valid, min_area_px=cut)
        if ob.true == 0:
            obj_f1 = math.nan  # nothing to find: undefined, as recall
        elif ob.predicted == 0 or ob.hits + ob.found == 0:
            obj_f1 = 0.0
        else:
            obj_f1 = 2 * ob.precision * ob.recall / (ob.precision + ob.recall)
        obj = ob.as_dict()
        obj["f1"] = None if math.isnan(obj_f1) else obj_f1
        return {"pixel": px.as_dict(), "object": obj, "valid_px": int(valid.sum()), "min_area_px": cut,
                "threshold": model.info.threshold}


def load_scene(
    before: str | Path,
    after: str | Path,
    labels: str | Path | None,
    *,
    model: Any,
    holdout: str | None = None,
    bands_before: str | None = None,
    bands_after: str | None = None,
    labels_layer: str | None = None,
    max_resolution_m: float = 16.0,
) -> BureauScene:
    """Check and prepare a bureau scene for ``model`` (see the module docstring).

    ``labels`` may be None (self-training without 图斑); a holdout then cannot be scored and is refused.
    Raises the detector's own errors for unreadable images, missing CRS, no overlap or coarse pixels,
    and :class:`BureauDataError` for bands the model lacks and for label/holdout problems (each names
    the file and the fix).
    """
    from detector.errors import BandMappingError
    from detector.pipeline import DetectOptions, plan_detection
    from training.evaluate import model_bands

    opts = DetectOptions(model=model.info.label, bands_before=bands_before, bands_after=bands_after,
                         max_resolution_m=max_resolution_m)
    try:
        plan = plan_detection(before, after, options=opts, model=model)
    except BandMappingError as exc:
        raise BureauDataError(
            f"bands of {str(before)!r} / {str(after)!r} do not fit the init model {model.info.label!r} "
            f"(it needs {list(model.info.required_bands)!r}): {exc}; name them with --bands/--after-bands "
            "(e.g. red,green,blue=3,2,1) or start from a model made for these bands (--init)"
        ) from exc
    try:
        bands = model_bands(model, plan.after.bands.names)
    except TrainingError as exc:
        raise BureauDataError(f"{exc} ({str(before)!r}, {str(after)!r}); use --bands or another --init") from exc
    grid = plan.before.grid
    a = plan.area
    files = {"before": _file_record(before), "after": _file_record(after)}
    if labels is None:
        if holdout:
            raise BureauDataError(
                f"--holdout {holdout!r} is scored against 图斑 polygons, and no --labels were given; "
                "add the polygons mapped on these images, or drop --holdout"
            )
        return BureauScene(plan=plan, bands=bands, labels_px=[], holdout=None, files=files)
    polys = read_label_polygons(labels, grid.crs, layer=labels_layer)
    from shapely.geometry import box

    area_px = box(a.col_off, a.row_off, a.col_off + a.width, a.row_off + a.height)
    polys_px = [p.intersection(area_px) for p in _to_pixels(polys, grid.transform)]
    polys_px = [p for p in polys_px if not p.is_empty and p.area > 0]
    if not polys_px:
        from detector.align import bounds_of

        lb = polys.total_bounds
        ib = bounds_of(grid.transform @ Affine.translation(a.col_off, a.row_off), int(a.width), int(a.height))
        raise BureauDataError(
            f"no polygon of {str(labels)!r} overlaps the images: the labels cover "
            f"({lb[0]:.6g}, {lb[1]:.6g}, {lb[2]:.6g}, {lb[3]:.6g}) and the images' common area "
            f"({ib[0]:.6g}, {ib[1]:.6g}, {ib[2]:.6g}, {ib[3]:.6g}), both in {grid.crs.to_string()!r}; "
            "check that the label file's .prj matches its coordinates and that it belongs to these images"
        )
    hold = parse_holdout(holdout, area=a, transform=grid.transform, crs=grid.crs) if holdout else None
    files["labels"] = _file_record(labels)
    files["labels"].update(features=len(polys), polygons_in_images=len(polys_px), layer=labels_layer)
    return BureauScene(plan=plan, bands=bands, labels_px=polys_px, holdout=hold, files=files)


# -- init model and the loop ----------------------------------------------------------------------
def load_init(spec: str | Path) -> tuple[Any, dict[str, Any], Path]:
    """The network to start from: ``"shipped"`` (the weights that come with soilwatch, hash required) or
    a ChangeNet ``.pt`` file (hash checked against its sidecar when there is one). Returns (net, meta, path)."""
    from models.changenet import SHIPPED_WEIGHTS, load_weights

    if str(spec) == INIT_SHIPPED:
        net, meta = load_weights(SHIPPED_WEIGHTS, require_sidecar=True)
        return net, meta, SHIPPED_WEIGHTS
    path = Path(spec)
    if path.suffix.lower() != ".pt":
        raise BureauDataError(
            f"--init {str(spec)!r} is neither 'shipped' nor a ChangeNet weights file (.pt); the spectral "
            "baseline has nothing to fine-tune"
        )
    net, meta = load_weights(path)
    return net, meta, path


@dataclass
class FinetuneResult:
    weights: Path
    losses: list[float]
    seconds: float
    scores_init: dict[str, Any] | None
    scores_finetuned: dict[str, Any] | None
    meta: dict[str, Any]


_INIT_KEYS_DROPPED = ("file", "sha256", "format", "arch", "metrics", "config", "training_command", "seed", "data",
                      "train_steps", "train_seconds", "final_loss", "device", "date", "git_commit", "torch",
                      "init", "held_out", "finetune")


def finetune(
    before: str | Path,
    after: str | Path,
    labels: str | Path | None,
    out: str | Path,
    *,
    init: str | Path = INIT_SHIPPED,
    holdout: str | None = None,
    cfg: FinetuneConfig | None = None,
    bands_before: str | None = None,
    bands_after: str | None = None,
    labels_layer: str | None = None,
    command: str | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> FinetuneResult:
    """Fine-tune a ChangeNet on a bureau scene and write ``out`` (.pt) with its JSON sidecar.

    Scores the init model on the holdout first, trains ``cfg.steps`` steps on windows outside it (loss
    and optimiser as :mod:`training.train`: BCE + soft Dice on valid pixels, AdamW, warm-up then cosine),
    scores the result, and records in the sidecar: sha256, init (path, sha256, its command), command,
    seed, data files (path, size, sha256), holdout and both scores. The bands, normalisation, threshold
    and resolution range are kept from the init model, so ``soilwatch detect --model out.pt`` loads it.

    With ``cfg.self_train`` the targets are the init model's confident predictions on the whole overlap
    (see the module docstring); ``labels`` may then be None, and when given only score the holdout.
    """
    import torch

    from models.changenet import TorchChangeModel, file_sha256, save_weights
    from training.train import _device_label, _git_commit, _loss, _lr_factor

    cfg = cfg or FinetuneConfig()
    if labels is None and not cfg.self_train:
        raise BureauDataError("a fine-tune learns from 图斑 polygons: give --labels, or --self-train to learn "
                              "from the init model's own confident predictions")
    if cfg.self_train and labels is not None and not holdout:
        raise BureauDataError("with --self-train the --labels are only used to score a --holdout, and none was "
                              "given; add --holdout (e.g. east:0.3) or drop --labels")
    say = progress or log.info
    out = Path(out)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    net, init_meta, init_path = load_init(init)
    name = str(init_meta.get("name", "changenet"))

    def as_model(scales: tuple[float, ...] | None = None) -> TorchChangeModel:
        return TorchChangeModel(net, name=name, meta=init_meta, device=dev.type, num_threads=cfg.threads,
                                scales=scales)

    t0 = time.time()
    scene = load_scene(before, after, labels, model=as_model(), holdout=holdout, bands_before=bands_before,
                       bands_after=bands_after, labels_layer=labels_layer)
    a = scene.area
    say(f"scene: {int(a.width)} x {int(a.height)} px at {scene.resolution_m:.2f} m, bands {list(scene.bands)}, "
        f"{len(scene.labels_px)} label polygons; holdout: {scene.holdout.describe() if scene.holdout else 'none'}")
    pseudo = None
    with scene:
        scores_init = None
        if scene.holdout is not None:
            scores_init = scene.score(as_model(), min_area_m2=cfg.min_area_m2)
            say("init      on holdout: " + _fmt_scores(scores_init))
        else:
            say("no --holdout: nothing is measured; pass e.g. --holdout east:0.3 (with --labels) to see whether "
                "the fine-tune helps")
        if cfg.self_train:
            # one scale, as self-training was measured (MODEL_CARD.md "Self-training"): the half scale's larger
            # probabilities would make more pixels confident change, an untested recipe
            pseudo = scene.make_pseudo_labels(as_model((1.0,)), hi=cfg.pseudo_hi, lo=cfg.pseudo_lo)
            say(f"self-training: pseudo-labels from the init model: {pseudo['change_share']:.2%} change "
                f"(p >= {cfg.pseudo_hi:g}), {pseudo['no_change_share']:.2%} no change (p <= {cfg.pseudo_lo:g}), "
                f"{pseudo['ignored_share']:.2%} ignored; windows from the whole overlap")
            if pseudo["change_share"] + pseudo["no_change_share"] == 0:
                raise BureauDataError(
                    f"the init model is confident nowhere on these images (every p between {cfg.pseudo_lo:g} and "
                    f"{cfg.pseudo_hi:g}), so self-training has nothing to learn from; start from a model that works "
                    "on this kind of imagery (--init), or fine-tune on 图斑 (--labels)"
                )
            if pseudo["change_share"] == 0:
                say("warning: the init model is confident of no change anywhere; self-training will only teach "
                    "'no change' and can only remove detections")
        if cfg.freeze_blocks:
            net.freeze_encoder_blocks(cfg.freeze_blocks)
        net.to(dev).to(memory_format=torch.channels_last)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched_cfg = _SchedCfg(steps=cfg.steps, warmup=cfg.warmup)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, sched_cfg))  # type: ignore[arg-type]
        losses: list[float] = []
        net.train()
        bn_frozen = _freeze_bn_stats(net) if cfg.freeze_bn else 0
        if bn_frozen:
            log.info("%d BatchNorm layers keep the init model's statistics", bn_frozen)
        t_run = time.time()
        t_log = t_run
        for step in range(cfg.steps):
            b = scene.batch(rng, cfg)
            x = torch.from_numpy(b["image"]).to(dev)
            y = torch.from_numpy(b["mask"]).float().to(dev)
            v = torch.from_numpy(b["valid"]).to(dev)
            loss = _loss(net(x), y, v, cfg.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                rate = (time.time() - t_log) / (cfg.log_every if done % cfg.log_every == 0 else done % cfg.log_every)
                say(f"step {done}/{cfg.steps} loss {np.mean(losses[-cfg.log_every:]):.4f} "
                    f"lr {sched.get_last_lr()[0]:.2e} {rate:.2f} s/step")
                t_log = time.time()
        seconds = time.time() - t_run
        net.eval()
        scores_ft = None
        if scene.holdout is not None:
            scores_ft = scene.score(as_model(), min_area_m2=cfg.min_area_m2)
            say(("self-trained" if cfg.self_train else "fine-tuned") + " on holdout: " + _fmt_scores(scores_ft))
    init_version = str(init_meta.get("version", "0"))
    meta = {k: v for k, v in init_meta.items() if k not in _INIT_KEYS_DROPPED}
    meta.update(
        name=name,
        version=f"{init_version}+{'st' if cfg.self_train else 'ft'}.{_dt.date.today().strftime('%Y%m%d')}",
        training_command=command,
        seed=cfg.seed,
        init={"spec": str(init), "path": str(init_path), "sha256": file_sha256(init_path),
              "version": init_version, "training_command": init_meta.get("training_command")},
        data={"kind": "bureau-self-train" if cfg.self_train else "bureau", **scene.files, "pseudo_labels": pseudo,
              "area_px": [int(a.col_off), int(a.row_off), int(a.width), int(a.height)],
              "crs": scene.plan.before.grid.crs.to_string(), "resolution_m": round(scene.resolution_m, 4),
              "normaliser": {"scale_to_one": float(scene.plan.normaliser.scale_to_one),
                             "gain": [float(g) for g in scene.plan.normaliser.gain],
                             "offset": [float(o) for o in scene.plan.normaliser.offset]}},
        held_out=None if scene.holdout is None else {
            "region": scene.holdout.describe(), "spec": scene.holdout.spec,
            "rule": "soilwatch eval: threshold of the model, objects = 8-connected, predicted objects under "
                    f"{cfg.min_area_m2:g} m2 dropped, hit at IoU >= 0.25 or cover >= 50 %",
            "training_windows": ("whole overlap, holdout included (self-training: its labels are not used)"
                                 if cfg.self_train else "outside the holdout"),
            "init": scores_init, "finetuned": scores_ft},
        finetune=asdict(cfg),
        train_steps=cfg.steps,
        train_seconds=round(seconds, 1),
        prepare_seconds=round(t_run - t0, 1),
        loss_first=float(np.mean(losses[: cfg.log_every])),
        loss_last=float(np.mean(losses[-cfg.log_every:])),
        device=f"{_device_label(dev)}, load {os.getloadavg()[0]:.1f}",
        date=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        git_commit=_git_commit(),
        torch=str(torch.__version__),
    )
    save_weights(net.cpu(), out, meta)
    say(f"wrote {out} ({seconds:.0f} s of training)")
    return FinetuneResult(weights=out, losses=losses, seconds=seconds, scores_init=scores_init,
                          scores_finetuned=scores_ft, meta=meta)


def _freeze_bn_stats(net: Any) -> int:
    """Put every BatchNorm of ``net`` in eval mode (running statistics used and kept); returns how many."""
    from torch import nn

    n = 0
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            n += 1
    return n


@dataclass(frozen=True)
class _SchedCfg:
    steps: int
    warmup: int


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt_scores(s: dict[str, Any]) -> str:
    px, ob = s["pixel"], s["object"]
    return (f"pixel P/R/F1 {_num(px['precision'])}/{_num(px['recall'])}/{_num(px['f1'])}, "
            f"object P/R/F1 {_num(ob['precision'])}/{_num(ob['recall'])}/{_num(ob['f1'])} "
            f"({ob['predicted']} predicted / {ob['true']} true objects)")
