"""``/credit-list``: builders from confirmed cases (note, overlap, nearest project), levels by the rule, scoping."""

from __future__ import annotations

import datetime as dt

import pytest
from shapely.geometry import box

from service.credit import builder_from_note
from tests.service.project_files import frame

CREDIT = "/api/v1/credit-list"
OUT = box(117.405, 40.005, 117.415, 40.008)  # half outside P-001 (天津某交通集团)
OUT2 = box(117.395, 40.001, 117.402, 40.004)  # also half outside P-001
NEAR_P3 = box(117.607, 40.20, 117.608, 40.201)  # ~170 m east of P-003 (国网天津电力): 疑似建设地点变更
FAR = box(117.70, 40.25, 117.702, 40.252)  # 疑似未批先建: the builder comes from the review note
FAR2 = box(117.72, 40.27, 117.721, 40.271)  # 未批先建, nobody named yet
JINGHAI = box(117.0, 38.8, 117.002, 38.802)


def review(client, auth, pid, note=None, user="inspector"):
    url = f"/api/v1/patches/{pid}"
    etag = client.get(url, headers=auth(user)).headers["etag"]
    body = {"verdict": "confirmed_violation", "note": note}
    response = client.post(f"{url}/reviews", headers=auth(user) | {"If-Match": etag}, json=body)
    assert response.status_code == 201, response.text
    return response.headers["etag"]


@pytest.fixture
def cases(client, auth, add_patches):
    geojson = frame(point=False).to_json().encode()
    assert client.post("/api/v1/projects/import", headers=auth("supervisor"),
                       files={"file": ("清单.geojson", geojson)}).status_code == 201  # fmt: skip
    ids = dict(zip(["out", "out2", "near", "far", "far2", "jinghai"],
                   add_patches([OUT, OUT2, NEAR_P3, FAR, FAR2, JINGHAI]), strict=True))  # fmt: skip
    for key in ("out", "out2", "near", "far2"):
        review(client, auth, ids[key])
    ids["far_etag"] = review(client, auth, ids["far"], note="现场核实：建设单位：天津某建材有限公司，无水保方案")
    review(client, auth, ids["jinghai"], note="建设单位: 静海某物流公司", user="admin")
    return ids


def credit(client, auth, user="viewer", **params):
    response = client.get(CREDIT, headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_builders_levels_and_cases(client, auth, settings, cases):
    body = credit(client, auth)
    assert body["rules"] == {"watch_min_cases": 1, "blacklist_min_cases": 3, "rectify_days": 180, "window_days": None}
    entries = {e["builder"]: e for e in body["data"]}
    assert set(entries) == {"天津某交通集团", "天津某建材有限公司", "国网天津电力"}
    assert {e["level"] for e in body["data"]} == {"key_attention"} and body["data"][0]["level_label"] == "重点关注名单"
    road = entries["天津某交通集团"]
    assert road["confirmed_cases"] == 2 and road["overdue_cases"] == 0
    assert {c["patch_id"] for c in road["cases"]} == {cases["out"], cases["out2"]}
    assert {c["attribution"] for c in road["cases"]} == {"overlap"} and road["cases"][0]["project_code"] == "P-001"
    assert road["cases"][0]["verdict_on"] == dt.date.today().isoformat() and road["open_cases"] == 2
    assert entries["国网天津电力"]["cases"][0]["attribution"] == "nearest"
    note_case = entries["天津某建材有限公司"]["cases"][0]
    assert note_case["attribution"] == "review_note" and note_case["category"] == "suspected_unapproved"
    assert [c["patch_id"] for c in body["unattributed"]] == [cases["far2"]]

    # Past the rectification deadline every open case blacklists its builder ...
    later = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    assert {e["level"] for e in credit(client, auth, as_of=later)["data"]} == {"blacklist"}
    # ... unless it was closed (销号) in time.
    headers = auth("supervisor") | {"If-Match": cases["far_etag"]}
    closed = client.patch(f"/api/v1/patches/{cases['far']}", headers=headers, json={"review_status": "closed"})
    assert closed.status_code == 200, closed.text
    entry = credit(client, auth, as_of=later, builder="建材")["data"][0]
    assert entry["level"] == "key_attention" and entry["open_cases"] == 0
    assert entry["cases"][0]["closed_on"] == dt.date.today().isoformat()

    settings.credit_blacklist_min_cases = 2  # the rule is configuration
    black = credit(client, auth, level="blacklist")
    assert [e["builder"] for e in black["data"]] == ["天津某交通集团"]
    assert "2 confirmed" in black["data"][0]["reasons"][0]
    assert credit(client, auth, as_of="2000-01-01")["count"] == 0  # nothing confirmed yet back then


def test_district_scoping(client, auth, cases):
    assert [e["builder"] for e in credit(client, auth, "supervisor_jinghai")["data"]] == ["静海某物流公司"]
    assert "静海某物流公司" not in {e["builder"] for e in credit(client, auth, "viewer")["data"]}
    assert credit(client, auth, "city_viewer")["count"] == 4
    assert client.get(CREDIT, headers=auth("viewer"), params={"level": "grey"}).status_code == 422


def test_builder_from_note():
    assert builder_from_note("建设单位：天津某置业有限公司，正在施工") == "天津某置业有限公司"
    assert builder_from_note("复核 建设单位 : 某公司; 已责令停工") == "某公司"
    assert builder_from_note("未见施工") is None and builder_from_note(None) is None
