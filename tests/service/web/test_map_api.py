"""The review map's API: GeoJSON layers, imagery tiles, field photos, and the page itself (no browser)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from service.db import make_engine, make_sessionmaker, session_scope
from service.patches import ingest_detections
from service.web import STATIC_DIR
from tests.service.web import world


@pytest.fixture
def seeded(client, auth, settings, tmp_path):
    """Imagery, projects and patches of :mod:`world`; returns (before_id, after_id, patch_ids)."""
    ids = []
    for path, day in zip(world.write_imagery(tmp_path / "img"), (world.BEFORE, world.AFTER), strict=True):
        response = client.post("/api/v1/imagery", headers=auth("supervisor"),
                               files={"file": (path.name, path.read_bytes())}, data={"acquired_on": str(day)})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    response = client.post("/api/v1/projects/import", headers=auth("supervisor"),
                           files={"file": ("projects.geojson", world.projects_geojson())})
    assert response.status_code == 201, response.text
    engine = make_engine(settings)
    with session_scope(make_sessionmaker(engine)) as session:
        patch_ids = [p.id for p in ingest_detections(session, settings, world.patch_frame())]
    engine.dispose()
    return ids[0], ids[1], patch_ids


def test_patches_geojson_filters_and_scope(client, auth, seeded):
    body = client.get("/api/v1/map/patches.geojson", headers=auth("inspector")).json()
    assert body["type"] == "FeatureCollection" and body["count"] == 5 and not body["truncated"]
    props = [f["properties"] for f in body["features"]]
    assert [p["priority"] for p in props] == sorted((p["priority"] for p in props), reverse=True)
    categories = {p["category"] for p in props}
    assert {"compliant", "suspected_out_of_bounds", "suspected_relocated", "suspected_unapproved"} <= categories
    assert all(f["geometry"]["type"] == "Polygon" for f in body["features"])
    unapproved = client.get("/api/v1/map/patches.geojson?category=suspected_unapproved&limit=1",
                            headers=auth("inspector")).json()
    assert unapproved["count"] == 2 and len(unapproved["features"]) == 1 and unapproved["truncated"]
    assert unapproved["features"][0]["properties"]["category_label"] == "疑似未批先建"
    other = client.get("/api/v1/map/patches.geojson", headers=auth("supervisor_jinghai")).json()
    assert other["count"] == 0


def test_projects_and_districts_geojson(client, auth, seeded):
    projects = client.get("/api/v1/map/projects.geojson", headers=auth("viewer")).json()
    assert sorted(f["properties"]["code"] for f in projects["features"]) == ["P-A", "P-B", "P-C"]
    assert client.get("/api/v1/map/projects.geojson?bbox=0,0,1,1", headers=auth("viewer")).json()["count"] == 0
    districts = client.get("/api/v1/map/districts.geojson", headers=auth("viewer")).json()
    assert [f["properties"]["name"] for f in districts["features"]] == ["蓟州区"]
    everyone = client.get("/api/v1/map/districts.geojson", headers=auth("city_viewer")).json()
    assert everyone["count"] == 2


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_imagery_tiles(client, auth, seeded):
    before_id, after_id, patch_ids = seeded
    patch = client.get(f"/api/v1/patches/{patch_ids[0]}", headers=auth("viewer")).json()
    x, y = _tile_of(patch["lon"], patch["lat"], 17)
    response = client.get(f"/api/v1/map/imagery/{after_id}/tiles/17/{x}/{y}.png", headers=auth("viewer"))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (256, 256) and image.mode == "RGBA"
    assert image.getchannel("A").getextrema()[1] == 255  # some pixels are image, not transparent
    assert client.get(f"/api/v1/map/imagery/{after_id}/tiles/17/0/0.png", headers=auth("viewer")).status_code == 204
    assert client.get(f"/api/v1/map/imagery/{before_id}/tiles/3/1/1.png", headers=auth("viewer")).status_code == 204
    hidden = client.get(f"/api/v1/map/imagery/{after_id}/tiles/17/{x}/{y}.png", headers=auth("supervisor_jinghai"))
    assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"


def test_photos_upload_and_read(client, auth, seeded):
    patch_id = seeded[2][0]
    url = f"/api/v1/patches/{patch_id}/photos"
    response = client.post(url, headers=auth("inspector"), files={"file": ("现场.png", world.png_bytes())})
    assert response.status_code == 201, response.text
    photo = response.json()
    assert photo["ref"].startswith("photo:") and photo["media_type"] == "image/png" and photo["filename"] == "现场.png"
    got = client.get(photo["url"], headers=auth("viewer"))
    assert got.status_code == 200 and got.content == world.png_bytes()
    bad = client.post(url, headers=auth("inspector"), files={"file": ("x.png", b"<script>alert(1)</script>")})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert client.get(f"{url}/..%2F..%2Fsoilwatch.db", headers=auth("viewer")).status_code == 404
    assert client.get(f"{url}/{'0' * 32}.png", headers=auth("viewer")).status_code == 404
    assert client.post(url, headers=auth("viewer"), files={"file": ("a.png", world.png_bytes())}).status_code == 403
    etag = client.get(f"/api/v1/patches/{patch_id}", headers=auth("inspector")).headers["ETag"]
    review = client.post(f"/api/v1/patches/{patch_id}/reviews", json={"verdict": "compliant", "photos": [photo["ref"]]},
                         headers={**auth("inspector"), "If-Match": etag})  # fmt: skip
    assert review.status_code == 201, review.text
    assert review.json()["review_status"] == "reviewed"


def test_photo_size_limit(client, auth, seeded, monkeypatch):
    from service.api.routes import photos

    monkeypatch.setattr(photos, "MAX_PHOTO_BYTES", 1000)
    big = world.png_bytes() + b"\0" * 2000
    response = client.post(f"/api/v1/patches/{seeded[2][0]}/photos", headers=auth("inspector"),
                           files={"file": ("big.png", big)})
    assert response.status_code == 413


def test_page_and_static_files_are_served_and_offline(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/map"
    page = client.get("/map")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert referenced and all(ref.startswith("/map/static/") or ref.startswith("data:") for ref in referenced)
    for ref in referenced:
        if ref.startswith("/map/static/"):
            assert client.get(ref).status_code == 200, ref
    assert client.get("/map/static/../../main.py").status_code == 404
    # No CDN or other remote address in our own files (the vendored Leaflet only names its site in comments).
    for path in STATIC_DIR.glob("*.*"):
        text = path.read_text(encoding="utf-8")
        remote = [u for u in re.findall(r"https?://[^\s\"'`)]+", text) if "www.w3.org" not in u]
        assert remote == [], f"{path.name} names {remote}"
    assert "/map" not in client.get("/openapi.json").json()["paths"]
