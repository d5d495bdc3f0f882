"""Review chips: rendered without holding a database connection, then served from the cache."""

from __future__ import annotations

from fastapi.testclient import TestClient

import service.chips
from service.main import create_app
from tests.service.scan_files import upload_pair, wait_for


def test_chip_renders_without_a_connection_and_is_cached(client, auth, tmp_path, settings, monkeypatch):
    before_id, after_id = upload_pair(client, auth("supervisor"), tmp_path / "tiles", squares=[(40, 40, 40, 40)])
    scan = client.post("/api/v1/scans", headers=auth("supervisor"),
                       json={"before_imagery_id": before_id, "after_imagery_id": after_id}).json()  # fmt: skip
    assert wait_for(client, auth("viewer"), scan["id"])["status"] == "succeeded"
    (patch,) = client.get("/api/v1/patches", headers=auth("viewer"), params={"scan_id": scan["id"]}).json()["data"]

    # An app of its own without the scan worker: the connections checked out of its pool are the request's.
    app = create_app(settings, scan_worker=False)
    render = service.chips._render
    held: list[int] = []

    def counting_render(source: service.chips.ChipSource) -> bytes:
        held.append(app.state.engine.pool.checkedout())
        return render(source)

    monkeypatch.setattr(service.chips, "_render", counting_render)
    url = f"/api/v1/patches/{patch['id']}/chips"
    with TestClient(app) as own:
        first = {w: own.get(f"{url}/{w}.png", headers=auth("viewer")) for w in ("before", "after")}
        assert all(r.status_code == 200 and r.content.startswith(b"\x89PNG") for r in first.values())
        assert held == [0, 0], f"connections held while rendering: {held}"
        again = {w: own.get(f"{url}/{w}.png", headers=auth("viewer")) for w in ("before", "after")}
        assert len(held) == 2, "a second request of the same chip is served from the cache"
        assert {w: r.content for w, r in again.items()} == {w: r.content for w, r in first.items()}
        assert again["before"].content != again["after"].content
        # the cache never crosses districts: another district's user still gets a 404
        assert own.get(f"{url}/after.png", headers=auth("supervisor_jinghai")).status_code == 404
    assert len(list((settings.data_dir / "chips" / str(patch["id"])).glob("*.png"))) == 2
