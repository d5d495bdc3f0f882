"""training.nuisance: pairs with no change but a nuisance, and the false alarms a model raises on them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from models.base import ModelInfo
from tests.training.test_landcover import make_landcover
from training.nuisance import landcover_pairs, main, score_model, synthetic_pairs


class _DiffModel:
    """Flags pixels whose colour moved by more than 0.05 (a change detector that knows no season)."""

    info = ModelInfo(name="diff", version="test", threshold=0.5, margin_px=0, tile_size=64, batch_size=1)

    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        return (np.abs(x[:, 1] - x[:, 0]).max(axis=1) > 0.05).astype(np.float32)


class _EmptyModel(_DiffModel):
    def predict(self, x: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        return np.zeros((x.shape[0], *x.shape[-2:]), np.float32)


@pytest.fixture
def landcover_root(tmp_path: Path) -> Path:
    return make_landcover(tmp_path / "data")


def test_landcover_pairs_turn_the_fields_soil_coloured(landcover_root: Path) -> None:
    pairs = list(landcover_pairs(landcover_root, resolution_m=1.0))
    assert len(pairs) == 3  # two coded tiles, one RGB-coded tile, each with fields
    for p in pairs:
        assert p.before.shape == p.after.shape == (3, *p.valid.shape) and p.bands == ("red", "green", "blue")
        assert p.nuisance.any() and not (p.nuisance & ~p.valid).any()
        moved = np.abs(p.after - p.before).mean(axis=0)
        assert moved[p.nuisance].mean() > 2 * moved[~p.nuisance & p.valid].mean()  # the fields, not the rest
    # 96 px tiles at 0.3 m (loveda) and 0.5 m (deepglobe) resampled whole to 1 m
    assert sorted(p.valid.shape[0] for p in pairs) == [29, 29, 48]


def test_false_alarms_are_counted_on_the_nuisance(landcover_root: Path) -> None:
    pairs = list(landcover_pairs(landcover_root, resolution_m=1.0))
    diff = score_model(_DiffModel(), pairs, min_area_m2=20)["landcover"]
    assert diff["pairs"] == 3 and diff["nuisance_flagged_share"] > 0.9 and diff["false_patches"] >= 3
    assert diff["flagged_share"] < diff["nuisance_flagged_share"]
    empty = score_model(_EmptyModel(), pairs)["landcover"]
    assert empty["flagged_share"] == 0 and empty["false_patches"] == 0 and empty["km2"] == diff["km2"]


def test_synthetic_nuisance_scenes_have_no_change_and_nir() -> None:
    pairs = list(synthetic_pairs(2, size=64, resolution_m=(1.0,)))
    assert [p.kind for p in pairs] == ["synthetic"] * 2 and pairs[0].bands[-1] == "nir"
    assert all(p.before.shape == (4, 64, 64) and p.nuisance.all() for p in pairs)
    assert not np.array_equal(pairs[0].before, pairs[0].after)  # something moved: seasons, haze, sensor


def test_command_writes_both_kinds(landcover_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "n.json"
    assert main(["--data", str(landcover_root), "--synthetic", "1", "--model", "baseline", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["models"]["baseline"]
    assert res["synthetic"]["pairs"] == 1 and res["landcover"]["pairs"] == 3
    assert "baseline landcover: 3 pairs" in capsys.readouterr().out
    assert main(["--data", str(tmp_path / "none"), "--synthetic", "1", "--model", "baseline"]) == 0
    assert "only the synthetic pairs" in capsys.readouterr().err


def test_command_passes_the_model_config(tmp_path: Path) -> None:
    """``--model-config`` reaches the model: ChangeNet at one scale is recorded as such, a wrong setting is an error."""
    one, out = tmp_path / "one.yaml", tmp_path / "n.json"
    one.write_text("scales: [1.0]\n")
    none = str(tmp_path / "none")
    assert main(["--data", none, "--synthetic", "1", "--model", "changenet", "--model-config", str(one),
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["models"]["changenet"]["scales"] == [1.0]
    with pytest.raises(ValueError, match="unknown baseline settings"):
        main(["--data", none, "--synthetic", "1", "--model", "baseline", "--model-config", str(one)])
    (tmp_path / "list.yaml").write_text("- 1.0\n")
    with pytest.raises(SystemExit) as exc:
        main(["--data", none, "--model", "changenet", "--model-config", str(tmp_path / "list.yaml")])
    assert exc.value.code == 2
