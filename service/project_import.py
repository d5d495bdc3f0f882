"""Read an approved-project list (监管清单) into clean rows; no database here.

Formats: zipped Shapefile (GBK or UTF-8 attributes; ``.cpg`` honoured, else detected), GeoPackage,
GeoJSON, CSV or XLSX with coordinate columns (经度/纬度, x/y + a CRS, or a WKT column). Geometries
come out in EPSG:4326; points are buffered in a local metric CRS; invalid polygons are repaired
(``make_valid``) with a warning, or the row is rejected with the reason.

The file reading (:func:`read_vector_table`), column mapping (:func:`map_columns`) and geometry
cleaning (:func:`clean_polygon`) are shared with the priority-zone import (:mod:`service.zones`).
"""

from __future__ import annotations

import codecs
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from service.archives import check_zip, safe_extract
from service.core.config import Settings
from service.errors import ImportFormatError
from service.geometry import WGS84, geodesic_area_m2, metric_crs_for, reproject
from service.vocab import VECTOR_TYPE_ALIASES, VectorType

__all__ = [
    "FeatureRow",
    "ProjectRow",
    "ImportIssueRow",
    "ReadResult",
    "VectorTable",
    "read_vector_table",
    "map_columns",
    "clean_polygon",
    "text_value",
    "json_value",
    "read_project_file",
    "parse_date",
    "PROJECT_FIELDS",
]

PROJECT_FIELDS = (
    "code",
    "name",
    "builder",
    "industry",
    "approval_authority",
    "approval_number",
    "approved_on",
    "declared_area_hm2",
    "approval_level",
    "project_category",
    "project_nature",
    "construction_state",
    "vector_type",
    "district_code",
)
_TEXT_FIELDS = set(PROJECT_FIELDS) - {"approved_on", "declared_area_hm2", "vector_type"}
#: Longest text each column holds (PostgreSQL enforces it); longer values reject the row, not the whole file.
_MAX_CHARS = {"code": 100, "name": 300, "builder": 300, "industry": 100, "approval_authority": 200,
              "approval_number": 200, "approval_level": 20, "project_category": 20, "project_nature": 20,
              "construction_state": 20, "district_code": 12}  # fmt: skip
_WKT_COLUMNS = ("wkt", "geometry", "geom", "几何", "坐标串")


@dataclass
class ImportIssueRow:
    row: int | None
    reason: str
    code: str | None = None


@dataclass
class FeatureRow:
    """One clean row (a project, a priority zone): attribute values, geometry in EPSG:4326, geodesic ``area_m2``,
    and the unmapped source columns in ``attributes``."""

    row: int
    values: dict[str, Any]
    geometry: BaseGeometry
    area_m2: float
    attributes: dict[str, Any] = field(default_factory=dict)


ProjectRow = FeatureRow


@dataclass
class ReadResult:
    format: str
    source_crs: str | None
    encoding: str | None
    field_mapping: dict[str, str]
    rows_total: int
    rows: list[FeatureRow]
    errors: list[ImportIssueRow]
    warnings: list[ImportIssueRow]
    repaired: int = 0

    def error(self, row: int | None, reason: str, code: str | None = None) -> None:
        self.errors.append(ImportIssueRow(row, reason, code))

    def warn(self, row: int | None, reason: str, code: str | None = None) -> None:
        self.warnings.append(ImportIssueRow(row, reason, code))


@dataclass(frozen=True)
class VectorTable:
    """An uploaded file read as a frame (geometry in its own CRS, which is known), its format and encoding."""

    frame: gpd.GeoDataFrame
    format: str
    encoding: str | None

    @property
    def crs(self) -> CRS:
        return self.frame.crs  # type: ignore[no-any-return]

    def result(self, mapping: dict[str, str]) -> ReadResult:
        """An empty :class:`ReadResult` for this table with the column ``mapping``."""
        return ReadResult(self.format, self.crs.to_string(), self.encoding, mapping, len(self.frame), [], [], [])


def read_vector_table(
    path: Path, filename: str, settings: Settings, *, workdir: Path, crs: str | None = None, encoding: str | None = None
) -> VectorTable:
    """Read the uploaded file at ``path`` (original name ``filename``): any of the formats above.

    ``crs`` overrides (or supplies) the file's CRS, ``encoding`` its attribute encoding. Raises
    :class:`ImportFormatError` for files that cannot be read or have no CRS.
    """
    frame, fmt, enc = _read_frame(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding)
    if frame.crs is None:
        raise ImportFormatError(f"{filename!r} has no coordinate system; pass crs=EPSG:xxxx with the upload")
    return VectorTable(frame, fmt, enc)


def read_project_file(
    path: Path, filename: str, settings: Settings, *, workdir: Path, crs: str | None = None, encoding: str | None = None
) -> ReadResult:
    """Read the uploaded file at ``path`` (original name ``filename``) into clean rows."""
    table = read_vector_table(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding)
    frame = table.frame
    mapping = map_columns(list(frame.columns), settings.merged_field_map)
    result = table.result(mapping)
    if "code" not in mapping.values() or "name" not in mapping.values():
        missing = [f for f in ("code", "name") if f not in mapping.values()]
        raise ImportFormatError(
            f"{filename!r} has no column for {', '.join(missing)} (e.g. 项目代码, 项目名称); columns are "
            f"{', '.join(str(c) for c in frame.columns if c != 'geometry')}; add a field_map setting"
        )
    src_crs = frame.crs
    seen: dict[str, int] = {}
    for index, (_, record) in enumerate(frame.iterrows(), start=1):
        _read_row(index, record, mapping, src_crs, settings, seen, result)
    return result


def _read_row(
    index: int,
    record: pd.Series,
    mapping: dict[str, str],
    src_crs: CRS,
    settings: Settings,
    seen: dict[str, int],
    result: ReadResult,
) -> None:
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column, raw in record.items():
        if column == "geometry":
            continue
        target = mapping.get(str(column))
        if target is None:
            attributes[str(column)] = json_value(raw)
        elif target in _TEXT_FIELDS:
            values[target] = text_value(raw)
        else:
            values[target] = raw
    code = values.get("code")
    if code is None:
        result.error(index, "no 项目代码 (project code); every project needs one")
        return
    too_long = [(f, len(v), _MAX_CHARS[f]) for f, v in values.items()
                if f in _MAX_CHARS and isinstance(v, str) and len(v) > _MAX_CHARS[f]]  # fmt: skip
    if too_long:
        field_name, length, limit = too_long[0]
        result.error(index, f"{field_name} has {length:,} characters, more than {limit}; shorten it", code[:100])
        return
    if code in seen:
        result.error(index, f"duplicate 项目代码 {code!r} (also row {seen[code]})", code)
        return
    seen[code] = index
    if not values.get("name"):
        result.error(index, "no 项目名称 (project name)", code)
        return
    values["approved_on"] = _date_value(values.get("approved_on"), index, code, result)
    values["declared_area_hm2"] = _float_value(values.get("declared_area_hm2"), index, code, result)
    vector_type = text_value(values.get("vector_type"))
    if vector_type is None:
        values["vector_type"] = VectorType.responsibility.value
    elif vector_type in VECTOR_TYPE_ALIASES:
        values["vector_type"] = VECTOR_TYPE_ALIASES[vector_type].value
    else:
        result.warn(index, f"unknown 矢量化类型 {vector_type!r}; taken as 防治责任范围", code)
        values["vector_type"] = VectorType.responsibility.value
    geom, buffered = clean_polygon(record.get("geometry"), src_crs, index, code, settings, result)
    if geom is None:
        return
    if buffered:
        values["vector_type"] = VectorType.point_buffer.value
    result.rows.append(FeatureRow(index, values, geom, geodesic_area_m2(geom), attributes))


def clean_polygon(
    geom: BaseGeometry | None, src_crs: CRS, index: int, code: str | None, settings: Settings, result: ReadResult
) -> tuple[BaseGeometry | None, bool]:
    """Row ``index``'s geometry in EPSG:4326 as a valid (multi)polygon, and whether it was a point (buffered).

    Points are buffered by ``settings.point_buffer_m`` in a local metric CRS, closed lines become polygons,
    invalid polygons are repaired; each with a warning in ``result``. Geometries that cannot be used are
    recorded as errors (reported with ``code``) and give ``(None, False)``.
    """
    if geom is None or (isinstance(geom, float) and math.isnan(geom)) or geom.is_empty:
        result.error(index, "no geometry (empty shape or missing coordinates)", code)
        return None, False
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        result.error(index, "coordinates include NaN or infinity; fix or remove the broken vertices", code)
        return None, False
    try:
        geom = reproject(geom, src_crs, WGS84)
    except Exception as exc:  # pyproj raises several types for impossible transforms
        result.error(index, f"cannot reproject from {src_crs.to_string()}: {exc}", code)
        return None, False
    minx, miny, maxx, maxy = geom.bounds
    if not all(map(math.isfinite, geom.bounds)) or minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        result.error(
            index,
            f"coordinates {geom.bounds!r} are not lon/lat after reprojection from {src_crs.to_string()}; "
            "check the .prj or the crs parameter",
            code,
        )
        return None, False
    buffered = geom.geom_type in ("Point", "MultiPoint")
    return _polygonal(geom, index, code, settings, result), buffered


def _polygonal(
    geom: BaseGeometry, index: int, code: str | None, settings: Settings, result: ReadResult
) -> BaseGeometry | None:
    kind = geom.geom_type
    if kind in ("Point", "MultiPoint"):
        centre = geom.centroid
        metric = metric_crs_for(centre.x, centre.y)
        buffered = reproject(geom, WGS84, metric).buffer(settings.point_buffer_m)
        result.warn(index, f"only a point; buffered by {settings.point_buffer_m:g} m (setting point_buffer_m)", code)
        return reproject(buffered, metric, WGS84)
    if kind in ("LineString", "MultiLineString", "LinearRing"):
        polygons = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.node(geom))))
        if len(polygons) == 0:
            result.error(index, "a boundary line that does not close; draw it as a polygon", code)
            return None
        result.warn(index, "red-line boundary given as a line; closed into a polygon", code)
        geom = shapely.unary_union(polygons)
    if kind == "GeometryCollection":
        geom = shapely.unary_union([g for g in shapely.get_parts(geom) if g.geom_type.endswith("Polygon")])
    if not geom.geom_type.endswith("Polygon"):
        result.error(index, f"unsupported geometry type {kind!r}", code)
        return None
    if not geom.is_valid:
        why = shapely.is_valid_reason(geom)
        fixed = shapely.make_valid(geom)
        parts = [g for g in shapely.get_parts(fixed) if g.geom_type.endswith("Polygon") and not g.is_empty]
        fixed = shapely.unary_union(parts) if parts else None
        if fixed is None or fixed.is_empty or fixed.area <= 0:
            result.error(index, f"invalid geometry that cannot be repaired: {why}", code)
            return None
        result.warn(index, f"invalid geometry repaired ({why})", code)
        result.repaired += 1
        geom = fixed
    if geom.area <= 0:
        result.error(index, "polygon with zero area", code)
        return None
    return geom


def map_columns(columns: list[str], field_map: dict[str, str]) -> dict[str, str]:
    """Source column → attribute for the columns ``field_map`` knows (spaces and case ignored, also when a
    DBF cut the name to 10 bytes); each attribute is taken by the first column mapping to it."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    truncated = _truncated_keys(field_map)
    for column in columns:
        if column == "geometry":
            continue
        key = re.sub(r"\s+", "", str(column)).casefold()
        target = field_map.get(key) or field_map.get(str(column).strip().casefold()) or truncated.get(key)
        if target and target not in taken:
            mapping[str(column)] = target
            taken.add(target)
    return mapping


def _truncated_keys(field_map: dict[str, str]) -> dict[str, str]:
    """Known names cut to the 10 bytes a DBF field name holds (GBK or UTF-8), e.g. 防治责任范围面积 → 防治责任范."""
    out: dict[str, str] = {}
    for key, target in field_map.items():
        for encoding in ("gbk", "utf-8"):
            try:
                raw = key.encode(encoding)
            except UnicodeEncodeError:
                continue
            if len(raw) > 10:
                out.setdefault(raw[:10].decode(encoding, errors="ignore"), target)
    return out


def text_value(raw: Any) -> str | None:
    """A cell as stripped text, None when empty; whole floats read from numeric columns lose their ``.0``."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw is pd.NaT:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # codes read from numeric columns
    text = str(raw).strip()
    return text or None


def json_value(raw: Any) -> Any:
    """A cell as a JSON-safe value (dates as ISO text), for ``attributes``."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw is pd.NaT:
        return None
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, dt.date | pd.Timestamp):
        return raw.isoformat()
    if isinstance(raw, bool | int | float | str):
        return raw
    if hasattr(raw, "item"):  # numpy scalars
        return raw.item()
    return str(raw)


def parse_date(raw: Any) -> dt.date | None:
    """A date from the spellings found in project lists: ISO, 2023/5/1, 2023年5月1日, 20230501, Excel serials."""
    if raw is None or raw is pd.NaT or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if isinstance(raw, pd.Timestamp | dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, int | float) and 20000 < raw < 80000:  # Excel serial day number
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(raw))
    text = str(raw).strip()
    match = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?", text) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", text
    )
    if match is None:
        raise ValueError(f"cannot read {text!r} as a date; write it as 2023-05-01")
    return dt.date(int(match[1]), int(match[2]), int(match[3]))


def _date_value(raw: Any, index: int, code: str, result: ReadResult) -> dt.date | None:
    try:
        return parse_date(raw)
    except ValueError as exc:
        result.warn(index, f"批复时间 ignored: {exc}", code)
        return None


def _float_value(raw: Any, index: int, code: str, result: ReadResult) -> float | None:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        return float(str(raw).replace(",", "").strip())
    except ValueError:
        result.warn(index, f"防治责任范围面积 {raw!r} is not a number; ignored", code)
        return None


# ---------------------------------------------------------------------------------------------- reading files


def _read_frame(
    path: Path, filename: str, settings: Settings, *, workdir: Path, crs: str | None, encoding: str | None
) -> tuple[gpd.GeoDataFrame, str, str | None]:
    suffix = Path(filename).suffix.lower()
    head = path.read_bytes()[:16] if path.stat().st_size else b""
    if not head:
        raise ImportFormatError(f"{filename!r} is empty")
    if suffix == ".xlsx":
        check_zip(path, filename, max_total_bytes=settings.max_unzipped_bytes, max_ratio=settings.max_zip_ratio)
        try:
            sheet = pd.read_excel(path, engine="openpyxl")
        except Exception as exc:  # openpyxl raises many types for a damaged or hostile workbook (DTDs, missing parts)
            raise ImportFormatError(f"cannot read {filename!r} as XLSX ({str(exc)[:200]}); save it again") from exc
        return _read_table(sheet, filename, crs), "xlsx", None
    if suffix == ".csv":
        table, enc = _read_csv(path, filename, encoding)
        return _read_table(table, filename, crs), "csv", enc
    if head.startswith(b"PK"):
        return _read_zip(path, filename, settings, workdir=workdir, crs=crs, encoding=encoding)
    if suffix == ".zip":
        raise ImportFormatError(f"{filename!r} is not a zip file; zip the .shp, .shx, .dbf, .prj (and .cpg) together")
    if head.startswith(b"SQLite format 3"):
        return _read_vector(path, filename, crs, None), "gpkg", None
    if suffix in (".geojson", ".json"):
        frame = _read_vector(path, filename, crs, None)
        if frame.crs is None:
            frame = frame.set_crs(WGS84)  # RFC 7946: GeoJSON is lon/lat
        return frame, "geojson", "UTF-8"
    if suffix == ".shp":
        raise ImportFormatError(f"{filename!r}: upload a Shapefile as a zip with its .shx, .dbf, .prj and .cpg")
    raise ImportFormatError(
        f"cannot tell the format of {filename!r}; upload a .zip (Shapefile), .gpkg, .geojson, .csv or .xlsx"
    )


def _read_zip(
    path: Path, filename: str, settings: Settings, *, workdir: Path, crs: str | None, encoding: str | None
) -> tuple[gpd.GeoDataFrame, str, str | None]:
    files = safe_extract(
        path, workdir / "unzipped", max_total_bytes=settings.max_unzipped_bytes, max_ratio=settings.max_zip_ratio
    )
    by_suffix: dict[str, list[Path]] = {}
    for file in files:
        by_suffix.setdefault(file.suffix.lower(), []).append(file)
    if ".shp" not in by_suffix:
        for suffix, fmt in ((".gpkg", "gpkg"), (".geojson", "geojson")):
            if suffix in by_suffix:
                frame = _read_vector(by_suffix[suffix][0], filename, crs, None)
                return (frame if frame.crs else frame.set_crs(WGS84)), fmt, None
        names = ", ".join(sorted(f.name for f in files)) or "nothing"
        raise ImportFormatError(f"{filename!r} holds no .shp, .gpkg or .geojson (it holds {names})")
    if len(by_suffix[".shp"]) > 1:
        names = ", ".join(sorted(f.name for f in by_suffix[".shp"]))
        raise ImportFormatError(f"{filename!r} holds several Shapefiles ({names}); upload one list per zip")
    shp = by_suffix[".shp"][0]
    siblings = {f.suffix.lower(): f for f in shp.parent.iterdir() if f.stem == shp.stem}
    for needed, why in ((".shx", "index"), (".dbf", "attributes")):
        if needed not in siblings:
            raise ImportFormatError(f"{filename!r} lacks {shp.stem}{needed} (the {why}); add it to the zip")
    if ".prj" not in siblings and crs is None:
        raise ImportFormatError(
            f"{filename!r} lacks {shp.stem}.prj, so its coordinate system is unknown; add the .prj to the zip "
            "or pass crs=EPSG:xxxx (e.g. EPSG:4527 for CGCS2000 3° zone 39)"
        )
    enc = encoding
    if enc is None and ".cpg" in siblings:
        enc = siblings[".cpg"].read_text(errors="replace").strip() or None
    if enc is None:
        enc = _guess_dbf_encoding(siblings[".dbf"])
    return _read_vector(shp, filename, crs, _normalise_encoding(enc)), "shapefile", enc


def _normalise_encoding(enc: str) -> str:
    known = {"936": "GBK", "cp936": "GBK", "gb2312": "GBK", "65001": "UTF-8", "utf8": "UTF-8"}
    return known.get(enc.strip().lower(), enc.strip())


def _guess_dbf_encoding(dbf: Path) -> str:
    """UTF-8 when the DBF's text decodes as UTF-8, else GBK (the Chinese desktop-GIS default).

    Records decide when they hold non-ASCII text; otherwise the field names do, allowing for a
    name cut at 10 bytes in the middle of a character.
    """
    data = dbf.read_bytes()
    header_len = int.from_bytes(data[8:10], "little") if len(data) >= 32 else len(data)
    records = data[header_len:]
    if not records.isascii():
        try:
            records.decode("utf-8")
        except UnicodeDecodeError:
            return "GBK"
        return "UTF-8"
    for start in range(32, max(32, header_len - 1), 32):
        name = data[start : start + 11].split(b"\0", 1)[0]
        if name.startswith(b"\r"):
            break
        try:
            codecs.getincrementaldecoder("utf-8")().decode(name, final=False)
        except UnicodeDecodeError:
            return "GBK"
    return "UTF-8"


def _read_vector(path: Path, filename: str, crs: str | None, encoding: str | None) -> gpd.GeoDataFrame:
    kwargs: dict[str, Any] = {"engine": "pyogrio"}
    if encoding:
        kwargs["encoding"] = encoding
    try:
        frame = gpd.read_file(path, **kwargs)
    except UnicodeDecodeError:
        if not encoding:
            raise ImportFormatError(f"cannot decode the attributes of {filename!r}; pass encoding=GBK") from None
        # A DBF field name cut at 10 bytes can end inside a UTF-8/GBK character; read the bytes as
        # Latin-1 (lossless) and decode them ourselves, dropping the broken tail.
        frame = _recode(gpd.read_file(path, engine="pyogrio", encoding="ISO-8859-1"), encoding)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError …
        raise ImportFormatError(f"cannot read {filename!r}: {exc}") from exc
    if crs is not None:
        frame = frame.set_crs(_parse_crs(crs), allow_override=True)
    return frame


def _recode(frame: gpd.GeoDataFrame, encoding: str) -> gpd.GeoDataFrame:
    def fix(value: Any) -> Any:
        return value.encode("latin-1").decode(encoding, errors="ignore") if isinstance(value, str) else value

    frame = frame.rename(columns={c: fix(c) for c in frame.columns if c != "geometry"})
    for column in frame.columns:
        if column != "geometry" and pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(fix)
    return frame


def _parse_crs(crs: str) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise ImportFormatError(f"unknown crs {crs!r}; give an EPSG code such as EPSG:4490 or EPSG:4527") from exc


def _read_csv(path: Path, filename: str, encoding: str | None) -> tuple[pd.DataFrame, str]:
    for enc in [encoding] if encoding else ["utf-8-sig", "gb18030"]:
        try:
            return pd.read_csv(path, encoding=enc, dtype=str, keep_default_na=False), enc
        except UnicodeDecodeError:
            continue
        except Exception as exc:
            raise ImportFormatError(f"cannot read {filename!r} as CSV: {exc}") from exc
    raise ImportFormatError(f"cannot decode {filename!r}; save it as UTF-8 or pass encoding=GBK")


def _read_table(table: pd.DataFrame, filename: str, crs: str | None) -> gpd.GeoDataFrame:
    """A GeoDataFrame from a table with 经度/纬度, x/y, or WKT columns."""
    folded = {str(c).strip().casefold(): c for c in table.columns}
    wkt_col = next((folded[c] for c in _WKT_COLUMNS if c in folded), None)
    lon_col = next((folded[c] for c in ("经度", "lon", "longitude", "x") if c in folded), None)
    lat_col = next((folded[c] for c in ("纬度", "lat", "latitude", "y") if c in folded), None)
    if wkt_col is not None:
        geoms = [_wkt_or_none(v) for v in table[wkt_col]]
        table = table.drop(columns=[wkt_col])
    elif lon_col is not None and lat_col is not None:
        xs = pd.to_numeric(table[lon_col], errors="coerce")
        ys = pd.to_numeric(table[lat_col], errors="coerce")
        geoms = [None if (math.isnan(x) or math.isnan(y)) else shapely.Point(x, y) for x, y in zip(xs, ys, strict=True)]
        table = table.drop(columns=[lon_col, lat_col])
    else:
        raise ImportFormatError(
            f"{filename!r} has no coordinates; add 经度 and 纬度 columns (or x/y with crs=…, or a WKT column)"
        )
    frame = gpd.GeoDataFrame(table, geometry=gpd.GeoSeries(geoms, index=table.index))
    if crs is not None:
        return frame.set_crs(_parse_crs(crs))
    valid = frame.geometry.dropna()
    if len(valid) and (valid.bounds.abs().max() <= [180, 90, 180, 90]).all():
        return frame.set_crs(CRS.from_epsg(4490))  # lon/lat: CGCS2000 geographic
    raise ImportFormatError(f"{filename!r} has projected coordinates; pass crs=EPSG:xxxx (e.g. EPSG:4527)")


def _wkt_or_none(value: Any) -> BaseGeometry | None:
    text = text_value(value)
    if text is None:
        return None
    try:
        return shapely.from_wkt(text)
    except shapely.errors.GEOSException:
        return None
