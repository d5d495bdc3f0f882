"""Generated approved-project lists in every accepted format, plus deliberately broken files.

Three projects in 蓟州区 (lon/lat): P-001 a polygon, P-002 a polygon, P-003 only a point.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point, Polygon, box

P1 = box(117.40, 40.00, 117.41, 40.01)
P2 = box(117.50, 40.10, 117.52, 40.11)
P3 = Point(117.60, 40.20)
P3_BOX = box(117.60, 40.20, 117.605, 40.205)
BOWTIE = Polygon([(117.45, 40.05), (117.46, 40.06), (117.46, 40.05), (117.45, 40.06)])  # self-intersecting

ATTRS = {
    "项目名称": ["蓟州区某高速公路工程", "蓟州区某房地产开发项目", "蓟州区某输变电工程"],
    "项目代码": ["P-001", "P-002", "P-003"],
    "建设单位": ["天津某交通集团", "天津某置业有限公司", "国网天津电力"],
    "行业类别": ["公路", "房地产", "输变电"],
    "审批机关": ["天津市水务局", "蓟州区水务局", "蓟州区水务局"],
    "批复文号": ["津水许可〔2023〕12号", "蓟水许〔2023〕5号", "蓟水许〔2024〕1号"],
    "批复时间": ["2023-05-01", "2023年6月2日", "20240103"],
    "防治责任范围面积": [120.5, 3.2, 0.5],
    "备注": ["", "二期", ""],
}


def frame(crs: str | int = 4326, *, point: bool = True) -> gpd.GeoDataFrame:
    """The list; P-003 is a point unless ``point=False`` (Shapefiles hold one geometry type)."""
    return gpd.GeoDataFrame(ATTRS, geometry=[P1, P2, P3 if point else P3_BOX], crs="EPSG:4326").to_crs(crs)


def zip_dir(folder: Path, dest: Path, skip: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in skip:
                zf.write(file, f"清单/{file.name}")
    return dest


def shapefile_zip(tmp: Path, *, encoding: str = "GBK", crs: int = 4527, skip: tuple[str, ...] = (),
                  gdf: gpd.GeoDataFrame | None = None) -> Path:  # fmt: skip
    """A zipped Shapefile in CGCS2000 3° GK zone 39 (EPSG:4527) with ``encoding`` attributes and a .cpg."""
    folder = tmp / f"shp-{encoding}-{crs}-{'-'.join(skip) or 'all'}"
    folder.mkdir()
    (gdf if gdf is not None else frame(crs, point=False)).to_file(folder / "项目清单.shp", encoding=encoding)
    return zip_dir(folder, tmp / f"{folder.name}.zip", skip)


def raw_zip(tmp: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def zip_bomb(tmp: Path, size: int = 64 * 1024 * 1024) -> Path:
    """A 64 MB run of zeros that compresses to ~64 KB (ratio ~1000)."""
    path = tmp / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("清单.dbf", "w") as member:
        block = b"\0" * (1024 * 1024)
        for _ in range(size // len(block)):
            member.write(block)
    return path


def table(lonlat: bool = True) -> pd.DataFrame:
    data = {k: v for k, v in ATTRS.items()}
    centres = [P1.centroid, P2.centroid, P3]
    data["经度"] = [c.x for c in centres]
    data["纬度"] = [c.y for c in centres]
    return pd.DataFrame(data)


def csv_bytes(encoding: str = "gb18030") -> bytes:
    buffer = io.StringIO()
    table().to_csv(buffer, index=False)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes() -> bytes:
    buffer = io.BytesIO()
    table().to_excel(buffer, index=False, engine="openpyxl")
    return buffer.getvalue()
