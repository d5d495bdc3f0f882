"""Pairing: each new date of imagery with the most recent earlier imagery that covers it.

New scenes (catalogued, never the "after" side of a nightly job) are grouped by date and CRS; a group
is one "after" mosaic. Its "before" is the latest earlier date whose scenes (in one CRS) cover at
least ``min_cover`` of it — else the earlier date that covers most. A group with no earlier imagery
is a baseline: recorded, nothing to compare.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Imagery, NightlyJob
from service.projects import bbox_clause

__all__ = ["PairSpec", "new_scene_ids", "pair_scenes"]


@dataclass(frozen=True)
class PairSpec:
    after_ids: tuple[int, ...]
    before_ids: tuple[int, ...]
    after_date: dt.date
    before_date: dt.date | None
    cover: float  # share of the after footprint the before scenes cover (degrees², for ranking only)

    def key(self, model: str, unit_px: int) -> str:
        text = json.dumps([list(self.after_ids), list(self.before_ids), model, unit_px])
        return hashlib.sha256(text.encode()).hexdigest()


def new_scene_ids(session: Session) -> list[int]:
    """Catalogued scenes with a footprint that no nightly job has scanned as its "after" side yet."""
    seen = {i for ids in session.scalars(select(NightlyJob.after_ids)) for i in ids}
    rows = session.scalars(select(Imagery.id).where(Imagery.footprint.is_not(None)).order_by(Imagery.id))
    return [i for i in rows if i not in seen]


def _union(rows: list[Imagery]) -> BaseGeometry:
    return unary_union([r.footprint for r in rows if r.footprint is not None])


def pair_scenes(session: Session, new_ids: list[int], *, min_cover: float = 0.95) -> list[PairSpec]:
    """One :class:`PairSpec` per (date, CRS) group of the new scenes, oldest date first."""
    groups: dict[tuple[dt.date, str], list[Imagery]] = defaultdict(list)
    for row in session.scalars(select(Imagery).where(Imagery.id.in_(new_ids)).order_by(Imagery.id)):
        groups[(row.acquired_on, row.crs or "")].append(row)
    out = []
    for (date, _crs), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        area = _union(rows)
        earlier = session.scalars(
            select(Imagery).where(Imagery.acquired_on < date, Imagery.footprint.is_not(None),
                                  bbox_clause(Imagery, area.bounds)).order_by(Imagery.id)  # fmt: skip
        ).all()
        by_date: dict[dt.date, list[Imagery]] = defaultdict(list)
        for r in earlier:
            if r.footprint is not None and r.footprint.intersects(area):
                by_date[r.acquired_on].append(r)
        best: tuple[float, dt.date, list[Imagery]] | None = None
        for day in sorted(by_date, reverse=True):
            scenes = _one_crs(by_date[day])
            cover = _union(scenes).intersection(area).area / area.area if area.area else 0.0
            if cover >= min_cover:
                best = (cover, day, scenes)
                break
            if best is None or cover > best[0]:
                best = (cover, day, scenes)
        after_ids = tuple(r.id for r in rows)
        if best is None:
            out.append(PairSpec(after_ids, (), date, None, 0.0))
        else:
            out.append(PairSpec(after_ids, tuple(r.id for r in best[2]), date, best[1], best[0]))
    return out


def _one_crs(rows: list[Imagery]) -> list[Imagery]:
    """The scenes of the most common CRS (a mosaic has one CRS); ties go to the larger footprint."""
    by_crs: dict[str, list[Imagery]] = defaultdict(list)
    for r in rows:
        by_crs[r.crs or ""].append(r)
    return max(by_crs.values(), key=lambda rs: (len(rs), _union(rs).area))
