"""Small before/after GeoTIFF tiles for scan tests: a green field where bare-soil squares appear.

Written with rasterio (via :func:`tests.fixtures.write_tif`) in CGCS2000 / GK CM 117E (EPSG:4548)
at 1 m, near 蓟州区 (inside the seeded 120225 boundary).
"""

from __future__ import annotations

from pathlib import Path

from affine import Affine

from tests.fixtures import field_scene, write_tif

ORIGIN = (512_000.0, 4_436_000.0)  # top-left easting/northing: ~40.07 N, 117.14 E
SQUARES = [(40, 40, 40, 40), (150, 140, 30, 50)]  # (row, col, height, width) px = m


def write_pair(folder: Path, *, size: int = 256, squares: list[tuple[int, int, int, int]] | None = None,
               seed: int = 0, origin: tuple[float, float] = ORIGIN) -> tuple[Path, Path]:  # fmt: skip
    """``2023-06-01_before.tif`` and ``2024-06-01_after.tif`` (4 bands, uint8, RGBN) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    before, after = field_scene(size, size, squares=SQUARES if squares is None else squares, seed=seed)
    transform = Affine(1.0, 0, origin[0], 0, -1.0, origin[1])
    return (
        write_tif(folder / "2023-06-01_before.tif", before, crs="EPSG:4548", transform=transform),
        write_tif(folder / "2024-06-01_after.tif", after, crs="EPSG:4548", transform=transform),
    )


def upload(client, headers: dict[str, str], path: Path, acquired_on: str) -> int:
    """Upload one tile; returns its imagery id."""
    response = client.post("/api/v1/imagery", headers=headers, files={"file": (path.name, path.read_bytes())},
                           data={"acquired_on": acquired_on, "sensor": "test"})  # fmt: skip
    if response.status_code != 201:
        raise RuntimeError(f"upload of {path.name} failed: {response.status_code} {response.text}")
    return int(response.json()["id"])


def upload_pair(client, headers: dict[str, str], folder: Path, **kw) -> tuple[int, int]:
    before, after = write_pair(folder, **kw)
    return upload(client, headers, before, "2023-06-01"), upload(client, headers, after, "2024-06-01")


def wait_for(client, headers: dict[str, str], scan_id: int, *, timeout_s: float = 60.0, until=None) -> dict:
    """Poll ``GET /scans/{id}`` until it ends (or ``until(body)`` holds); returns the last body."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        body = client.get(f"/api/v1/scans/{scan_id}", headers=headers).json()
        if until(body) if until else body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"scan {scan_id} still {body['status']} after {timeout_s} s: {body}")
        time.sleep(0.05)
