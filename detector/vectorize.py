"""Probability windows → disturbance polygons: threshold, clean, polygonise, join across seams, tidy.

Works in *grid pixel coordinates* (column, row of the before image) so that polygons cut by a
tile seam share their edges exactly and join without slivers; :func:`to_crs_coords` maps them to
the image CRS at the end. Pure array/geometry code; no files.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from affine import Affine
from rasterio import features
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage
from shapely.geometry import Polygon

__all__ = ["Fragment", "vectorize_tile", "merge_fragments", "tidy_many", "to_crs_coords"]

_CROSS = ndimage.generate_binary_structure(2, 1)  # 4-connectivity: a diagonal touch is two patches


@dataclass
class Fragment:
    """A polygon in grid pixel coordinates with the pixel statistics needed for confidence."""

    geometry: Polygon
    n_px: int
    prob_sum: float
    prob_max: float
    on_seam: bool = False


def clean_mask(binary: np.ndarray, valid: np.ndarray, *, open_px: int = 1, close_px: int = 1) -> np.ndarray:
    """Morphological opening (drops specks) then closing (fills cracks), never into invalid pixels."""
    out = binary & valid
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    if rows.size == 0:
        return out
    # morphology only around the disturbed pixels: most of a scene is quiet
    pad = 2 * (open_px + close_px) + 1
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, out.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, out.shape[1])
    part = out[r0:r1, c0:c1]
    # opening, then closing, 4-connected, outside the part counts as False: what
    # ndimage.binary_opening / binary_closing(structure=_CROSS, border_value=0) give, by shifted slices
    for _ in range(open_px):
        part = _erode(part)
    for _ in range(open_px):
        part = _dilate(part)
    for _ in range(close_px):
        part = _dilate(part)
    for _ in range(close_px):
        part = _erode(part)
    out[r0:r1, c0:c1] = part
    return out & valid


def _erode(a: np.ndarray) -> np.ndarray:
    """Binary erosion by the 4-neighbour cross, pixels beyond the edge False (``border_value=0``)."""
    out = a.copy()
    out[1:] &= a[:-1]
    out[:-1] &= a[1:]
    out[:, 1:] &= a[:, :-1]
    out[:, :-1] &= a[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def _dilate(a: np.ndarray) -> np.ndarray:
    """Binary dilation by the 4-neighbour cross."""
    out = a.copy()
    out[1:] |= a[:-1]
    out[:-1] |= a[1:]
    out[:, 1:] |= a[:, :-1]
    out[:, :-1] |= a[:, 1:]
    return out


def vectorize_tile(
    prob: np.ndarray,
    mask: np.ndarray,
    *,
    col_off: int,
    row_off: int,
    seam_edges: tuple[bool, bool, bool, bool],
    min_px: float = 0.0,
) -> list[Fragment]:
    """Polygons of the True pixels of ``mask`` ``(h, w)`` in one tile core at ``(col_off, row_off)``.

    ``prob`` ``(h, w)`` float32 gives the confidence statistics. ``seam_edges`` says which core edges
    (top, bottom, left, right) touch another tile: fragments reaching them are marked ``on_seam``.
    Fragments of fewer than ``min_px`` pixels that touch no seam are left out (never polygonised).
    """
    labels, n = ndimage.label(mask, structure=_CROSS)
    if n == 0:
        return []
    inside = labels > 0
    lab, p = labels[inside], prob[inside].astype(np.float64)
    counts = np.bincount(lab, minlength=n + 1)[1:]
    sums = np.bincount(lab, weights=p, minlength=n + 1)[1:]
    maxes = np.zeros(n + 1)
    np.maximum.at(maxes, lab, p)
    maxes = maxes[1:]
    seam = np.zeros(n + 1, dtype=bool)
    edges = (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1])
    for edge, is_seam in zip(edges, seam_edges, strict=True):
        if is_seam:
            seam[np.unique(edge)] = True
    if min_px > 0:
        keep = np.concatenate([[False], (counts >= min_px) | seam[1:]])
        if not keep.any():
            return []
        if not keep[1:].all():
            inside = keep[labels]
    with warnings.catch_warnings():
        # pixel coordinates are intended: the first tile's translation is the identity
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        shapes = list(
            features.shapes(
                labels.astype(np.int32, copy=False),
                mask=inside,
                connectivity=4,
                transform=Affine.translation(col_off, row_off),
            )
        )
    if not shapes:
        return []
    # all rings of all polygons in one array, built by shapely in one call: the same polygons as
    # shapely.geometry.shape() of each GeoJSON mapping, without its per-vertex Python work
    points: list[tuple[float, float]] = []
    ring_len: list[int] = []
    ring_poly: list[int] = []
    for k, (geom, _) in enumerate(shapes):
        for ring in geom["coordinates"]:
            points.extend(ring)
            ring_len.append(len(ring))
            ring_poly.append(k)
    rings = shapely.linearrings(
        np.asarray(points, dtype=np.float64), indices=np.repeat(np.arange(len(ring_len)), ring_len)
    )
    polys = shapely.polygons(rings, indices=np.asarray(ring_poly))
    out: list[Fragment] = []
    for poly, (_, value) in zip(polys, shapes, strict=True):
        k = int(value)
        out.append(
            Fragment(
                geometry=poly,
                n_px=int(counts[k - 1]),
                prob_sum=float(sums[k - 1]),
                prob_max=float(maxes[k - 1]),
                on_seam=bool(seam[k]),
            )
        )
    return out


def merge_fragments(fragments: Iterable[Fragment]) -> list[Fragment]:
    """Join fragments that share an edge across tile seams into one patch each."""
    frags = list(fragments)
    seam_idx = [i for i, f in enumerate(frags) if f.on_seam]
    if len(seam_idx) < 2:
        return frags
    geoms = np.array([frags[i].geometry for i in seam_idx])
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    parent = list(range(len(seam_idx)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        # pixel-aligned polygons from neighbouring tiles share whole edges; a corner touch is not a join
        if a < b and shapely.length(shapely.intersection(geoms[a], geoms[b])) > 0:
            parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(seam_idx)):
        groups.setdefault(find(i), []).append(i)
    merged = [f for f in frags if not f.on_seam]
    for members in groups.values():
        parts = [frags[seam_idx[i]] for i in members]
        geom = parts[0].geometry if len(parts) == 1 else shapely.union_all([p.geometry for p in parts])
        for poly in getattr(geom, "geoms", [geom]):  # a join always yields one polygon; be safe anyway
            merged.append(
                Fragment(
                    geometry=poly,
                    n_px=sum(p.n_px for p in parts),
                    prob_sum=sum(p.prob_sum for p in parts),
                    prob_max=max(p.prob_max for p in parts),
                )
            )
    return merged


def tidy_many(
    geoms: Sequence[Polygon], *, min_hole_px: float, min_width_px: float = 1.5, simplify_px: float = 0.5
) -> list[Polygon | None]:
    """Fill holes smaller than ``min_hole_px`` pixels, drop slivers, simplify by at most ``simplify_px``; per polygon,
    with shapely's array functions (one GEOS call per step). None for a dropped polygon.

    A sliver is a polygon whose mean width (2 × area / perimeter) is under ``min_width_px`` pixels.
    Simplification (Douglas–Peucker) never moves the boundary by more than ``simplify_px``; half a pixel turns the
    staircase of pixel edges into straight lines. Rings are normalised first, so the simplified shape does not
    depend on where a ring starts (tile-independent ids).
    """
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    if not len(arr):
        return []
    with_holes = np.flatnonzero(shapely.get_num_interior_rings(arr) > 0)
    for i in with_holes:  # few polygons have holes: rebuilt one by one
        g = arr[i]
        arr[i] = Polygon(g.exterior, [h for h in g.interiors if Polygon(h).area >= min_hole_px])
    arr = shapely.normalize(arr)
    length, area = shapely.length(arr), shapely.area(arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (length != 0) & ~(2 * area / length < min_width_px)
    out: list[Polygon | None] = [None] * len(arr)
    idx = np.flatnonzero(keep)
    simple = shapely.simplify(arr[idx], simplify_px, preserve_topology=True)
    bad = shapely.is_empty(simple) | ~shapely.is_valid(simple)
    for i, geom, is_bad in zip(idx.tolist(), simple, bad.tolist(), strict=True):
        if is_bad:
            fixed = shapely.make_valid(geom)
            polys = [g for g in getattr(fixed, "geoms", [fixed]) if isinstance(g, Polygon)]
            geom = max(polys, key=lambda g: g.area) if polys else None
        out[i] = geom
    return out


def _affine_xy(transform: Affine) -> Callable[[np.ndarray], np.ndarray]:
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def apply(coords: np.ndarray) -> np.ndarray:
        # the arithmetic of shapely.affinity.affine_transform, element by element: the same values
        x, y = coords.T
        return np.stack([a * x + b * y + c, d * x + e * y + f]).T

    return apply


def to_crs_coords(geoms: list[Polygon], transform: Affine) -> list[Polygon]:
    """Map polygons from grid pixel coordinates to the grid's CRS with its affine ``transform``."""
    if not geoms:
        return []
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = geoms
    return list(shapely.transform(arr, _affine_xy(transform)))
