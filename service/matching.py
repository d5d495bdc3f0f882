"""Compliance judgement (合规性判别) of disturbance patches against approved projects; pure, no I/O.

Inputs are shapely geometries in one **metric** CRS (metres); outputs one :class:`MatchResult` per
patch. The rules (DOMAIN.md), with thresholds from :class:`MatchThresholds`:

* smaller than ``min_patch_area_m2`` → ``too_small`` (not judged);
* overlaps no project → ``suspected_relocated`` 疑似建设地点变更 when a candidate project lies within
  ``relocation_distance_m``, else ``suspected_unapproved`` 疑似未批先建;
* overlaps projects, but the part outside all of them is both more than ``max_outside_share`` of the
  patch and at least ``min_outside_area_m2`` → ``suspected_out_of_bounds`` 疑似超出防治责任范围;
* otherwise → ``compliant`` 合规.

Schematic outlines (矢量化类型 示意性范围) only say roughly where a project is, so they are grown by
``schematic_tolerance_m`` before overlap and distance are measured.

Vectorised with an STRtree and shapely 2 array functions, no per-patch geometry calls: all patch ×
project candidate pairs come from one bulk query; a patch inside a project is recognised by a
prepared ``contains`` test and needs no intersection; the other pairs are intersected in one call;
only patches lying partly in several projects union their pieces (one ``union_all`` over a padded
array); nearest projects come from a bounded ``dwithin`` pass, then ``query_nearest`` for the rest.
Results agree with the plain per-patch rules up to floating-point rounding (property test in
``tests/service/test_matching.py``); exact ties (equal overlap areas, equal distances) go to the
lower project index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from service.vocab import Category

__all__ = ["MatchThresholds", "ProjectOverlap", "MatchResult", "match_patches"]


@dataclass(frozen=True)
class MatchThresholds:
    """Thresholds of the judgement; areas in m², distances in m, shares in [0, 1]."""

    min_patch_area_m2: float = 200.0
    max_outside_share: float = 0.3
    min_outside_area_m2: float = 500.0
    relocation_distance_m: float = 1000.0
    schematic_tolerance_m: float = 200.0

    def __post_init__(self) -> None:
        for name in ("min_patch_area_m2", "min_outside_area_m2", "relocation_distance_m", "schematic_tolerance_m"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.max_outside_share <= 1:
            raise ValueError(f"max_outside_share must be within [0, 1], got {self.max_outside_share!r}")

    @classmethod
    def from_settings(cls, settings: object) -> MatchThresholds:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ProjectOverlap:
    """A project (its index in the input) overlapping a patch: area in m², share of the patch area."""

    project: int
    overlap_area_m2: float
    overlap_share: float


@dataclass(frozen=True)
class MatchResult:
    """The judgement of one patch; ``nearest_project`` indexes the input projects."""

    category: Category
    reason: str
    area_m2: float
    overlap_area_m2: float
    outside_area_m2: float
    outside_share: float
    nearest_project: int | None
    nearest_distance_m: float | None
    overlaps: tuple[ProjectOverlap, ...] = ()


def match_patches(
    patches: Sequence[BaseGeometry] | np.ndarray,
    projects: Sequence[BaseGeometry] | np.ndarray,
    *,
    thresholds: MatchThresholds | None = None,
    schematic: Sequence[bool] | np.ndarray | None = None,
    relocation_candidates: Sequence[bool] | np.ndarray | None = None,
) -> list[MatchResult]:
    """Judge each patch against the projects (all in one metric CRS).

    ``schematic[j]`` marks project ``j`` as a schematic outline; ``relocation_candidates[j]`` says
    whether project ``j`` may explain a nearby patch as 建设地点变更 (default: all may).

    A patch's ``overlaps`` are sorted by overlap area, largest first (ties: lower project index
    first), and its ``nearest_project`` is the first of them; a patch overlapping nothing gets the
    nearest candidate project (ties in distance: lower index).
    """
    t = thresholds or MatchThresholds()
    patch_arr = np.asarray(patches, dtype=object)
    project_arr = np.asarray(projects, dtype=object)
    n, m = len(patch_arr), len(project_arr)
    if schematic is not None and len(schematic) != m:
        raise ValueError(f"schematic has {len(schematic)} flags for {m} projects; give one per project")
    if relocation_candidates is not None and len(relocation_candidates) != m:
        raise ValueError(f"relocation_candidates has {len(relocation_candidates)} flags for {m} projects")
    if m and schematic is not None and np.any(schematic):
        grown = np.asarray(schematic, dtype=bool)
        project_arr = project_arr.copy()
        project_arr[grown] = shapely.buffer(project_arr[grown], t.schematic_tolerance_m)
    areas = np.asarray(shapely.area(patch_arr), dtype=float) if n else np.zeros(0)
    judged = areas >= t.min_patch_area_m2  # NaN (a missing geometry) is not judged

    tree = shapely.STRtree(project_arr) if m else None
    src, dst, inter, covered = _overlaps(patch_arr, project_arr, areas, judged, tree)
    overlapping = np.zeros(n, dtype=bool)
    overlapping[src] = True
    pool = np.arange(m) if relocation_candidates is None else np.flatnonzero(np.asarray(relocation_candidates, bool))
    lonely = np.flatnonzero(judged & ~overlapping)
    shared_tree = tree if relocation_candidates is None else None  # the pool is all projects: reuse the tree
    near_idx, near_dist = _nearest(patch_arr[lonely], project_arr, pool, shared_tree)
    nearest = np.full(n, -1, dtype=np.intp)
    distance = np.full(n, np.nan)
    nearest[lonely], distance[lonely] = near_idx, near_dist

    outside = np.maximum(areas - covered, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(areas != 0, outside / areas, 0.0)
    starts = np.searchsorted(src, np.arange(n + 1)).tolist()
    hit_project, hit_area = dst.tolist(), inter.tolist()
    results: list[MatchResult] = []
    rows = zip(areas.tolist(), covered.tolist(), outside.tolist(), share.tolist(), nearest.tolist(),
               distance.tolist(), strict=True)  # fmt: skip
    for i, (area, cover, out, sh, near, dist) in enumerate(rows):
        a, b = starts[i], starts[i + 1]
        if a < b:
            pieces = zip(hit_project[a:b], hit_area[a:b], strict=True)
            over = tuple(ProjectOverlap(j, x, x / area if area else 0.0) for j, x in pieces)
            category, reason = _categorise(t, area, True, out, sh, None)
            results.append(MatchResult(category, reason, area, cover, out, sh, over[0].project, 0.0, over))
        else:
            near_or_none = near if near >= 0 else None
            dist_or_none = dist if near >= 0 else None
            category, reason = _categorise(t, area, False, out, sh, dist_or_none)
            results.append(MatchResult(category, reason, area, cover, out, sh, near_or_none, dist_or_none))
    return results


def _overlaps(
    patches: np.ndarray, projects: np.ndarray, areas: np.ndarray, judged: np.ndarray, tree: shapely.STRtree | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping (patch, project) pairs and each patch's area covered by the union of its projects.

    Returns ``(patch index, project index, overlap area m²)`` per pair, sorted by patch, then overlap
    area (largest first), then project, and ``covered`` (m², one per patch). Only pairs with a
    positive overlap area count: touching along an edge is not overlapping.

    Done in bulk: a patch inside a project (a prepared ``contains`` test) needs no intersection and
    is covered whole; the others are intersected pair by pair in one vectorised call, and only a
    patch that lies partly in several projects needs the union of its pieces (``union_all`` over the
    rows of a padded array), so shared ground is not counted twice.
    """
    n = len(patches)
    covered = np.zeros(n)
    empty = np.zeros(0, dtype=np.intp)
    idx = np.flatnonzero(judged)
    if tree is None or not idx.size:
        return empty, empty, np.zeros(0), covered
    src, dst = tree.query(patches[idx], predicate="intersects")
    src = idx[src]
    hit = projects[np.unique(dst)]
    was_prepared = shapely.is_prepared(hit)
    shapely.prepare(hit)
    try:
        inside = shapely.contains(projects[dst], patches[src])
    finally:  # do not leave the caller's geometries prepared (memory)
        shapely.destroy_prepared(hit[~was_prepared])
    inter = np.where(inside, areas[src], 0.0)
    pieces = np.full(src.size, None, dtype=object)
    cut = np.flatnonzero(~inside)
    pieces[cut] = shapely.intersection(patches[src[cut]], projects[dst[cut]])
    inter[cut] = shapely.area(pieces[cut])
    keep = inter > 0
    src, dst, inter, pieces, inside = src[keep], dst[keep], inter[keep], pieces[keep], inside[keep]
    order = np.lexsort((dst, -inter, src))
    src, dst, inter, pieces, inside = src[order], dst[order], inter[order], pieces[order], inside[order]

    counts = np.bincount(src, minlength=n)
    whole = np.zeros(n, dtype=bool)
    whole[src[inside]] = True
    single = counts == 1
    covered[single] = np.bincount(src, weights=inter, minlength=n)[single]
    covered[whole] = areas[whole]
    partial = np.flatnonzero((counts > 1) & ~whole)  # partly inside several projects: union of the pieces
    if partial.size:
        mask = np.isin(src, partial)
        row = np.searchsorted(partial, src[mask])
        first = np.searchsorted(src, partial)
        col = np.flatnonzero(mask) - first[row]
        grid = np.full((partial.size, int(counts[partial].max())), None, dtype=object)
        grid[row, col] = pieces[mask]
        covered[partial] = shapely.area(shapely.union_all(grid, axis=1))
    return src, dst, inter, covered


def _nearest(
    patches: np.ndarray, projects: np.ndarray, pool: np.ndarray, tree: shapely.STRtree | None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest project of ``pool`` (indices into ``projects``) to each of ``patches``, and its distance (m).

    Returns ``(project index, distance)`` per patch; index -1 and NaN when the pool is empty. Ties in
    distance go to the lower project index. ``tree`` is an STRtree of all ``projects`` when ``pool``
    is all of them (reused), else None.

    Two passes: every pool project within a first radius (about half the mean project spacing) is
    measured in one vectorised call, which settles the patches with a project that close; the rest
    go to ``STRtree.query_nearest``. Both give the exact nearest project.
    """
    k = len(patches)
    nearest, distance = np.full(k, -1, dtype=np.intp), np.full(k, np.nan)
    if not k or not pool.size:
        return nearest, distance
    geoms = projects[pool]
    if tree is None:
        tree = shapely.STRtree(geoms)
    min_x, min_y, max_x, max_y = shapely.total_bounds(geoms)
    radius = 0.5 * float(np.sqrt(max((max_x - min_x) * (max_y - min_y), 0.0) / pool.size))
    todo = np.arange(k)
    if radius > 0:
        src, dst = tree.query(patches, predicate="dwithin", distance=radius)
        dist = shapely.distance(patches[src], geoms[dst])
        order = np.lexsort((dst, dist, src))
        src, dst, dist = src[order], dst[order], dist[order]
        first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if src.size else np.zeros(0, dtype=np.intp)
        # within the radius every closer project was measured too; keep a margin for rounding
        sure = first[dist[first] < radius * 0.999]
        nearest[src[sure]], distance[src[sure]] = pool[dst[sure]], dist[sure]
        todo = np.flatnonzero(nearest < 0)
    if todo.size:
        (src, dst), dist = tree.query_nearest(patches[todo], return_distance=True, all_matches=True)
        order = np.lexsort((dst, src))
        src, dst, dist = src[order], dst[order], dist[order]
        first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
        nearest[todo[src[first]]], distance[todo[src[first]]] = pool[dst[first]], dist[first]
    return nearest, distance


def _categorise(
    t: MatchThresholds, area: float, overlapping: bool, outside: float, share: float, dist: float | None
) -> tuple[Category, str]:
    if area < t.min_patch_area_m2:
        return Category.too_small, f"area {area:.0f} m² is below min_patch_area_m2 {t.min_patch_area_m2:g}"
    if overlapping:
        if share > t.max_outside_share and outside >= t.min_outside_area_m2:
            return Category.suspected_out_of_bounds, (
                f"{outside:.0f} m² ({share:.0%}) lies outside the approved responsibility area "
                f"(limits {t.max_outside_share:.0%} and {t.min_outside_area_m2:g} m²)"
            )
        return Category.compliant, f"inside an approved responsibility area ({share:.0%} outside)"
    if dist is not None and dist <= t.relocation_distance_m:
        return Category.suspected_relocated, (
            f"no approved project here; one lies {dist:.0f} m away (within {t.relocation_distance_m:g} m)"
        )
    where = f"; nearest is {dist:.0f} m away" if dist is not None else ""
    return Category.suspected_unapproved, f"overlaps no approved project{where}"
