"""Bad input: each case gives one clear line (exit 1, or 2 for usage), and no output is left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from detector.errors import (
    BandMappingError,
    CRSMissingError,
    DetectorError,
    NoOverlapError,
    OutputExistsError,
    OutputPathError,
    RasterReadError,
    RasterTooLargeError,
    ResolutionError,
)
from detector.pipeline import DetectOptions, detect_pair
from soilwatch.cli import main
from tests.fixtures import GK_ORIGIN, field_scene, write_tif


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_tif(tmp_path / "good.tif", field_scene()[0])


def _not_a_raster(d: Path, good: Path) -> Path:
    p = d / "notes.tif"
    p.write_text("this is not an image\n")
    return p


def _truncated(d: Path, good: Path) -> Path:
    p = d / "truncated.tif"
    data = good.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _no_crs(d: Path, good: Path) -> Path:
    return write_tif(d / "nocrs.tif", field_scene()[1], crs=None, transform=Affine.identity())


def _elsewhere(d: Path, good: Path) -> Path:
    far = Affine(1.0, 0, GK_ORIGIN[0] + 50_000, 0, -1.0, GK_ORIGIN[1])
    return write_tif(d / "elsewhere.tif", field_scene()[1], transform=far)


def _three_bands(d: Path, good: Path) -> Path:
    return write_tif(d / "rgb.tif", field_scene(bands=3)[1])


def _one_band(d: Path, good: Path) -> Path:
    return write_tif(d / "gray.tif", field_scene()[1][:1], order="gray")


def _bomb(d: Path, good: Path) -> Path:
    # 50,000 x 40,000 px declared (2 GB) in a file of a few kB: nothing was ever written to it
    p = d / "bomb.tif"
    profile = {
        "driver": "GTiff", "width": 50_000, "height": 40_000, "count": 1, "dtype": "uint8", "crs": "EPSG:4548",
        "transform": Affine(1, 0, GK_ORIGIN[0], 0, -1, GK_ORIGIN[1]), "tiled": True, "compress": "deflate",
        "sparse_ok": True,
    }
    with rasterio.open(p, "w", **profile):
        pass
    return p


def _coarse(d: Path, good: Path) -> Path:
    return write_tif(d / "coarse.tif", field_scene()[1], transform=Affine(30, 0, GK_ORIGIN[0], 0, -30, GK_ORIGIN[1]))


CASES: list[tuple[Callable[[Path, Path], Path], type[DetectorError], str]] = [
    (_not_a_raster, RasterReadError, "cannot read .*notes.tif.* as a raster"),
    (_truncated, RasterReadError, "truncated"),
    (_no_crs, CRSMissingError, "no coordinate reference system"),
    (_elsewhere, NoOverlapError, "do not overlap"),
    (_three_bands, BandMappingError, "--common-bands"),
    (_one_band, BandMappingError, "has 1 band"),
    (_bomb, RasterTooLargeError, "decompression bomb"),
    (_coarse, ResolutionError, "coarser than the limit"),
]


@pytest.mark.parametrize(("make", "error", "message"), CASES, ids=[c[0].__name__.strip("_") for c in CASES])
def test_bad_after_image(tmp_path: Path, good: Path, make: Callable[[Path, Path], Path], error: type, message: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = make(tmp_path, good)
    out = tmp_path / "out" / "p.gpkg"
    out.parent.mkdir()
    with pytest.raises(error, match=message):
        detect_pair(good, bad, out, options=DetectOptions(prob_out=out.parent / "prob.tif"))
    assert list(out.parent.iterdir()) == []
    # the same through the command line: exit 1 and one line naming the problem, no traceback
    rc = main(["detect", "-b", str(good), "-a", str(bad), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(out.parent.iterdir()) == []


def test_output_in_a_missing_folder(tmp_path: Path, good: Path) -> None:
    with pytest.raises(OutputPathError, match="does not exist; create it first"):
        detect_pair(good, good, tmp_path / "nope" / "p.gpkg")
    assert not (tmp_path / "nope").exists()


def test_existing_output_needs_overwrite(tmp_path: Path, pair: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.gpkg"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        detect_pair(*pair, out)
    assert out.read_bytes() == b"keep me"
    assert main(["detect", "-b", str(pair[0]), "-a", str(pair[1]), "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["-q", "detect", "-b", str(pair[0]), "-a", str(pair[1]), "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"keep me"


def test_unknown_output_format(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    with pytest.raises(OutputPathError, match="extension"):
        detect_pair(*pair, tmp_path / "p.xlsx")


def test_nodata_everywhere_in_the_overlap(tmp_path: Path, good: Path) -> None:
    empty = write_tif(tmp_path / "empty.tif", np.zeros((4, 240, 240), np.uint8), nodata=0)
    with pytest.raises(NoOverlapError, match="only where one of them has no data"):
        detect_pair(good, empty, None)


def test_usage_errors_exit_2(tmp_path: Path, pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "-a", str(pair[1])]) == 2  # no --out
    assert main(["detect", "-a", str(pair[1]), "-o", str(tmp_path / "x.gpkg"), "--threshold", "7"]) == 2
    assert main(["detect", "-a", str(pair[1]), "-o", str(tmp_path / "x.gpkg"), "--bounds", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--threshold" in err and "--bounds" in err


def test_debug_shows_the_traceback(tmp_path: Path, good: Path) -> None:
    with pytest.raises(RasterReadError):
        main(["--debug", "detect", "-b", str(good), "-a", str(tmp_path / "gone.tif"), "-o", str(tmp_path / "p.gpkg")])


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--before", "--after", "--out", "--model", "--min-area-m2", "--bands", "--prob-out",
                   "--overwrite", "--crs", "--threshold", "Example"):
        assert option in text
