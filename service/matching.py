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

Vectorised with an STRtree: all patch × project candidate pairs come from one bulk query, and the
intersection areas from one vectorised call.
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
    areas = shapely.area(patch_arr) if n else np.zeros(0)
    judged = areas >= t.min_patch_area_m2

    pairs = np.empty((2, 0), dtype=np.intp)
    if m and n:
        tree = shapely.STRtree(project_arr)
        pairs = tree.query(patch_arr, predicate="intersects")
        pairs = pairs[:, judged[pairs[0]]]
    inter = shapely.area(shapely.intersection(patch_arr[pairs[0]], project_arr[pairs[1]])) if pairs.size else []
    inter = np.asarray(inter, dtype=float)
    keep = inter > 0  # touching along an edge is not overlapping
    pairs, inter = pairs[:, keep], inter[keep]

    covered = np.zeros(n)
    overlaps: dict[int, list[tuple[int, float]]] = {}
    for i, j, a in zip(pairs[0].tolist(), pairs[1].tolist(), inter.tolist(), strict=True):
        overlaps.setdefault(i, []).append((j, a))
    for i, hits in overlaps.items():
        if len(hits) == 1:
            covered[i] = hits[0][1]
        else:  # overlapping projects: do not count shared ground twice
            union = shapely.union_all(project_arr[[j for j, _ in hits]])
            covered[i] = shapely.area(shapely.intersection(patch_arr[i], union))

    nearest, distance = _nearest(patch_arr, project_arr, judged, overlaps, relocation_candidates)
    results: list[MatchResult] = []
    for i in range(n):
        area = float(areas[i])
        hits = sorted(overlaps.get(i, ()), key=lambda h: -h[1])
        over = tuple(ProjectOverlap(j, a, a / area if area else 0.0) for j, a in hits)
        outside = max(area - float(covered[i]), 0.0)
        share = outside / area if area else 0.0
        near = nearest.get(i)
        dist = distance.get(i)
        category, reason = _categorise(t, area, bool(hits), outside, share, dist)
        if hits:
            near, dist = hits[0][0], 0.0
        results.append(MatchResult(category, reason, area, float(covered[i]), outside, share, near, dist, over))
    return results


def _nearest(
    patches: np.ndarray,
    projects: np.ndarray,
    judged: np.ndarray,
    overlaps: dict[int, list[tuple[int, float]]],
    candidates: Sequence[bool] | np.ndarray | None,
) -> tuple[dict[int, int], dict[int, float]]:
    """Nearest candidate project (index into ``projects``) and distance for judged, non-overlapping patches."""
    lonely = np.array([i for i in np.flatnonzero(judged) if i not in overlaps], dtype=np.intp)
    pool = np.arange(len(projects)) if candidates is None else np.flatnonzero(np.asarray(candidates, dtype=bool))
    if not lonely.size or not pool.size:
        return {}, {}
    tree = shapely.STRtree(projects[pool])
    (src, dst), dist = tree.query_nearest(patches[lonely], return_distance=True, all_matches=False)
    nearest = {int(lonely[s]): int(pool[d]) for s, d in zip(src, dst, strict=True)}
    distance = {int(lonely[s]): float(x) for s, x in zip(src, dist, strict=True)}
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
