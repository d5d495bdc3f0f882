"""Priority zones (重点监管区域): import them, and rank the patches inside them higher.

A zone (a water-source protection area, an ecological red line, a steep slope …, see
:class:`service.vocab.ZoneKind`) carries a ``weight``: its own 权重 column, else the default of its kind
(``Settings.zone_weights``). A patch that shares area with zones (touching a boundary is not enough)
ranks at ``CATEGORY_PRIORITY[category] + max(weight)`` — the largest weight, not the sum, so that
overlapping layers of the same area (a red line drawn over a water source) do not stack up.
``patch_zones`` lists every zone of a patch and ``Patch.priority_zone_id`` names the one whose weight
counts (the heaviest; the lower id on a tie).

Ranking runs after compliance matching (:func:`service.compliance.judge_patches` calls
:func:`rank_patches`, since matching resets the priority to the category's) and whenever zones change
(:func:`rerank_areas` after an import, :func:`delete_zone`). A change of a patch's zones or of the weight
it gets is an audit event ``reranked`` on the patch, whose reason names the trigger and the zone.

Geometries are EPSG:4326; the intersection test is topological, so degrees are fine for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ColumnElement, Select, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from service import audit
from service.core.config import Settings
from service.errors import ConflictError, ImportFormatError, InvalidInputError
from service.geometry import geodesic_area_m2
from service.models import District, ImportReport, Patch, PriorityZone, User, patch_zones, set_geometry
from service.project_import import (
    FeatureRow,
    ReadResult,
    clean_polygon,
    json_value,
    map_columns,
    read_vector_table,
    text_value,
)
from service.projects import bbox_clause, district_for_row
from service.scope import DistrictScope
from service.vocab import CATEGORY_PRIORITY, ZONE_KIND_ALIASES, ZONE_KIND_KEYWORDS, ZONE_KIND_LABELS, Category, ZoneKind

__all__ = [
    "ZONE_FIELDS",
    "AUDIT_FIELDS",
    "MAX_WEIGHT",
    "ZoneQuery",
    "ZoneFilter",
    "read_zone_file",
    "zone_kind",
    "kind_label",
    "apply_zone_import",
    "search_zones",
    "rank_patches",
    "rerank_areas",
    "delete_zone",
    "edit_zone",
    "zones_of",
    "parse_zone_filter",
    "zone_filter",
]

ZONE_FIELDS = ("name", "kind", "weight", "district_code")
AUDIT_FIELDS = ZONE_FIELDS + ("area_m2",)
#: Weights above this would drown the compliance categories (30, 20, 10, 0) completely.
MAX_WEIGHT = 1000
_CHUNK = 500  # ids per IN (…) query
_CLAUSES_PER_QUERY = 200  # bbox clauses OR-ed in one query

#: ``GET /patches?priority_zone=``: a zone id, or ``"any"`` for patches in any zone.
ZoneFilter = int | Literal["any"]


# ---------------------------------------------------------------------------------------------- reading files
def zone_kind(text: str | None) -> ZoneKind | None:
    """The kind named by ``text`` (a code, a label such as 水源保护区, or a longer name holding a keyword)."""
    if text is None:
        return None
    key = "".join(text.split())
    if key in ZONE_KIND_ALIASES:
        return ZONE_KIND_ALIASES[key]
    if key.casefold() in ZONE_KIND_ALIASES:
        return ZONE_KIND_ALIASES[key.casefold()]
    return next((kind for word, kind in ZONE_KIND_KEYWORDS if word in key), None)


def kind_label(kind: str) -> str | None:
    """The Chinese label of a kind code (水源保护区 for water_source), None for an unknown code."""
    try:
        return ZONE_KIND_LABELS[ZoneKind(kind)]
    except ValueError:
        return None


def read_zone_file(
    path: Path,
    filename: str,
    settings: Settings,
    *,
    workdir: Path,
    crs: str | None = None,
    encoding: str | None = None,
    kind: ZoneKind | None = None,
    weight: int | None = None,
) -> ReadResult:
    """Read a priority-zone file (the formats of the project import) into clean rows.

    Each row's values are ``name``, ``kind`` (a :class:`ZoneKind` code), ``weight`` and ``district_code``
    (or None). ``kind`` and ``weight`` are the defaults for rows without a 类型 / 权重 of their own; a row
    without a kind takes the one its name implies (…水源保护区), else ``other`` with a warning.
    """
    table = read_vector_table(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding)
    mapping = map_columns(list(table.frame.columns), settings.merged_zone_field_map)
    if "name" not in mapping.values():
        columns = ", ".join(str(c) for c in table.frame.columns if c != "geometry") or "none"
        raise ImportFormatError(
            f"{filename!r} has no column for the zone name (e.g. 名称, 区域名称); columns are {columns}; "
            "rename it or add a zone_field_map setting"
        )
    result = table.result(mapping)
    seen: dict[tuple[str, str], int] = {}
    for index, (_, record) in enumerate(table.frame.iterrows(), start=1):
        _read_zone_row(index, record, mapping, table.crs, settings, kind, weight, seen, result)
    return result


def _read_zone_row(
    index: int,
    record: pd.Series,
    mapping: dict[str, str],
    src_crs: Any,
    settings: Settings,
    default_kind: ZoneKind | None,
    default_weight: int | None,
    seen: dict[tuple[str, str], int],
    result: ReadResult,
) -> None:
    raw: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column, value in record.items():
        if column == "geometry":
            continue
        target = mapping.get(str(column))
        if target is None:
            attributes[str(column)] = json_value(value)
        else:
            raw[target] = value
    name = text_value(raw.get("name"))
    if name is None:
        result.error(index, "no 名称 (zone name); every zone needs one")
        return
    kind = _row_kind(text_value(raw.get("kind")), name, default_kind, index, result)
    key = (name, kind.value)
    if key in seen:
        result.error(index, f"duplicate zone {name!r} of kind {kind.value!r} (also row {seen[key]})", name)
        return
    seen[key] = index
    weight = _row_weight(raw.get("weight"), default_weight, kind, settings, index, name, result)
    geom, _ = clean_polygon(record.get("geometry"), src_crs, index, name, settings, result)
    if geom is None:
        return
    values = {"name": name, "kind": kind.value, "weight": weight, "district_code": text_value(raw.get("district_code"))}
    result.rows.append(FeatureRow(index, values, geom, geodesic_area_m2(geom), attributes))


def _row_kind(text: str | None, name: str, default: ZoneKind | None, index: int, result: ReadResult) -> ZoneKind:
    if text is not None:
        kind = zone_kind(text)
        if kind is None:
            result.warn(index, f"unknown 类型 {text!r}; taken as other (其他重点区域)", name)
        return kind or ZoneKind.other
    if default is not None:
        return default
    kind = zone_kind(name)
    if kind is None:
        result.warn(index, "no 类型 (kind); taken as other — add a 类型 column or pass kind with the upload", name)
    return kind or ZoneKind.other


def _row_weight(
    raw: Any, default: int | None, kind: ZoneKind, settings: Settings, index: int, name: str, result: ReadResult
) -> int:
    fallback = default if default is not None else settings.merged_zone_weights[kind.value]
    text = text_value(raw)
    if text is None:
        return fallback
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value.is_integer() and 0 <= value <= MAX_WEIGHT):
        result.warn(index, f"权重 {text!r} is not a whole number from 0 to {MAX_WEIGHT}; used {fallback}", name)
        return fallback
    return int(value)


# ---------------------------------------------------------------------------------------------- the database
@dataclass(frozen=True)
class ZoneQuery:
    """Filters of ``GET /priority-zones``; ``q`` is a case-insensitive substring of the name."""

    q: str | None = None
    kind: str | None = None
    district: str | None = None
    bbox: tuple[float, float, float, float] | None = None


def search_zones(scope: DistrictScope, query: ZoneQuery) -> Select[Any]:
    stmt = scope.apply(select(PriorityZone), PriorityZone.district_code)
    if query.q:
        stmt = stmt.where(func.lower(PriorityZone.name).contains(query.q.lower(), autoescape=True))
    if query.kind:
        stmt = stmt.where(PriorityZone.kind == query.kind)
    if query.district:
        stmt = stmt.where(PriorityZone.district_code == query.district)
    if query.bbox:
        stmt = stmt.where(bbox_clause(PriorityZone, query.bbox))
    return stmt


def apply_zone_import(
    session: Session,
    user: User,
    scope: DistrictScope,
    result: ReadResult,
    filename: str,
    *,
    district_code: str | None = None,
) -> tuple[ImportReport, int]:
    """Create or update zones by (name, kind), then rank the patches where zones appeared, moved or changed
    weight; returns the report and how many patches changed rank."""
    if district_code is not None:
        scope.check(district_code)
    report = ImportReport(
        subject="priority_zones", user_id=user.id, filename=filename[:300], format=result.format,
        source_crs=result.source_crs, encoding=result.encoding, rows_total=result.rows_total,
        field_mapping=result.field_mapping, repaired=result.repaired,
    )  # fmt: skip
    session.add(report)
    session.flush()
    boundaries = session.scalars(select(District)).all()
    names = sorted({row.values["name"] for row in result.rows})
    existing = {
        (z.name, z.kind): z
        for chunk in _chunks(names)
        for z in session.scalars(select(PriorityZone).where(PriorityZone.name.in_(chunk)))
    }
    errors = [_issue(e.row, e.code, e.reason) for e in result.errors]
    changed: list[BaseGeometry] = []
    old_weights: dict[int, int] = {}
    for row in result.rows:
        name, why = row.values["name"], f"import #{report.id} {filename!r} row {row.row}"
        district, problem = district_for_row(
            row.values.get("district_code") or district_code, row.geometry, scope, boundaries
        )
        zone = existing.get((name, row.values["kind"]))
        if problem is None and zone is not None and not scope.allows(zone.district_code):
            problem = f"zone {name!r} belongs to district {zone.district_code!r}, which is not yours"
        if problem is not None:
            errors.append(_issue(row.row, name, problem))
            continue
        values = {k: row.values[k] for k in ZONE_FIELDS} | {"district_code": district, "area_m2": row.area_m2}
        if zone is None:
            zone = PriorityZone(attributes=row.attributes, source_file=filename[:300], import_id=report.id, **values)
            set_geometry(zone, row.geometry)
            session.add(zone)
            session.flush()
            audit.record(session, user, zone, "imported", after=audit.snapshot(zone, AUDIT_FIELDS), reason=why)
            report.created += 1
            changed.append(row.geometry)
            continue
        before = audit.snapshot(zone, AUDIT_FIELDS)
        same_geometry = zone.geometry.normalize().equals_exact(row.geometry.normalize(), 1e-9)
        if before == audit.snapshot_values(values) and same_geometry and zone.attributes == row.attributes:
            report.unchanged += 1
            continue
        if not same_geometry:
            changed.extend([zone.geometry, row.geometry])
            set_geometry(zone, row.geometry)
        if zone.weight != values["weight"]:
            changed.append(row.geometry)
            old_weights[zone.id] = zone.weight
        for key, value in values.items():
            setattr(zone, key, value)
        zone.attributes, zone.source_file, zone.import_id = row.attributes, filename[:300], report.id
        session.flush()
        after = audit.snapshot(zone, AUDIT_FIELDS) | ({"geometry": "changed"} if not same_geometry else {})
        audit.record(session, user, zone, "reimported", before=before, after=after, reason=why)
        report.updated += 1
    report.rejected = len(errors)
    report.errors = sorted(errors, key=lambda e: (e["row"] is not None, e["row"] or 0))
    report.warnings = [_issue(w.row, w.code, w.reason) for w in result.warnings]
    reason = f"priority zone import #{report.id} ({filename})"
    return report, rerank_areas(session, changed, reason=reason, user=user, old_weights=old_weights)


def _issue(row: int | None, code: str | None, reason: str) -> dict[str, Any]:
    return {"row": row, "code": code, "reason": reason}


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---------------------------------------------------------------------------------------------- ranking
def _base_priority(patch: Patch) -> int:
    try:
        return CATEGORY_PRIORITY[Category(patch.category)] if patch.category else 0
    except ValueError:
        return 0


def _describe(zone: PriorityZone, weight: int) -> str:
    kind = kind_label(zone.kind) or zone.kind
    if not weight:
        return f"in priority zone {zone.name!r} ({kind}; no weight added: the patch is not suspected)"
    return f"in priority zone {zone.name!r} ({kind}, +{weight})"


def rank_patches(
    session: Session,
    patches: Iterable[Patch],
    *,
    reason: str,
    user: User | None = None,
    without: Collection[int] = (),
    old_weights: dict[int, int] | None = None,
) -> int:
    """Set the zones and the priority of ``patches`` (flushed rows) from the zones they intersect.

    ``without``: ids of zones to leave out (being deleted). ``old_weights``: zone id → weight before a
    change, so that a re-weighted zone counts as a change of its patches. Returns how many patches got
    other zones or another weight; each gets an audit event ``reranked`` with ``reason``.
    """
    patches = [p for p in patches if p.geometry is not None and not p.geometry.is_empty]
    if not patches:
        return 0
    geoms = np.array([p.geometry for p in patches], dtype=object)
    min_x, min_y, max_x, max_y = (float(v) for v in shapely.total_bounds(geoms))
    stmt = select(PriorityZone).where(bbox_clause(PriorityZone, (min_x, min_y, max_x, max_y)))
    if without:
        stmt = stmt.where(PriorityZone.id.not_in(list(without)))
    zones = session.scalars(stmt).all()
    if not zones and all(p.priority_zone_id is None for p in patches):
        return 0  # the common case (no zones here): matching already set the category's priority
    old_ids = _zone_ids_of(session, [p.id for p in patches])
    found: dict[int, list[PriorityZone]] = defaultdict(list)
    if zones:
        zone_geoms = np.array([z.geometry for z in zones], dtype=object)
        pi, zi = shapely.STRtree(zone_geoms).query(geoms, predicate="intersects")
        inside = ~shapely.touches(geoms[pi], zone_geoms[zi])  # sharing only a boundary is not inside
        for i, j in zip(pi[inside], zi[inside], strict=True):
            found[int(i)].append(zones[int(j)])
    by_id = {z.id: z for z in zones}
    old_weights = old_weights or {}
    added: list[dict[str, int]] = []
    removed: dict[int, list[int]] = defaultdict(list)  # zone id → patch ids
    changed = 0
    for i, patch in enumerate(patches):
        mine = found.get(i, [])
        top = max(mine, key=lambda z: (z.weight, -z.id)) if mine else None
        # A zone raises what is suspected; a compliant patch in a water source does not jump the queue
        # ahead of an unapproved site outside any zone (it still lists the zone and matches the filter).
        base = _base_priority(patch)
        bonus = top.weight if top is not None and base > 0 else 0
        was_top = patch.priority_zone_id
        was_bonus = 0
        if was_top and base > 0:
            was_bonus = old_weights.get(was_top, by_id[was_top].weight if was_top in by_id else 0)
        new_ids, had_ids = {z.id for z in mine}, old_ids.get(patch.id, set())
        added += [{"patch_id": patch.id, "zone_id": z} for z in sorted(new_ids - had_ids)]
        for zone_id in had_ids - new_ids:
            removed[zone_id].append(patch.id)
        before = {"priority": patch.priority, "priority_zone_id": was_top, "priority_zones": sorted(had_ids)}
        patch.priority = base + bonus
        patch.priority_zone_id = top.id if top is not None else None
        if new_ids == had_ids and was_top == patch.priority_zone_id and was_bonus == bonus:
            continue
        after = {
            "priority": patch.priority,
            "priority_zone_id": top.id if top else None,
            "priority_zones": sorted(new_ids),
        }
        why = _describe(top, bonus) if top is not None else "no longer in a priority zone"
        audit.record(session, user, patch, "reranked", before=before, after=after, reason=f"{reason}: {why}")
        changed += 1
    for zone_id, patch_ids in removed.items():
        for chunk in _chunks(patch_ids):
            where = (patch_zones.c.zone_id == zone_id) & patch_zones.c.patch_id.in_(chunk)
            session.execute(delete(patch_zones).where(where))
    if added:
        session.execute(insert(patch_zones), added)
    session.flush()
    return changed


def _zone_ids_of(session: Session, patch_ids: Sequence[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(patch_ids):
        stmt = select(patch_zones.c.patch_id, patch_zones.c.zone_id).where(patch_zones.c.patch_id.in_(chunk))
        for patch_id, zone_id in session.execute(stmt):
            out[patch_id].add(zone_id)
    return out


def rerank_areas(
    session: Session,
    areas: Iterable[BaseGeometry],
    *,
    reason: str,
    user: User | None = None,
    old_weights: dict[int, int] | None = None,
) -> int:
    """Rank again the patches whose bbox meets ``areas`` (old and new outlines of changed zones)."""
    clauses = [bbox_clause(Patch, area.bounds) for area in areas if area is not None and not area.is_empty]
    found: dict[int, Patch] = {}
    for chunk in _chunks(clauses, _CLAUSES_PER_QUERY):  # SQLite refuses expressions deeper than 1,000 terms
        for patch in session.scalars(select(Patch).where(or_(*chunk))):
            found[patch.id] = patch
    patches = [found[key] for key in sorted(found)]
    return rank_patches(session, patches, reason=reason, user=user, old_weights=old_weights)


def delete_zone(session: Session, zone: PriorityZone, *, user: User) -> int:
    """Delete ``zone`` (with an audit event) and rank its patches without it; returns how many changed."""
    ids = session.scalars(select(patch_zones.c.patch_id).where(patch_zones.c.zone_id == zone.id)).all()
    patches = [p for chunk in _chunks(list(ids)) for p in session.scalars(select(Patch).where(Patch.id.in_(chunk)))]
    reason = f"priority zone {zone.name!r} deleted"
    changed = rank_patches(session, patches, reason=reason, user=user, without={zone.id})
    audit.record(session, user, zone, "deleted", before=audit.snapshot(zone, AUDIT_FIELDS))
    session.delete(zone)
    session.flush()
    return changed


def edit_zone(session: Session, zone: PriorityZone, changes: dict[str, Any], *, user: User) -> int:
    """Change a zone's ``name``, ``kind`` or ``weight`` by hand (audited ``edited``); a new weight ranks its
    patches again. Returns how many patches changed rank. :class:`ConflictError` when another zone already
    has the new name and kind (imports update zones by that pair)."""
    name, kind = changes.get("name", zone.name), changes.get("kind", zone.kind)
    if (name, kind) != (zone.name, zone.kind):
        same = (PriorityZone.name == name, PriorityZone.kind == kind, PriorityZone.id != zone.id)
        other = session.scalar(select(PriorityZone.id).where(*same))
        if other is not None:
            raise ConflictError(f"priority zone #{other} is already called {name!r} ({kind}); choose another name")
    before = audit.snapshot(zone, AUDIT_FIELDS)
    old_weight = zone.weight
    for key, value in changes.items():
        setattr(zone, key, value)
    session.flush()
    after = audit.snapshot(zone, AUDIT_FIELDS)
    if after == before:
        return 0
    audit.record(session, user, zone, "edited", before=before, after=after)
    if zone.weight == old_weight:
        return 0
    reason = f"priority zone {zone.name!r} weight {old_weight} → {zone.weight}"
    return rerank_areas(session, [zone.geometry], reason=reason, user=user, old_weights={zone.id: old_weight})


def zones_of(session: Session, patch: Patch) -> list[PriorityZone]:
    """The zones ``patch`` lies in, heaviest first."""
    stmt = (
        select(PriorityZone)
        .join(patch_zones, patch_zones.c.zone_id == PriorityZone.id)
        .where(patch_zones.c.patch_id == patch.id)
        .order_by(PriorityZone.weight.desc(), PriorityZone.id)
    )
    return list(session.scalars(stmt))


# ---------------------------------------------------------------------------------------------- patch filter
def parse_zone_filter(text: str | None) -> ZoneFilter | None:
    """``priority_zone=`` of the patch queries: a zone id, or ``any``; None passes through."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.casefold() == "any":
        return "any"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise InvalidInputError(f"priority_zone {text!r} must be a zone id (GET /priority-zones) or 'any'")


def zone_filter(value: ZoneFilter) -> ColumnElement[bool]:
    """WHERE clause on :class:`Patch`: in zone ``value``, or in any zone."""
    if value == "any":
        return Patch.priority_zone_id.is_not(None)
    return Patch.id.in_(select(patch_zones.c.patch_id).where(patch_zones.c.zone_id == value))
