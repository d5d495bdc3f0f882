"""Exports of a patch query: GeoJSON, GeoPackage, zipped Shapefile, KML and CSV (Excel), and training labels.

Files are written with pyogrio into a temporary folder that the caller streams and then removes
(:class:`ExportFile`). Geometries are stored in EPSG:4326; CGCS2000 (EPSG:4490) differs from it by
centimetres, so ``crs="EPSG:4490"`` only relabels the coordinates, and a CGCS2000 Gauss–Krüger zone
(EPSG:4491–4554) reprojects them (GeoPackage, Shapefile). GeoJSON (RFC 7946) and KML are always lon/lat.

Columns carry a stable English code beside the Chinese label (``category`` / ``category_label``);
``names="zh"`` renames the columns to the Chinese names used in provincial reports (图斑编号, 面积(亩),
合规性 …). Shapefile field names hold 10 bytes, so Shapefiles use short names (:data:`COLUMNS`), and
Chinese ones only in GBK (2 bytes a character).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import tempfile
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from service.errors import InvalidInputError, PayloadTooLargeError
from service.geometry import WGS84
from service.models import District, Imagery, Patch, PatchMatch, PriorityZone, Project, Review, Scan
from service.patches import PatchQuery, search_patches
from service.scope import DistrictScope
from service.vocab import CATEGORY_LABELS, VERDICT_LABELS, Category, Verdict

__all__ = [
    "ExportFormat",
    "FieldNames",
    "ShapefileEncoding",
    "LabelFormat",
    "ExportFile",
    "Column",
    "COLUMNS",
    "REVIEW_STATUS_LABELS",
    "LABEL_VERDICTS",
    "export_patches",
    "export_training_labels",
    "neutralise_formula",
    "patch_frame",
]


class ExportFormat(StrEnum):
    geojson = "geojson"
    gpkg = "gpkg"
    shp = "shp"
    kml = "kml"
    csv = "csv"


class FieldNames(StrEnum):
    en = "en"
    zh = "zh"


class ShapefileEncoding(StrEnum):
    utf8 = "utf-8"
    gbk = "gbk"


class LabelFormat(StrEnum):
    gpkg = "gpkg"
    geojson = "geojson"


REVIEW_STATUS_LABELS = {"unreviewed": "未复核", "assigned": "待复核", "reviewed": "已复核", "closed": "已销号"}

#: Confirmed forms of the machine categories (the verdict drops the 疑似).
_CONFIRMED = {
    Category.suspected_unapproved: ("unapproved", "未批先建"),
    Category.suspected_out_of_bounds: ("out_of_bounds", "超出防治责任范围"),
    Category.suspected_relocated: ("relocated", "建设地点变更"),
}


@dataclass(frozen=True)
class Column:
    """One exported attribute: ``key`` in the frame, its English and Chinese names, and Shapefile names."""

    key: str
    zh: str
    shp: str  # ≤ 10 ASCII characters
    shp_zh: str  # ≤ 5 Chinese characters (10 bytes in GBK)


COLUMNS: tuple[Column, ...] = (
    Column("patch_id", "系统编号", "patch_id", "系统编号"),
    Column("patch_code", "图斑编号", "patch_code", "图斑编号"),
    Column("district_code", "行政区代码", "dist_code", "行政区代码"),
    Column("district_name", "行政区", "dist_name", "行政区"),
    Column("area_m2", "面积(平方米)", "area_m2", "面积平方米"),
    Column("area_mu", "面积(亩)", "area_mu", "面积亩"),
    Column("lon", "中心经度", "lon", "中心经度"),
    Column("lat", "中心纬度", "lat", "中心纬度"),
    Column("before_date", "前时相", "before", "前时相"),
    Column("after_date", "后时相", "after", "后时相"),
    Column("confidence", "置信度", "confidence", "置信度"),
    Column("model", "模型版本", "model", "模型版本"),
    Column("change_type", "扰动变化类型", "change", "变化类型"),
    Column("disturbance_type", "扰动类型", "dist_type", "扰动类型"),
    Column("compliance", "合规性代码", "compliance", "合规性代码"),
    Column("compliance_label", "合规性", "compl_lbl", "合规性"),
    Column("category", "判别结果代码", "category", "判别代码"),
    Column("category_label", "判别结果", "cat_label", "判别结果"),
    Column("category_reason", "判别依据", "reason", "判别依据"),
    Column("outside_area_m2", "超出面积(平方米)", "out_m2", "超出面积"),
    Column("outside_share", "超出比例", "out_share", "超出比例"),
    Column("nearest_distance_m", "最近项目距离(米)", "near_m", "最近距离"),
    Column("project_codes", "关联项目代码", "proj_codes", "项目代码"),
    Column("project_names", "关联项目名称", "proj_names", "项目名称"),
    Column("builders", "建设单位", "builders", "建设单位"),
    Column("priority", "优先级", "priority", "优先级"),
    Column("priority_zone", "重点监管区域", "zone", "重点区域"),
    Column("review_status", "复核状态代码", "review", "复核状态码"),
    Column("review_status_label", "复核状态", "rev_label", "复核状态"),
    Column("verdict", "复核结论代码", "verdict", "复核结论码"),
    Column("verdict_label", "复核结论", "ver_label", "复核结论"),
    Column("scan_id", "扫描批次", "scan_id", "扫描批次"),
)

_MEDIA = {
    ExportFormat.geojson: ("application/geo+json", "geojson"),
    ExportFormat.gpkg: ("application/geopackage+sqlite3", "gpkg"),
    ExportFormat.shp: ("application/zip", "zip"),
    ExportFormat.kml: ("application/vnd.google-earth.kml+xml", "kml"),
    ExportFormat.csv: ("text/csv; charset=utf-8", "csv"),
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_DBF_TEXT_BYTES = 254


@dataclass(frozen=True)
class ExportFile:
    """A written export: stream ``path`` as ``filename`` with ``media_type``, then remove ``folder``."""

    path: Path
    folder: Path
    filename: str
    media_type: str
    count: int

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def neutralise_formula(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``…) gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _compliance(category: str | None, verdict: str | None) -> tuple[str | None, str | None]:
    """合规性 after review: the machine's 疑似 form until an inspector decides, then the confirmed form."""
    if verdict == Verdict.confirmed_violation:
        return _CONFIRMED.get(Category(category), ("violation", "违法违规")) if category else ("violation", "违法违规")
    if verdict:
        return verdict, VERDICT_LABELS[Verdict(verdict)]
    if category:
        return category, CATEGORY_LABELS[Category(category)]
    return None, None


def _count(session: Session, stmt: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


def patch_frame(session: Session, stmt: Select[tuple[Patch]]) -> gpd.GeoDataFrame:
    """The patches selected by ``stmt`` (a :func:`search_patches` statement) as a frame in EPSG:4326.

    Columns are the keys of :data:`COLUMNS` plus ``geometry``; dates are :class:`datetime.date`.
    """
    columns = (Patch.id, Patch.patch_code, Patch.district_code, Patch.area_m2, Patch.area_mu, Patch.lon, Patch.lat,
               Patch.before_date, Patch.after_date, Patch.confidence, Patch.model, Patch.change_type,
               Patch.disturbance_type, Patch.category, Patch.category_reason, Patch.outside_area_m2,
               Patch.outside_share, Patch.nearest_distance_m, Patch.priority, Patch.review_status, Patch.verdict,
               Patch.scan_id, Patch.priority_zone_id, Patch.geometry)  # fmt: skip
    rows = session.execute(stmt.with_only_columns(*columns).order_by(Patch.id)).all()
    ids = stmt.with_only_columns(Patch.id).order_by(None).scalar_subquery()
    projects: dict[int, list[tuple[str, str, str | None]]] = defaultdict(list)
    for patch_id, code, name, builder in session.execute(
        select(PatchMatch.patch_id, Project.code, Project.name, Project.builder)
        .join(Project, Project.id == PatchMatch.project_id)
        .where(PatchMatch.patch_id.in_(ids))
        .order_by(PatchMatch.patch_id, PatchMatch.overlap_area_m2.desc())
    ):
        projects[patch_id].append((code, name, builder))
    districts = {code: name for code, name in session.execute(select(District.code, District.name))}
    zone_ids = {row.priority_zone_id for row in rows} - {None}
    zones = dict(session.execute(select(PriorityZone.id, PriorityZone.name).where(PriorityZone.id.in_(zone_ids))).all()
                 ) if zone_ids else {}  # fmt: skip
    records = []
    for row in rows:
        data = row._asdict()
        data["patch_id"] = data.pop("id")
        data["priority_zone"] = zones.get(data.pop("priority_zone_id"))
        data["district_name"] = districts.get(data["district_code"])
        data["category_label"] = CATEGORY_LABELS[Category(data["category"])] if data["category"] else None
        data["compliance"], data["compliance_label"] = _compliance(data["category"], data["verdict"])
        data["review_status_label"] = REVIEW_STATUS_LABELS.get(data["review_status"])
        data["verdict_label"] = VERDICT_LABELS[Verdict(data["verdict"])] if data["verdict"] else None
        matched = projects.get(data["patch_id"], [])
        data["project_codes"] = "; ".join(code for code, _, _ in matched) or None
        data["project_names"] = "; ".join(name for _, name, _ in matched) or None
        data["builders"] = "; ".join(dict.fromkeys(b for _, _, b in matched if b)) or None
        records.append(data)
    frame = pd.DataFrame.from_records(records, columns=[c.key for c in COLUMNS] + ["geometry"])
    for column in ("patch_id", "priority", "scan_id"):
        frame[column] = frame[column].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=WGS84)


def _check_options(fmt: ExportFormat, names: FieldNames, encoding: ShapefileEncoding, crs: str | None) -> CRS:
    """The output CRS; raises :class:`InvalidInputError` for options that do not fit together."""
    if fmt == ExportFormat.shp and names == FieldNames.zh and encoding != ShapefileEncoding.gbk:
        raise InvalidInputError(
            "Chinese field names in a Shapefile need encoding=gbk (a DBF field name holds 10 bytes: 5 Chinese "
            "characters in GBK, 3 in UTF-8); add encoding=gbk or use names=en"
        )
    if encoding != ShapefileEncoding.utf8 and fmt != ExportFormat.shp:
        raise InvalidInputError(f"encoding={encoding.value!r} applies to format=shp only; {fmt.value} is UTF-8")
    if crs is None:
        return WGS84
    try:
        target = CRS.from_user_input(crs)
    except CRSError as exc:
        raise InvalidInputError(f"crs {crs!r} is not a CRS; use e.g. EPSG:4490 or a CGCS2000 zone EPSG:4527") from exc
    if fmt not in (ExportFormat.gpkg, ExportFormat.shp) and target.to_epsg() not in (4326, 4490):
        raise InvalidInputError(f"format {fmt.value!r} is always lon/lat (EPSG:4326); drop crs={crs!r}")
    return target


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c for c in frame.columns
        if c != "geometry" and (pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c]))
    ]  # fmt: skip


def _fit_dbf(frame: gpd.GeoDataFrame, encoding: str) -> gpd.GeoDataFrame:
    """Text that a DBF can hold: characters the encoding lacks become ``?``, values cut at 254 bytes."""

    def fit(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        data = value.encode(encoding, errors="replace")[:_DBF_TEXT_BYTES]
        return data.decode(encoding, errors="ignore")

    frame = frame.copy()
    for column in _text_columns(frame):
        if frame[column].map(lambda v: isinstance(v, str)).any():
            frame[column] = frame[column].map(fit)
    return frame


def _dates_to_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("before_date", "after_date", "verdict_on", "reviewed_at"):
        if column in frame:
            frame[column] = frame[column].map(lambda v: v.isoformat() if isinstance(v, dt.date) else v)
    return frame


def _rename(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    return frame.rename(columns={k: v for k, v in mapping.items() if k in frame.columns})


def _write(frame: gpd.GeoDataFrame, fmt: ExportFormat, folder: Path, stem: str, *, names: FieldNames,
           encoding: ShapefileEncoding, crs: CRS) -> Path:  # fmt: skip
    """Write ``frame`` (EPSG:4326, keys of :data:`COLUMNS`) in ``fmt`` under ``folder``; returns the file.

    Dates are written as ISO text (``2024-05-01``) in every format: DBF, KML and CSV have no portable
    date-time type, and ISO text sorts and reads the same everywhere.
    """
    zh = names == FieldNames.zh
    frame = _dates_to_text(frame)
    if fmt == ExportFormat.csv:
        table = pd.DataFrame(frame.drop(columns="geometry"))
        for column in _text_columns(table):
            table[column] = table[column].map(neutralise_formula)
        if zh:
            table = _rename(table, {c.key: c.zh for c in COLUMNS})
        path = folder / f"{stem}.csv"
        # utf-8-sig: the BOM makes Excel read UTF-8 (else Chinese comes out garbled); CRLF as Excel writes.
        table.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        return path
    if crs.to_epsg() == 4490:
        frame = frame.set_crs(crs, allow_override=True)  # CGCS2000 = WGS 84 to centimetres: relabel only
    elif crs != WGS84:
        frame = frame.to_crs(crs)
    kind = "Polygon" if frame.empty else None  # an empty layer still needs a geometry type
    if fmt == ExportFormat.shp:
        shp_dir = folder / "shp"
        shp_dir.mkdir()
        codec = "gbk" if encoding == ShapefileEncoding.gbk else "utf-8"
        table = _rename(_fit_dbf(frame, codec), {c.key: c.shp_zh if zh else c.shp for c in COLUMNS})
        pyogrio.write_dataframe(table, shp_dir / f"{stem}.shp", driver="ESRI Shapefile", geometry_type=kind,
                                encoding=codec.upper())  # also writes the .cpg  # fmt: skip
        path = folder / f"{stem}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in sorted(shp_dir.iterdir()):
                archive.write(member, member.name)
        return path
    table = _rename(frame, {c.key: c.zh for c in COLUMNS}) if zh else frame
    if fmt == ExportFormat.gpkg:
        path = folder / f"{stem}.gpkg"
        pyogrio.write_dataframe(table, path, driver="GPKG", layer=stem, geometry_type=kind)
    elif fmt == ExportFormat.geojson:
        path = folder / f"{stem}.geojson"
        pyogrio.write_dataframe(table, path, driver="GeoJSON", layer=stem, geometry_type=kind, RFC7946="YES",
                                WRITE_NAME="NO")  # fmt: skip
    else:
        path = folder / f"{stem}.kml"
        options = {"NameField": "图斑编号" if zh else "patch_code",
                   "DescriptionField": "判别依据" if zh else "category_reason"}  # fmt: skip
        pyogrio.write_dataframe(table, path, driver="KML", layer=stem, geometry_type=kind, dataset_options=options)
    return path


def _tempdir(base: Path | None) -> Path:
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="export-", dir=base))


def export_patches(
    session: Session,
    scope: DistrictScope,
    query: PatchQuery,
    fmt: ExportFormat,
    *,
    names: FieldNames = FieldNames.en,
    encoding: ShapefileEncoding = ShapefileEncoding.utf8,
    crs: str | None = None,
    max_features: int = 500_000,
    tmp_dir: Path | None = None,
) -> ExportFile:
    """Write the patches of ``query`` that ``scope`` may see as one file in ``fmt``.

    Raises :class:`InvalidInputError` for a bad option combination and :class:`PayloadTooLargeError`
    over ``max_features`` (narrow the query). The caller streams ``ExportFile.path`` and calls ``cleanup``.
    """
    target = _check_options(fmt, names, encoding, crs)
    stmt = search_patches(scope, query)
    count = _count(session, stmt)
    if count > max_features:
        raise PayloadTooLargeError(
            f"the query matches {count} patches, more than the export limit of {max_features}; narrow it "
            "(district, after_from/after_to, category, bbox) or raise SOILWATCH_EXPORT_MAX_FEATURES"
        )
    frame = patch_frame(session, stmt)
    folder = _tempdir(tmp_dir)
    try:
        path = _write(frame, fmt, folder, "patches", names=names, encoding=encoding, crs=target)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    media_type, suffix = _MEDIA[fmt]
    stamp = dt.date.today().strftime("%Y%m%d")
    return ExportFile(path, folder, f"patches-{stamp}.{suffix}", media_type, len(frame))


# --- Training labels (learning from review) ---------------------------------------------------------------

#: Verdict → training label: a confirmed violation and a compliant construction site are real
#: disturbances (1); "not a construction project" and "false detection" are hard negatives (0).
LABEL_VERDICTS: dict[str, int] = {
    Verdict.confirmed_violation: 1,
    Verdict.compliant: 1,
    Verdict.not_construction: 0,
    Verdict.false_detection: 0,
}


def export_training_labels(
    session: Session,
    scope: DistrictScope,
    fmt: LabelFormat,
    *,
    district: str | None = None,
    after_from: dt.date | None = None,
    after_to: dt.date | None = None,
    tmp_dir: Path | None = None,
) -> ExportFile:
    """Reviewed patches as a polygon layer ``labels`` (EPSG:4326) with ``label`` 1/0 and their imagery.

    See the route ``GET /exports/training-labels`` for the columns and how training rasterises them.
    """
    query = PatchQuery(district=district, after_from=after_from, after_to=after_to)
    stmt = search_patches(scope, query).where(Patch.verdict.in_(list(LABEL_VERDICTS)))
    rows = session.execute(
        stmt.with_only_columns(Patch.id, Patch.patch_code, Patch.district_code, Patch.verdict, Patch.area_m2,
                               Patch.before_date, Patch.after_date, Patch.source_before, Patch.source_after,
                               Patch.model, Patch.confidence, Patch.scan_id, Patch.geometry).order_by(Patch.id)
    ).all()  # fmt: skip
    scan_ids = {r.scan_id for r in rows if r.scan_id is not None}
    scans = {s.id: s for s in session.scalars(select(Scan).where(Scan.id.in_(scan_ids)))} if scan_ids else {}
    imagery_ids = {i for s in scans.values() for i in (s.before_imagery_id, s.after_imagery_id) if i is not None}
    imagery = (
        {i.id: i for i in session.scalars(select(Imagery).where(Imagery.id.in_(imagery_ids)))} if imagery_ids else {}
    )
    reviewed = {
        patch_id: at
        for patch_id, at in session.execute(
            select(Review.patch_id, func.max(Review.created_at))
            .where(Review.patch_id.in_(stmt.with_only_columns(Patch.id).order_by(None).scalar_subquery()))
            .group_by(Review.patch_id)
        )
    }
    records = []
    for row in rows:
        scan = scans.get(row.scan_id) if row.scan_id is not None else None
        before = imagery.get(scan.before_imagery_id) if scan and scan.before_imagery_id else None
        after = imagery.get(scan.after_imagery_id) if scan else None
        reviewed_at = reviewed.get(row.id)
        records.append({
            "patch_id": row.id,
            "patch_code": row.patch_code,
            "label": LABEL_VERDICTS[row.verdict],
            "verdict": row.verdict,
            "verdict_label": VERDICT_LABELS[Verdict(row.verdict)],
            "reviewed_at": reviewed_at.isoformat() if reviewed_at else None,
            "district_code": row.district_code,
            "area_m2": row.area_m2,
            "model": row.model,
            "confidence": row.confidence,
            "scan_id": row.scan_id,
            "before_imagery_id": before.id if before else None,
            "after_imagery_id": after.id if after else None,
            "before_date": (before.acquired_on if before else row.before_date),
            "after_date": (after.acquired_on if after else row.after_date),
            "before_path": before.path if before else row.source_before,
            "after_path": after.path if after else row.source_after,
            "sensor": (after.sensor if after else None),
            "geometry": row.geometry,
        })  # fmt: skip
    frame = gpd.GeoDataFrame(pd.DataFrame.from_records(records, columns=_LABEL_COLUMNS), geometry="geometry",
                             crs=WGS84)  # fmt: skip
    frame = _dates_to_text(frame)
    for column in ("patch_id", "label", "scan_id", "before_imagery_id", "after_imagery_id"):
        frame[column] = frame[column].astype("Int64")
    kind = "Polygon" if frame.empty else None
    folder = _tempdir(tmp_dir)
    try:
        if fmt == LabelFormat.gpkg:
            path = folder / "labels.gpkg"
            pyogrio.write_dataframe(frame, path, driver="GPKG", layer="labels", geometry_type=kind)
            media_type = _MEDIA[ExportFormat.gpkg][0]
        else:
            path = folder / "labels.geojson"
            pyogrio.write_dataframe(frame, path, driver="GeoJSON", layer="labels", geometry_type=kind, RFC7946="YES",
                                    WRITE_NAME="NO")  # fmt: skip
            media_type = _MEDIA[ExportFormat.geojson][0]
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    stamp = dt.date.today().strftime("%Y%m%d")
    return ExportFile(path, folder, f"training-labels-{stamp}.{path.suffix.lstrip('.')}", media_type, len(frame))


_LABEL_COLUMNS = [
    "patch_id", "patch_code", "label", "verdict", "verdict_label", "reviewed_at", "district_code", "area_m2", "model",
    "confidence", "scan_id", "before_imagery_id", "after_imagery_id", "before_date", "after_date", "before_path",
    "after_path", "sensor", "geometry",
]  # fmt: skip
