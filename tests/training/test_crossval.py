"""Leave-one-pair-out cross-validation: ``data.exclude_pairs``, ``training.crossval`` and ``soilwatch crossval``."""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np
import pytest

import soilwatch.cli
from training.crossval import cross_validate, fold_path
from training.data import DataIndex, index_data
from training.errors import TrainingError
from training.train import SampleSource, TrainConfig, load_config

SMOKE = Path(__file__).resolve().parents[2] / "training" / "configs" / "changenet_smoke.yaml"
CROSSVAL_EP = EntryPoint(name="crossval", value="training.cli.crossval:crossval_cmd", group="soilwatch.commands")


@pytest.fixture(autouse=True)
def only_crossval_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soilwatch.cli, "entry_points", lambda group: [CROSSVAL_EP])


def _recipe(**data: object) -> TrainConfig:
    cfg = load_config(SMOKE)
    values = {"train_sets": ("pngset", "tifset"), "synthetic_fraction": 0.5, **data}
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **values),
                               optim=dataclasses.replace(cfg.optim, steps=2, log_every=1))


def test_entry_point_is_installed() -> None:
    eps = {e.name: e.value for e in entry_points(group="soilwatch.commands")}
    assert eps.get("crossval") == CROSSVAL_EP.value, "run `.venv/bin/pip install -e . --no-deps` to register it"


def test_an_excluded_pair_is_not_in_the_training_pool(fake_data: Path) -> None:
    full = SampleSource(_recipe().checked(), fake_data)
    less = SampleSource(_recipe(exclude_pairs=("pngset/p1",)).checked(), fake_data)
    assert [len(full.real[k]) for k in ("pngset", "tifset")] == [2, 1]
    assert [len(less.real[k]) for k in ("pngset", "tifset")] == [1, 1]
    # the pair kept is p0: its label, not p1's (p1 has two changed boxes, p0 one)
    kept = less.real["pngset"][0]["mask"]
    assert np.array_equal(kept, full.real["pngset"][0]["mask"])
    assert not np.array_equal(kept, full.real["pngset"][1]["mask"])


@pytest.mark.parametrize("entry, what", [("pngset", "'set/pair'"), ("sparse/s0", "data.train_sets")])
def test_a_malformed_exclude_entry_is_named(entry: str, what: str) -> None:
    with pytest.raises(TrainingError, match=f"exclude_pairs entry '{entry}'.*{what}"):
        _recipe(exclude_pairs=(entry,)).checked()


def test_an_exclude_entry_naming_no_pair_is_an_error(fake_data: Path) -> None:
    # a typo must not silently put the pair back into training
    with pytest.raises(TrainingError, match=r"pngset/p9.*no such pair"):
        SampleSource(_recipe(exclude_pairs=("pngset/p9",)).checked(), fake_data)


def test_each_pair_is_scored_by_the_fold_that_left_it_out(tmp_path: Path, fake_data: Path) -> None:
    from models import load_model
    from training.evaluate import evaluate

    lines: list[str] = []
    res = cross_validate(_recipe(), "pngset", tmp_path / "cv", root=fake_data, min_area_m2=0,
                         progress=lines.append)
    assert [p.name for p in res.result.pairs] == ["p0", "p1"]
    full = index_data(fake_data, ["pngset"])
    for pr, files in zip(res.result.pairs, full.sets["pngset"], strict=True):
        weights = fold_path(tmp_path / "cv", pr.name)
        side = json.loads(weights.with_suffix(".json").read_text())
        assert side["data"]["exclude_pairs"] == [f"pngset/{pr.name}"]  # the fold never trained on its pair
        # the same score as 'soilwatch eval' of that fold model on that pair alone
        alone = evaluate(load_model(weights), DataIndex(full.root, {"pngset": [files]}), min_area_m2=0)
        assert alone.sets["pngset"].pixel == pr.pixel and alone.sets["pngset"].objects == pr.objects
    report = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    pooled = report["sets"]["pngset"]
    assert pooled["pairs"] == 2 and set(pooled["per_pair"]) == {"p0", "p1"}
    assert pooled["pixel"]["tp"] == sum(p["pixel"]["tp"] for p in pooled["per_pair"].values())
    assert pooled["object"]["true"] == 3  # p0 has one changed box, p1 two
    assert report["protocol"].startswith("leave-one-pair-out") and report["rule"]["min_area_m2"] == 0
    assert [f["pair"] for f in report["folds"]] == ["p0", "p1"] and all(len(f["sha256"]) == 64 for f in report["folds"])
    assert any(line.startswith("[fold 2/2 p1] step 2/2") for line in lines)


def test_a_rerun_keeps_finished_folds_and_refuses_other_recipes(tmp_path: Path, fake_data: Path) -> None:
    out = tmp_path / "cv"
    cross_validate(_recipe(), "pngset", out, root=fake_data)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("fold_*.pt")}
    lines: list[str] = []
    again = cross_validate(_recipe(), "pngset", out, root=fake_data, progress=lines.append)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("fold_*.pt")} == stamps
    assert sum("done before" in line for line in lines) == 2 and not any("step" in line for line in lines)
    assert len(again.result.pairs) == 2
    other = dataclasses.replace(_recipe(), seed=7)
    with pytest.raises(TrainingError, match="another config"):
        cross_validate(other, "pngset", out, root=fake_data)


def test_a_set_the_recipe_does_not_train_on_is_refused(tmp_path: Path, fake_data: Path) -> None:
    with pytest.raises(TrainingError, match="held out already"):
        cross_validate(_recipe(), "sparse", tmp_path / "cv", root=fake_data)
    with pytest.raises(TrainingError, match="1 pair"):  # tifset has one pair: nothing would be left to train on
        cross_validate(_recipe(), "tifset", tmp_path / "cv", root=fake_data)
    taught = dataclasses.replace(_recipe(), optim=dataclasses.replace(_recipe().optim, distill_from=("t.pt",)))
    with pytest.raises(TrainingError, match="distill_from"):  # teachers saw every pair: no fold would be held out
        cross_validate(taught, "pngset", tmp_path / "cv", root=fake_data)


def test_cli_prints_the_folds_and_writes_the_report(tmp_path: Path, fake_data: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(SMOKE.read_text().replace("train_sets: []", "train_sets: [pngset, tifset]")
                   .replace("synthetic_fraction: 1.0", "synthetic_fraction: 0.5"))
    code = soilwatch.cli.main(["crossval", "--config", str(cfg), "--set", "pngset", "-o", str(tmp_path / "cv"),
                               "--data", str(fake_data), "--steps", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "leave-one-pair-out on pngset" in out and "pooled" in out and "p1" in out
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["recipe"]["optim"]["steps"] == 1


def test_cli_names_a_set_outside_the_recipe(tmp_path: Path, fake_data: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = soilwatch.cli.main(["crossval", "--config", str(SMOKE), "--set", "pngset", "-o", str(tmp_path / "cv"),
                               "--data", str(fake_data)])
    assert code == 2
    assert "--set" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()
