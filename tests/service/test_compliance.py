"""Matching wired to the database: patches are judged on ingest and re-judged when the list changes."""

from __future__ import annotations

from shapely.geometry import box

from tests.service.project_files import shapefile_zip

INSIDE = box(117.402, 40.002, 117.404, 40.004)  # inside P-001
STRADDLING = box(117.409, 40.002, 117.413, 40.004)  # 25% inside P-001
NEARBY = box(117.4135, 40.003, 117.4155, 40.005)  # ~300 m east of P-001
FAR = box(117.70, 40.25, 117.702, 40.252)  # kilometres from everything


def _patch(client, auth, pid, user="supervisor"):
    response = client.get(f"/api/v1/patches/{pid}", headers=auth(user))
    assert response.status_code == 200, response.text
    return response.json()


def test_categories_follow_the_project_list(client, auth, add_patches, tmp_path):
    ids = add_patches([INSIDE, STRADDLING, NEARBY, FAR])
    # No approved projects yet: everything is suspected of being built without approval.
    assert {_patch(client, auth, i)["category"] for i in ids} == {"suspected_unapproved"}
    assert _patch(client, auth, ids[0])["district_code"] == "120225"

    report = client.post("/api/v1/projects/import", headers=auth("supervisor"),
                         files={"file": ("list.zip", shapefile_zip(tmp_path).read_bytes())}).json()  # fmt: skip
    inside, straddling, nearby, far = (_patch(client, auth, i) for i in ids)
    assert inside["category"] == "compliant" and inside["category_label"] == "合规"
    assert inside["matches"][0]["project_code"] == "P-001" and inside["matches"][0]["overlap_share"] > 0.99
    assert straddling["category"] == "suspected_out_of_bounds"
    assert straddling["category_label"] == "疑似超出防治责任范围"
    assert 0.6 < straddling["outside_share"] < 0.9 and straddling["outside_area_m2"] > 500
    assert nearby["category"] == "suspected_relocated" and 200 < nearby["nearest_distance_m"] < 400
    assert far["category"] == "suspected_unapproved" and far["category_label"] == "疑似未批先建"
    assert inside["priority"] < far["priority"]

    # The history says why the category changed.
    history = client.get(f"/api/v1/patches/{ids[0]}/history", headers=auth("viewer")).json()["data"]
    assert [e["action"] for e in history] == ["judged", "rematched"]
    assert history[1]["before"]["category"] == "suspected_unapproved"
    assert history[1]["after"]["category"] == "compliant"
    assert f"import #{report['id']}" in history[1]["reason"] and history[1]["user_id"] is not None

    # Removing the project makes the inside patch suspect again, and says so.
    pid = client.get("/api/v1/projects", headers=auth("supervisor"), params={"code": "P-001"}).json()["data"][0]["id"]
    assert client.delete(f"/api/v1/projects/{pid}", headers=auth("supervisor")).status_code == 204
    assert _patch(client, auth, ids[0])["category"] == "suspected_unapproved"
    last = client.get(f"/api/v1/patches/{ids[0]}/history", headers=auth("viewer")).json()["data"][-1]
    assert last["reason"] == "project P-001 deleted"


def test_schematic_project_is_matched_loosely(client, auth, add_patches, tmp_path):
    client.post("/api/v1/projects/import", headers=auth("supervisor"),
                files={"file": ("list.zip", shapefile_zip(tmp_path).read_bytes())})  # fmt: skip
    (pid,) = add_patches([box(117.4115, 40.003, 117.4125, 40.005)])  # 130–210 m east of P-001
    assert _patch(client, auth, pid)["category"] == "suspected_relocated"
    project = client.get("/api/v1/projects", headers=auth("supervisor"), params={"code": "P-001"}).json()["data"][0]
    response = client.patch(f"/api/v1/projects/{project['id']}", headers=auth("supervisor"),
                            json={"vector_type": "schematic"})  # fmt: skip
    assert response.status_code == 200
    # A schematic outline is grown by schematic_tolerance_m (200 m), so the patch now lies on it.
    assert _patch(client, auth, pid)["category"] == "compliant"


def test_redetection_links_to_the_earlier_patch(client, auth, add_patches):
    (first,) = add_patches([INSIDE], scan_id=None)
    (second,) = add_patches([box(117.402, 40.002, 117.406, 40.004)])
    again = _patch(client, auth, second)
    assert again["previous_patch_id"] == first and again["change_type"] == "续建（范围扩大）"
    assert _patch(client, auth, first)["change_type"] == "新增"
