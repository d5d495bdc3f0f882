"""A corpus of hostile uploads, generated at test time (nothing is committed): each function returns
``(filename, bytes)`` to send as the multipart ``file``.

Imagery (``POST /imagery``): truncated and corrupt TIFFs, a decompression bomb (100000 × 100000 px
declared in a 1 kB file), thousands of bands, thousands of IFDs, an IFD loop, no CRS, coordinates off
the earth. TIFFs are written by hand (:func:`tiff_bytes`, classic little-endian TIFF with GeoTIFF tags)
so that the header can say anything.

Project lists (``POST /projects/import``): zip bombs (honest and lying headers, built from one repeated
deflate block), ``../``, absolute and symlink members, billion-laughs and XXE XML under accepted names,
GeoJSON with absurd or non-finite coordinates, a bow-tie polygon, deep nesting, a huge CSV field, GBK
bytes declared UTF-8.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from typing import Any

import numpy as np
from affine import Affine

from tests.service import project_files

__all__ = [
    "tiff_bytes",
    "good_tiff",
    "IMAGERY",
    "PROJECT_FILES",
    "zip_bomb",
    "raw_zip_member",
    "shapefile_members",
    "FORMULA_TEXTS",
]

ORIGIN = (512_000.0, 4_436_000.0)  # EPSG:4548 (CGCS2000 GK CM 117E), inside the seeded 蓟州区

# TIFF field types
_SHORT, _LONG, _DOUBLE = 3, 4, 12
_SIZE = {_SHORT: 2, _LONG: 4, _DOUBLE: 8}
_FMT = {_SHORT: "H", _LONG: "I", _DOUBLE: "d"}


def _geokeys(epsg: int | None) -> dict[int, tuple[int, list[Any]]]:
    if epsg is None:
        return {}
    keys = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, epsg]  # projected, pixel-is-area, EPSG code
    return {34735: (_SHORT, keys)}


def tiff_bytes(
    *,
    width: int = 16,
    height: int = 16,
    bands: int = 4,
    pages: int = 1,
    epsg: int | None = 4548,
    origin: tuple[float, float] = ORIGIN,
    pixel: float = 1.0,
    data: bytes | None = None,
    loop: bool = False,
) -> bytes:
    """A classic TIFF of ``pages`` IFDs, each ``width`` × ``height`` × ``bands`` uint8, one uncompressed strip.

    ``data`` is the strip actually stored, deflate-compressed (default: as many zero bytes as declared,
    uncompressed); a short one makes the header promise far more than the file holds. ``loop`` points the
    last IFD back at the first.
    """
    declared = width * height * bands
    strip = bytes(declared) if data is None else zlib.compress(data)
    compression = 1 if data is None else 8
    out = bytearray(b"II*\x00\x00\x00\x00\x00")  # IFD offset patched below
    strip_at = len(out)
    out += strip
    if len(out) % 2:
        out += b"\x00"
    ifd_offsets: list[int] = []
    next_slots: list[int] = []
    for _ in range(pages):
        tags: dict[int, tuple[int, list[Any]]] = {
            256: (_LONG, [width]),
            257: (_LONG, [height]),
            258: (_SHORT, [8] * bands),
            259: (_SHORT, [compression]),
            262: (_SHORT, [1]),
            273: (_LONG, [strip_at]),
            277: (_SHORT, [bands]),
            278: (_LONG, [height]),
            279: (_LONG, [len(strip)]),
            284: (_SHORT, [1]),
            339: (_SHORT, [1] * bands),
            33550: (_DOUBLE, [pixel, pixel, 0.0]),
            33922: (_DOUBLE, [0.0, 0.0, 0.0, origin[0], origin[1], 0.0]),
            **_geokeys(epsg),
        }
        if epsg is None:
            del tags[33550], tags[33922]
        # out-of-line values first, then the IFD itself
        values: dict[int, bytes] = {}
        offsets: dict[int, int] = {}
        for tag, (kind, vals) in tags.items():
            raw = struct.pack(f"<{len(vals)}{_FMT[kind]}", *vals)
            values[tag] = raw
            if len(raw) > 4:
                offsets[tag] = len(out)
                out += raw
                if len(out) % 2:
                    out += b"\x00"
        ifd_offsets.append(len(out))
        out += struct.pack("<H", len(tags))
        for tag in sorted(tags):
            kind, vals = tags[tag]
            raw = values[tag]
            field = struct.pack("<I", offsets[tag]) if tag in offsets else raw.ljust(4, b"\x00")
            out += struct.pack("<HHI", tag, kind, len(vals)) + field
        next_slots.append(len(out))
        out += b"\x00\x00\x00\x00"
    struct.pack_into("<I", out, 4, ifd_offsets[0])
    for slot, following in zip(next_slots, ifd_offsets[1:], strict=False):
        struct.pack_into("<I", out, slot, following)
    if loop:
        struct.pack_into("<I", out, next_slots[-1], ifd_offsets[0])
    return bytes(out)


def good_tiff(seed: int = 0, size: int = 64) -> bytes:
    """A valid 4-band GeoTIFF (random pixels), the base of the truncated and corrupt ones."""
    import rasterio
    from rasterio.io import MemoryFile

    data = np.random.default_rng(seed).integers(0, 255, size=(4, size, size), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint8", "crs": "EPSG:4548",
               "transform": Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1]), "compress": "deflate", "tiled": True,
               "blockxsize": 16, "blockysize": 16}  # fmt: skip
    with rasterio.Env(), MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        return bytes(memory.read())


def _random_after_header(seed: int = 1) -> bytes:
    return b"II*\x00" + np.random.default_rng(seed).bytes(64 * 1024)


#: name → (filename, bytes) factories for ``POST /imagery``; each must be refused with a 4xx.
IMAGERY: dict[str, Any] = {
    "truncated": lambda: ("2024-06-01_truncated.tif", good_tiff()[: len(good_tiff()) // 2]),
    "random_bytes_tiff_header": lambda: ("2024-06-01_random.tif", _random_after_header()),
    "empty": lambda: ("2024-06-01_empty.tif", b""),
    "decompression_bomb": lambda: (
        "2024-06-01_bomb.tif",
        tiff_bytes(width=100_000, height=100_000, bands=4, data=bytes(1024)),
    ),  # fmt: skip
    "thousands_of_bands": lambda: ("2024-06-01_bands.tif", tiff_bytes(width=4, height=4, bands=5000)),
    "thousands_of_ifds": lambda: ("2024-06-01_pages.tif", tiff_bytes(width=16, height=16, bands=4, pages=5000)),
    "ifd_loop": lambda: ("2024-06-01_loop.tif", tiff_bytes(width=16, height=16, bands=4, pages=3, loop=True)),
    "missing_crs": lambda: ("2024-06-01_nocrs.tif", tiff_bytes(epsg=None)),
    "off_the_earth": lambda: ("2024-06-01_far.tif", tiff_bytes(epsg=4548, origin=(1e15, 1e15))),
    "lonlat_off_the_earth": lambda: (
        "2024-06-01_lonlat.tif",
        tiff_bytes(epsg=4490, origin=(500.0, 300.0), pixel=0.0001),
    ),  # fmt: skip
    "zero_pixel_size": lambda: ("2024-06-01_flat.tif", tiff_bytes(pixel=0.0)),
}

# --- project lists -------------------------------------------------------------------------------------


def _deflate_zeros(megabytes: int) -> bytes:
    """Raw deflate of ``megabytes`` MiB of zeros, built from one flushed block repeated (~1 kB per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(bytes(1024 * 1024)) + packer.flush(zlib.Z_FULL_FLUSH)
    return block * megabytes + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_bomb(megabytes: int = 4096, *, declared: int | None = None, name: str = "清单/项目清单.dbf") -> bytes:
    """A zip with one deflated member of ``megabytes`` MiB of zeros (a 4 GiB member is ~4 MB).

    ``declared`` overrides the uncompressed size written in the headers (a lying header); the CRC is
    not computed (the member must never be read to the end).
    """
    body = _deflate_zeros(megabytes)
    size = megabytes * 1024 * 1024 if declared is None else declared
    zip64 = size >= 0xFFFFFFFF
    raw_name = name.encode()
    extra = struct.pack("<HHQQ", 1, 16, size, len(body)) if zip64 else b""
    usize, csize = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (size, len(body))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0x800, 8, 0, 0, 0, csize, usize, len(raw_name), len(extra))
    out = io.BytesIO()
    out.write(local + raw_name + extra + body)
    central_at = out.tell()
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x800, 8, 0, 0, 0, csize, usize, len(raw_name),
                          len(extra), 0, 0, 0, 0, 0)  # fmt: skip
    out.write(central + raw_name + extra)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, out.tell() - central_at, central_at, 0)
    out.write(end)
    return out.getvalue()


def raw_zip_member(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    """A zip of ``members`` written as named (``../x``, ``/etc/x`` …); ``symlink`` adds a link member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            zf.writestr(info, data)
        if symlink:
            info = zipfile.ZipInfo("清单/link.shp")
            info.create_system = 3
            info.external_attr = 0o120777 << 16
            zf.writestr(info, symlink)
    return buffer.getvalue()


def shapefile_members() -> dict[str, bytes]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = project_files.shapefile_zip(Path(tmp))
        with zipfile.ZipFile(path) as zf:
            return {Path(n).name: zf.read(n) for n in zf.namelist()}


_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + ']>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&lol9;</name>'
    "<Point><coordinates>117.4,40.0</coordinates></Point></Placemark></Document></kml>\n"
)
_XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE kml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&xxe;</name>'
    '<ExtendedData><Data name="项目代码"><value>&xxe;</value></Data></ExtendedData>'
    "<Point><coordinates>117.4,40.0</coordinates></Point></Placemark></Document></kml>\n"
)
_GPX_XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE gpx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    '<gpx version="1.1" creator="x" xmlns="http://www.topografix.com/GPX/1/1">'
    '<wpt lat="40.0" lon="117.4"><name>&xxe;</name></wpt></gpx>\n'
)


def _xlsx_with(entity_xml: str) -> bytes:
    """project_files' XLSX with its first sheet replaced by ``entity_xml`` (a DOCTYPE with entities)."""
    source = zipfile.ZipFile(io.BytesIO(project_files.xlsx_bytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = entity_xml.encode()
            out.writestr(item, data)
    return buffer.getvalue()


_SHEET_XXE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
    "]>\n"
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>项目代码</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>项目名称</t></is></c>'
    '<c r="C1" t="inlineStr"><is><t>经度</t></is></c><c r="D1" t="inlineStr"><is><t>纬度</t></is></c></row>'
    '<row r="2"><c r="A2" t="inlineStr"><is><t>&xxe;</t></is></c><c r="B2" t="inlineStr"><is><t>&xxe;</t></is></c>'
    '<c r="C2"><v>117.4</v></c><c r="D2"><v>40.0</v></c></row></sheetData></worksheet>'
)
_SHEET_LAUGHS = _LAUGHS.split("<kml")[0].replace("lolz", "worksheet") + (
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t>项目代码</t></is></c><c r="B1" t="inlineStr"><is><t>&lol9;</t></is></c>'
    "</row></sheetData></worksheet>"
)


def _feature(geometry: Any, code: str = "H-001", name: str = "测试项目") -> dict[str, Any]:
    return {"type": "Feature", "properties": {"项目代码": code, "项目名称": name}, "geometry": geometry}


def _geojson(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}, ensure_ascii=False).encode()


def _square(x: float, y: float, d: float = 0.001) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]}


def _with_token(token: bytes, count: int = -1) -> bytes:
    """A good feature and one whose longitudes are ``token`` (NaN, Infinity: not JSON, but parsers take them)."""
    good = _feature(_square(117.5, 40.1), code="H-000")
    text = _geojson(good, _feature(_square(117.4, 40.0)))
    return text.replace(b"117.4,", token + b",", count)


def _nan_vertex() -> bytes:
    """A good feature and a closed triangle with one NaN vertex (GEOS raises on it when it is made valid)."""
    triangle = {"type": "Polygon", "coordinates": [[[117.4, 40.0], [117.41, 40.0], [117.41, 40.01], [117.4, 40.0]]]}
    text = _geojson(_feature(_square(117.5, 40.1), code="H-000"), _feature(triangle))
    return text.replace(b"[117.41, 40.0]", b"[NaN, 40.0]", 1)


def _xlsx_bomb(megabytes: int = 64) -> bytes:
    """A well-formed workbook whose sheet is ``megabytes`` MiB of spaces (compresses ~1000:1)."""
    source = zipfile.ZipFile(io.BytesIO(project_files.xlsx_bytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                out.writestr(item, source.read(item.filename))
                continue
            with out.open(item.filename, "w") as member:
                member.write(source.read(item.filename)[: -len(b"</worksheet>")])
                for _ in range(megabytes):
                    member.write(b" " * (1024 * 1024))
                member.write(b"</worksheet>")
    return buffer.getvalue()


def _nested(depth: int) -> bytes:
    return b'{"type": "FeatureCollection", "features": [' + b"[" * depth + b"]" * depth + b"]}"


def _huge_field_csv(megabytes: int = 8) -> bytes:
    return ("项目代码,项目名称,经度,纬度\nH-001," + "长" * (megabytes * 1024 * 1024 // 3) + ",117.4,40.0\n").encode()


def _shapefile_gbk_declared_utf8() -> bytes:
    """GBK attributes with a .cpg that says UTF-8."""
    members = {
        f"清单/{name}": (b"UTF-8" if name.endswith(".cpg") else data) for name, data in shapefile_members().items()
    }
    return raw_zip_member(members)


def _gbk_as_utf8_csv() -> bytes:
    return project_files.csv_bytes("gbk")


#: name → (filename, bytes, form fields, expectation) for ``POST /projects/import``. Expectation: "reject"
#: (a 4xx, nothing written) or "rows" (201; the hostile rows rejected or repaired in the report).
PROJECT_FILES: dict[str, Any] = {
    "zip_bomb": lambda: ("清单.zip", zip_bomb(4096), {}, "reject"),
    "zip_bomb_lying_header": lambda: ("清单.zip", zip_bomb(2048, declared=1000), {}, "reject"),
    "zip_dotdot": lambda: ("清单.zip", raw_zip_member({"../../evil.shp": b"x", **shapefile_members()}), {}, "reject"),
    "zip_absolute": lambda: ("清单.zip", raw_zip_member({"/tmp/evil.shp": b"x"}), {}, "reject"),
    "zip_backslash_dotdot": lambda: ("清单.zip", raw_zip_member({"..\\..\\evil.shp": b"x"}), {}, "reject"),
    "zip_symlink": lambda: ("清单.zip", raw_zip_member(shapefile_members(), symlink="/etc/passwd"), {}, "reject"),
    "zip_not_a_zip": lambda: ("清单.zip", b"PK\x03\x04" + bytes(100), {}, "reject"),
    "kml_billion_laughs": lambda: ("清单.kml", _LAUGHS.encode(), {}, "reject"),
    "kml_billion_laughs_as_geojson": lambda: ("清单.geojson", _LAUGHS.encode(), {}, "reject"),
    "kml_xxe_as_geojson": lambda: ("清单.geojson", _XXE.encode(), {}, "reject"),
    "gpx_xxe_as_geojson": lambda: ("清单.geojson", _GPX_XXE.encode(), {}, "reject"),
    "kml_xxe_in_zip": lambda: ("清单.zip", raw_zip_member({"清单.geojson": _XXE.encode()}), {}, "reject"),
    "xlsx_xxe": lambda: ("清单.xlsx", _xlsx_with(_SHEET_XXE), {}, "reject"),
    "xlsx_billion_laughs": lambda: ("清单.xlsx", _xlsx_with(_SHEET_LAUGHS), {}, "reject"),
    "xlsx_zip_bomb": lambda: ("清单.xlsx", _xlsx_bomb(), {}, "reject"),
    "xlsx_not_a_workbook": lambda: ("清单.xlsx", zip_bomb(8, name="xl/worksheets/sheet1.xml"), {}, "reject"),
    "geojson_absurd_coordinates": lambda: ("清单.geojson", _geojson(_feature(_square(1e300, 1e300))), {}, "rows"),
    "geojson_outside_lonlat": lambda: ("清单.geojson", _geojson(_feature(_square(500.0, 95.0))), {}, "rows"),
    # NaN != NaN, so a ring of NaNs never closes: shapely cannot build it and the whole file is refused.
    "geojson_nan": lambda: ("清单.geojson", _with_token(b"NaN"), {}, "reject"),
    "geojson_infinity": lambda: ("清单.geojson", _with_token(b"Infinity"), {}, "rows"),
    "geojson_nan_unclosed_ring": lambda: ("清单.geojson", _with_token(b"NaN", count=1), {}, "reject"),
    # a closed ring with one NaN vertex inside is built: that row is rejected with its reason, the rest imported
    "geojson_nan_vertex": lambda: ("清单.geojson", _nan_vertex(), {}, "rows"),
    "geojson_bowtie": lambda: (
        "清单.geojson",
        _geojson(
            _feature(
                json.loads(
                    json.dumps(
                        {"type": "Polygon", "coordinates": [list(map(list, project_files.BOWTIE.exterior.coords))]}
                    )
                )
            )
        ),
        {},
        "rows",
    ),
    "geojson_deeply_nested": lambda: ("清单.geojson", _nested(100_000), {}, "reject"),
    "csv_huge_field": lambda: ("清单.csv", _huge_field_csv(), {}, "rows"),
    "csv_gbk_declared_utf8": lambda: ("清单.csv", _gbk_as_utf8_csv(), {"encoding": "UTF-8"}, "reject"),
    "shapefile_gbk_declared_utf8": lambda: ("清单.zip", _shapefile_gbk_declared_utf8(), {}, "reject"),
}

#: Texts a spreadsheet would run as a formula (OWASP CSV injection): each must be neutralised in CSV exports.
FORMULA_TEXTS = ['=HYPERLINK("http://x","click")', "+SUM(1,2)", "-2+3", "@SUM(A1)", "\tTAB=1", "\rCR=1"]
