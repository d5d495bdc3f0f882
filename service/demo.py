"""The whole supervision job on demo data, as a supervisor would run it through the API.

Inputs (:func:`write_demo_inputs`): the detector's synthetic before/after pair near 蓟州区 (EPSG:4548),
an approved-project list (监管清单) as a GBK zipped Shapefile in CGCS2000 / Gauss-Krüger plus a
spreadsheet of projects known only by a point (经度/纬度), and a district boundary file. The list is
built around the scene's planted construction sites so that every compliance category shows up:

* a project whose 防治责任范围 covers its site → 合规 (compliant);
* a project whose 防治责任范围 stops short of its site → 疑似超出防治责任范围 (out of bounds);
* a project drawn only as a 示意性范围 (schematic outline) next to its site → matched loosely, 合规;
* a project given only as a point (buffered by ``point_buffer_m``) → 合规 when the site is around it;
* a project approved a few hundred metres from where a site appeared → 疑似建设地点变更;
* every other site → 疑似未批先建 (built without approval).

A priority-zone file (重点监管区域) puts a 水源保护区 around one of the unapproved sites, so that its patch
ranks first (its suspected category's priority plus the zone's 50).

:func:`run_demo` then drives the real app in-process (the same routes, service functions and scan
worker as ``soilwatch serve``): import districts, create users, import the list, upload the two
tiles, import the priority zones, scan "latest vs previous", and return the judged and ranked patches.
"""

from __future__ import annotations

import shutil
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from service.core.config import Settings
from service.errors import ServiceError
from service.geometry import WGS84, reproject

__all__ = [
    "DemoInputs",
    "DemoResult",
    "PlantedProject",
    "ZONE_NAME",
    "write_demo_inputs",
    "run_demo",
    "reset_demo_dir",
    "USERS",
    "DEMO_OVERRIDES",
]

DISTRICT = ("120225", "蓟州区")
#: name → (role, districts); the tokens are printed once by the command.
USERS = {
    "demo-admin": ("admin", []),
    "demo-supervisor": ("supervisor", ["120225"]),
    "demo-inspector": ("inspector", ["120225"]),
}
GK_CRS = "EPSG:4548"
#: Settings the demo changes from the defaults (none today; the relocation distance default of 300 m
#: suits the demo's dense project list). Printed with the serve command so the API agrees with the demo.
DEMO_OVERRIDES: dict[str, Any] = {}
#: The demo's priority zone: a water-source protection area drawn around one unapproved site (schematic).
ZONE_NAME = "于桥水库饮用水水源保护区（示意）"


class DemoError(ServiceError):
    """A step of the demo failed (the message names the step and the API's answer)."""


@dataclass(frozen=True)
class PlantedProject:
    """A project of the demo list built around a planted site, and the category its site should get."""

    code: str
    name: str
    site: int  # index into spec.sites
    expected: str  # category code
    how: str


@dataclass(frozen=True)
class DemoInputs:
    before: Path
    after: Path
    projects_zip: Path
    points_csv: Path
    districts: Path
    zones: Path
    zone_site: int  # index into spec.sites of the unapproved site inside the zone
    planted: tuple[PlantedProject, ...]
    site_polygons: dict[int, BaseGeometry] = field(repr=False)  # lon/lat


@dataclass
class DemoResult:
    settings: Settings
    tokens: dict[str, str]
    scan: dict[str, Any]
    patches: list[dict[str, Any]]
    projects: dict[int, dict[str, Any]]
    import_reports: list[dict[str, Any]]
    planted: list[tuple[PlantedProject, dict[str, Any] | None]]
    seconds: float
    zone_report: dict[str, Any] = field(default_factory=dict)
    zone_patches: list[dict[str, Any]] = field(default_factory=list)  # inside a priority zone, by priority


# ------------------------------------------------------------------------------------------------ inputs
def _site_polygon(spec: Any, index: int, origin: tuple[float, float]) -> Polygon:
    """A planted site's outline in EPSG:4548 metres (its vertices are ``(row, col)`` pixels)."""
    res = spec.resolution_m
    ring = [(origin[0] + col * res, origin[1] - row * res) for row, col in spec.sites[index].polygon]
    return shapely.make_valid(Polygon(ring)).buffer(0)


def _cut_to_share(site: Polygon, keep: float) -> Polygon:
    """The western part of ``site`` holding ``keep`` of its area (bisection on a vertical cut)."""
    left, bottom, right, top = site.bounds
    lo, hi = left, right
    for _ in range(40):
        mid = (lo + hi) / 2
        share = site.intersection(box(left - 1, bottom - 1, mid, top + 1)).area / site.area
        lo, hi = (mid, hi) if share < keep else (lo, mid)
    return site.intersection(box(left - 1, bottom - 1, hi, top + 1))


def _beyond_nearest_edge(site: Polygon, scene: Polygon, gap_m: float) -> Polygon:
    """``site`` moved straight out of the scene across its nearest edge, ending ``gap_m`` outside it."""
    sl, sb, sr, st = site.bounds
    left, bottom, right, top = scene.bounds
    moves = {  # distance to each edge → the shift that puts the site just beyond it
        sl - left: (left - gap_m - sr, 0.0),
        right - sr: (right + gap_m - sl, 0.0),
        sb - bottom: (0.0, bottom - gap_m - st),
        top - st: (0.0, top + gap_m - sb),
    }
    dx, dy = moves[min(moves)]
    return shapely.affinity.translate(site, dx, dy)


def _edge_distance(site: Polygon, scene: Polygon) -> float:
    return float(scene.exterior.distance(site))


def _attrs(
    code: str,
    name: str,
    builder: str,
    industry: str,
    authority: str,
    number: str,
    approved: str,
    state: str,
    vector: str,
    area_hm2: float,
) -> dict[str, Any]:
    return {
        "项目名称": name,
        "项目代码": code,
        "建设单位": builder,
        "行业类别": industry,
        "审批机关": authority,
        "批复文号": number,
        "批复时间": approved,
        "防治责任范围面积": round(area_hm2, 2),
        "立项级别": "县级",
        "项目类别": "建设类",
        "项目性质": "新建",
        "建设状态": state,
        "矢量化类型": vector,
        "行政区代码": DISTRICT[0],
    }


def write_demo_inputs(
    folder: Path, *, size: int = 2048, seed: int = 7, progress: Callable[[int, int], None] | None = None
) -> DemoInputs:
    """Write the demo imagery (reused when present), project list and district boundaries into ``folder``."""
    from detector.demo import DEMO_ORIGIN, make_demo_pair

    folder.mkdir(parents=True, exist_ok=True)
    pair = make_demo_pair(folder / "imagery", size=size, seed=seed, progress=progress)
    spec = pair.spec
    res = spec.resolution_m
    scene = box(DEMO_ORIGIN[0], DEMO_ORIGIN[1] - size * res, DEMO_ORIGIN[0] + size * res, DEMO_ORIGIN[1])
    # Green dust-screen nets (防尘网) are the detector's hardest case: plant the list on bare sites.
    bare = (i for i, s in enumerate(spec.sites) if s.is_new and s.area_m2 >= 1500 and s.net is None)
    new_sites = sorted(bare, key=lambda i: -spec.sites[i].area_m2)
    if len(new_sites) < 5:
        raise DemoError(f"the demo scene (size {size}, seed {seed}) has too few large sites; use a larger --size")
    sites = {i: _site_polygon(spec, i, DEMO_ORIGIN) for i in new_sites}
    covered, short, sketched, pointed = new_sites[:4]
    # The relocated project: the remaining large site nearest an edge, its approval drawn just outside the scene.
    moved = min(new_sites[4:], key=lambda i: _edge_distance(sites[i], scene))

    approved = "2023-0{}-1{}"
    rows: list[tuple[dict[str, Any], BaseGeometry]] = []
    planted: list[PlantedProject] = []

    def add(planted_site: int | None, expected: str, how: str, geom: BaseGeometry, **kw: Any) -> None:
        attrs = _attrs(area_hm2=geom.area / 10_000, **kw)
        rows.append((attrs, geom))
        if planted_site is not None:
            planted.append(PlantedProject(kw["code"], kw["name"], planted_site, expected, how))

    add(
        covered,
        "compliant",
        "responsibility area covers the site",
        sites[covered].buffer(25, join_style="mitre"),
        code="2023-120225-70-01-018342",
        name="蓟州区某商住小区建设项目",
        builder="天津某置业有限公司",
        industry="房地产",
        authority="蓟州区水务局",
        number="蓟水许〔2023〕18号",
        approved=approved.format(3, 5),
        state="施工",
        vector="防治责任范围",
    )
    add(
        short,
        "suspected_out_of_bounds",
        "responsibility area stops short of the site",
        _cut_to_share(sites[short], 0.55),
        code="2023-120225-59-01-020417",
        name="蓟州区某物流园区项目",
        builder="天津某物流有限公司",
        industry="工业园区",
        authority="天津市水务局",
        number="津水许可〔2023〕45号",
        approved=approved.format(4, 2),
        state="施工",
        vector="防治责任范围",
    )
    outline = box(*sites[sketched].bounds)
    add(
        sketched,
        "compliant",
        "only a schematic outline, 40 m off",
        shapely.affinity.translate(outline, 40, -40),
        code="2023-120225-48-01-031265",
        name="蓟州区某乡村道路改造工程",
        builder="蓟州区交通运输局",
        industry="公路",
        authority="蓟州区水务局",
        number="蓟水许〔2023〕31号",
        approved=approved.format(5, 8),
        state="施工",
        vector="示意性范围",
    )
    add(
        moved,
        "suspected_relocated",
        "approved just outside the scene, built here",
        _beyond_nearest_edge(sites[moved], scene, 60.0),
        code="2023-120225-77-01-027750",
        name="蓟州区某污水处理厂项目",
        builder="蓟州区水务投资有限公司",
        industry="其他城建",
        authority="蓟州区水务局",
        number="蓟水许〔2023〕27号",
        approved=approved.format(6, 1),
        state="未开工",
        vector="防治责任范围",
    )
    # Projects elsewhere in the district, long finished: on the list, nowhere near the scene.
    to_gk = Transformer.from_crs("EPSG:4490", GK_CRS, always_xy=True)
    for code, name, builder, industry, lon, lat in (
        ("2019-120225-48-01-004471", "津蓟高速公路某段改扩建工程", "天津某高速公路投资有限公司", "公路", 117.42, 40.00),
        ("2020-120225-76-01-009918", "于桥水库周边生态修复工程", "蓟州区水务局", "农林开发", 117.52, 40.05),
    ):
        x, y = to_gk.transform(lon, lat)
        add(
            None,
            "",
            "",
            box(x - 300, y - 150, x + 300, y + 150),
            code=code,
            name=name,
            builder=builder,
            industry=industry,
            authority="天津市水务局",
            number="津水许可〔2019〕7号",
            approved="2019-11-20",
            state="已验收",
            vector="防治责任范围",
        )

    frame = gpd.GeoDataFrame([r[0] for r in rows], geometry=[r[1] for r in rows], crs=GK_CRS)
    shp_dir = folder / "project-list"
    shutil.rmtree(shp_dir, ignore_errors=True)
    shp_dir.mkdir()
    frame.to_file(shp_dir / "蓟州区水土保持监管清单.shp", encoding="GBK", engine="pyogrio")
    projects_zip = folder / "蓟州区水土保持监管清单.zip"
    with zipfile.ZipFile(projects_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(shp_dir.iterdir()):
            zf.write(file, f"监管清单/{file.name}")

    # A project known only by its coordinates, as county lists often give them (GBK CSV from Excel).
    to_lonlat = Transformer.from_crs(GK_CRS, "EPSG:4490", always_xy=True)
    centre = sites[pointed].centroid
    lon, lat = to_lonlat.transform(centre.x + 15, centre.y - 10)
    point_row = _attrs(
        code="2024-120225-44-01-002288",
        name="蓟州区某10千伏输变电工程",
        builder="国网天津市电力公司蓟州供电分公司",
        industry="输变电",
        authority="蓟州区水务局",
        number="蓟水许〔2024〕3号",
        approved="2024-01-09",
        state="施工",
        vector="",
        area_hm2=0.0,
    )
    point_row.pop("矢量化类型")
    point_row.pop("防治责任范围面积")
    point_row |= {"经度": round(lon, 6), "纬度": round(lat, 6)}
    points_csv = folder / "蓟州区监管清单（坐标）.csv"
    pd.DataFrame([point_row]).to_csv(points_csv, index=False, encoding="gbk")
    planted.append(
        PlantedProject(point_row["项目代码"], point_row["项目名称"], pointed, "compliant", "only a point, buffered")
    )

    # Priority zones: a water-source protection area around the largest site left unapproved (schematic).
    flagged = next(i for i in new_sites[4:] if i != moved)
    zones = folder / "蓟州区重点监管区域.geojson"
    zone = box(*sites[flagged].buffer(120).bounds)
    gpd.GeoDataFrame({"名称": [ZONE_NAME], "类型": ["水源保护区"], "行政区代码": [DISTRICT[0]]}, geometry=[zone],
                     crs=GK_CRS).to_crs("EPSG:4490").to_file(zones, driver="GeoJSON", engine="pyogrio")  # fmt: skip

    # District boundaries: a rough outline of 蓟州区 around the scene (schematic, not the legal boundary).
    districts = folder / "districts.geojson"
    jizhou = Polygon([(117.05, 39.92), (117.78, 39.95), (117.80, 40.25), (117.42, 40.28), (117.08, 40.20)])
    gpd.GeoDataFrame({"行政区代码": [DISTRICT[0]], "名称": [DISTRICT[1]]}, geometry=[jizhou], crs="EPSG:4490").to_file(
        districts, driver="GeoJSON", engine="pyogrio"
    )
    return DemoInputs(
        before=pair.before,
        after=pair.after,
        projects_zip=projects_zip,
        points_csv=points_csv,
        districts=districts,
        zones=zones,
        zone_site=flagged,
        planted=tuple(planted),
        site_polygons={i: reproject(g, CRS.from_user_input(GK_CRS), WGS84) for i, g in sites.items()},
    )


# ------------------------------------------------------------------------------------------------ running
def reset_demo_dir(demo_dir: Path) -> None:
    """Remove the demo database, stored imagery, chips and temporary files; keep ``inputs/`` (the imagery)."""
    for name in ("soilwatch.db", "soilwatch.db-wal", "soilwatch.db-shm"):
        (demo_dir / name).unlink(missing_ok=True)
    for name in ("imagery", "chips", "tmp"):
        shutil.rmtree(demo_dir / name, ignore_errors=True)


def _check(response: Any, step: str, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise DemoError(f"{step} failed: HTTP {response.status_code} {response.text[:500]}")
    return response.json()  # type: ignore[no-any-return]


def run_demo(
    demo_dir: Path,
    *,
    size: int = 2048,
    seed: int = 7,
    imagery_progress: Callable[[int, int], None] | None = None,
    scan_progress: Callable[[float], None] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    overrides: dict[str, Any] | None = None,
) -> DemoResult:
    """Reset the demo database in ``demo_dir`` and run the whole job there (SQLite, whatever the environment)."""
    from service import users
    from service.db import make_engine, make_sessionmaker, session_scope, upgrade_database
    from service.main import create_app

    t0 = time.monotonic()
    inputs = write_demo_inputs(demo_dir / "inputs", size=size, seed=seed, progress=imagery_progress)
    reset_demo_dir(demo_dir)
    # Always the demo's own SQLite file: a SOILWATCH_DATABASE_URL in the environment must never be reset.
    settings = Settings(
        data_dir=demo_dir,
        database_url=f"sqlite:///{(demo_dir / 'soilwatch.db').resolve()}",
        **(DEMO_OVERRIDES if overrides is None else overrides),
    )
    upgrade_database(settings.resolved_database_url)
    engine = make_engine(settings)
    tokens: dict[str, str] = {}
    with session_scope(make_sessionmaker(engine)) as session:
        created, _ = users.import_districts(session, inputs.districts)
        log(f"districts: {created} imported from {inputs.districts.name}")
        for name, (role, codes) in USERS.items():
            _, tokens[name] = users.create_user(session, name, role, codes)
    engine.dispose()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's note about its test client's backend
        from fastapi.testclient import TestClient

    # The real app in-process: the same routes, checks and background scan worker as `soilwatch serve`.
    with TestClient(create_app(settings)) as client:
        supervisor = {"Authorization": f"Bearer {tokens['demo-supervisor']}"}
        reports = []
        for path in (inputs.projects_zip, inputs.points_csv):
            report = _check(
                client.post(
                    "/api/v1/projects/import", headers=supervisor, files={"file": (path.name, path.read_bytes())}
                ),
                f"importing {path.name}",
                201,
            )
            reports.append(report)
            log(
                f"project list {path.name}: {report['created']} projects imported ({report['format']}, "
                f"{report['encoding']}, {report['source_crs']}), {report['rejected']} rejected"
            )
        zone_report = _check(
            client.post(
                "/api/v1/priority-zones/import",
                headers=supervisor,
                files={"file": (inputs.zones.name, inputs.zones.read_bytes())},
            ),
            f"importing {inputs.zones.name}",
            201,
        )
        log(
            f"priority zones {inputs.zones.name}: {zone_report['created']} imported ({zone_report['format']}), "
            f"{zone_report['rejected']} rejected"
        )
        for path, sensor in ((inputs.before, "GF-2 (synthetic)"), (inputs.after, "GF-2 (synthetic)")):
            body = _check(
                client.post(
                    "/api/v1/imagery",
                    headers=supervisor,
                    data={"sensor": sensor},
                    files={"file": (path.name, path.read_bytes())},
                ),
                f"uploading {path.name}",
                201,
            )
            log(f"imagery {body['id']}: {path.name}, {body['acquired_on']}, {body['width']} x {body['height']} px")
        scan = _check(
            client.post("/api/v1/scans", headers=supervisor, json={"mode": "latest", "district_code": DISTRICT[0]}),
            "starting the scan",
            202,
        )
        log(f"scan {scan['id']}: {scan['before_date']} → {scan['after_date']} over {DISTRICT[1]} {DISTRICT[0]}")
        while scan["status"] in ("queued", "running"):
            time.sleep(0.2)
            scan = _check(client.get(f"/api/v1/scans/{scan['id']}", headers=supervisor), "following the scan", 200)
            if scan_progress is not None:
                scan_progress(scan["progress"])
        if scan["status"] != "succeeded":
            raise DemoError(f"the scan {scan['status']}: {scan['message']}")
        page = _check(
            client.get(
                "/api/v1/patches", headers=supervisor, params={"scan_id": scan["id"], "limit": 500, "geometry": True}
            ),
            "listing patches",
            200,
        )
        listed = _check(client.get("/api/v1/projects", headers=supervisor, params={"limit": 500}), "projects", 200)
        params = {"scan_id": scan["id"], "priority_zone": "any", "limit": 500}
        in_zones = _check(client.get("/api/v1/patches", headers=supervisor, params=params), "zone patches", 200)
        zone_patches = [
            _check(client.get(f"/api/v1/patches/{p['id']}", headers=supervisor), "a zone patch", 200)
            for p in in_zones["data"][:3]
        ]
    for patch in zone_patches:
        zone = patch["priority_zones"][0]
        log(
            f"in priority zone {zone['name']} ({zone['kind_label']} +{zone['weight']}): {patch['patch_code']} "
            f"{patch['category_label'] or patch['category']}, priority {patch['priority']}"
        )
    if in_zones["count"] > len(zone_patches):
        more = in_zones["count"] - len(zone_patches)
        log(f"… {more} more patches in priority zones (GET /api/v1/patches?priority_zone=any)")
    projects = {p["id"]: p for p in listed["data"]}
    planted = [(p, _patch_on(page["data"], inputs.site_polygons[p.site])) for p in inputs.planted]
    return DemoResult(settings, tokens, scan, page["data"], projects, reports, planted, time.monotonic() - t0,
                      zone_report, zone_patches)  # fmt: skip


def _patch_on(patches: list[dict[str, Any]], site: BaseGeometry) -> dict[str, Any] | None:
    """The patch overlapping ``site`` most (both lon/lat), if any."""
    best, best_area = None, 0.0
    for patch in patches:
        overlap = shapely.geometry.shape(patch["geometry"]).intersection(site).area
        if overlap > best_area:
            best, best_area = patch, overlap
    return best
