"""``python -m training.reproduce``: the card's held-out table in one command (here on the fake sets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from training.reproduce import heldout_rows, main

RECIPE = {
    "seed": 0,
    "data": {"synthetic_scenes": 4, "synthetic_size": 64, "synthetic_fraction": 0.5},
    "augment": {"crop": 32},
    "model": {"pretrained": False, "freeze_blocks": 0},
    "optim": {"steps": 2, "batch_size": 2, "warmup": 1, "log_every": 1, "checkpoint_every": 0},
}


def _config(folder: Path, name: str, train_sets: list[str], eval_sets: list[str]) -> Path:
    body = json.loads(json.dumps(RECIPE))
    body["name"] = name
    body["data"] |= {"train_sets": train_sets, "eval_sets": eval_sets}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


def test_trains_each_held_out_model_and_reuses_the_shipped_recipe(
    tmp_path: Path, fake_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.train import load_config, train

    configs = tmp_path / "configs"
    configs.mkdir()
    shipped_cfg = _config(configs, "shipped", ["pngset"], ["pngset", "tifset"])
    shipped_pt = tmp_path / "shipped.pt"
    train(load_config(shipped_cfg), shipped_pt, root=fake_data)
    same_recipe = _config(configs, "loso_tif", ["pngset"], ["tifset"])  # the shipped model is held out of tifset
    other = _config(configs, "loso_png", ["tifset"], ["pngset"])
    lines: list[str] = []
    rows = heldout_rows([same_recipe, other], tmp_path / "runs", root=fake_data, shipped=(shipped_cfg, shipped_pt),
                        say=lines.append)  # fmt: skip
    assert [(r["set"], r["config"]) for r in rows] == [("tifset", "loso_tif.yaml"), ("pngset", "loso_png.yaml")]
    assert rows[0]["weights"].startswith(str(shipped_pt)) and not (tmp_path / "runs" / "loso_tif.pt").exists()
    assert rows[1]["weights"] == str(tmp_path / "runs" / "loso_png.pt") and Path(rows[1]["weights"]).exists()
    for row in rows:
        assert 0 <= row["model"]["pixel"]["f1"] <= 1 and row["baseline"]["object"]["true"] > 0
    assert any(line.startswith("| **tifset** ChangeNet held out | ") for line in lines)
    # the same models scored as soilwatch detect delivers them: every map goes through the detector's raster steps
    import training.evaluate

    calls: list[int] = []
    real = training.evaluate.detected_mask
    monkeypatch.setattr(training.evaluate, "detected_mask", lambda *a: calls.append(1) or real(*a))
    detected = heldout_rows([same_recipe], tmp_path / "runs", root=fake_data, shipped=(shipped_cfg, shipped_pt),
                            say=lines.append, as_detected=True, scales=[1.0])  # fmt: skip
    assert detected[0]["as_detected"] is True and rows[0]["as_detected"] is False
    assert detected[0]["scales"] == [1.0] and rows[0]["scales"] == [1.0, 0.5]  # the tables dated earlier: one scale
    assert len(calls) == 2  # the one tifset pair, for the model and for the baseline


def test_missing_data_is_one_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs")]) == 2
    assert "error:" in capsys.readouterr().err


def test_bad_scales_are_refused_before_any_training(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "runs"), "--scales", "2"])
    assert exc.value.code == 2 and "(0, 1]" in capsys.readouterr().err and not (tmp_path / "runs").exists()
