"""``/priority-zones``: imports of zone files, ranking of the patches inside, re-ranking on change, the
``priority_zone`` filter of patches and exports, district scoping; and ``/districts/{code}/assignees``."""

from __future__ import annotations

import csv
import io
import json

import geopandas as gpd
import pytest
from shapely.geometry import box, mapping

from tests.service.project_files import zip_dir

IMPORT = "/api/v1/priority-zones/import"
PROBLEM = "application/problem+json"

#: Three zones in 蓟州区 (lon/lat): W a water source, S a steep slope overlapping W's north-east corner,
#: R an ecological red line with its own weight.
W = box(117.40, 40.00, 117.45, 40.05)
S = box(117.44, 40.04, 117.50, 40.10)
R = box(117.60, 40.10, 117.65, 40.15)
#: Patches (about 85 × 111 m, so 疑似未批先建 with no projects: priority 30): in W; in W and S; in S;
#: sharing only W's west edge; in no zone.
P_W = box(117.410, 40.010, 117.411, 40.011)
P_WS = box(117.445, 40.045, 117.446, 40.046)
P_S = box(117.470, 40.070, 117.471, 40.071)
P_TOUCH = box(117.399, 40.020, 117.400, 40.021)
P_OUT = box(117.700, 40.200, 117.701, 40.201)


def zones_geojson(rows: list[tuple[dict, object]]) -> bytes:
    features = [{"type": "Feature", "properties": props, "geometry": geom and mapping(geom)} for props, geom in rows]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False).encode()


THREE = [
    ({"名称": "于桥水库饮用水水源保护区", "类型": "水源保护区", "备注": "一级"}, W),
    ({"名称": "九山顶陡坡区", "类型": "25度以上陡坡"}, S),
    ({"名称": "蓟州区生态保护红线", "类型": "生态保护红线", "权重": 45}, R),
]


def upload(client, auth, data: bytes, filename="zones.geojson", user="supervisor", **form):
    return client.post(IMPORT, headers=auth(user), files={"file": (filename, data)}, data=form)


def imported(client, auth, rows=THREE, **form) -> dict:
    response = upload(client, auth, zones_geojson(rows), **form)
    assert response.status_code == 201, response.text
    return response.json()


def zone_ids(client, auth) -> dict[str, int]:
    body = client.get("/api/v1/priority-zones", headers=auth("viewer")).json()
    return {z["name"]: z["id"] for z in body["data"]}


def patch(client, auth, patch_id: int) -> dict:
    response = client.get(f"/api/v1/patches/{patch_id}", headers=auth("viewer"))
    assert response.status_code == 200, response.text
    return response.json()


def history(client, auth, patch_id: int) -> list[dict]:
    return client.get(f"/api/v1/patches/{patch_id}/history", headers=auth("viewer")).json()["data"]


def test_import_maps_chinese_columns_kinds_and_weights(client, auth):
    report = imported(client, auth)
    assert (report["created"], report["updated"], report["rejected"], report["format"]) == (3, 0, 0, "geojson")
    assert report["field_mapping"] == {"名称": "name", "类型": "kind", "权重": "weight"}
    listing = client.get("/api/v1/priority-zones", headers=auth("viewer"), params={"geometry": "true"}).json()
    assert listing["count"] == 3
    by_name = {z["name"]: z for z in listing["data"]}
    water = by_name["于桥水库饮用水水源保护区"]
    assert (water["kind"], water["kind_label"], water["weight"]) == ("water_source", "水源保护区", 50)
    assert water["district_code"] == "120225" and water["attributes"] == {"备注": "一级"}
    assert water["area_m2"] == pytest.approx(0.05 * 111_320 * 0.05 * 85_300, rel=0.02)
    assert by_name["九山顶陡坡区"]["kind"] == "steep_slope" and by_name["九山顶陡坡区"]["weight"] == 25
    assert by_name["蓟州区生态保护红线"]["weight"] == 45  # its own 权重 beats the kind's default (40)
    assert [z["weight"] for z in listing["data"]] == [50, 45, 25]  # heaviest first
    only = client.get("/api/v1/priority-zones", headers=auth("viewer"), params={"kind": "steep_slope"}).json()
    assert [z["name"] for z in only["data"]] == ["九山顶陡坡区"]
    bad = client.get("/api/v1/priority-zones", headers=auth("viewer"), params={"kind": "lake"})
    assert bad.status_code == 422 and "lake" in bad.json()["detail"]
    got = client.get(f"/api/v1/priority-zones/{water['id']}", headers=auth("viewer"))
    assert got.status_code == 200 and got.headers["ETag"] and got.json()["geometry"]["type"] == "Polygon"
    again = client.get(f"/api/v1/priority-zones/imports/{report['id']}", headers=auth("supervisor")).json()
    assert again["id"] == report["id"] and again["created"] == 3 and again["field_mapping"] == report["field_mapping"]
    # a zone report is not a project-list report, and the other way round
    assert client.get(f"/api/v1/projects/imports/{report['id']}", headers=auth("supervisor")).status_code == 404
    geojson = client.get("/api/v1/map/priority-zones.geojson", headers=auth("viewer")).json()
    assert geojson["count"] == 3 and geojson["features"][0]["properties"]["kind_label"] == "水源保护区"


def test_gbk_shapefile_and_csv_with_wkt(client, auth, tmp_path):
    folder = tmp_path / "shp"
    folder.mkdir()
    frame = gpd.GeoDataFrame(
        {
            "区域名称": ["于桥水库水源地", "某滑坡隐患区"],
            "区域类型": ["饮用水水源保护区", "地质灾害"],
            "权重": [60, None],
        },
        geometry=[W, R],
        crs="EPSG:4326",
    ).to_crs(4527)  # CGCS2000 3° Gauss–Krüger zone 39, as zone layers are delivered
    frame.to_file(folder / "重点区域.shp", encoding="GBK")
    report = upload(client, auth, zip_dir(folder, tmp_path / "zones.zip").read_bytes(), "zones.zip").json()
    assert (report["created"], report["rejected"], report["format"]) == (2, 0, "shapefile")
    zones = {z["name"]: z for z in client.get("/api/v1/priority-zones", headers=auth("viewer")).json()["data"]}
    assert zones["于桥水库水源地"]["weight"] == 60 and zones["于桥水库水源地"]["kind"] == "water_source"
    assert zones["某滑坡隐患区"]["kind"] == "geohazard" and zones["某滑坡隐患区"]["weight"] == 25

    table = io.StringIO()
    csv.writer(table).writerows([["名称", "wkt"], ["沙河河道管理范围", S.wkt]])
    response = upload(client, auth, table.getvalue().encode("gb18030"), "zones.csv", kind="river_corridor", weight="33")
    assert response.status_code == 201, response.text
    river = client.get("/api/v1/priority-zones", headers=auth("viewer"), params={"q": "沙河"}).json()["data"][0]
    assert (river["kind"], river["weight"], river["district_code"]) == ("river_corridor", 33, "120225")


def test_bad_rows_and_files(client, auth):
    rows = [
        ({"名称": "", "类型": "水源保护区"}, W),
        ({"名称": "某区域", "类型": "湖泊"}, S),
        ({"名称": "某区域", "类型": "湖泊"}, R),  # the same name and kind again
        ({"名称": "权重不对", "类型": "陡坡", "权重": "high"}, R),
        ({"名称": "没有形状", "类型": "陡坡"}, None),
    ]
    report = imported(client, auth, rows)
    errors = {e["row"]: e["reason"] for e in report["errors"]}
    assert report["created"] == 2 and report["rejected"] == 3
    assert "no 名称" in errors[1] and "duplicate zone '某区域'" in errors[3] and "no geometry" in errors[5]
    warnings = [w["reason"] for w in report["warnings"]]
    assert any("unknown 类型 '湖泊'" in w for w in warnings) and any("权重 'high'" in w for w in warnings)
    zones = {z["name"]: z for z in client.get("/api/v1/priority-zones", headers=auth("viewer")).json()["data"]}
    assert zones["某区域"]["kind"] == "other" and zones["权重不对"]["weight"] == 25

    no_name = upload(client, auth, zones_geojson([({"类型": "陡坡"}, W)]))
    assert no_name.status_code == 400 and no_name.headers["content-type"] == PROBLEM
    assert "zone name" in no_name.json()["detail"]
    assert upload(client, auth, b"not a zip", "zones.zip").status_code == 400
    bad_kind = upload(client, auth, zones_geojson(THREE), kind="lake")
    assert bad_kind.status_code == 422 and "lake" in bad_kind.json()["detail"]
    bad_weight = upload(client, auth, zones_geojson(THREE), weight="5000")
    assert bad_weight.status_code == 422


def test_patches_inside_rank_higher_by_the_heaviest_zone(client, auth, add_patches):
    ids = dict(zip(["w", "ws", "s", "touch", "out"], add_patches([P_W, P_WS, P_S, P_TOUCH, P_OUT]), strict=True))
    assert {patch(client, auth, i)["priority"] for i in ids.values()} == {30}  # 疑似未批先建, no zones yet
    report = imported(client, auth)
    names = zone_ids(client, auth)
    water, slope = names["于桥水库饮用水水源保护区"], names["九山顶陡坡区"]

    got = {key: patch(client, auth, i) for key, i in ids.items()}
    assert {key: p["priority"] for key, p in got.items()} == {"w": 80, "ws": 80, "s": 55, "touch": 30, "out": 30}
    assert got["ws"]["priority_zone_id"] == water  # the max of 50 and 25, not the sum
    assert [(z["id"], z["weight"], z["kind_label"]) for z in got["ws"]["priority_zones"]] == [
        (water, 50, "水源保护区"),
        (slope, 25, "陡坡"),
    ]
    assert got["touch"]["priority_zone_id"] is None and got["touch"]["priority_zones"] == []
    events = [e for e in history(client, auth, ids["w"]) if e["action"] == "reranked"]
    assert len(events) == 1 and events[0]["before"]["priority"] == 30 and events[0]["after"]["priority"] == 80
    assert f"priority zone import #{report['id']}" in events[0]["reason"]
    assert "于桥水库饮用水水源保护区" in events[0]["reason"] and "+50" in events[0]["reason"]
    assert not [e for e in history(client, auth, ids["out"]) if e["action"] == "reranked"]

    # the list and the map put them first
    listing = client.get("/api/v1/patches", headers=auth("viewer")).json()["data"]
    assert {p["id"] for p in listing[:2]} == {ids["w"], ids["ws"]}
    assert listing[0]["priority_zone_id"] == water
    features = client.get("/api/v1/map/patches.geojson", headers=auth("viewer")).json()["features"]
    assert features[0]["properties"]["priority"] == 80 and features[0]["properties"]["priority_zone_id"] == water
    assert client.get(f"/api/v1/priority-zones/{slope}", headers=auth("viewer")).json()["patch_count"] == 2

    # the same file again changes nothing
    again = imported(client, auth)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert len([e for e in history(client, auth, ids["w"]) if e["action"] == "reranked"]) == 1


def test_patches_found_after_the_zones_are_ranked_on_ingest(client, auth, add_patches):
    imported(client, auth)
    in_water, outside = add_patches([P_W, P_OUT])
    assert patch(client, auth, in_water)["priority"] == 80 and patch(client, auth, outside)["priority"] == 30
    (event,) = [e for e in history(client, auth, in_water) if e["action"] == "reranked"]
    assert event["reason"].startswith("patches ingested: in priority zone '于桥水库饮用水水源保护区'")


def test_reimport_updates_weight_and_outline_and_reranks(client, auth, add_patches):
    in_water, in_slope = add_patches([P_W, P_S])
    imported(client, auth)
    water = zone_ids(client, auth)["于桥水库饮用水水源保护区"]
    heavier = [({"名称": "于桥水库饮用水水源保护区", "类型": "水源保护区", "权重": 70}, W)]
    report = imported(client, auth, heavier)
    assert (report["created"], report["updated"]) == (0, 1)
    assert zone_ids(client, auth)["于桥水库饮用水水源保护区"] == water  # updated in place, not duplicated
    assert patch(client, auth, in_water)["priority"] == 100
    last = [e for e in history(client, auth, in_water) if e["action"] == "reranked"][-1]
    assert (last["before"]["priority"], last["after"]["priority"]) == (80, 100) and "+70" in last["reason"]

    # the zone moves onto the slope patch: one leaves it, the other joins it (and keeps the slope's 25 below)
    moved = [
        ({"名称": "于桥水库饮用水水源保护区", "类型": "水源保护区", "权重": 70}, box(117.46, 40.06, 117.48, 40.08))
    ]
    imported(client, auth, moved)
    left, joined = patch(client, auth, in_water), patch(client, auth, in_slope)
    assert (left["priority"], left["priority_zone_id"], left["priority_zones"]) == (30, None, [])
    assert joined["priority"] == 100 and [z["id"] for z in joined["priority_zones"]][0] == water
    reason = [e for e in history(client, auth, in_water) if e["action"] == "reranked"][-1]["reason"]
    assert reason.endswith("no longer in a priority zone")
    zone_history = client.get(f"/api/v1/priority-zones/{water}", headers=auth("viewer")).json()
    assert zone_history["version"] == 3


def test_edit_renames_and_reweights_and_reranks(client, auth, add_patches):
    (in_water,) = add_patches([P_W])
    imported(client, auth)
    names = zone_ids(client, auth)
    water = names["于桥水库饮用水水源保护区"]
    url = f"/api/v1/priority-zones/{water}"
    etag = client.get(url, headers=auth("viewer")).headers["ETag"]
    assert patch(client, auth, in_water)["priority"] == 80
    response = client.patch(url, headers={**auth("supervisor"), "If-Match": etag},
                            json={"weight": 70, "name": "于桥水库一级保护区"})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["weight"], body["version"]) == ("于桥水库一级保护区", 70, 2)
    assert response.headers["ETag"] != etag
    assert patch(client, auth, in_water)["priority"] == 100
    last = [e for e in history(client, auth, in_water) if e["action"] == "reranked"][-1]
    assert (last["before"]["priority"], last["after"]["priority"]) == (80, 100) and "50 → 70" in last["reason"]
    # someone saved first; another zone's name and kind; out of range; unknown field; roles; other districts
    stale = client.patch(url, headers={**auth("supervisor"), "If-Match": etag}, json={"weight": 10})
    assert stale.status_code == 412 and stale.headers["content-type"] == PROBLEM
    taken = client.patch(url, headers=auth("supervisor"), json={"name": "九山顶陡坡区", "kind": "steep_slope"})
    assert taken.status_code == 409 and "九山顶陡坡区" in taken.json()["detail"]
    for bad in ({"weight": 5000}, {"weight": -1}, {"name": ""}, {"kind": "volcano"}, {"geometry": None}):
        assert client.patch(url, headers=auth("supervisor"), json=bad).status_code == 422, bad
    assert client.patch(url, headers=auth("inspector"), json={"weight": 1}).status_code == 403
    assert client.patch(url, headers=auth("supervisor_jinghai"), json={"weight": 1}).status_code == 404
    assert client.get(url, headers=auth("viewer")).json()["weight"] == 70  # none of those changed it
    same = client.patch(url, headers=auth("supervisor"), json={"weight": 70})
    assert same.status_code == 200 and same.json()["version"] == 2  # nothing changed: no new version


def test_priority_zone_filter_in_patches_and_exports(client, auth, add_patches):
    ids = dict(zip(["w", "ws", "s", "out"], add_patches([P_W, P_WS, P_S, P_OUT]), strict=True))
    imported(client, auth)
    names = zone_ids(client, auth)
    water, slope, red = names["于桥水库饮用水水源保护区"], names["九山顶陡坡区"], names["蓟州区生态保护红线"]

    def listed(value) -> set[int]:
        response = client.get("/api/v1/patches", headers=auth("viewer"), params={"priority_zone": value})
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["data"]}

    assert listed(water) == {ids["w"], ids["ws"]}
    assert listed(slope) == {ids["ws"], ids["s"]}
    assert listed(red) == set()
    assert listed("any") == {ids["w"], ids["ws"], ids["s"]}
    assert listed("") == set(ids.values())
    bad = client.get("/api/v1/patches", headers=auth("viewer"), params={"priority_zone": "water"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM and "'water'" in bad.json()["detail"]
    export = client.get(
        "/api/v1/exports/patches", headers=auth("viewer"), params={"format": "csv", "priority_zone": slope}
    )
    assert export.status_code == 200, export.text
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert sorted(int(r["patch_id"]) for r in rows) == sorted([ids["ws"], ids["s"]])
    by_id = {v: k for k, v in names.items()}
    for r in rows:  # the zone whose weight is in the priority, by name, as a supervisor reads it
        detail = client.get(f"/api/v1/patches/{r['patch_id']}", headers=auth("viewer")).json()
        assert r["priority_zone"] == by_id[detail["priority_zone_id"]]
    assert {r["priority_zone"] for r in rows if int(r["patch_id"]) == ids["s"]} == {"九山顶陡坡区"}
    geojson = client.get("/api/v1/map/patches.geojson", headers=auth("viewer"), params={"priority_zone": "any"})
    assert geojson.json()["count"] == 3


def test_delete_reranks_and_scoping(client, auth, add_patches):
    in_both, in_water = add_patches([P_WS, P_W])
    imported(client, auth)
    names = zone_ids(client, auth)
    water, slope = names["于桥水库饮用水水源保护区"], names["九山顶陡坡区"]
    url = f"/api/v1/priority-zones/{water}"
    assert client.get(url, headers=auth("supervisor_jinghai")).status_code == 404  # another district's
    assert client.get("/api/v1/priority-zones", headers=auth("supervisor_jinghai")).json()["count"] == 0
    assert client.delete(url, headers=auth("supervisor_jinghai")).status_code == 404
    assert client.delete(url, headers=auth("inspector")).status_code == 403
    assert client.delete(url, headers={**auth("supervisor"), "If-Match": '"priority_zones-1-v9"'}).status_code == 412
    assert client.delete(url, headers=auth("supervisor")).status_code == 204
    assert client.get(url, headers=auth("supervisor")).status_code == 404

    both, only_water = patch(client, auth, in_both), patch(client, auth, in_water)
    assert (both["priority"], both["priority_zone_id"]) == (55, slope)  # the slope's 25 is left
    assert (only_water["priority"], only_water["priority_zone_id"], only_water["priority_zones"]) == (30, None, [])
    last = [e for e in history(client, auth, in_water) if e["action"] == "reranked"][-1]
    assert last["reason"] == "priority zone '于桥水库饮用水水源保护区' deleted: no longer in a priority zone"
    assert client.get("/api/v1/patches", headers=auth("viewer"), params={"priority_zone": water}).json()["count"] == 0


def test_zone_rows_of_other_districts_are_rejected(client, auth):
    report = imported(client, auth, [({"名称": "静海某区域", "类型": "陡坡", "行政区代码": "120223"}, W)])
    assert report["created"] == 0 and "not one of yours" in report["errors"][0]["reason"]
    assert upload(client, auth, zones_geojson(THREE), district_code="120223").status_code == 403
    assert upload(client, auth, zones_geojson(THREE), user="inspector").status_code == 403


def test_assignees_of_a_district(client, auth):
    body = client.get("/api/v1/districts/120225/assignees", headers=auth("supervisor")).json()
    assert [(u["name"], u["role"]) for u in body["data"]] == [("inspector", "inspector"), ("supervisor", "supervisor")]
    other = client.get("/api/v1/districts/120223/assignees", headers=auth("admin")).json()
    assert [u["name"] for u in other["data"]] == ["supervisor_jinghai"]
    assert client.get("/api/v1/districts/120223/assignees", headers=auth("supervisor")).status_code == 404
    assert client.get("/api/v1/districts/999999/assignees", headers=auth("admin")).status_code == 404
    assert client.get("/api/v1/districts/120225/assignees", headers=auth("inspector")).status_code == 403


def test_an_import_of_many_zones(client, auth, add_patches):
    """A steep-slope layer is thousands of small polygons: one import, one re-rank, no SQL expression limit."""
    (inside,) = add_patches([P_W])
    cells = [box(117.1 + 0.002 * (i % 40), 40.1 + 0.002 * (i // 40), 117.1011 + 0.002 * (i % 40),
                 40.1011 + 0.002 * (i // 40)) for i in range(1_050)]  # fmt: skip
    rows = [({"名称": f"陡坡图斑{i:04d}", "类型": "陡坡"}, cell) for i, cell in enumerate(cells)]
    report = imported(client, auth, rows + [({"名称": "陡坡图斑W", "类型": "陡坡"}, W)])
    assert (report["created"], report["rejected"]) == (1_051, 0)
    assert patch(client, auth, inside)["priority"] == 55
    assert client.get("/api/v1/priority-zones", headers=auth("viewer")).json()["count"] == 1_051


def test_a_zone_does_not_lift_a_compliant_patch_above_a_suspected_one(client, auth, add_patches):
    """Zones rank what is suspected: an approved site in a water source stays behind an unapproved one
    outside any zone, but still names its zone and matches the filter."""
    imported(client, auth)
    project = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": mapping(W),
               "properties": {"项目名称": "水库管理站改造", "项目代码": "P-W", "行政区代码": "120225"}}]}  # fmt: skip
    report = client.post("/api/v1/projects/import", headers=auth("supervisor"),
                         files={"file": ("list.geojson", json.dumps(project).encode())})  # fmt: skip
    assert report.status_code == 201, report.text
    approved, unapproved = add_patches([P_W, P_OUT])
    inside = patch(client, auth, approved)
    assert inside["category"] == "compliant" and inside["priority_zone_id"] is not None
    assert inside["priority"] == 0 < patch(client, auth, unapproved)["priority"] == 30
    listed = client.get("/api/v1/patches", headers=auth("viewer"), params={"priority_zone": "any"}).json()["data"]
    assert [p["id"] for p in listed] == [approved]
    (event,) = [e for e in history(client, auth, approved) if e["action"] == "reranked"]
    assert "priority" not in event["after"] and "no weight added" in event["reason"]  # only the zone changed
