"""Wiring of :mod:`service.matching` to the database: judge patches, and re-judge them when the list changes.

Every category change is an audit event on the patch (``action="rematched"``) whose ``reason`` says
what triggered it (a scan, an import, an edited or deleted project), so a patch's history explains
why its category changed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from shapely.geometry.base import BaseGeometry
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service import audit, zones
from service.core.config import Settings
from service.geometry import WGS84, metric_crs_for, reproject
from service.matching import MatchThresholds, match_patches
from service.models import Patch, PatchMatch, Project, User, utcnow
from service.projects import bbox_clause
from service.vocab import CATEGORY_PRIORITY, VectorType

__all__ = ["judge_patches", "rematch_areas", "search_margin_m", "NOT_RELOCATION_STATES"]

#: Projects in these 建设状态 cannot explain a new disturbance nearby as 建设地点变更.
NOT_RELOCATION_STATES = frozenset({"完工", "已验收"})


def search_margin_m(settings: Settings) -> float:
    """How far around a patch projects matter: the relocation distance plus the schematic tolerance."""
    return max(settings.relocation_distance_m, 1000.0) + settings.schematic_tolerance_m


def _expand(bounds: tuple[float, float, float, float], margin_m: float) -> tuple[float, float, float, float]:
    min_x, min_y, max_x, max_y = bounds
    dy = margin_m / 111_320.0
    dx = margin_m / (111_320.0 * max(math.cos(math.radians(max(abs(min_y), abs(max_y)))), 0.01))
    return (min_x - dx, min_y - dy, max_x + dx, max_y + dy)


def judge_patches(
    session: Session, settings: Settings, patches: Iterable[Patch], *, reason: str, user: User | None = None
) -> int:
    """(Re-)judge ``patches`` against the projects around them; returns how many changed category."""
    thresholds = MatchThresholds.from_settings(settings)
    groups: dict[int, list[Patch]] = defaultdict(list)
    for patch in patches:
        groups[metric_crs_for(patch.lon, patch.lat).to_epsg() or 0].append(patch)
    changed = 0
    for epsg, group in groups.items():
        metric = metric_crs_for(group[0].lon, group[0].lat)
        bounds = (
            min(p.min_x or p.lon for p in group),
            min(p.min_y or p.lat for p in group),
            max(p.max_x or p.lon for p in group),
            max(p.max_y or p.lat for p in group),
        )
        window = _expand(bounds, search_margin_m(settings))
        projects = session.scalars(select(Project).where(bbox_clause(Project, window))).all()
        del epsg
        results = match_patches(
            [reproject(p.geometry, WGS84, metric) for p in group],
            [reproject(p.geometry, WGS84, metric) for p in projects],
            thresholds=thresholds,
            schematic=np.array([p.vector_type == VectorType.schematic for p in projects], dtype=bool),
            relocation_candidates=np.array(
                [(p.construction_state or "") not in NOT_RELOCATION_STATES for p in projects], dtype=bool
            ),
        )
        now = utcnow()
        for patch, result in zip(group, results, strict=True):
            before = {"category": patch.category, "category_reason": patch.category_reason}
            patch.category = result.category.value
            patch.priority = CATEGORY_PRIORITY[result.category]
            patch.category_reason = result.reason
            patch.overlap_area_m2 = result.overlap_area_m2
            patch.outside_area_m2 = result.outside_area_m2
            patch.outside_share = result.outside_share
            near = projects[result.nearest_project] if result.nearest_project is not None else None
            patch.nearest_project_id = near.id if near is not None else None
            patch.nearest_distance_m = result.nearest_distance_m
            patch.matched_at = now
            patch.matches = [
                PatchMatch(project_id=projects[o.project].id, overlap_area_m2=o.overlap_area_m2,
                           overlap_share=o.overlap_share, distance_m=0.0)
                for o in result.overlaps
            ]  # fmt: skip
            if before["category"] != patch.category:
                session.flush()
                after = {"category": patch.category, "category_reason": patch.category_reason}
                action = "judged" if before["category"] is None else "rematched"
                audit.record(session, user, patch, action, before=before, after=after, reason=reason)
                changed += 1
    session.flush()
    zones.rank_patches(session, [p for group in groups.values() for p in group], reason=reason, user=user)
    return changed


#: Areas per query in :func:`rematch_areas`: SQLite refuses an expression deeper than 1,000 terms, which an
#: OR of every changed project's box reached with an import of ~1,000 projects.
_CLAUSES_PER_QUERY = 200


def rematch_areas(
    session: Session, settings: Settings, areas: Iterable[BaseGeometry], *, reason: str, user: User | None = None
) -> int:
    """Re-judge the patches near ``areas`` (old and new outlines of changed projects)."""
    margin = search_margin_m(settings)
    clauses = [bbox_clause(Patch, _expand(area.bounds, margin)) for area in areas if not area.is_empty]
    found: dict[int, Patch] = {}
    for start in range(0, len(clauses), _CLAUSES_PER_QUERY):
        for patch in session.scalars(select(Patch).where(or_(*clauses[start : start + _CLAUSES_PER_QUERY]))):
            found[patch.id] = patch
    patches = [found[key] for key in sorted(found)]
    return judge_patches(session, settings, patches, reason=reason, user=user) if patches else 0
