"""``/projects``: imports of every format, re-import, search, edit, delete, bad files."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import shape

from tests.service.project_files import BOWTIE, P1, csv_bytes, frame, raw_zip, shapefile_zip, xlsx_bytes, zip_bomb

IMPORT = "/api/v1/projects/import"
PROBLEM = "application/problem+json"


def upload(client, auth, path_or_bytes, filename=None, user="supervisor", **form):
    data = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    name = filename or path_or_bytes.name
    return client.post(IMPORT, headers=auth(user), files={"file": (name, data)}, data=form)


def projects(client, auth, user="supervisor", **params):
    response = client.get("/api/v1/projects", headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_gbk_shapefile_in_gauss_kruger_is_imported(client, auth, tmp_path):
    response = upload(client, auth, shapefile_zip(tmp_path, encoding="GBK"))
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["created"], report["rejected"], report["format"]) == (3, 0, "shapefile")
    assert report["encoding"].upper() in {"GBK", "CP936"}
    assert report["field_mapping"]["项目名称"] == "name" and report["field_mapping"]["批复时间"] == "approved_on"
    assert report["field_mapping"]["防治责任范"] == "declared_area_hm2"  # DBF names are cut at 10 bytes

    listing = projects(client, auth, geometry="true")
    assert listing["count"] == 3
    first = listing["data"][0]
    assert first["code"] == "P-001" and first["name"] == "蓟州区某高速公路工程"
    assert first["builder"] == "天津某交通集团" and first["approval_number"] == "津水许可〔2023〕12号"
    assert first["approved_on"] == "2023-05-01" and first["district_code"] == "120225"
    assert first["attributes"] == {"备注": None} or first["attributes"].get("备注") in ("", None)
    # Reprojected from EPSG:4527 back to lon/lat.
    assert shape(first["geometry"]).normalize().equals_exact(P1.normalize(), 1e-6)
    assert first["area_m2"] == pytest.approx(1.0e6 * 0.01 * 0.01 * 111.32 * 85.3, rel=0.02)
    by_code = {p["code"]: p for p in listing["data"]}
    assert by_code["P-002"]["approved_on"] == "2023-06-02" and by_code["P-003"]["approved_on"] == "2024-01-03"
    assert by_code["P-002"]["declared_area_hm2"] == pytest.approx(3.2)


def test_points_are_buffered(client, auth, tmp_path):
    path = tmp_path / "points.geojson"
    frame(4326).to_file(path, driver="GeoJSON")
    report = upload(client, auth, path).json()
    assert any("buffered" in w["reason"] and w["code"] == "P-003" for w in report["warnings"])
    p3 = projects(client, auth, code="P-003")["data"][0]
    assert p3["vector_type"] == "point_buffer"
    assert p3["area_m2"] == pytest.approx(3.1416 * 100**2, rel=0.01)  # default point_buffer_m = 100


def test_shapefile_without_cpg_is_detected(client, auth, tmp_path):
    for encoding in ("GBK", "UTF-8"):
        path = shapefile_zip(tmp_path, encoding=encoding, skip=(".cpg",))
        report = upload(client, auth, path).json()
        assert report["rejected"] == 0, report
        names = {p["name"] for p in projects(client, auth)["data"]}
        assert "蓟州区某高速公路工程" in names, (encoding, names)


def test_reimport_updates_by_code_without_duplicates(client, auth, tmp_path):
    assert upload(client, auth, shapefile_zip(tmp_path)).json()["created"] == 3
    again = upload(client, auth, shapefile_zip(tmp_path, crs=4326)).json()
    assert (again["created"], again["updated"] + again["unchanged"]) == (0, 3)
    changed = frame(4326, point=False)
    changed.loc[0, "建设单位"] = "新的建设单位"
    path = tmp_path / "changed.geojson"
    changed.to_file(path, driver="GeoJSON")
    report = upload(client, auth, path).json()
    assert (report["created"], report["updated"], report["format"]) == (0, 1, "geojson")
    assert projects(client, auth)["count"] == 3
    assert projects(client, auth, code="P-001")["data"][0]["builder"] == "新的建设单位"


@pytest.mark.parametrize("fmt", ["gpkg", "csv", "xlsx"])
def test_other_formats(client, auth, tmp_path, fmt):
    if fmt == "gpkg":
        path = tmp_path / "清单.gpkg"
        frame(4490).to_file(path, driver="GPKG")
        response = upload(client, auth, path)
    elif fmt == "csv":
        response = upload(client, auth, csv_bytes("gb18030"), "清单.csv")
    else:
        response = upload(client, auth, xlsx_bytes(), "清单.xlsx")
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["created"] == 3 and report["rejected"] == 0, report
    assert projects(client, auth, q="房地产")["count"] == 1


def test_invalid_geometries_repaired_or_rejected_with_row(client, auth, tmp_path):
    gdf = frame(4326)
    gdf.loc[1, "geometry"] = BOWTIE  # repairable
    gdf.loc[2, "geometry"] = None  # no geometry: rejected
    gdf.loc[0, "项目代码"] = None  # no code: rejected
    path = tmp_path / "bad.gpkg"
    gdf.to_file(path, driver="GPKG")
    report = upload(client, auth, path).json()
    assert (report["created"], report["repaired"], report["rejected"]) == (1, 1, 2)
    reasons = {e["row"]: e["reason"] for e in report["errors"]}
    assert "项目代码" in reasons[1] and "no geometry" in reasons[3]
    assert any(w["row"] == 2 and "repaired" in w["reason"] for w in report["warnings"])
    # The report can be read back.
    again = client.get(f"/api/v1/projects/imports/{report['id']}", headers=auth("supervisor")).json()
    assert again["errors"] == report["errors"]


@pytest.mark.parametrize(
    ("name", "members", "status", "needle"),
    [
        ("evil.zip", {"../../etc/evil.shp": b"x"}, 400, "outside the archive"),
        ("abs.zip", {"/tmp/abs.shp": b"x"}, 400, "outside the archive"),
        ("empty.zip", {"readme.txt": b"hello"}, 400, "holds no .shp"),
    ],
)
def test_bad_zips(client, auth, tmp_path, name, members, status, needle):
    response = upload(client, auth, raw_zip(tmp_path, name, members))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert needle in response.json()["detail"]


def test_not_a_zip_and_unknown_format(client, auth, tmp_path):
    response = upload(client, auth, b"this is not a zip", "list.zip")
    assert response.status_code == 400 and "not a zip" in response.json()["detail"]
    response = upload(client, auth, b"\x00\x01binary", "list.dat")
    assert response.status_code == 400 and "cannot tell the format" in response.json()["detail"]


def test_zip_bomb_is_rejected(client, auth, tmp_path):
    response = upload(client, auth, zip_bomb(tmp_path))
    assert response.status_code == 400
    assert "zip bomb" in response.json()["detail"]


def test_shapefile_without_prj_is_a_clear_4xx(client, auth, tmp_path):
    response = upload(client, auth, shapefile_zip(tmp_path, skip=(".prj",)))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert ".prj" in detail and "crs=EPSG" in detail
    ok = upload(client, auth, shapefile_zip(tmp_path, crs=4527, skip=(".prj", ".cpg")), crs="EPSG:4527")
    assert ok.status_code == 201 and ok.json()["created"] == 3


def test_upload_over_the_limit_is_413(client, auth, settings):
    settings.max_import_bytes = 1000
    response = upload(client, auth, b"PK" + b"\0" * 5000, "big.zip")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_rows_of_other_districts_are_rejected(client, auth, tmp_path):
    path = tmp_path / "list.geojson"
    frame(4326).to_file(path, driver="GeoJSON")
    response = upload(client, auth, path, user="supervisor_jinghai")
    # The projects lie in 蓟州区 (found from the boundaries), which is not this supervisor's district.
    assert response.status_code == 201
    report = response.json()
    assert report["created"] == 0 and report["rejected"] == 3
    assert "not one of yours" in report["errors"][0]["reason"]
    response = upload(client, auth, path, user="supervisor_jinghai", district_code="120225")
    assert response.status_code == 403


def test_search_paging_and_bbox(client, auth, tmp_path):
    upload(client, auth, shapefile_zip(tmp_path))
    page = projects(client, auth, limit=2)
    assert page["count"] == 3 and len(page["data"]) == 2 and page["data"][0]["geometry"] is None
    assert projects(client, auth, limit=2, offset=2)["data"][0]["code"] == "P-003"
    assert projects(client, auth, bbox="117.39,39.99,117.45,40.05")["data"][0]["code"] == "P-001"
    assert projects(client, auth, builder="国网")["data"][0]["code"] == "P-003"
    assert projects(client, auth, district="120223")["count"] == 0
    # Other districts do not see them; the city does.
    assert projects(client, auth, user="supervisor_jinghai")["count"] == 0
    assert projects(client, auth, user="city_viewer")["count"] == 3
    bad = client.get("/api/v1/projects", headers=auth("viewer"), params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and "bbox" in bad.json()["detail"]


def test_get_patch_delete_with_etag(client, auth, tmp_path):
    upload(client, auth, shapefile_zip(tmp_path))
    pid = projects(client, auth, code="P-002")["data"][0]["id"]
    url = f"/api/v1/projects/{pid}"
    got = client.get(url, headers=auth("viewer"))
    assert got.status_code == 200 and got.json()["code"] == "P-002"
    etag = got.headers["etag"]
    edited = client.patch(url, headers=auth("supervisor") | {"If-Match": etag},
                          json={"construction_state": "施工", "vector_type": "schematic"})  # fmt: skip
    assert edited.status_code == 200, edited.text
    assert edited.json()["construction_state"] == "施工" and edited.headers["etag"] != etag
    stale = client.patch(url, headers=auth("supervisor") | {"If-Match": etag}, json={"name": "x"})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    bad = client.patch(url, headers=auth("supervisor"), json={"colour": "red"})
    assert bad.status_code == 422
    assert client.get(url, headers=auth("supervisor_jinghai")).status_code == 404
    assert client.delete(url, headers=auth("viewer")).status_code == 403
    assert client.delete(url, headers=auth("supervisor")).status_code == 204
    assert client.get(url, headers=auth("supervisor")).status_code == 404
    assert json.loads(client.get("/api/v1/projects", headers=auth("admin")).text)["count"] == 2
