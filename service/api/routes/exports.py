"""``/exports``: patch queries as GIS files and spreadsheets, and reviewed patches as training labels."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from service.api.deps import ScopeDep, SessionDep, SettingsDep, require_role
from service.api.problems import problem_responses
from service.api.routes.patches import patch_query
from service.exports import (
    ExportFile,
    ExportFormat,
    FieldNames,
    LabelFormat,
    ShapefileEncoding,
    export_patches,
    export_training_labels,
)
from service.models import User
from service.patches import PatchQuery
from service.vocab import Role

__all__ = ["router"]

router = APIRouter(prefix="/exports", tags=["exports"])
Reader = Annotated[User, Depends(require_role(Role.viewer))]
Supervisor = Annotated[User, Depends(require_role(Role.supervisor))]

_PATCH_FILES = {"description": "The file, as an attachment",
                "content": {"application/geo+json": {}, "application/geopackage+sqlite3": {}, "application/zip": {},
                            "application/vnd.google-earth.kml+xml": {}, "text/csv": {}}}  # fmt: skip
_LABEL_FILES = {"description": "The file, as an attachment",
                "content": {"application/geopackage+sqlite3": {}, "application/geo+json": {}}}  # fmt: skip


def _stream(export: ExportFile) -> FileResponse:
    """Stream the file, then delete its temporary folder."""
    disposition = f"attachment; filename=\"{export.filename}\"; filename*=UTF-8''{quote(export.filename)}"
    return FileResponse(
        export.path,
        media_type=export.media_type,
        headers={"Content-Disposition": disposition, "X-Feature-Count": str(export.count)},
        background=BackgroundTask(export.cleanup),
    )


@router.get(
    "/patches",
    summary="Export a patch query (GeoJSON, GeoPackage, Shapefile, KML, CSV)",
    response_class=FileResponse,
    responses={200: _PATCH_FILES, **problem_responses(413)},
)
def export_patch_query(
    user: Reader,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    query: Annotated[PatchQuery, Depends(patch_query)],
    fmt: Annotated[
        ExportFormat, Query(alias="format", description="geojson, gpkg, shp (zipped), kml or csv")
    ] = ExportFormat.geojson,
    names: Annotated[
        FieldNames, Query(description="Field names: en, or zh (图斑编号, 面积(亩), 合规性 …)")
    ] = FieldNames.en,
    encoding: Annotated[
        ShapefileEncoding, Query(description="Shapefile attribute encoding; gbk for older desktop GIS (.cpg says so)")
    ] = ShapefileEncoding.utf8,
    crs: Annotated[
        str | None,
        Query(
            description="gpkg/shp only: EPSG:4326 (default), EPSG:4490 (CGCS2000, same coordinates) or a "
            "projected CRS such as a CGCS2000 Gauss–Krüger zone, EPSG:4527"
        ),
    ] = None,  # fmt: skip
) -> FileResponse:
    """The patches matching the filters of ``GET /patches`` in your districts, as one file.

    - **geojson**: RFC 7946 FeatureCollection, lon/lat (EPSG:4326; CGCS2000 coordinates are the same to cm).
    - **gpkg**: GeoPackage, layer ``patches``.
    - **shp**: zipped Shapefile ``patches.shp/.shx/.dbf/.prj/.cpg``; field names are shortened to 10
      characters (``dist_code``, ``cat_label`` …); ``encoding=gbk`` writes GBK attributes for older desktop
      GIS (required with ``names=zh``), otherwise UTF-8; the ``.cpg`` names the encoding.
    - **kml**: placemarks named by 图斑编号 with every attribute as extended data.
    - **csv**: one row a patch with centroid lon/lat, no geometry; UTF-8 with a BOM so Excel reads the
      Chinese; cells starting with ``= + - @`` get a leading ``'`` so no formula runs.

    Codes are stable English with the Chinese label beside them: ``category`` / ``category_label`` is the
    machine judgement (疑似…), ``compliance`` / ``compliance_label`` the value after review (未批先建 …),
    ``review_status`` / ``review_status_label``, ``verdict`` / ``verdict_label``. Dates are ISO text.
    """
    export = export_patches(session, scope, query, fmt, names=names, encoding=encoding, crs=crs,
                            max_features=settings.export_max_features, tmp_dir=settings.data_dir / "tmp")  # fmt: skip
    return _stream(export)


@router.get(
    "/training-labels",
    summary="Reviewed patches as training labels (label 1 = real disturbance, 0 = hard negative)",
    response_class=FileResponse,
    responses={200: _LABEL_FILES, **problem_responses(403)},
)
def export_labels(
    user: Supervisor,
    session: SessionDep,
    settings: SettingsDep,
    scope: ScopeDep,
    fmt: Annotated[LabelFormat, Query(alias="format", description="gpkg or geojson")] = LabelFormat.gpkg,
    district: str | None = None,
    after_from: Annotated[dt.date | None, Query(description="After-image date from (inclusive)")] = None,
    after_to: Annotated[dt.date | None, Query(description="After-image date to (inclusive)")] = None,
) -> FileResponse:
    """Every reviewed patch in your districts as a labelled polygon, for retraining the detector.

    **Format**: one polygon layer ``labels`` in EPSG:4326 (GeoPackage, or RFC 7946 GeoJSON), one feature
    per reviewed patch, with the fields:

    | field | meaning |
    | --- | --- |
    | `label` | 1 = real construction disturbance (`confirmed_violation`, or `compliant`: built with approval); |
    | | 0 = hard negative (`false_detection`, `not_construction`: farming, natural change) |
    | `verdict`, `verdict_label` | the inspector's verdict (违法违规, 合规, 非生产建设项目, 误判) |
    | `reviewed_at` | time of the latest review (ISO 8601) |
    | `patch_id`, `patch_code`, `district_code`, `area_m2`, `model`, `confidence`, `scan_id` | the detection |
    | `before_imagery_id`, `after_imagery_id` | ids of the uploaded tiles of the scan (`GET /imagery/{id}`) |
    | `before_date`, `after_date` | acquisition dates (ISO) |
    | `before_path`, `after_path` | the tiles' paths on the server (or the detector's source names) |
    | `sensor` | sensor of the after tile |

    **Rasterising** for training (the ``A/``, ``B/``, ``label/``, ``valid/`` layout of ``training.data``):
    group features by (`before_path`, `after_path`); crop A and B from the two tiles around the features
    on the after tile's grid; burn `label == 1` polygons as 255 into ``label/`` (0 elsewhere) and **all**
    features as 255 into ``valid/``. Pixels outside every feature were never reviewed: leave them 0 in
    ``valid/`` so the loss ignores them (sparse labels), which makes label-0 polygons hard negatives.
    """
    export = export_training_labels(session, scope, fmt, district=district, after_from=after_from,
                                    after_to=after_to, tmp_dir=settings.data_dir / "tmp")  # fmt: skip
    return _stream(export)
