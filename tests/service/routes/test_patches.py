"""``/patches``: filters, detail, assignment, review with ETag/If-Match, history."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import box
from sqlalchemy import update

from service.db import make_engine, make_sessionmaker, session_scope
from service.models import Patch, set_geometry

PROBLEM = "application/problem+json"
A = box(117.402, 40.002, 117.404, 40.004)
B = box(117.70, 40.25, 117.71, 40.26)
C = box(117.75, 40.20, 117.751, 40.201)


def _list(client, auth, user="viewer", **params):
    response = client.get("/api/v1/patches", headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_list_filters_and_paging(client, auth, add_patches):
    add_patches([A, B], after_date=dt.date(2024, 5, 1))
    add_patches([C], after_date=dt.date(2024, 9, 1))
    everything = _list(client, auth)
    assert everything["count"] == 3
    areas = [p["area_m2"] for p in everything["data"]]
    assert areas == sorted(areas, reverse=True)  # same priority: biggest first
    assert _list(client, auth, min_area_m2=20_000)["count"] == 2
    assert _list(client, auth, after_from="2024-06-01")["count"] == 1
    assert _list(client, auth, bbox="117.69,40.24,117.72,40.27")["data"][0]["area_mu"] > 100
    assert _list(client, auth, category="suspected_unapproved")["count"] == 3
    assert _list(client, auth, category="compliant")["count"] == 0
    assert len(_list(client, auth, limit=1, offset=1)["data"]) == 1
    assert _list(client, auth, user="supervisor_jinghai")["count"] == 0
    bad = client.get("/api/v1/patches", headers=auth("viewer"), params={"category": "bad"})
    assert bad.status_code == 422 and "'bad'" in bad.json()["detail"]


def test_min_confidence_keeps_the_surer_detections(client, auth, settings, add_patches):
    ids = add_patches([A, B, C])
    _set(settings, ids[:1], confidence=0.92)
    _set(settings, ids[1:2], confidence=0.61)
    _set(settings, ids[2:], confidence=None)  # imported without one
    assert {p["id"] for p in _list(client, auth, min_confidence=0.8)["data"]} == {ids[0]}
    assert {p["id"] for p in _list(client, auth, min_confidence=0.6)["data"]} == set(ids[:2])
    assert _list(client, auth)["count"] == 3  # no filter: every patch, with or without a confidence
    for bad in ("1.5", "-0.1", "high"):
        response = client.get("/api/v1/patches", headers=auth("viewer"), params={"min_confidence": bad})
        assert response.status_code == 422, bad
    export = client.get("/api/v1/exports/patches", headers=auth("viewer"), params={"min_confidence": 0.8})
    assert export.status_code == 200, export.text
    assert [f["properties"]["confidence"] for f in export.json()["features"]] == [0.92]


def test_detail_and_scoping(client, auth, add_patches):
    (pid,) = add_patches([A])
    response = client.get(f"/api/v1/patches/{pid}", headers=auth("inspector"))
    body = response.json()
    assert response.headers["etag"] == f'"patches-{pid}-v{body["version"]}"'
    assert body["geometry"]["type"] == "Polygon" and body["patch_code"].startswith("2024_120225_")
    assert client.get(f"/api/v1/patches/{pid}", headers=auth("supervisor_jinghai")).status_code == 404
    assert client.get("/api/v1/patches/999999", headers=auth("admin")).status_code == 404


def test_review_needs_if_match_and_detects_conflicts(client, auth, add_patches):
    (pid,) = add_patches([A])
    url = f"/api/v1/patches/{pid}"
    etag = client.get(url, headers=auth("inspector")).headers["etag"]
    verdict = {"verdict": "confirmed_violation", "note": "现场复核：未批先建", "photos": ["photo-1.jpg"]}

    missing = client.post(f"{url}/reviews", headers=auth("inspector"), json=verdict)
    assert missing.status_code == 428 and missing.headers["content-type"] == PROBLEM
    assert etag in missing.json()["detail"]

    # Two inspectors loaded the same version; the first save wins, the second gets 412.
    first = client.post(f"{url}/reviews", headers=auth("inspector") | {"If-Match": etag}, json=verdict)
    assert first.status_code == 201, first.text
    assert first.json()["verdict"] == "confirmed_violation" and first.json()["verdict_label"] == "违法违规"
    assert first.json()["review_status"] == "reviewed"
    second = client.post(f"{url}/reviews", headers=auth("supervisor") | {"If-Match": etag},
                         json={"verdict": "false_detection"})  # fmt: skip
    assert second.status_code == 412 and "someone else saved first" in second.json()["detail"]
    assert client.get(url, headers=auth("viewer")).json()["verdict"] == "confirmed_violation"

    history = client.get(f"{url}/history", headers=auth("viewer")).json()
    reviewed = [e for e in history["data"] if e["action"] == "reviewed"]
    assert reviewed[0]["before"] == {"review_status": "unreviewed", "verdict": None}
    assert reviewed[0]["after"] == {"review_status": "reviewed", "verdict": "confirmed_violation"}
    assert history["reviews"][0]["photos"] == ["photo-1.jpg"] and history["reviews"][0]["note"] == verdict["note"]


def test_review_rules(client, auth, add_patches):
    (pid,) = add_patches([A])
    url = f"/api/v1/patches/{pid}"
    etag = client.get(url, headers=auth("viewer")).headers["etag"]
    forbidden = client.post(
        f"{url}/reviews", headers=auth("viewer") | {"If-Match": etag}, json={"verdict": "compliant"}
    )
    assert forbidden.status_code == 403
    bad = client.post(f"{url}/reviews", headers=auth("inspector") | {"If-Match": etag}, json={"verdict": "maybe"})
    assert bad.status_code == 422


def test_assign_and_close(client, auth, add_patches):
    (pid,) = add_patches([A])
    url = f"/api/v1/patches/{pid}"
    inspector_id = client.get("/api/v1/users/me", headers=auth("inspector")).json()["id"]
    viewer_id = client.get("/api/v1/users/me", headers=auth("viewer")).json()["id"]
    assigned = client.patch(url, headers=auth("supervisor"), json={"assignee_id": inspector_id})
    assert assigned.status_code == 200 and assigned.json()["review_status"] == "assigned"
    assert client.patch(url, headers=auth("supervisor"), json={"assignee_id": viewer_id}).status_code == 422
    assert client.patch(url, headers=auth("inspector"), json={"review_status": "closed"}).status_code == 403
    closed = client.patch(url, headers=auth("supervisor") | {"If-Match": assigned.headers["etag"]},
                          json={"review_status": "closed"})  # fmt: skip
    assert closed.status_code == 200 and closed.json()["review_status"] == "closed"
    assert _list(client, auth, review_status="closed")["count"] == 1


def _squares(n: int) -> list:
    """``n`` small squares in a row across 蓟州区 (same size: ties in area)."""
    return [box(117.1 + 0.01 * i, 40.05, 117.1 + 0.01 * i + 0.001, 40.051) for i in range(n)]


def _set(settings, ids, **values):
    engine = make_engine(settings)
    with engine.begin() as conn:
        conn.execute(update(Patch).where(Patch.id.in_(ids)).values(**values))
    engine.dispose()


def test_cursor_pages_follow_the_list_order(client, auth, settings, add_patches):
    ids = add_patches(_squares(9))
    _set(settings, ids[:3], priority=2, area_m2=3000.0)
    _set(settings, ids[3:6], priority=1, area_m2=5000.0)  # exact ties: the id decides
    _set(settings, ids[6:], priority=0, area_m2=5000.0)
    expected = [p["id"] for p in _list(client, auth, limit=100)["data"]]
    assert len(expected) == 9 and expected[3:6] == sorted(ids[3:6]) and expected[6:] == sorted(ids[6:])
    seen, cursor, pages = [], None, 0
    while True:
        page = _list(client, auth, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [p["id"] for p in page["data"]]
        cursor, pages = page["next_cursor"], pages + 1
        assert page["count"] == 9 and page["count_exact"]
        if cursor is None:
            break
    assert seen == expected and pages == 5
    # Filters hold across pages; a full last page gives a cursor to an empty one.
    first = _list(client, auth, limit=3, min_area_m2=4000)
    assert [p["id"] for p in first["data"]] == [i for i in expected if i in ids[3:]][:3]
    rest = _list(client, auth, limit=3, min_area_m2=4000, cursor=first["next_cursor"])
    assert [p["id"] for p in rest["data"]] == [i for i in expected if i in ids[3:]][3:]
    assert _list(client, auth, limit=3, min_area_m2=4000, cursor=rest["next_cursor"])["data"] == []


def test_count_stops_at_the_cap_unless_asked(client, auth, add_patches, monkeypatch):
    import service.patches

    add_patches(_squares(3))
    monkeypatch.setattr(service.patches, "COUNT_CAP", 2)
    capped = _list(client, auth)
    assert (capped["count"], capped["count_exact"], len(capped["data"])) == (2, False, 3)
    exact = _list(client, auth, exact_count="true")
    assert (exact["count"], exact["count_exact"]) == (3, True)
    assert _list(client, auth, limit=1, offset=1, category="suspected_unapproved")["count"] == 2


def test_bad_cursor_is_a_problem(client, auth, add_patches):
    add_patches(_squares(2))
    cursor = _list(client, auth, limit=1)["next_cursor"]
    for params, needle in (({"cursor": "bm9wZQ"}, "'bm9wZQ'"), ({"cursor": cursor, "offset": 5}, "offset 5")):
        bad = client.get("/api/v1/patches", headers=auth("viewer"), params=params)
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
        assert needle in bad.json()["detail"]


def test_bbox_filter_follows_moved_and_deleted_patches(client, auth, settings, add_patches):
    a, b = add_patches([A, B])
    where_a, where_b = "117.40,40.00,117.41,40.01", "117.69,40.24,117.72,40.27"
    assert [p["id"] for p in _list(client, auth, bbox=where_a)["data"]] == [a]
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        set_geometry(session.get(Patch, a), box(117.705, 40.255, 117.706, 40.256))  # into B's box
        session.delete(session.get(Patch, b))
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":  # the R*Tree follows through its triggers
            assert conn.exec_driver_sql("SELECT id FROM patches_rtree").scalars().all() == [a]
    engine.dispose()
    assert _list(client, auth, bbox=where_a)["data"] == []
    assert [p["id"] for p in _list(client, auth, bbox=where_b)["data"]] == [a]
    (c,) = add_patches([C])
    assert [p["id"] for p in _list(client, auth, bbox="117.749,40.199,117.752,40.202")["data"]] == [c]


def test_list_geometry_only_on_request(client, auth, add_patches):
    add_patches(_squares(2))
    assert [p["geometry"] for p in _list(client, auth)["data"]] == [None, None]
    shapes = _list(client, auth, geometry="true")["data"]
    assert [p["geometry"]["type"] for p in shapes] == ["Polygon", "Polygon"]


def test_list_queries_do_not_grow_with_the_page(client, auth, add_patches):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    add_patches(_squares(6))
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    _list(client, auth, limit=1)  # the token's first use of the hour writes its last_used_at: not counted below
    event.listen(Engine, "before_cursor_execute", count)
    try:
        sizes = []
        for limit in (1, 6):
            statements.clear()
            assert len(_list(client, auth, limit=limit)["data"]) == limit
            sizes.append(len(statements))
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert sizes[0] == sizes[1], statements  # no query per row (e.g. a deferred geometry read one by one)
