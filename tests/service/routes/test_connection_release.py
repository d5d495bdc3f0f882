"""Requests give their pooled connection back between thread-pool hops and at the end.

Under load every thread of the pool may be waiting for a connection; a request that kept one while it
waited for its next thread (after authentication, after the owned-row lookup) or for its close left the
service stuck until the pool timeout (30 s, then 503).
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from shapely.geometry import box

import service.api.routes.patches as patches_routes
from service.main import create_app


def test_no_connection_held_between_dependencies_and_route(settings, auth, add_patches, monkeypatch):
    (pid,) = add_patches([box(117.402, 40.002, 117.404, 40.004)])
    app = create_app(settings, scan_worker=False)
    held: list[int] = []
    page_patches, projects_of = patches_routes.page_patches, patches_routes._projects_of

    def counting_page(*args, **kwargs):
        held.append(app.state.engine.pool.checkedout())
        return page_patches(*args, **kwargs)

    def counting_projects(*args, **kwargs):
        held.append(app.state.engine.pool.checkedout())
        return projects_of(*args, **kwargs)

    monkeypatch.setattr(patches_routes, "page_patches", counting_page)
    monkeypatch.setattr(patches_routes, "_projects_of", counting_projects)
    with TestClient(app) as client:
        assert client.get("/api/v1/patches", headers=auth("viewer")).json()["count"] == 1
        detail = client.get(f"/api/v1/patches/{pid}", headers=auth("viewer"))
        assert detail.status_code == 200 and detail.headers["etag"].startswith('"patches-')
        # the route starts without a connection: authentication and the patch lookup gave theirs back
        assert held == [0, 0]
        assert app.state.engine.pool.checkedout() == 0, "closed after the response"
