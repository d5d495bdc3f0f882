"""Browser-test fixtures: a live ``soilwatch serve`` app (uvicorn on 127.0.0.1, SQLite) seeded with
:mod:`tests.service.web.world`, and Debian's headless Chromium driven by Playwright.

Nothing downloads a browser: Playwright is pointed at ``/usr/bin/chromium`` (``dev/test.sh`` installs
Debian's ``chromium`` when it is missing and we are root). Every host but the test server is
unresolvable for the browser, and each page records any request that tries to leave it.
Screenshots go to ``SOILWATCH_TEST_ARTIFACTS`` (default: ``<pytest basetemp>/web-screenshots``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

from service.core.config import Settings
from service.db import make_engine, make_sessionmaker, session_scope
from service.main import create_app
from service.patches import ingest_detections
from tests.service.web import world

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
]  # fmt: skip


def chromium_path() -> str | None:
    found = os.environ.get("SOILWATCH_CHROMIUM") or next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)
    return found or shutil.which("chromium")


@dataclass
class Live:
    """The running server: ``url``, users' ``tokens``, ``settings``, ``before_id``/``after_id`` and ``patch_ids``."""

    url: str
    tokens: dict[str, str]
    settings: Settings
    before_id: int = 0
    after_id: int = 0
    patch_ids: list[int] = field(default_factory=list)

    def api(self, user: str = "supervisor") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(live: Live, folder: Path) -> None:
    with live.api("supervisor") as api:
        ids = []
        for path, day in zip(world.write_imagery(folder), (world.BEFORE, world.AFTER), strict=True):
            response = api.post("/api/v1/imagery", files={"file": (path.name, path.read_bytes())},
                                data={"acquired_on": str(day), "sensor": "GF-2"})  # fmt: skip
            response.raise_for_status()
            ids.append(response.json()["id"])
        live.before_id, live.after_id = ids
        api.post("/api/v1/projects/import", files={"file": ("projects.geojson", world.projects_geojson())}
                 ).raise_for_status()  # fmt: skip
        api.post("/api/v1/priority-zones/import", files={"file": ("zones.geojson", world.zones_geojson())}
                 ).raise_for_status()  # fmt: skip
    engine = make_engine(live.settings)
    with session_scope(make_sessionmaker(engine)) as session:
        live.patch_ids = [p.id for p in ingest_detections(session, live.settings, world.patch_frame())]
    engine.dispose()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template) -> Iterator[Live]:
    import uvicorn

    root = tmp_path_factory.mktemp("web")
    db = root / "soilwatch.db"
    shutil.copyfile(make_url(sqlite_template.url).database or "", db)
    settings = Settings(data_dir=root / "data", database_url=f"sqlite:///{db}", _env_file=None)  # type: ignore[call-arg]
    port = _free_port()
    config = uvicorn.Config(create_app(settings, scan_worker=False), host="127.0.0.1", port=port, log_level="warning",
                            timeout_graceful_shutdown=2)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-soilwatch", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    live = Live(f"http://127.0.0.1:{port}", sqlite_template.tokens, settings)
    try:
        _seed(live, root / "imagery")
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        if os.geteuid() == 0:
            pytest.fail("no Chromium at /usr/bin/chromium; install it: apt-get install -y chromium chromium-driver")
        pytest.skip("no Chromium found and not root to install it (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("SOILWATCH_TEST_ARTIFACTS") or tmp_path_factory.getbasetemp() / "web-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class PageKit:
    page: object
    live: Live
    artifacts: Path
    name: str
    foreign: list[str]
    errors: list[str]

    def shot(self, label: str) -> Path:
        path = self.artifacts / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path))  # type: ignore[attr-defined]
        return path

    def sign_in(self, user: str = "inspector") -> None:
        page = self.page
        page.goto(f"{self.live.url}/map")  # type: ignore[attr-defined]
        page.fill("#token", self.live.tokens[user])  # type: ignore[attr-defined]
        page.click("#signin-form button[type=submit]")  # type: ignore[attr-defined]
        page.wait_for_selector("#list li")  # type: ignore[attr-defined]


@pytest.fixture
def kit(browser, live_server: Live, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[PageKit]:
    """A fresh browser context (empty sessionStorage) and page; fails the test if a request left the server."""
    context = browser.new_context(viewport={"width": 1400, "height": 860}, accept_downloads=True,  # type: ignore[attr-defined]
                                  locale="zh-CN")  # fmt: skip
    foreign: list[str] = []
    errors: list[str] = []
    server = urlsplit(live_server.url).netloc

    def route(r: object) -> None:
        url = r.request.url  # type: ignore[attr-defined]
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).netloc == server:
            r.continue_()  # type: ignore[attr-defined]
        else:
            foreign.append(url)
            r.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)  # generous: CI machines are small and shared
    kit = PageKit(page, live_server, artifacts, request.node.name.replace("[", "-").replace("]", ""), foreign, errors)
    try:
        yield kit
    finally:
        context.close()
    assert foreign == [], f"the page tried to reach other hosts: {foreign}"
    assert errors == [], f"JavaScript errors on the page: {errors}"
