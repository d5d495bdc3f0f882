"""Seeded synthetic before/after scenes of construction-site soil disturbance (扰动图斑).

A scene is described by a :class:`SceneSpec` (the random layout: villages, ponds, rivers, roads and
construction sites as polygons in pixel coordinates, plus scene-wide parameters) and rendered window
by window with :func:`render_window`. Everything else — crop parcels, forest, texture, haze, sensor
noise — is procedural: every pixel value is a function of the seed and the pixel's absolute
coordinates only, so any window renders exactly the pixels of the same region of a whole-scene
render, and a 10,000 x 10,000 scene can be rendered block by block in memory bounded by the block.

Arrays are ``(band, row, col)`` with bands :data:`BAND_NAMES` = red, green, blue, nir. ``uint16``
values are surface reflectance x 10000 (GF-2 / Sentinel-2 style); ``uint8`` values are an aerial-photo
style stretch of the same reflectance (vegetation about (65, 97, 56), bare soil about (170, 150, 120)).
The change mask is ``uint8`` 0/1 on the before image's pixel grid; the after image is shifted by a
fraction of a pixel (misregistration) on purpose.

Label 1 is new soil disturbance only: stripped ground, foundation pits, spoil heaps, new site roads,
dust-screen nets (防尘网) over soil, site huts inside a new site. Ploughing, harvest, phenology,
water-level change, haze, shadows, radiometric differences and sites that already existed before
are nuisances with label 0; :func:`render_classes` gives the land cover behind them. With
``seasonal`` > 0 a share of scenes also has water that changes colour (turbid, algae, dark) and tree
canopy that changes with the season (autumn, leaf-off, flush) between the dates, also label 0.
With ``river`` > 0 a share of scenes gets one more river across it whatever its size, so that small
fine-resolution scenes (which rarely draw water otherwise) show rivers and their banks too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["BAND_NAMES", "LandCover", "SceneSpec", "Site", "SyntheticScene", "make_scene", "make_spec",
           "render_classes", "render_window"]

#: Band order of every array this module returns.
BAND_NAMES: tuple[str, ...] = ("red", "green", "blue", "nir")

Polygon = tuple[tuple[float, float], ...]  # (row, col) vertices in pixels, not closed
_F32 = np.float32
_MARGIN = 2  # context pixels rendered around a window: 1 for the blur, 1 for the sub-pixel shift
_DTYPES = ("uint8", "uint16")


class LandCover(IntEnum):
    """Land-cover class of a pixel on one date, as returned by :func:`render_classes`."""

    CROP = 1
    RIPE = 2  # yellowing crop
    STUBBLE = 3  # harvested
    PLOUGHED = 4
    GREENHOUSE = 5
    ORCHARD = 6
    FOREST = 7
    BARE = 8  # natural bare ground and unpaved field tracks
    WATER = 9
    MUDFLAT = 10  # exposed bank after a water-level drop
    ROAD = 11
    SETTLEMENT = 12  # courtyards, lanes
    BUILDING = 13
    SITE = 14  # construction soil: stripped ground, pits, heaps, site roads
    DUST_NET = 15


_L = LandCover
# Reflectance (red, green, blue, nir) of each class; index = class value.
_MAT = np.zeros((16, 4), _F32)
for _k, _v in {
    _L.CROP: (0.045, 0.085, 0.035, 0.42), _L.RIPE: (0.135, 0.13, 0.07, 0.30), _L.STUBBLE: (0.175, 0.155, 0.11, 0.24),
    _L.PLOUGHED: (0.13, 0.10, 0.075, 0.17), _L.GREENHOUSE: (0.33, 0.34, 0.35, 0.36),
    _L.ORCHARD: (0.075, 0.10, 0.055, 0.30), _L.FOREST: (0.03, 0.055, 0.03, 0.33), _L.BARE: (0.19, 0.17, 0.135, 0.25),
    _L.WATER: (0.025, 0.045, 0.05, 0.02), _L.MUDFLAT: (0.10, 0.09, 0.075, 0.12), _L.ROAD: (0.075, 0.075, 0.08, 0.09),
    _L.SETTLEMENT: (0.17, 0.16, 0.15, 0.20), _L.DUST_NET: (0.075, 0.13, 0.095, 0.17),
}.items():
    _MAT[_k] = _v
_DRY = np.array([0.16, 0.14, 0.09, 0.26], _F32)  # phenology pulls crops towards this
_MARGIN_GRASS = np.array([0.09, 0.11, 0.06, 0.30], _F32)
_TRACK = np.array([0.21, 0.19, 0.155, 0.24], _F32)
_CONCRETE = np.array([0.21, 0.21, 0.20, 0.24], _F32)
_TREE = np.array([0.035, 0.065, 0.035, 0.36], _F32)
_SOILS = np.array([[0.27, 0.23, 0.16, 0.30], [0.24, 0.185, 0.13, 0.27], [0.23, 0.215, 0.19, 0.26]], _F32)
_ROOFS = np.array([[0.23, 0.23, 0.23, 0.26], [0.17, 0.06, 0.045, 0.21], [0.11, 0.11, 0.12, 0.13],
                   [0.33, 0.33, 0.32, 0.36], [0.06, 0.12, 0.27, 0.20], [0.20, 0.13, 0.10, 0.22]], _F32)
_HUT = np.array([0.07, 0.16, 0.36, 0.25], _F32)
_HAZE = np.array([0.42, 0.43, 0.46, 0.45], _F32)
_SHADOW = np.array([0.30, 0.33, 0.42, 0.28], _F32)[:, None, None]  # skylight keeps shadows bluish

# Field transitions (before, after, weight): all nuisances, never labelled.
_TRANSITIONS = ((_L.CROP, _L.CROP, 28), (_L.CROP, _L.RIPE, 10), (_L.RIPE, _L.RIPE, 6), (_L.RIPE, _L.STUBBLE, 8),
                (_L.CROP, _L.PLOUGHED, 7), (_L.STUBBLE, _L.PLOUGHED, 9), (_L.PLOUGHED, _L.PLOUGHED, 5),
                (_L.PLOUGHED, _L.CROP, 6), (_L.STUBBLE, _L.STUBBLE, 4), (_L.GREENHOUSE, _L.GREENHOUSE, 5),
                (_L.ORCHARD, _L.ORCHARD, 7), (_L.RIPE, _L.CROP, 3))
_w = np.array([t[2] for t in _TRANSITIONS], float)
_TRANS_LUT = np.searchsorted(np.cumsum(_w) / _w.sum(), (np.arange(256) + 0.5) / 256).astype(np.intp)
_S0 = np.array([t[0] for t in _TRANSITIONS], np.uint8)[_TRANS_LUT]
_S1 = np.array([t[1] for t in _TRANSITIONS], np.uint8)[_TRANS_LUT]
# Row/furrow texture per class: period (m) across the strip and amplitude.
_PERIOD = np.ones(16, _F32)
_AMP = np.zeros(16, _F32)
for _k, (_p, _a) in {_L.CROP: (1.6, 0.10), _L.RIPE: (1.6, 0.06), _L.STUBBLE: (8.0, 0.10),
                     _L.PLOUGHED: (3.2, 0.30), _L.GREENHOUSE: (8.0, 0.0)}.items():
    _PERIOD[_k], _AMP[_k] = _p, _a

# uint8 is an aerial-photo stretch: DN = 255 (reflectance / top) ** (1 / 1.6); a table keeps it exact per pixel.
_q = np.arange(10001) / 10000.0
_LUT8 = np.stack([np.rint(255 * np.minimum(_q / top, 1.0) ** (1 / 1.6)) for top in (0.4, 0.4, 0.4, 0.6)])
_LUT8 = _LUT8.astype(np.uint8)


# ---------------------------------------------------------------- per-pixel deterministic randomness
def _u32(a: Any) -> np.ndarray:
    return (np.asarray(a, np.int64) & 0xFFFFFFFF).astype(np.uint32)


def _hash(key: int, *coords: Any) -> np.ndarray:
    """uint32 hash of integer coordinates (broadcast); depends on nothing but key and the values."""
    h = np.full(1, key & 0xFFFFFFFF, np.uint32)
    for c in coords:
        h = h ^ (_u32(c) * np.uint32(0x9E3779B1) + np.uint32(0x7F4A7C15))
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
    return h


def _u01(h: np.ndarray, byte: int | None = None) -> np.ndarray:
    """Uniform [0, 1) float32 from a hash: the top 24 bits, or one byte of it."""
    if byte is None:
        return (h >> np.uint32(8)).astype(_F32) * _F32(2.0**-24)
    return ((h >> np.uint32(8 * byte)) & np.uint32(255)).astype(_F32) * _F32(1 / 255)


def _noise(key: int, ys: np.ndarray, xs: np.ndarray, scale_m: float) -> np.ndarray:
    """Smooth value noise in [0, 1], float32 ``(len(ys), len(xs))``, at absolute coordinates in metres."""
    def axis(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = c / scale_m
        i = np.floor(f)
        t = (f - i).astype(_F32)
        return i.astype(np.int64), t * t * (3 - 2 * t)

    iy, ty = axis(ys)
    ix, tx = axis(xs)
    # only the lattice lines some pixel needs: at coarse resolution a fine lattice is much larger than the window
    ly, lx = np.unique(np.concatenate([iy, iy + 1])), np.unique(np.concatenate([ix, ix + 1]))
    g = _u01(_hash(key, ly[:, None], lx[None, :]))
    jx0, jx1 = np.searchsorted(lx, ix), np.searchsorted(lx, ix + 1)
    a = g[:, jx0]
    rows = a + (g[:, jx1] - a) * tx
    top = rows[np.searchsorted(ly, iy)]
    return top + (rows[np.searchsorted(ly, iy + 1)] - top) * ty[:, None]


def _fractal(key: int, ys: np.ndarray, xs: np.ndarray, scales: tuple[float, ...]) -> np.ndarray:
    out = _noise(key, ys, xs, scales[0])
    weight = 1.0
    for i, s in enumerate(scales[1:], 1):
        out += _noise(key + i, ys, xs, s) * _F32(0.5**i)
        weight += 0.5**i
    return out * _F32(1 / weight)


def _tri(a: np.ndarray) -> np.ndarray:
    """Triangle wave in [0, 1] with period 1 (no transcendental functions: exact in any window)."""
    return np.abs(2 * (a - np.floor(a)) - 1)


# ---------------------------------------------------------------- geometry, all in absolute pixel coordinates
def _fill(poly: Any, r0: int, c0: int, h: int, w: int, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    """Pixels of the window whose centre (+ (dy, dx)) lies inside ``poly``: bool ``(h, w)`` (even-odd scanline)."""
    p = np.asarray(poly, np.float64)
    ya, xa = p[:, 0], p[:, 1]
    yb, xb = np.roll(ya, -1), np.roll(xa, -1)
    y = (r0 + np.arange(h))[:, None] + 0.5 + dy
    rr, ee = np.nonzero((ya <= y) != (yb <= y))
    if rr.size == 0:
        return np.zeros((h, w), bool)
    xi = xa[ee] + (y[rr, 0] - ya[ee]) / (yb[ee] - ya[ee]) * (xb[ee] - xa[ee])
    k = np.clip(np.ceil(xi - 0.5 - dx).astype(np.int64) - c0, 0, w)
    toggles = np.bincount(rr * (w + 1) + k, minlength=h * (w + 1)).reshape(h, w + 1)[:, :w]
    return (np.cumsum(toggles, axis=1) & 1).astype(bool)


def _path_distance(path: Any, r0: int, c0: int, h: int, w: int, reach: float) -> np.ndarray:
    """Distance in pixels from each pixel centre to a polyline, float32 ``(h, w)``; inf beyond ``reach``."""
    p = np.asarray(path, np.float64)
    d = np.full((h, w), np.inf, _F32)
    for (ay, ax), (by, bx) in zip(p[:-1], p[1:], strict=True):
        i0, i1 = max(int(min(ay, by) - reach) - r0, 0), min(int(max(ay, by) + reach) + 1 - r0, h)
        j0, j1 = max(int(min(ax, bx) - reach) - c0, 0), min(int(max(ax, bx) + reach) + 1 - c0, w)
        if i0 >= i1 or j0 >= j1:
            continue
        y = (r0 + np.arange(i0, i1))[:, None] + 0.5 - ay
        x = (c0 + np.arange(j0, j1))[None, :] + 0.5 - ax
        vy, vx = by - ay, bx - ax
        t = np.clip((y * vy + x * vx) / max(vy * vy + vx * vx, 1e-12), 0.0, 1.0)
        dist = np.sqrt((y - t * vy) ** 2 + (x - t * vx) ** 2).astype(_F32)
        np.minimum(d[i0:i1, j0:j1], dist, out=d[i0:i1, j0:j1])
    return d


def _shoelace(poly: np.ndarray) -> float:
    y, x = poly[:, 0], poly[:, 1]
    return float(abs(x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]) / 2)


def _as_poly(a: np.ndarray) -> Polygon:
    return tuple(map(tuple, np.round(a, 3).tolist()))


def _bbox(a: np.ndarray, pad: float = 0.0) -> tuple[int, int, int, int]:
    return (math.floor(a[:, 0].min() - pad), math.floor(a[:, 1].min() - pad),
            math.ceil(a[:, 0].max() + pad) + 1, math.ceil(a[:, 1].max() + pad) + 1)


# ---------------------------------------------------------------- the layout
@dataclass(frozen=True)
class Site:
    """A construction site; pixel coordinates ``(row, col)``, lengths in pixels unless named ``_m``.

    ``is_new`` sites appear between the dates (label 1); the others exist on both dates (label 0).
    ``heaps`` are ``(row, col, radius)``, ``tracks`` ``(row0, col0, row1, col1, width)``, ``pit_depth_m`` the
    wall height that casts the pit's shadow. ``bbox`` is ``(row_min, col_min, row_max, col_max)``, max exclusive.
    """

    kind: str
    polygon: Polygon
    is_new: bool
    area_m2: float
    bbox: tuple[int, int, int, int]
    soil: int = 0
    pit: Polygon | None = None
    pit_depth_m: float = 0.0
    net: Polygon | None = None
    heaps: tuple[tuple[float, float, float], ...] = ()
    tracks: tuple[tuple[float, float, float, float, float], ...] = ()
    huts: tuple[Polygon, ...] = ()


@dataclass(frozen=True)
class _Village:
    polygon: Polygon
    bbox: tuple[int, int, int, int]
    angle_deg: float
    cell_m: tuple[float, float]
    height_m: float
    key: int


@dataclass(frozen=True)
class _Water:
    """A pond (``polygon``) or river (``path`` with per-date ``width``); ``level`` scales it on each date."""

    bbox: tuple[int, int, int, int]
    polygon: Polygon = ()
    path: Polygon = ()
    width: tuple[float, float] = (0.0, 0.0)
    level: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class _Road:
    path: Polygon
    bbox: tuple[int, int, int, int]
    width: float
    concrete: bool


@dataclass(frozen=True)
class SceneSpec:
    """The random layout of a scene, derived from ``seed``, size and ``resolution_m`` by :func:`make_spec`.

    Coordinates are pixels ``(row, col)`` of the before image; sizes of real objects were drawn in metres.
    ``sun`` holds, per date, the ``(row, col)`` pixel step towards the sun per metre of object height;
    ``shift_px`` is the after image's misregistration; ``gain``/``offset`` the per-date, per-band
    radiometric difference applied to reflectance; ``haze`` is ``(date, threshold, opacity)`` patches;
    ``water_tint``/``canopy_tint`` multiply, per date and band, the reflectance of water and of tree canopy
    (forest, orchards, village trees): the seasonal nuisances (all ones when there are none).
    """

    height: int
    width: int
    resolution_m: float
    seed: int
    site_density: float
    field_angle_deg: float
    field_origin_m: tuple[float, float]
    block_m: tuple[float, float]
    forest_threshold: float
    bare_threshold: float
    sun: tuple[tuple[float, float], tuple[float, float]]
    shift_px: tuple[float, float]
    gain: tuple[tuple[float, ...], tuple[float, ...]]
    offset: tuple[tuple[float, ...], tuple[float, ...]]
    haze: tuple[tuple[int, float, float], ...]
    water_tint: tuple[tuple[float, ...], tuple[float, ...]] = ((1.0,) * 4, (1.0,) * 4)
    canopy_tint: tuple[tuple[float, ...], tuple[float, ...]] = ((1.0,) * 4, (1.0,) * 4)
    sites: tuple[Site, ...] = field(default=(), repr=False)
    villages: tuple[_Village, ...] = field(default=(), repr=False)
    water: tuple[_Water, ...] = field(default=(), repr=False)
    roads: tuple[_Road, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        new = sum(s.is_new for s in self.sites)
        return (f"SceneSpec(height={self.height}, width={self.width}, resolution_m={self.resolution_m}, "
                f"seed={self.seed}, site_density={self.site_density}, new_sites={new}, "
                f"old_sites={len(self.sites) - new}, villages={len(self.villages)}, water={len(self.water)}, "
                f"roads={len(self.roads)}, haze={len(self.haze)})")

    @cached_property
    def _boxes(self) -> dict[str, np.ndarray]:
        def arr(items: tuple[Any, ...]) -> np.ndarray:
            return np.array([i.bbox for i in items], np.int64).reshape(-1, 4)
        return {"sites": arr(self.sites), "villages": arr(self.villages), "water": arr(self.water),
                "roads": arr(self.roads)}

    def _touching(self, name: str, r0: int, c0: int, r1: int, c1: int) -> list[Any]:
        b = self._boxes[name]
        hit = (b[:, 0] < r1) & (b[:, 2] > r0) & (b[:, 1] < c1) & (b[:, 3] > c0)
        items = getattr(self, name)
        return [items[i] for i in np.flatnonzero(hit)]

    def site_records(self) -> list[dict[str, Any]]:
        """The new sites (label 1) as dicts: id, kind, area_m2, bbox (row_min, col_min, row_max, col_max)."""
        return [{"id": i, "kind": s.kind, "area_m2": s.area_m2, "bbox": s.bbox, "dust_net": s.net is not None,
                 "huts": bool(s.huts)} for i, s in enumerate(self.sites) if s.is_new]


_SITE_KINDS = ("stripped_ground", "foundation_pit", "spoil_heap", "dust_net", "site_road")


def _blob(rng: np.random.Generator, cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    n = int(rng.integers(5, 11))
    t = np.sort(2 * np.pi * (np.arange(n) + rng.uniform(-0.35, 0.35, n)) / n)
    r = 1 - 0.3 * rng.random(n)
    a, b = rx * r * np.cos(t), ry * r * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([cy + a * sa + b * ca, cx + a * ca - b * sa], 1)


def _rect(cy: float, cx: float, length: float, width: float, angle: float) -> np.ndarray:
    ca, sa = math.cos(angle), math.sin(angle)
    a = np.array([-1, 1, 1, -1]) * length / 2
    b = np.array([-1, -1, 1, 1]) * width / 2
    return np.stack([cy + a * sa + b * ca, cx + a * ca - b * sa], 1)


def _scaled(poly: np.ndarray, f: float, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    c = poly.mean(0)
    return (poly - c) * f + c + (dy, dx)


def _make_site(rng: np.random.Generator, cy: float, cx: float, area_m2: float, kind: str, res: float,
               field_angle: float, is_new: bool) -> Site:
    px = 1.0 / res  # pixels per metre
    side = math.sqrt(area_m2) * px
    if kind == "site_road":
        w = rng.uniform(6, 12) * px
        poly = _rect(cy, cx, min(area_m2 * px * px / w, 600 * px), w, rng.uniform(0, np.pi))
    elif rng.random() < 0.5:
        aspect = rng.uniform(1, 2.2)
        poly = _rect(cy, cx, side * math.sqrt(aspect), side / math.sqrt(aspect), field_angle + rng.normal(0, 0.06))
        if rng.random() < 0.4:  # a cut corner makes an irregular pentagon
            k, f = int(rng.integers(4)), rng.uniform(0.3, 0.6)
            a, b, c = poly[k - 1], poly[k], poly[(k + 1) % 4]
            poly = np.concatenate([poly[:k], [b + (a - b) * f, b + (c - b) * f], poly[k + 1:]])
    else:
        aspect = rng.uniform(1, 2)
        r = side / math.sqrt(np.pi * 0.72)
        poly = _blob(rng, cy, cx, r / math.sqrt(aspect), r * math.sqrt(aspect), rng.uniform(0, np.pi))
    span = poly.max(0) - poly.min(0)
    rad = float(min(span)) / 2

    def inner() -> tuple[float, float]:
        return cy + rng.uniform(-0.5, 0.5) * span[0], cx + rng.uniform(-0.5, 0.5) * span[1]

    heaps, tracks, huts, pit, net = [], [], [], None, None
    n_heaps = {"spoil_heap": rng.integers(3, 10), "foundation_pit": rng.integers(1, 5), "site_road": 0}.get(
        kind, rng.integers(0, 3))
    for _ in range(int(n_heaps)):
        heaps.append((*inner(), min(rng.uniform(3, 12) * px, (0.45 if kind == "spoil_heap" else 0.3) * rad + 1)))
    if kind == "foundation_pit":
        pit = _scaled(poly, rng.uniform(0.4, 0.65), *rng.normal(0, 0.05 * rad, 2))
    if kind == "dust_net" or (kind != "site_road" and rng.random() < 0.15):
        net = poly if kind == "dust_net" and rng.random() < 0.5 else _scaled(poly, rng.uniform(0.55, 0.85))
    if kind != "site_road" and area_m2 > 1500:
        for _ in range(int(rng.integers(1, 3))):
            ang, half = rng.uniform(0, np.pi), rad * 1.1
            tracks.append((cy - half * math.sin(ang), cx - half * math.cos(ang), cy + half * math.sin(ang),
                           cx + half * math.cos(ang), rng.uniform(4, 7) * px))
    if kind != "site_road" and area_m2 > 2500 and rng.random() < 0.35:
        hy, hx = inner()
        ca, sa = math.cos(field_angle), math.sin(field_angle)
        hl, hw = rng.uniform(12, 18) * px, 6 * px
        for i in range(int(rng.integers(2, 6))):
            huts.append(_as_poly(_rect(hy + i * 1.4 * hw * ca, hx - i * 1.4 * hw * sa, hl, hw, field_angle)))
    return Site(kind=kind, polygon=_as_poly(poly), is_new=is_new, area_m2=round(_shoelace(poly) * res * res, 1),
                bbox=_bbox(poly), soil=int(rng.integers(len(_SOILS))), pit=None if pit is None else _as_poly(pit),
                pit_depth_m=float(rng.uniform(3, 8)), net=None if net is None else _as_poly(net),
                heaps=tuple(heaps), tracks=tuple(tracks), huts=tuple(huts))


class _Occupancy:
    """A coarse grid of taken cells, so features do not overlap; cells ~40 m."""

    def __init__(self, height: int, width: int, res: float) -> None:
        self.cell = max(4.0, 40.0 / res)
        self.grid = np.zeros((int(height / self.cell) + 2, int(width / self.cell) + 2), bool)

    def _cells(self, bbox: tuple[int, int, int, int]) -> tuple[slice, slice]:
        r0, c0, r1, c1 = (max(int(v / self.cell), 0) for v in bbox)
        return slice(r0, r1 + 1), slice(c0, c1 + 1)

    def free(self, bbox: tuple[int, int, int, int]) -> bool:
        return not self.grid[self._cells(bbox)].any()

    def take(self, bbox: tuple[int, int, int, int]) -> bool:
        cells = self._cells(bbox)
        if self.grid[cells].any():
            return False
        self.grid[cells] = True
        return True

    def take_path(self, path: np.ndarray, half_width: float) -> None:
        seg = np.diff(path, axis=0)
        n = np.maximum(np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / (self.cell / 2)).astype(int), 1)
        pts = np.concatenate([path[:-1][i] + seg[i] * np.linspace(0, 1, k, endpoint=False)[:, None]
                              for i, k in enumerate(n)] + [path[-1:]])
        cells = np.floor(pts / self.cell).astype(int)
        reach = int(math.ceil(half_width / self.cell)) + 1
        for dr in range(-reach, reach + 1):
            for dc in range(-reach, reach + 1):
                r, c = cells[:, 0] + dr, cells[:, 1] + dc
                ok = (r >= 0) & (c >= 0) & (r < self.grid.shape[0]) & (c < self.grid.shape[1])
                self.grid[r[ok], c[ok]] = True


def _wander(rng: np.random.Generator, height: int, width: int, step: float, wiggle: float) -> np.ndarray:
    """A polyline entering at one edge and meandering across the scene, in pixels."""
    edge = int(rng.integers(4))
    heading = rng.uniform(-0.5, 0.5) + (0.5 * np.pi, np.pi, 1.5 * np.pi, 0.0)[edge]  # angle of (col, row) step
    pos = np.array([(0.0, rng.uniform(0, width)), (rng.uniform(0, height), width),
                    (height, rng.uniform(0, width)), (rng.uniform(0, height), 0.0)][edge])
    n = int(2.5 * (height + width) / step) + 2
    turn = np.clip(np.cumsum(rng.normal(0, wiggle, n)), -1.2, 1.2) + heading
    steps = step * np.stack([np.sin(turn), np.cos(turn)], 1)
    pts = np.concatenate([[pos], pos + np.cumsum(steps, 0)])
    out = (pts[:, 0] < -step) | (pts[:, 1] < -step) | (pts[:, 0] > height + step) | (pts[:, 1] > width + step)
    stop = int(np.argmax(out)) + 1 if out.any() else len(pts)
    return pts[:max(stop, 2)]


def make_spec(*, height: int, width: int, resolution_m: float = 1.0, seed: int = 0,
              site_density: float = 1.0, seasonal: float = 0.0, river: float = 0.0) -> SceneSpec:
    """Draw the layout of a ``height`` x ``width`` pixel scene at ``resolution_m`` metres per pixel.

    ``site_density`` scales the number of new construction sites (about 5 per km² at 1.0; at least one
    when it is positive). ``seasonal`` is the chance that water and tree canopy change colour between the
    dates (drawn from a stream of their own: the layout is the same for any value). ``river`` is the chance
    of one extra river, 8-50 m wide, whatever the scene's size (its own stream too: ``river=0`` gives the
    same scene as before the option existed; when the river is drawn, what is placed after it moves).
    Cheap: features are polygons, nothing is rasterised here.
    """
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not 0.25 <= resolution_m <= 30:
        raise ValueError(f"resolution_m must be within [0.25, 30] metres, got {resolution_m!r}")
    if not site_density >= 0:
        raise ValueError(f"site_density must be >= 0, got {site_density!r}")
    for name, v in (("seasonal", seasonal), ("river", river)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be within [0, 1], got {v!r}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5017])
    res, px = float(resolution_m), 1.0 / float(resolution_m)
    area_km2 = height * width * res * res / 1e6
    extent_km = max(height, width) * res / 1000
    occ = _Occupancy(height, width, res)
    field_angle = float(rng.uniform(-0.35, 0.35))
    suns = []
    az0, el0 = rng.uniform(130, 230), rng.uniform(30, 60)
    for az, el in ((az0, el0), (az0 + rng.uniform(-50, 50), el0 + rng.uniform(-15, 15))):
        step = px / math.tan(math.radians(el))  # metres of shadow per metre of height, in pixels
        suns.append((-step * math.cos(math.radians(az)), step * math.sin(math.radians(az))))
    g = rng.uniform(0.8, 1.2) * rng.uniform(0.93, 1.07, 4)
    haze = ((int(rng.integers(2)), float(rng.uniform(0.6, 0.72)), float(rng.uniform(0.25, 0.55))),) \
        if rng.random() < 0.6 else ()

    water, roads, villages, sites = [], [], [], []
    for _ in range(int(rng.poisson(extent_km / 4))):
        path = _wander(rng, height, width, 60 * px, 0.25)
        w0 = rng.uniform(15, 60) * px
        width_px = (w0, w0 * rng.uniform(0.7, 1.25))
        water.append(_Water(bbox=_bbox(path, max(width_px)), path=_as_poly(path), width=width_px))
        occ.take_path(path, max(width_px) / 2 + 10 * px)
    wrng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5019])
    if river > 0 and wrng.random() < river:
        path = _wander(wrng, height, width, 60 * px, 0.25)
        w0 = wrng.uniform(8, 50) * px
        width_px = (w0, w0 * wrng.uniform(0.7, 1.25))
        water.append(_Water(bbox=_bbox(path, max(width_px)), path=_as_poly(path), width=width_px))
        occ.take_path(path, max(width_px) / 2 + 10 * px)
    for _ in range(max(int(rng.poisson(extent_km / 2.5)), int(extent_km >= 0.5))):
        path = _wander(rng, height, width, 200 * px, 0.08)
        w = rng.uniform(8, 16) * px
        roads.append(_Road(path=_as_poly(path), bbox=_bbox(path, w), width=w, concrete=bool(rng.random() < 0.3)))
        occ.take_path(path, w / 2 + 5 * px)

    def place(radius: float, inside: bool) -> tuple[float, float]:
        lo = radius + 2 if inside else -radius / 2
        return (rng.uniform(lo, max(height - lo, lo + 1)), rng.uniform(lo, max(width - lo, lo + 1)))

    # villages are capped to a quarter of the scene so that small scenes keep room for sites
    for _ in range(max(int(rng.poisson(0.6 * area_km2)), int(area_km2 >= 0.5))):
        for _try in range(20):
            r, aspect = min(rng.uniform(80, 220) * px, 0.25 * min(height, width)), rng.uniform(1, 1.5)
            cy, cx = place(r, area_km2 < 2)
            if not occ.free((int(cy - r * aspect), int(cx - r * aspect), int(cy + r * aspect), int(cx + r * aspect))):
                continue
            poly = _blob(rng, cy, cx, r, r * aspect, rng.uniform(0, np.pi))
            if occ.take(_bbox(poly)):
                villages.append(_Village(polygon=_as_poly(poly), bbox=_bbox(poly),
                                         angle_deg=math.degrees(field_angle) + rng.normal(0, 3),
                                         cell_m=(rng.uniform(15, 22), rng.uniform(14, 19)),
                                         height_m=rng.uniform(4, 8), key=int(rng.integers(2**32))))
                break
    for _ in range(max(int(rng.poisson(1.0 * area_km2)), int(area_km2 >= 0.5))):
        for _try in range(20):
            r, aspect = min(rng.uniform(20, 70) * px, 0.1 * min(height, width)), rng.uniform(1, 1.8)
            cy, cx = place(r, True)
            if not occ.free((int(cy - r * aspect), int(cx - r * aspect), int(cy + r * aspect), int(cx + r * aspect))):
                continue
            poly = _blob(rng, cy, cx, r, r * aspect, rng.uniform(0, np.pi))
            if occ.take(_bbox(poly)):
                level = [1.0, 1.0]
                level[int(rng.integers(2))] = rng.uniform(0.6, 0.9)
                water.append(_Water(bbox=_bbox(poly), polygon=_as_poly(poly), level=(level[0], level[1])))
                break
    n_new = int(rng.poisson(5.0 * site_density * area_km2))
    n_new = max(n_new, int(site_density > 0))
    n_old = int(rng.poisson(1.0 * area_km2))
    max_area = max(min(50000.0, (min(height, width) * res * 0.7) ** 2), 200.0)
    for i in range(n_new + n_old):
        is_new = i < n_new
        kinds = _SITE_KINDS if is_new else ("stripped_ground", "spoil_heap", "dust_net")
        probs = (0.28, 0.2, 0.14, 0.24, 0.14) if is_new else (0.4, 0.3, 0.3)
        for attempt in range(64):  # try a few places, then a smaller site, so big sites are not crowded out
            if attempt % 8 == 0:
                area = math.exp(rng.uniform(math.log(200), math.log(max(max_area * 0.6 ** (attempt // 8), 201))))
                kind = str(rng.choice(kinds, p=probs))
            reach = (min(area / 6, 600) / 2 if kind == "site_road" else 0.85 * math.sqrt(area)) * px
            if 2 * reach + 4 > min(height, width):
                continue
            cy, cx = place(reach, True)
            if not occ.free((int(cy - reach), int(cx - reach), int(cy + reach) + 1, int(cx + reach) + 1)):
                continue  # checked before building the site: most candidates in a crowded scene fail here
            site = _make_site(rng, cy, cx, area, kind, res, field_angle, is_new)
            if site.bbox[0] >= 0 and site.bbox[1] >= 0 and site.bbox[2] <= height and site.bbox[3] <= width \
                    and occ.take(site.bbox):
                sites.append(site)
                break
    return SceneSpec(
        height=int(height), width=int(width), resolution_m=res, seed=int(seed), site_density=float(site_density),
        field_angle_deg=math.degrees(field_angle), field_origin_m=tuple(rng.uniform(0, 1e4, 2).tolist()),
        block_m=(float(rng.uniform(250, 450)), float(rng.uniform(150, 300))),
        forest_threshold=float(rng.uniform(0.68, 0.76)), bare_threshold=float(rng.uniform(0.7, 0.8)),
        sun=(suns[0], suns[1]), shift_px=tuple(rng.uniform(-0.45, 0.45, 2).tolist()),
        gain=(tuple(rng.uniform(0.97, 1.03, 4).tolist()), tuple(g.tolist())),
        offset=((0.0,) * 4, tuple(rng.uniform(-0.012, 0.012, 4).tolist())), haze=haze,
        **_seasonal_tints(seed, seasonal),
        sites=tuple(sites), villages=tuple(villages), water=tuple(water), roads=tuple(roads))


# Seasonal nuisances (label 0), per band (red, green, blue, nir): what water and canopy may turn into on one date.
_WATER_TINTS = np.array([[2.6, 2.0, 1.3, 1.6],  # turbid after rain: brown-green
                         [1.3, 2.2, 1.0, 3.0],  # algae bloom: green
                         [0.6, 0.65, 0.7, 0.6]], _F32)  # deep, dark, calm
_CANOPY_TINTS = np.array([[2.2, 1.4, 1.0, 0.8],  # autumn: yellow-brown
                          [2.0, 1.3, 1.5, 0.55],  # leaf-off: grey-brown branches
                          [0.9, 1.2, 0.95, 1.15]], _F32)  # spring flush: lighter green


def _seasonal_tints(seed: int, chance: float) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Per-date water and canopy tints: with probability ``chance`` each, one date gets a drawn tint."""
    if chance <= 0:
        return {}
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5018])
    out = {}
    for name, table in (("water_tint", _WATER_TINTS), ("canopy_tint", _CANOPY_TINTS)):
        tints = [(1.0,) * 4, (1.0,) * 4]
        if rng.random() < chance:
            strength = rng.uniform(0.4, 1.0)  # partway towards the drawn tint
            tints[int(rng.integers(2))] = tuple(1 + strength * (table[int(rng.integers(len(table)))] - 1))
        out[name] = (tuple(map(float, tints[0])), tuple(map(float, tints[1])))
    return out


# ---------------------------------------------------------------- rendering
class _Canvas:
    """Both dates' reflectance ``(4, h, w)`` float32 and classes ``(h, w)`` uint8 for one region of the scene."""

    def __init__(self, spec: SceneSpec, r0: int, c0: int, h: int, w: int) -> None:
        self.spec, self.r0, self.c0, self.h, self.w = spec, r0, c0, h, w
        self.ys = (r0 + np.arange(h) + 0.5) * spec.resolution_m
        self.xs = (c0 + np.arange(w) + 0.5) * spec.resolution_m
        self.col = [np.empty((4, h, w), _F32), np.empty((4, h, w), _F32)]
        self.cls = [np.empty((h, w), np.uint8), np.empty((h, w), np.uint8)]
        self.change = np.zeros((h, w), np.uint8)
        self.water = [np.asarray(t, _F32)[:, None, None] for t in spec.water_tint]  # seasonal tints, per date
        self.canopy = [np.asarray(t, _F32)[:, None, None] for t in spec.canopy_tint]

    def key(self, tag: int) -> int:
        return (self.spec.seed * 0x2545F491 + tag * 0x9E3779B9 + 0x632BE5AB) & 0xFFFFFFFF

    def sub(self, bbox: tuple[int, ...], pad: int = 0) -> tuple[tuple[slice, slice], int, int, int, int] | None:
        r0, c0 = max(bbox[0] - pad, self.r0), max(bbox[1] - pad, self.c0)
        r1, c1 = min(bbox[2] + pad, self.r0 + self.h), min(bbox[3] + pad, self.c0 + self.w)
        if r0 >= r1 or c0 >= c1:
            return None
        return (slice(r0 - self.r0, r1 - self.r0), slice(c0 - self.c0, c1 - self.c0)), r0, c0, r1 - r0, c1 - c0

    def put(self, t: int, sl: tuple[slice, slice], where: np.ndarray, colour: np.ndarray, klass: Any) -> None:
        np.copyto(self.col[t][:, sl[0], sl[1]], colour, where=where)
        np.copyto(self.cls[t][sl], np.asarray(klass, np.uint8), where=where)


def _blend(c: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    t = target[:, None, None] if target.ndim == 1 else target
    return c + (t - c) * alpha


def _paint_fields(cv: _Canvas) -> None:
    s, res = cv.spec, cv.spec.resolution_m
    a = math.radians(s.field_angle_deg)
    ca, sa = _F32(math.cos(a)), _F32(math.sin(a))
    x = (cv.xs + s.field_origin_m[0]).astype(_F32)[None, :]
    y = (cv.ys + s.field_origin_m[1]).astype(_F32)[:, None]
    u, v = x * ca + y * sa, y * ca - x * sa
    bu, bv = _F32(s.block_m[0]), _F32(s.block_m[1])
    iu = np.floor(u / bu)
    lu = u - iu * bu
    iu = iu.astype(np.int64)
    lo = int(iu.min())
    cols = np.arange(lo, int(iu.max()) + 2)
    stagger, paved = _u01(_hash(cv.key(1), cols)), _u01(_hash(cv.key(2), cols))
    j = iu - lo
    v = v + stagger[j] * bv  # block rows are staggered between block columns, as real field blocks are
    iv = np.floor(v / bv)
    lv = v - iv * bv
    hb = _hash(cv.key(3), iu, iv.astype(np.int64))
    strip = 12 + 50 * _u01(hb, 0)
    across = np.where((hb & np.uint32(256)) == 0, lu, lv)
    ks = np.floor(across / strip)
    s_in = across - ks * strip
    ph = _hash(cv.key(4), hb, ks.astype(np.int64))
    low = ph & np.uint32(255)
    states = (_S0[low], _S1[low])
    bright = 0.85 + 0.3 * _u01(ph, 1)
    dry0 = 0.3 * _u01(ph, 2)
    drys = (dry0, np.clip(dry0 + 0.5 * (_u01(ph, 3) - 0.5), 0, 0.5))
    tex = bright * (1 + 0.16 * (_fractal(cv.key(5), cv.ys, cv.xs, (60.0, 20.0)) - 0.5)
                    + 0.12 * (_noise(cv.key(6), cv.ys, cv.xs, 2.5) - 0.5))
    pmul = 0.8 + 0.5 * _u01(hb, 2)
    edge = np.minimum(s_in, strip - s_in)
    a_margin = np.clip((0.6 + res / 2 - edge) / res, 0, 0.8)[None]
    a_track = np.clip((2.0 + res / 2 - np.minimum(np.minimum(lu, bu - lu), np.minimum(lv, bv - lv))) / res, 0, 1)
    road = np.minimum(np.where(paved[j] < 0.2, lu, np.inf), np.where(paved[j + 1] < 0.2, bu - lu, np.inf))
    a_road = np.clip((4.0 + res / 2 - road) / res, 0, 1)
    orchard = states[0] == _L.ORCHARD
    if orchard.any():
        du, dv = u / 5 - np.floor(u / 5) - 0.5, v / 5 - np.floor(v / 5) - 0.5
        r = np.sqrt(du * du + dv * dv)
        crown = np.clip((0.42 - r) * 5 / res + 0.5, 0, 1) * orchard
    for t in (0, 1):
        st = states[t]
        base = np.take(_MAT.T, st, axis=1)
        c = _blend(base, _DRY, drys[t][None])
        per = _PERIOD[st] * pmul
        amp = _AMP[st] * np.clip((per / res - 2) / 2, 0, 1)
        pat = 1 + amp * (2 * _tri(s_in / per) - 1)
        gh = st == _L.GREENHOUSE
        if gh.any():  # plastic tunnels with dark soil gaps between them
            pat = np.where(gh, np.where(_tri(s_in / 8) < 0.2, _F32(0.45), _F32(1.0)), pat)
        c *= (tex * pat)[None]
        if orchard.any():
            c = _blend(c, _TREE[:, None, None] * cv.canopy[t] * (1.25 - r)[None], crown[None])
        c = _blend(_blend(_blend(c, _MARGIN_GRASS, a_margin), _TRACK, a_track[None]), _MAT[_L.ROAD], a_road[None])
        cv.col[t][:] = c
        k = np.where(a_track > 0.5, np.uint8(_L.BARE), st)
        cv.cls[t][:] = np.where(a_road > 0.5, np.uint8(_L.ROAD), k)


def _paint_natural(cv: _Canvas) -> None:
    s = cv.spec
    forest = _fractal(cv.key(7), cv.ys, cv.xs, (350.0, 120.0, 40.0)) > s.forest_threshold
    bare = (_fractal(cv.key(8), cv.ys, cv.xs, (500.0, 150.0, 50.0)) > s.bare_threshold) & ~forest
    full = (slice(None), slice(None))
    if forest.any():
        crown = _fractal(cv.key(9), cv.ys, cv.xs, (5.0, 2.5))
        c = _MAT[_L.FOREST][:, None, None] * (0.3 + 1.4 * crown)[None]
        for t in (0, 1):
            cv.put(t, full, forest, c * cv.canopy[t], _L.FOREST)
    if bare.any():
        n = _fractal(cv.key(10), cv.ys, cv.xs, (30.0, 6.0, 2.0))
        c = _blend(_MAT[_L.BARE][:, None, None] * (0.75 + 0.5 * n)[None], _MARGIN_GRASS,
                   np.clip((n - 0.45) * 3, 0, 0.8)[None])  # sparse grass in the hollows
        for t in (0, 1):
            cv.put(t, full, bare, c, _L.BARE)


def _paint_water(cv: _Canvas, wt: _Water) -> None:
    px = 1 / cv.spec.resolution_m
    box = cv.sub(wt.bbox, 2)
    if box is None:
        return
    sl, r0, c0, h, w = box
    ys, xs = cv.ys[sl[0]], cv.xs[sl[1]]
    colour = _MAT[_L.WATER][:, None, None] * (0.8 + 0.5 * _fractal(cv.key(11), ys, xs, (80.0, 20.0)))[None]
    mud = _MAT[_L.MUDFLAT][:, None, None] * (0.85 + 0.3 * _noise(cv.key(12), ys, xs, 3.0))[None]
    if wt.path:
        d = _path_distance(wt.path, r0, c0, h, w, max(wt.width) / 2 + 8 * px + 2)
        bank = d < max(wt.width) / 2 + 8 * px
        for t in (0, 1):
            cv.put(t, sl, bank, _MARGIN_GRASS[:, None, None] * 1.1, _L.CROP)
            cv.put(t, sl, d < max(wt.width) / 2, mud, _L.MUDFLAT)
            alpha = np.clip(wt.width[t] / 2 - d + 0.5, 0, 1)[None]
            cv.put(t, sl, alpha[0] > 0, _blend(cv.col[t][:, sl[0], sl[1]], colour * cv.water[t], alpha), _L.WATER)
        return
    poly = np.asarray(wt.polygon)
    full = _fill(poly, r0, c0, h, w)
    for t in (0, 1):
        cv.put(t, sl, full, mud, _L.MUDFLAT)
        cv.put(t, sl, _fill(_scaled(poly, wt.level[t]), r0, c0, h, w), colour * cv.water[t], _L.WATER)


def _paint_road(cv: _Canvas, rd: _Road) -> None:
    box = cv.sub(rd.bbox, 2)
    if box is None:
        return
    sl, r0, c0, h, w = box
    d = _path_distance(rd.path, r0, c0, h, w, rd.width / 2 + 2)
    alpha = np.clip(rd.width / 2 - d + 0.5, 0, 1)
    colour = (_CONCRETE if rd.concrete else _MAT[_L.ROAD])[:, None, None] * (
        0.93 + 0.14 * _noise(cv.key(13), cv.ys[sl[0]], cv.xs[sl[1]], 2.0))[None]
    for t in (0, 1):
        cv.put(t, sl, alpha > 0, _blend(cv.col[t][:, sl[0], sl[1]], colour, alpha[None]), _L.ROAD)


_ROOF_LUT = np.searchsorted(np.cumsum([0.5, 0.14, 0.2, 0.06, 0.03, 0.07]), (np.arange(256) + 0.5) / 256)


def _paint_village(cv: _Canvas, vil: _Village) -> None:
    box = cv.sub(vil.bbox)
    if box is None:
        return
    sl, r0, c0, h, w = box
    inside = _fill(vil.polygon, r0, c0, h, w)
    if not inside.any():
        return
    res = cv.spec.resolution_m
    ys, xs = cv.ys[sl[0]], cv.xs[sl[1]]
    a = math.radians(vil.angle_deg)
    ca, sa = _F32(math.cos(a)), _F32(math.sin(a))
    x = (xs - vil.bbox[1] * res).astype(_F32)[None, :]
    y = (ys - vil.bbox[0] * res).astype(_F32)[:, None]
    u, v = x * ca + y * sa, y * ca - x * sa
    cu, cw = _F32(vil.cell_m[0]), _F32(vil.cell_m[1])

    def houses(du: float, dv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        uu, vv = u + _F32(du), v + _F32(dv)
        iu, iv = np.floor(uu / cu), np.floor(vv / cw)
        fu, fv = uu - iu * cu, vv - iv * cw
        hh = _hash(vil.key, iu.astype(np.int64), iv.astype(np.int64))
        y0 = 0.6 + 1.5 * _u01(hh, 2)
        y1 = np.minimum(y0 + 6.5 + 4 * _u01(hh, 3), cw - 0.8)
        bld = (fu > 0.3 + 1.5 * _u01(hh, 0)) & (fu < cu - 0.3 - 1.5 * _u01(hh, 1)) & (fv > y0) & (fv < y1)
        return bld & ((hh >> np.uint32(29)) != 0), hh, fv, (y0 + y1) / 2  # 1 cell in 8 is a garden

    bld, hh, fv, ridge = houses(0.0, 0.0)
    h2 = _hash(vil.key ^ 0x5A5A5A5A, hh)
    roof0 = _ROOF_LUT[h2 & np.uint32(255)]
    roofs = (roof0, np.where(_u01(h2, 3) < 0.04, (roof0 + 3) % len(_ROOFS), roof0))  # a few re-roofed houses
    ground = _MAT[_L.SETTLEMENT][:, None, None] * (0.8 + 0.4 * _noise(cv.key(14), ys, xs, 3.0))[None]
    trees = (_noise(cv.key(15), ys, xs, 7.0) > 0.68) & ~bld
    tree_c = _TREE[:, None, None] * (0.5 + _noise(cv.key(16), ys, xs, 2.0))[None]
    pitch = np.where(fv < ridge, _F32(1.06), _F32(0.93)) * (0.95 + 0.1 * _noise(cv.key(17), ys, xs, 1.5))
    for t in (0, 1):
        sy, sx = (q * res * vil.height_m for q in cv.spec.sun[t])
        shadow = ~bld & houses(float(sx * ca + sy * sa), float(sy * ca - sx * sa))[0]
        c = np.where(bld[None], np.take(_ROOFS.T, roofs[t], axis=1) * pitch[None], ground)
        c = np.where(trees[None], tree_c * cv.canopy[t], c)
        c = np.where(shadow[None], c * _SHADOW, c)
        k = np.where(bld, np.uint8(_L.BUILDING), np.where(trees, np.uint8(_L.FOREST), np.uint8(_L.SETTLEMENT)))
        cv.put(t, sl, inside, c, k)


def _site_colour(cv: _Canvas, site: Site, box: tuple[Any, ...], sun: tuple[float, float]) -> tuple[np.ndarray, ...]:
    sl, r0, c0, h, w = box
    ys, xs = cv.ys[sl[0]], cv.xs[sl[1]]
    fine = _noise(cv.key(18), ys, xs, 1.5)
    tex = (1 + 0.22 * (fine - 0.5) + 0.16 * (_noise(cv.key(19), ys, xs, 9.0) - 0.5))[None]
    patches = np.clip((_noise(cv.key(21), ys, xs, 14.0) - 0.35) * 3, 0, 1)[None]  # mixed soils, not one colour
    c = _blend(_SOILS[site.soil][:, None, None], _SOILS[(site.soil + 1) % len(_SOILS)], patches * 0.7) * tex
    k = np.full((h, w), _L.SITE, np.uint8)
    shade = np.ones((h, w), _F32)
    for y0, x0, y1, x1, width in site.tracks:
        d = _path_distance(((y0, x0), (y1, x1)), r0, c0, h, w, width / 2 + 1)
        c = _blend(c, _TRACK * 1.2, 0.7 * np.clip(width / 2 - d + 0.5, 0, 1)[None])
    if site.pit is not None:  # wetter, darker floor; the wall on the sun side shades the floor behind it
        pit = _fill(site.pit, r0, c0, h, w)
        lit = _fill(site.pit, r0, c0, h, w, sun[0] * site.pit_depth_m, sun[1] * site.pit_depth_m)
        c = np.where(pit[None], c * _F32(0.7), c)
        shade[pit & ~lit] *= 0.4
    rows = (r0 + np.arange(h) + 0.5)[:, None]
    cols = (c0 + np.arange(w) + 0.5)[None, :]
    norm = math.hypot(*sun) or 1.0
    for i, (hy, hx, rad) in enumerate(site.heaps):
        dy, dx = rows - hy, cols - hx
        heap = dy * dy + dx * dx < rad * rad * (0.6 + 0.7 * fine)  # ragged rim
        lift = 0.45 * rad * cv.spec.resolution_m  # heap height in metres
        cast = (dy + sun[0] * lift) ** 2 + (dx + sun[1] * lift) ** 2 < rad * rad
        shade = np.where(heap, (1 + 0.5 * (dy * sun[0] + dx * sun[1]) / (norm * rad)).astype(_F32), shade)
        shade[cast & ~heap] *= 0.55
        c = np.where(heap[None], _SOILS[(site.soil + 1 + i) % len(_SOILS)][:, None, None] * 0.95 * tex, c)
    if site.net is not None:
        net = _fill(site.net, r0, c0, h, w)
        seams = np.where(_tri((ys[:, None] + xs[None, :]) / 6.0) < 0.06, _F32(0.8), _F32(1.0))
        c = np.where(net[None], _MAT[_L.DUST_NET][:, None, None] * ((0.7 + 0.5 * fine) * seams)[None], c)
        k[net] = _L.DUST_NET
    for hut in site.huts:
        roof = _fill(hut, r0, c0, h, w)
        shade[~roof & _fill(hut, r0, c0, h, w, sun[0] * 3, sun[1] * 3)] *= 0.4
        c = np.where(roof[None], _HUT[:, None, None], c)
        k[roof] = _L.BUILDING
    return c * shade[None], k


def _paint_site(cv: _Canvas, site: Site) -> None:
    box = cv.sub(site.bbox, 1)
    if box is None:
        return
    sl, r0, c0, h, w = box
    inside = _fill(site.polygon, r0, c0, h, w)
    if not inside.any():
        return
    for t in (1,) if site.is_new else (0, 1):
        c, k = _site_colour(cv, site, box, cv.spec.sun[t])
        cv.put(t, sl, inside, c, k)
    if site.is_new:
        cv.change[sl][inside] = 1


def _paint_haze(cv: _Canvas) -> None:
    for date, threshold, opacity in cv.spec.haze:
        n = _fractal(cv.key(20), cv.ys, cv.xs, (900.0, 300.0, 90.0, 30.0))
        alpha = np.clip((n - threshold) / 0.15, 0, 1) * _F32(opacity)
        cast = _fractal(cv.key(20), cv.ys + 250, cv.xs - 120, (900.0, 300.0, 90.0, 30.0))  # the haze's shadow
        dim = 1 - 0.3 * np.clip((cast - threshold) / 0.15, 0, 1) * (1 - alpha)
        cv.col[date] = _blend(cv.col[date] * dim[None], _HAZE, alpha[None])


def _compose(spec: SceneSpec, r0: int, c0: int, h: int, w: int) -> _Canvas:
    cv = _Canvas(spec, r0, c0, h, w)
    _paint_fields(cv)
    _paint_natural(cv)
    r1, c1 = r0 + h, c0 + w
    for wt in spec._touching("water", r0 - 2, c0 - 2, r1 + 2, c1 + 2):
        _paint_water(cv, wt)
    for rd in spec._touching("roads", r0 - 2, c0 - 2, r1 + 2, c1 + 2):
        _paint_road(cv, rd)
    for vil in spec._touching("villages", r0, c0, r1, c1):
        _paint_village(cv, vil)
    for site in spec._touching("sites", r0 - 1, c0 - 1, r1 + 1, c1 + 1):
        _paint_site(cv, site)
    _paint_haze(cv)
    return cv


def _check_window(spec: SceneSpec, row_off: int, col_off: int, height: int, width: int) -> None:
    for name, v in (("row_off", row_off), ("col_off", col_off), ("height", height), ("width", width)):
        if not isinstance(v, int | np.integer) or v < (1 if name in ("height", "width") else 0):
            raise ValueError(f"{name} must be a {'positive' if name in ('height', 'width') else 'non-negative'} "
                             f"integer, got {v!r}")
    if row_off + height > spec.height or col_off + width > spec.width:
        raise ValueError(f"window rows {row_off}..{row_off + height}, cols {col_off}..{col_off + width} leaves the "
                         f"{spec.height} x {spec.width} scene; shrink height/width")


def _finish(spec: SceneSpec, cv: _Canvas, t: int, row_off: int, col_off: int, h: int, w: int,
            dtype: str) -> np.ndarray:
    """Blur (sensor PSF), shift the after date by ``shift_px``, apply radiometry and noise, quantise."""
    a = cv.col[t]
    b = 0.25 * a[:, :-2] + 0.5 * a[:, 1:-1] + 0.25 * a[:, 2:]
    b = 0.25 * b[:, :, :-2] + 0.5 * b[:, :, 1:-1] + 0.25 * b[:, :, 2:]  # b[i, j] is canvas pixel (i + 1, j + 1)
    off = _MARGIN - 1
    if t == 0:
        out = b[:, off:off + h, off:off + w]
    else:
        dy, dx = spec.shift_px
        iy, ix = math.floor(dy), math.floor(dx)
        fy, fx = _F32(dy - iy), _F32(dx - ix)
        i, j = off + iy, off + ix
        top = b[:, i:i + h, j:j + w] * (1 - fx) + b[:, i:i + h, j + 1:j + 1 + w] * fx
        bottom = b[:, i + 1:i + 1 + h, j:j + w] * (1 - fx) + b[:, i + 1:i + 1 + h, j + 1:j + 1 + w] * fx
        out = top * (1 - fy) + bottom * fy
    out = out * np.asarray(spec.gain[t], _F32)[:, None, None] + np.asarray(spec.offset[t], _F32)[:, None, None]
    hh = _hash(cv.key(30 + t), np.arange(row_off, row_off + h)[:, None], np.arange(col_off, col_off + w)[None, :])
    q = np.empty((4, h, w), np.uint16)
    for band in range(4):
        np.clip(np.rint((out[band] + (_u01(hh, band) - 0.5) * _F32(0.012)) * 10000), 0, 10000, out=out[band])
        q[band] = out[band]
    if dtype == "uint16":
        return q
    return np.stack([_LUT8[band][q[band]] for band in range(4)])


def render_window(spec: SceneSpec, *, row_off: int, col_off: int, height: int, width: int,
                  dtype: str = "uint8") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one window of the scene: ``(before, after, change)``.

    ``before`` and ``after`` are ``(4, height, width)`` arrays of ``dtype`` ("uint8" display stretch, or
    "uint16" reflectance x 10000), bands :data:`BAND_NAMES`; ``change`` is ``(height, width)`` uint8,
    1 on new disturbance. Pixels equal those of the same region of a whole-scene render.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES!r}, got {dtype!r}")
    _check_window(spec, row_off, col_off, height, width)
    m = _MARGIN
    cv = _compose(spec, row_off - m, col_off - m, height + 2 * m, width + 2 * m)
    before, after = (_finish(spec, cv, t, row_off, col_off, height, width, dtype) for t in (0, 1))
    return before, after, cv.change[m:m + height, m:m + width].copy()


def render_classes(spec: SceneSpec, *, row_off: int, col_off: int, height: int,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """:class:`LandCover` of each pixel on each date, two ``(height, width)`` uint8 arrays (before grid)."""
    _check_window(spec, row_off, col_off, height, width)
    cv = _compose(spec, row_off, col_off, height, width)
    return cv.cls[0], cv.cls[1]


@dataclass(frozen=True, eq=False)
class SyntheticScene:
    """A whole rendered scene: ``before``/``after`` ``(4, h, w)``, ``change`` ``(h, w)`` uint8 0/1.

    ``sites`` lists the new sites (label 1) as dicts with ``id``, ``kind``, ``area_m2`` and ``bbox``
    ``(row_min, col_min, row_max, col_max)`` in pixels (max exclusive), see :meth:`SceneSpec.site_records`.
    """

    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    change: np.ndarray = field(repr=False)
    spec: SceneSpec
    sites: list[dict[str, Any]] = field(default_factory=list, repr=False)
    band_names: tuple[str, ...] = BAND_NAMES


def make_scene(*, height: int, width: int, resolution_m: float = 1.0, seed: int = 0, dtype: str = "uint8",
               site_density: float = 1.0, seasonal: float = 0.0, river: float = 0.0) -> SyntheticScene:
    """Build and render a whole scene in memory (for small scenes; use :func:`render_window` for large ones)."""
    spec = make_spec(height=height, width=width, resolution_m=resolution_m, seed=seed, site_density=site_density,
                     seasonal=seasonal, river=river)
    before, after, change = render_window(spec, row_off=0, col_off=0, height=height, width=width, dtype=dtype)
    return SyntheticScene(before=before, after=after, change=change, spec=spec, sites=spec.site_records())
