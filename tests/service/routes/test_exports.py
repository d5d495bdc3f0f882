"""``/exports``: every format opens, Chinese field names and GBK Shapefiles, Excel-safe CSV, scoping, labels."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pyogrio
import pytest
from shapely.geometry import box

from tests.service.project_files import frame

EXPORT = "/api/v1/exports/patches"
PROBLEM = "application/problem+json"
OUT = box(117.405, 40.005, 117.415, 40.008)  # half inside P-001: 疑似超出防治责任范围
FAR = box(117.70, 40.25, 117.702, 40.252)  # no project near: 疑似未批先建
INSIDE = box(117.505, 40.102, 117.507, 40.104)  # inside P-002: 合规
JINGHAI = box(117.0, 38.8, 117.002, 38.802)  # another district
EVIL = '=HYPERLINK("http://e.vil")'


@pytest.fixture
def world(client, auth, add_patches):
    """Projects P-001…P-003, three patches in 蓟州区 and one in 静海区; returns ``{name: patch id}``."""
    geojson = frame(point=False).to_json().encode()
    assert client.post("/api/v1/projects/import", headers=auth("supervisor"),
                       files={"file": ("清单.geojson", geojson)}).status_code == 201  # fmt: skip
    out, far, inside = add_patches([OUT, FAR, INSIDE], after_date=dt.date(2024, 5, 1))
    (jinghai,) = add_patches([JINGHAI], after_date=dt.date(2024, 6, 1))
    return {"out": out, "far": far, "inside": inside, "jinghai": jinghai}


def review(client, auth, pid, verdict, user="inspector"):
    url = f"/api/v1/patches/{pid}"
    etag = client.get(url, headers=auth(user)).headers["etag"]
    response = client.post(f"{url}/reviews", headers=auth(user) | {"If-Match": etag}, json={"verdict": verdict})
    assert response.status_code == 201, response.text


def export(client, auth, user="viewer", **params):
    response = client.get(EXPORT, headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return response


def read_zip_shapefile(data: bytes, tmp_path):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(archive.namelist())
        archive.extractall(tmp_path / "shp")
    return names, pyogrio.read_dataframe(tmp_path / "shp" / "patches.shp")


def test_every_format_opens_with_the_callers_patches(client, auth, world, tmp_path):
    mine = {world["out"], world["far"], world["inside"]}
    body = export(client, auth, format="geojson")
    assert body.headers["content-type"] == "application/geo+json"
    assert "attachment" in body.headers["content-disposition"] and body.headers["x-feature-count"] == "3"
    collection = json.loads(body.content)
    assert collection["type"] == "FeatureCollection" and "crs" not in collection  # RFC 7946: lon/lat only
    assert {f["properties"]["patch_id"] for f in collection["features"]} == mine
    props = next(f["properties"] for f in collection["features"] if f["properties"]["patch_id"] == world["out"])
    assert props["category"] == "suspected_out_of_bounds" and props["category_label"] == "疑似超出防治责任范围"
    assert props["project_codes"] == "P-001" and props["builders"] == "天津某交通集团"
    assert props["district_name"] == "蓟州区" and props["after_date"] == "2024-05-01"
    lon, lat = collection["features"][0]["geometry"]["coordinates"][0][0]
    assert 117 < lon < 118 and 40 < lat < 41

    gpkg = pyogrio.read_dataframe(io.BytesIO(export(client, auth, format="gpkg").content), layer="patches")
    assert set(gpkg["patch_id"]) == mine and gpkg.crs.to_epsg() == 4326
    kml = pyogrio.read_dataframe(io.BytesIO(export(client, auth, format="kml").content))
    assert set(kml["Name"]) == set(gpkg["patch_code"]) and "疑似未批先建" in set(kml["category_label"])
    names, shp = read_zip_shapefile(export(client, auth, format="shp").content, tmp_path)
    assert names == [f"patches.{ext}" for ext in ("cpg", "dbf", "prj", "shp", "shx")]
    assert set(shp["patch_id"]) == mine and "合规" in set(shp["cat_label"]) and shp.crs.to_epsg() == 4326

    gk = pyogrio.read_dataframe(io.BytesIO(export(client, auth, format="gpkg", crs="EPSG:4527").content))
    assert gk.crs.to_epsg() == 4527 and gk.total_bounds[0] > 39_000_000  # CGCS2000 3° zone 39, false easting
    # The city sees every district; filters are those of GET /patches.
    assert export(client, auth, "city_viewer", format="csv").headers["x-feature-count"] == "4"
    assert export(client, auth, "admin", format="csv", district="120223").headers["x-feature-count"] == "1"
    assert export(client, auth, format="csv", category="suspected_unapproved").headers["x-feature-count"] == "1"
    assert export(client, auth, "supervisor_jinghai", format="geojson").headers["x-feature-count"] == "1"


def test_gbk_shapefile_with_chinese_field_names(client, auth, world, tmp_path, settings):
    review(client, auth, world["out"], "confirmed_violation")
    data = export(client, auth, format="shp", names="zh", encoding="gbk").content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("patches.cpg").decode().strip().upper() in ("GBK", "936", "CP936")
        assert "疑似未批先建".encode("gbk") in archive.read("patches.dbf")
    _, shp = read_zip_shapefile(data, tmp_path)
    row = shp.set_index("系统编号").loc[world["out"]]
    assert row["合规性"] == "超出防治责任范围" and row["判别结果"] == "疑似超出防治责任范围"  # confirmed drops 疑似
    assert row["复核状态"] == "已复核" and row["复核结论"] == "违法违规" and row["建设单位"] == "天津某交通集团"
    assert row["行政区"] == "蓟州区" and row["面积亩"] == pytest.approx(row["面积平方米"] / 666.6667, rel=1e-4)

    bad = client.get(EXPORT, headers=auth("viewer"), params={"format": "shp", "names": "zh"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM and "encoding=gbk" in bad.json()["detail"]
    assert client.get(EXPORT, headers=auth("viewer"), params={"format": "csv", "encoding": "gbk"}).status_code == 422
    assert client.get(EXPORT, headers=auth("viewer"), params={"format": "kml", "crs": "EPSG:4527"}).status_code == 422
    assert client.get(EXPORT, headers=auth("viewer"), params={"format": "xls"}).status_code == 422
    settings.export_max_features = 2
    too_many = client.get(EXPORT, headers=auth("viewer"), params={"format": "csv"})
    assert too_many.status_code == 413 and "narrow it" in too_many.json()["detail"]
    assert list((settings.data_dir / "tmp").iterdir()) == []  # temporary files are removed after streaming


def test_csv_opens_in_excel_and_runs_no_formula(client, auth, world):
    url = f"/api/v1/patches/{world['far']}"
    assert client.patch(url, headers=auth("supervisor"), json={"disturbance_type": EVIL}).status_code == 200
    body = export(client, auth, format="csv", names="zh")
    assert body.headers["content-type"].startswith("text/csv") and body.content.startswith(b"\xef\xbb\xbf")
    text = body.content.decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    for name in ("图斑编号", "面积(亩)", "合规性", "扰动类型", "扰动变化类型", "复核状态", "合规性代码"):
        assert name in header
    rows = {row["系统编号"]: row for row in csv.DictReader(io.StringIO(text))}
    far = rows[str(world["far"])]
    assert far["扰动类型"] == "'" + EVIL and ",=" not in text and ',"=' not in text  # shown as text, never run
    assert far["合规性"] == "疑似未批先建" and far["扰动变化类型"] == "新增" and far["复核状态"] == "未复核"
    assert far["图斑编号"].startswith("2024_120225_") and float(far["面积(亩)"]) > 0
    english = export(client, auth, format="csv").content.decode("utf-8-sig")
    assert english.splitlines()[0].startswith("patch_id,patch_code,district_code")


def test_training_labels(client, auth, world):
    review(client, auth, world["out"], "confirmed_violation")
    review(client, auth, world["far"], "false_detection")
    review(client, auth, world["jinghai"], "not_construction", user="admin")
    url = "/api/v1/exports/training-labels"
    response = client.get(url, headers=auth("supervisor"), params={"format": "gpkg"})
    assert response.status_code == 200, response.text
    labels = pyogrio.read_dataframe(io.BytesIO(response.content), layer="labels")
    assert dict(zip(labels["patch_id"], labels["label"], strict=True)) == {world["out"]: 1, world["far"]: 0}
    assert set(labels["verdict"]) == {"confirmed_violation", "false_detection"} and labels["reviewed_at"].notna().all()
    assert labels.geom_type.isin(["Polygon", "MultiPolygon"]).all() and labels.crs.to_epsg() == 4326
    everything = json.loads(client.get(url, headers=auth("admin"), params={"format": "geojson"}).content)
    assert sorted(f["properties"]["label"] for f in everything["features"]) == [0, 0, 1]
    assert client.get(url, headers=auth("viewer")).status_code == 403
