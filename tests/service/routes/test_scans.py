"""``/scans``: the whole workflow over HTTP — upload two tiles, scan, patches judged, chips — and cancel."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from shapely.geometry import box

from service.main import create_app
from tests.service.scan_files import upload_pair, wait_for

PROBLEM = "application/problem+json"


def test_scan_finds_patches_and_judges_them(client, auth, tmp_path):
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
    response = client.post("/api/v1/scans", headers=auth("supervisor"),
                           json={"before_imagery_id": before_id, "after_imagery_id": after_id})  # fmt: skip
    assert response.status_code == 202, response.text
    scan = response.json()
    assert scan["status"] in ("queued", "running") and scan["district_code"] == "120225"
    assert (scan["before_date"], scan["after_date"], scan["mode"]) == ("2023-06-01", "2024-06-01", "pair")

    done = wait_for(client, auth("viewer"), scan["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0 and done["patch_count"] == 2
    assert done["counts"] == {"suspected_unapproved": 2} and done["attempts"] == 1

    patches = client.get("/api/v1/patches", headers=auth("inspector"), params={"scan_id": scan["id"]}).json()
    assert patches["count"] == 2
    areas = sorted(p["area_m2"] for p in patches["data"])  # the planted squares: 30 x 50 m and 40 x 40 m
    # the shipped network's patches reach about a pixel past a square's sharp edge: 32 x 52 m is 1,664 m²
    assert areas == pytest.approx([1500, 1600], rel=0.15)
    assert {p["model"].split("@")[0] for p in patches["data"]} == {"changenet"}  # the default (auto) at 1 m
    assert {p["category_label"] for p in patches["data"]} == {"疑似未批先建"}
    assert {p["change_type"] for p in patches["data"]} == {"新增"}
    assert all(p["before_date"] == "2023-06-01" and p["after_date"] == "2024-06-01" for p in patches["data"])

    listing = client.get("/api/v1/scans", headers=auth("viewer")).json()
    assert listing["count"] == 1 and listing["data"][0]["counts"] == {"suspected_unapproved": 2}
    assert client.get("/api/v1/scans", headers=auth("supervisor_jinghai")).json()["count"] == 0
    assert client.get(f"/api/v1/scans/{scan['id']}", headers=auth("supervisor_jinghai")).status_code == 404


def test_chips_are_pngs_of_the_scan_imagery(client, auth, tmp_path, settings):
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles", squares=[(40, 40, 40, 40)])
    scan = client.post("/api/v1/scans", headers=auth("supervisor"),
                       json={"before_imagery_id": before_id, "after_imagery_id": after_id}).json()  # fmt: skip
    assert wait_for(client, auth("viewer"), scan["id"])["status"] == "succeeded"
    (patch,) = client.get("/api/v1/patches", headers=auth("viewer"), params={"scan_id": scan["id"]}).json()["data"]
    url = f"/api/v1/patches/{patch['id']}/chips"
    images = {}
    for which in ("before", "after"):
        response = client.get(f"{url}/{which}.png", headers=auth("viewer"))
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
        images[which] = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert images["before"].shape == images["after"].shape and min(images["after"].shape[:2]) >= 256
    yellow = (images["after"][..., 0] > 200) & (images["after"][..., 1] > 200) & (images["after"][..., 2] < 80)
    assert yellow.sum() > 100, "the patch outline is drawn"
    # the square is bare soil after, green crop before: the after chip is redder in its middle
    h, w, _ = images["after"].shape
    middle = (slice(h // 3, 2 * h // 3), slice(w // 3, 2 * w // 3))
    assert images["after"][middle][..., 0].mean() > images["before"][middle][..., 0].mean() + 40
    cached = list((settings.data_dir / "chips" / str(patch["id"])).glob("*.png"))
    assert len(cached) == 2
    assert client.get(f"{url}/after.png", headers=auth("viewer")).content == cached[0].read_bytes() or \
        client.get(f"{url}/after.png", headers=auth("viewer")).content == cached[1].read_bytes()  # fmt: skip
    assert client.get(f"{url}/after.png", headers=auth("supervisor_jinghai")).status_code == 404


def test_chip_without_imagery_is_a_clear_404(client, auth, add_patches):
    (pid,) = add_patches([box(117.402, 40.002, 117.404, 40.004)])
    response = client.get(f"/api/v1/patches/{pid}/chips/before.png", headers=auth("viewer"))
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert "upload the tile" in response.json()["detail"]


def test_scan_by_district_and_dates_or_latest(client, auth, tmp_path):
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
    by_dates = client.post(
        "/api/v1/scans",
        headers=auth("supervisor"),
        json={"district_code": "120225", "before_date": "2023-05-01", "after_date": "2024-07-01"},
    )
    assert by_dates.status_code == 202, by_dates.text
    body = by_dates.json()
    assert (body["before_imagery_id"], body["after_imagery_id"], body["mode"]) == (before_id, after_id, "dates")
    assert wait_for(client, auth("viewer"), body["id"])["patch_count"] == 2
    latest = client.post("/api/v1/scans", headers=auth("supervisor"),
                         json={"mode": "latest", "bbox": [117.1, 40.0, 117.2, 40.1]})  # fmt: skip
    assert latest.status_code == 202, latest.text
    done = wait_for(client, auth("viewer"), latest.json()["id"])
    assert (done["before_imagery_id"], done["after_imagery_id"]) == (before_id, after_id)
    # The same sites found again are linked to the first scan's patches (续建), not reported as new.
    again = client.get("/api/v1/patches", headers=auth("viewer"), params={"scan_id": done["id"]}).json()["data"]
    assert len(again) == 2 and all(p["previous_patch_id"] for p in again)
    assert {p["change_type"] for p in again} == {"续建（范围不变）"}


DATES = {"before_date": "2023-01-01", "after_date": "2024-01-01"}


def test_bad_scan_requests(client, auth, tmp_path):
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
    cases = [
        ({}, 422, "say what to compare"),
        ({"before_imagery_id": before_id}, 422, "both"),
        ({"before_imagery_id": after_id, "after_imagery_id": before_id}, 422, "swap them"),
        ({"before_imagery_id": before_id, "after_imagery_id": 999}, 404, "not found"),
        ({"district_code": "120225", "before_date": "2024-01-01", "after_date": "2023-01-01"}, 422, "earlier"),
        ({"bbox": [118.5, 41.0, 118.6, 41.1], **DATES}, 422, "two dates"),
        ({"district_code": "999999", "mode": "latest"}, 404, "999999"),
        ({"mode": "sometimes"}, 422, "mode"),
    ]  # fmt: skip
    for body, status, words in cases:
        response = client.post("/api/v1/scans", headers=auth("supervisor"), json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM and words in response.json()["detail"], body
    # Other districts' imagery is invisible; the same scan twice at once is a conflict.
    pair = {"before_imagery_id": before_id, "after_imagery_id": after_id}
    assert client.post("/api/v1/scans", headers=auth("supervisor_jinghai"), json=pair).status_code == 404
    assert client.post("/api/v1/scans", headers=auth("inspector"), json=pair).status_code == 403


def test_cancel_a_queued_scan(settings, auth, tmp_path):
    with TestClient(create_app(settings, scan_worker=False)) as client:  # nothing runs: the scan stays queued
        before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
        pair = {"before_imagery_id": before_id, "after_imagery_id": after_id}
        scan = client.post("/api/v1/scans", headers=auth("supervisor"), json=pair).json()
        assert scan["status"] == "queued"
        twice = client.post("/api/v1/scans", headers=auth("supervisor"), json=pair)
        assert twice.status_code == 409 and twice.json()["existing_id"] == scan["id"]
        area = {"district_code": "120225", **DATES}  # the same pair over an area is another scan, once
        assert client.post("/api/v1/scans", headers=auth("supervisor"), json=area).status_code == 202
        assert client.post("/api/v1/scans", headers=auth("supervisor"), json=area).status_code == 409
        assert client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=auth("inspector")).status_code == 403
        cancelled = client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=auth("supervisor"))
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["message"] == "cancelled by supervisor"
        again = client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=auth("supervisor"))
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_a_running_scan(client, auth, tmp_path, monkeypatch):
    monkeypatch.setattr("detector.pipeline.detect_pair", _slow_detector)
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles")
    scan = client.post("/api/v1/scans", headers=auth("supervisor"),
                       json={"before_imagery_id": before_id, "after_imagery_id": after_id}).json()  # fmt: skip
    wait_for(client, auth("viewer"), scan["id"], until=lambda b: b["status"] == "running" and b["progress"] > 0)
    response = client.post(f"/api/v1/scans/{scan['id']}/cancel", headers=auth("supervisor"))
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    done = wait_for(client, auth("viewer"), scan["id"])
    assert done["status"] == "cancelled" and done["message"] == "cancelled by supervisor"
    assert done["patch_count"] == 0 and done["progress"] < 0.9
    assert client.get("/api/v1/patches", headers=auth("viewer")).json()["count"] == 0


def _slow_detector(before, after, out=None, *, options=None, progress=None, **kw):
    """A stand-in for detect_pair that takes its time and reports progress, until stopped."""
    for done in range(2000):
        progress(done, 2000)
        time.sleep(0.005)
    raise RuntimeError("the scan was not stopped")
