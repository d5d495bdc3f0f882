"""``/imagery``: GeoTIFF upload validated by the detector, duplicates, limits, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

PROBLEM = "application/problem+json"


def geotiff(path, *, crs="EPSG:4527", seed=0, tags=None):
    """A 64×64, 4-band uint16 tile at 1 m in CGCS2000 GK zone 39 (inside 蓟州区)."""
    data = np.random.default_rng(seed).integers(100, 3000, size=(4, 64, 64), dtype=np.uint16)
    profile = {"driver": "GTiff", "width": 64, "height": 64, "count": 4, "dtype": "uint16", "crs": crs,
               "transform": from_origin(39_534_200, 4_430_700, 1.0, 1.0)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if tags:
            dst.update_tags(**tags)
    return path


def upload(client, auth, path, user="supervisor", **form):
    return client.post("/api/v1/imagery", headers=auth(user), files={"file": (path.name, path.read_bytes())}, data=form)


def test_upload_list_and_duplicate(client, auth, tmp_path, settings):
    response = upload(client, auth, geotiff(tmp_path / "gf2_a.tif"), acquired_on="2024-05-01", sensor="GF-2")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["band_count"], body["district_code"]) == (64, 4, "120225")
    assert body["resolution_m"] == pytest.approx(1.0, rel=0.01) and body["footprint"]["type"] == "Polygon"
    lon, lat = body["footprint"]["coordinates"][0][0]
    assert 117.3 < lon < 117.5 and 39.9 < lat < 40.1
    assert (settings.data_dir / "imagery" / body["sha256"][:2] / f"{body['sha256']}.tif").exists()

    again = upload(client, auth, tmp_path / "gf2_a.tif", acquired_on="2024-05-01")
    assert again.status_code == 409 and again.json()["existing_id"] == body["id"]

    listing = client.get("/api/v1/imagery", headers=auth("viewer")).json()
    assert listing["count"] == 1 and listing["data"][0]["sensor"] == "GF-2"
    assert client.get(f"/api/v1/imagery/{body['id']}", headers=auth("supervisor_jinghai")).status_code == 404


def test_date_from_the_file_or_required(client, auth, tmp_path):
    dated = upload(client, auth, geotiff(tmp_path / "tile_20240901.tif", seed=1))
    assert dated.status_code == 201 and dated.json()["acquired_on"] == "2024-09-01"
    undated = upload(client, auth, geotiff(tmp_path / "tile.tif", seed=2))
    assert undated.status_code == 422 and "acquired_on" in undated.json()["detail"]


def test_bad_files(client, auth, tmp_path, settings):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all" * 100)
    response = upload(client, auth, junk, acquired_on="2024-05-01")
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert "junk.tif" in response.json()["detail"]
    no_crs = geotiff(tmp_path / "nocrs.tif", crs=None, seed=3)
    assert upload(client, auth, no_crs, acquired_on="2024-05-01").status_code == 422
    settings.max_upload_bytes = 10_000
    big = upload(client, auth, geotiff(tmp_path / "big.tif", seed=4), acquired_on="2024-05-01")
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    assert not any((settings.data_dir / "tmp").glob("*")), "temporary files are cleaned up"


def test_only_supervisors_upload(client, auth, tmp_path):
    response = upload(client, auth, geotiff(tmp_path / "x.tif"), user="inspector", acquired_on="2024-05-01")
    assert response.status_code == 403
