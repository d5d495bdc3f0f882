"""``soilwatch eval`` through the command group, and the evaluation API behind it."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np
import pytest

import soilwatch.cli
from models import get_model
from tests.fixtures import shared_data
from training.data import index_data, iter_pairs
from training.evaluate import evaluate, predict_pair, tile_windows

EVAL_EP = EntryPoint(name="eval", value="training.cli.eval:eval_cmd", group="soilwatch.commands")


@pytest.fixture(autouse=True)
def only_eval_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load only the eval subcommand: other packages' commands are tested in their own folders, and a
    half-written one elsewhere must not fail these tests."""
    monkeypatch.setattr(soilwatch.cli, "entry_points", lambda group: [EVAL_EP])


def _run(*args: str) -> int:
    return soilwatch.cli.main(["eval", *args])


def test_eval_entry_point_is_installed() -> None:
    eps = {e.name: e.value for e in entry_points(group="soilwatch.commands")}
    assert eps.get("eval") == EVAL_EP.value, "run `.venv/bin/pip install -e . --no-deps` to register it"


def test_help_explains_options_and_ends_with_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--help") == 0
    out = capsys.readouterr().out
    for opt in ("--data", "--model", "--json", "--sets", "--threshold", "--min-area-m2", "--overwrite"):
        assert opt in out
    assert "Example: soilwatch eval --data" in out


def test_perfect_model_scores_one(fake_data: Path, tmp_path: Path, test_models: None) -> None:
    out = tmp_path / "r.json"
    assert _run("--data", str(fake_data), "--model", "test-perfect", "--json", str(out), "--min-area-m2", "0") == 0
    report = json.loads(out.read_text())
    assert set(report) == {"model", "data", "rule", "sets", "overall"}
    assert set(report["sets"]) == {"pngset", "sparse", "tifset"}
    assert report["sets"]["pngset"]["pairs"] == 2 and report["overall"]["pairs"] == 4
    assert report["model"]["spec"] == "test-perfect" and report["rule"]["min_area_m2"] == 0
    for scores in [*report["sets"].values(), report["overall"]]:
        for key in ("precision", "recall", "f1", "iou"):
            assert scores["pixel"][key] == 1.0
        assert scores["object"]["precision"] == 1.0 and scores["object"]["recall"] == 1.0
    assert report["overall"]["object"]["true"] == 5
    # the sparse pair counts only its labelled rows
    assert report["sets"]["sparse"]["pixel"]["tp"] == 10 * 20


def test_empty_prediction_scores_zero_recall(fake_data: Path, tmp_path: Path, test_models: None) -> None:
    out = tmp_path / "r.json"
    assert _run("--data", str(fake_data), "--model", "test-empty", "--json", str(out), "--sets", "pngset,tifset") == 0
    report = json.loads(out.read_text())
    assert set(report["sets"]) == {"pngset", "tifset"}
    assert report["overall"]["pixel"]["recall"] == 0.0 and report["overall"]["object"]["recall"] == 0.0
    assert report["overall"]["pixel"]["precision"] is None  # nothing predicted: undefined, not 0 or 1


def test_baseline_runs_on_fake_data(fake_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--data", str(fake_data), "--threshold", "0.4") == 0
    captured = capsys.readouterr()
    assert "overall" in captured.out and "skipped geotiff/" in captured.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--data", "/no/such/folder"], "--data"),
        (["--sets", "nosuch"], "--sets"),
        (["--threshold", "1.5"], "--threshold"),
        (["--model", "no-such-model"], "--model"),
        (["--min-area-m2", "-1"], "--min-area-m2"),
    ],
)
def test_usage_errors_exit_2_and_name_the_option(
    fake_data: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = args if args[0] == "--data" else ["--data", str(fake_data), *args]
    assert _run(*full) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--data", "x", "--no-such-option"]])
def test_parser_usage_errors_exit_2(args: list[str]) -> None:
    assert _run(*args) == 2


def test_existing_json_needs_overwrite(fake_data: Path, tmp_path: Path, test_models: None) -> None:
    out = tmp_path / "r.json"
    out.write_text("{}")
    assert _run("--data", str(fake_data), "--model", "test-empty", "--json", str(out)) == 2
    assert out.read_text() == "{}"
    assert _run("--data", str(fake_data), "--model", "test-empty", "--json", str(out), "--overwrite") == 0
    assert "overall" in json.loads(out.read_text())


def test_changenet_scales_come_from_the_model_config(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``scales: [1.0]`` runs ChangeNet at one scale and the report says so; a setting it lacks is a usage error."""
    one = tmp_path / "one.yaml"
    one.write_text("scales: [1.0]\n")
    out = tmp_path / "r.json"
    assert _run("--data", str(fake_data), "--sets", "pngset", "--model", "changenet", "--json", str(out)) == 0
    assert json.loads(out.read_text())["model"]["extra"]["scales"] == [1.0, 0.5]  # the default
    assert _run("--data", str(fake_data), "--sets", "pngset", "--model", "changenet", "--model-config", str(one),
                "--json", str(out), "--overwrite") == 0
    assert json.loads(out.read_text())["model"]["extra"]["scales"] == [1.0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("threshold: 0.3\n")
    assert _run("--data", str(fake_data), "--model", "changenet", "--model-config", str(bad)) == 2
    assert "unknown changenet setting" in capsys.readouterr().err


def test_broken_file_is_one_line_error_exit_1(broken_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--data", str(broken_data)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: cannot read image") and "p1.png" in err and "Traceback" not in err


def test_tile_windows_cover_the_image_once() -> None:
    seen = np.zeros((70, 90), dtype=int)
    for core, outer in tile_windows(70, 90, 32, 6):
        seen[core] += 1
        assert outer[0].start <= core[0].start and outer[0].stop >= core[0].stop
        assert core[0].stop - core[0].start <= 20 and outer[1].stop - outer[1].start <= 32
    assert (seen == 1).all()
    assert list(tile_windows(30, 30, 32, 6)) == [((slice(0, 30), slice(0, 30)),) * 2]


def test_tiled_prediction_equals_whole_image(fake_data: Path) -> None:
    (pair,) = iter_pairs(fake_data, ["tifset"])
    whole = get_model("baseline")
    tiled = get_model("baseline")
    tiled.info = replace(tiled.info, tile_size=24, margin_px=whole.info.margin_px)  # type: ignore[misc]
    a = predict_pair(whole, pair.before, pair.after, pair.bands)
    b = predict_pair(tiled, pair.before, pair.after, pair.bands)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_evaluate_api_uses_the_model_threshold(fake_data: Path, rule_model: type) -> None:
    report = evaluate(rule_model(tile_size=20, margin_px=2), index_data(fake_data), min_area_m2=0)
    assert report.overall_pixel.f1 == 1.0 and report.rule["threshold"] == 0.5


@pytest.mark.realdata
def test_baseline_on_shared_data(tmp_path: Path) -> None:
    data = shared_data()
    if data is None:
        pytest.skip("real data not found; set SOILWATCH_SHARED_DATA to the shared/data folder")
    out = tmp_path / "baseline.json"
    assert _run("--data", str(data), "--model", "baseline", "--json", str(out)) == 0
    report = json.loads(out.read_text())
    assert report["overall"]["pairs"] >= 20
    for name, s in report["sets"].items():
        assert s["pairs"] > 0, name
        assert 0.0 < s["pixel"]["f1"] < 1.0, name


class _BandsSeen:
    """Test model with NIR optional: records the bands of every window it is handed; predicts nothing."""

    def __init__(self) -> None:
        self.info = replace(get_model("baseline").info, name="bands-seen", version="test")
        self.seen: set[tuple[str, ...]] = set()

    def predict(self, x: np.ndarray, bands: list[str]) -> np.ndarray:
        assert x.shape[2] == len(bands)
        self.seen.add(tuple(bands))
        return np.zeros((x.shape[0], *x.shape[-2:]), dtype=np.float32)


def test_withheld_band_never_reaches_the_model(fake_data: Path) -> None:
    index = index_data(fake_data, ["tifset"])
    model = _BandsSeen()
    assert "nir" in model.info.optional_bands
    evaluate(model, index)
    assert model.seen == {("red", "green", "blue", "nir")}
    model.seen.clear()
    report = evaluate(model, index, withhold=("nir",)).as_dict()
    assert model.seen == {("red", "green", "blue")}
    assert report["rule"]["withheld_bands"] == ["nir"]


def test_withhold_bands_on_the_command_line(
    fake_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    assert _run("--data", str(fake_data), "--sets", "tifset", "--withhold-bands", "NIR", "--json", str(out)) == 0
    assert json.loads(out.read_text())["rule"]["withheld_bands"] == ["nir"]
    for bad, needle in (("red", "requires ['red']"), ("infrared", "unknown band")):
        capsys.readouterr()
        assert _run("--data", str(fake_data), "--withhold-bands", bad) == 2
        err = capsys.readouterr().err
        assert "--withhold-bands" in err and needle in err


def test_as_detected_scores_the_detectors_map(fake_data: Path, tmp_path: Path, test_models: None) -> None:
    reports = {}
    for flag in ((), ("--as-detected",)):
        out = tmp_path / f"r{len(flag)}.json"
        assert _run("--data", str(fake_data), "--model", "test-perfect", "--json", str(out), *flag) == 0
        reports[bool(flag)] = json.loads(out.read_text())
    assert reports[True]["rule"]["as_detected"] is True and reports[False]["rule"]["as_detected"] is False
    assert "soilwatch detect" in reports[True]["rule"]["pixels"]
    # the same model, fewer predicted pixels: the detector leaves the image's outer 2 px out
    predicted = {k: r["overall"]["pixel"]["tp"] + r["overall"]["pixel"]["fp"] for k, r in reports.items()}
    assert 0 < predicted[True] < predicted[False]
    api = evaluate(get_model("test-perfect"), index_data(fake_data), as_detected=True).as_dict()
    assert api["overall"]["pixel"] == reports[True]["overall"]["pixel"]
