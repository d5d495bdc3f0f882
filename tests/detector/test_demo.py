"""``soilwatch demo`` end to end on a small scene, as a new user runs it."""

from pathlib import Path

import pyogrio
import pytest
import rasterio

from soilwatch.cli import main


def test_demo_makes_imagery_detects_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out), "--size", "512", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "suspected new disturbance patches" in text and "against the planted truth: found" in text
    with rasterio.open(out / "demo_2024-06-15.tif") as src:
        assert src.crs.to_epsg() == 4548 and src.count == 4 and src.tags()["ACQ_DATE"] == "2024-06-15"
        assert src.descriptions == ("blue", "green", "red", "nir")
    patches = pyogrio.read_dataframe(out / "patches.gpkg")
    assert len(patches) > 0 and patches.crs.to_epsg() == 4548
    # a second run reuses the imagery but will not overwrite results without --overwrite
    assert main(["demo", "--out-dir", str(out), "--size", "512", "--seed", "3"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["demo", "--out-dir", str(out), "--size", "512", "--seed", "3", "--overwrite"]) == 0
