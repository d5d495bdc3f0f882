"""``/stats``: counts, areas and field precision of a hand-made case, grouping, periods and district scoping."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pytest
from shapely.geometry import box

from service.db import make_engine, make_sessionmaker, session_scope
from service.patches import ingest_detections
from tests.service.project_files import frame

STATS = "/api/v1/stats"
OUT = box(117.405, 40.005, 117.415, 40.008)  # half outside P-001: 疑似超出防治责任范围
FAR = box(117.70, 40.25, 117.702, 40.252)  # 疑似未批先建
INSIDE = box(117.505, 40.102, 117.507, 40.104)  # inside P-002: 合规
FAR2 = box(117.72, 40.27, 117.721, 40.271)
FAR3 = box(117.75, 40.28, 117.751, 40.281)
JINGHAI = box(117.0, 38.8, 117.002, 38.802)


def ingest(settings, geoms, after_date, model):
    gdf = gpd.GeoDataFrame({"after_date": [after_date] * len(geoms), "model": [model] * len(geoms)},
                           geometry=geoms, crs="EPSG:4326")  # fmt: skip
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        ids = [p.id for p in ingest_detections(session, settings, gdf)]
    engine.dispose()
    return ids


def review(client, auth, pid, verdict, user="inspector"):
    url = f"/api/v1/patches/{pid}"
    etag = client.get(url, headers=auth(user)).headers["etag"]
    response = client.post(f"{url}/reviews", headers=auth(user) | {"If-Match": etag}, json={"verdict": verdict})
    assert response.status_code == 201, response.text
    return response


@pytest.fixture
def case(client, auth, settings):
    """May (model v1): OUT confirmed, FAR confirmed and closed, INSIDE compliant verdict; September (v2): FAR2
    false detection, FAR3 not a construction project; 静海区 (v1, June): one unreviewed patch."""
    geojson = frame(point=False).to_json().encode()
    assert client.post("/api/v1/projects/import", headers=auth("supervisor"),
                       files={"file": ("清单.geojson", geojson)}).status_code == 201  # fmt: skip
    out, far, inside = ingest(settings, [OUT, FAR, INSIDE], dt.date(2024, 5, 10), "v1")
    far2, far3 = ingest(settings, [FAR2, FAR3], dt.date(2024, 9, 20), "v2")
    (jinghai,) = ingest(settings, [JINGHAI], dt.date(2024, 6, 1), "v1")
    review(client, auth, out, "confirmed_violation")
    closing = review(client, auth, far, "confirmed_violation")
    review(client, auth, inside, "compliant")
    review(client, auth, far2, "false_detection")
    review(client, auth, far3, "not_construction")
    closed = client.patch(f"/api/v1/patches/{far}", headers=auth("supervisor") | {"If-Match": closing.headers["etag"]},
                          json={"review_status": "closed"})  # fmt: skip
    assert closed.status_code == 200, closed.text
    return {"out": out, "far": far, "inside": inside, "far2": far2, "far3": far3, "jinghai": jinghai}


def stats(client, auth, user="viewer", **params):
    response = client.get(STATS, headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def area_of(client, auth, ids):
    patches = client.get("/api/v1/patches", headers=auth("admin"), params={"limit": 100}).json()["data"]
    return sum(p["area_m2"] for p in patches if p["id"] in ids)


def test_counts_areas_and_field_precision(client, auth, case):
    body = stats(client, auth)
    assert body["group_by"] == ["district"] and len(body["data"]) == 1  # the viewer sees 蓟州区 only
    row = body["data"][0]
    assert row["district_code"] == "120225" and row["district_name"] == "蓟州区" and row["month"] is None
    assert (row["found"], row["suspected"], row["reviewed"]) == (5, 4, 5)
    assert (row["confirmed"], row["rejected"], row["closed"]) == (2, 2, 1)
    assert row["field_precision"] == pytest.approx(0.5) and row["disturbance_precision"] == pytest.approx(0.6)
    categories = {c["category"]: (c["count"], c["label"]) for c in row["by_category"]}
    assert categories == {"compliant": (1, "合规"), "suspected_out_of_bounds": (1, "疑似超出防治责任范围"),
                          "suspected_unapproved": (3, "疑似未批先建")}  # fmt: skip
    verdicts = {v["verdict"]: v["count"] for v in row["by_verdict"]}
    assert verdicts == {"compliant": 1, "confirmed_violation": 2, "false_detection": 1, "not_construction": 1}
    mine = [case[k] for k in ("out", "far", "inside", "far2", "far3")]
    assert row["area_m2"] == pytest.approx(area_of(client, auth, mine))
    assert row["area_mu"] == pytest.approx(row["area_m2"] / 666.6667, rel=1e-5)
    assert row["confirmed_area_m2"] == pytest.approx(area_of(client, auth, [case["out"], case["far"]]))
    assert row["closed_area_mu"] == pytest.approx(area_of(client, auth, [case["far"]]) / 666.6667, rel=1e-5)
    assert body["total"]["found"] == 5


def test_grouping_periods_and_scoping(client, auth, case):
    months = {r["month"]: r for r in stats(client, auth, group_by="month")["data"]}
    assert set(months) == {"2024-05", "2024-09"}
    assert (months["2024-05"]["found"], months["2024-05"]["field_precision"]) == (3, 1.0)
    assert (months["2024-09"]["found"], months["2024-09"]["field_precision"]) == (2, 0.0)
    models = {r["model"]: r["found"] for r in stats(client, auth, group_by="model")["data"]}
    assert models == {"v1": 3, "v2": 2}
    both = stats(client, auth, "admin", group_by=["district", "model"])["data"]
    assert {(r["district_code"], r["model"], r["found"]) for r in both} == {
        ("120223", "v1", 1), ("120225", "v1", 3), ("120225", "v2", 2)}  # fmt: skip
    summer = stats(client, auth, period_start="2024-06-01", period_end="2024-12-31")
    assert summer["total"]["found"] == 2 and summer["period_start"] == "2024-06-01"
    city = stats(client, auth, "city_viewer")
    assert [r["district_code"] for r in city["data"]] == ["120223", "120225"] and city["total"]["found"] == 6
    assert stats(client, auth, "city_viewer", district="120223")["total"]["found"] == 1
    jinghai = stats(client, auth, "supervisor_jinghai")
    assert jinghai["total"]["found"] == 1 and jinghai["total"]["field_precision"] is None
    assert stats(client, auth, "supervisor_jinghai", district="120225")["total"]["found"] == 0  # not theirs
    bad = client.get(STATS, headers=auth("viewer"), params={"period_start": "2024-09-01", "period_end": "2024-01-01"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert client.get(STATS, headers=auth("viewer"), params={"group_by": "week"}).status_code == 422
