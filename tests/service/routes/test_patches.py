"""``/patches``: filters, detail, assignment, review with ETag/If-Match, history."""

from __future__ import annotations

import datetime as dt

from shapely.geometry import box

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
