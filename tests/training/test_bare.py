"""The one-date bare-soil head (training.bare): labels, training on a frozen encoder, one-date inference, scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import torch
from PIL import Image

from models.changenet import SHIPPED_WEIGHTS, load_change_model, load_weights
from models.registry import load_model
from soilwatch.cli import main
from training import bare
from training.errors import TrainingError
from training.landcover import load_landcover

from .test_landcover import BARE, NODATA, make_landcover

UNKNOWN = (slice(60, 70), slice(0, 96))  # LoveDA "background" rows in the fixture: may hide bare ground


@pytest.fixture
def landcover_root(tmp_path: Path) -> Path:
    root = make_landcover(tmp_path / "data")
    for mask_path in (root / "landcover_loveda" / "mask").iterdir():
        mask = np.asarray(Image.open(mask_path)).copy()
        mask[UNKNOWN] = 1
        Image.fromarray(mask).save(mask_path)
    return root


@pytest.fixture
def tiny() -> bare.BareConfig:
    return bare.BareConfig(sets=("landcover_loveda", "landcover_deepglobe"), steps=30, batch_size=4, crop=64,
                           lr=1e-2, resolution_m=(0.3, 0.6))


def test_unknown_classes_are_left_out_of_the_labels(landcover_root: Path, tiny: bare.BareConfig) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda", "landcover_deepglobe"])
    assert tiles[0].unknown[UNKNOWN].all() and tiles[0].unknown.sum() == tiles[0].unknown[UNKNOWN].size
    assert not tiles[2].unknown.any()  # DeepGlobe's table has no "unknown" class (its unknown is "ignore")
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = bare.bare_sample(tiles[:1], rng, tiny)
        assert s["image"].shape == (1, 3, 64, 64) and s["mask"].shape == s["valid"].shape == (1, 64, 64)
        assert not (s["mask"].astype(bool) & ~s["valid"]).any()
    valid = bare._scoring_valid(tiles[0])
    assert not valid[UNKNOWN].any() and not valid[NODATA].any() and valid[BARE].all()


def test_the_head_learns_bare_ground_and_the_change_map_stays_the_shipped_one(
    landcover_root: Path, tiny: bare.BareConfig, tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    tiles = load_landcover(landcover_root, list(tiny.sets))
    net, losses = bare.train_bare_head(SHIPPED_WEIGHTS, tiles, tiny, on_log=lambda _: None)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1
    base, _ = load_weights(SHIPPED_WEIGHTS)
    for name, value in base.state_dict().items():  # every weight of the change path as shipped
        assert torch.equal(net.state_dict()[name], value), name
    out = tmp_path / "bare.pt"
    from models.changenet import save_weights

    save_weights(net, out, bare._meta(SHIPPED_WEIGHTS, tiny, "test", losses))
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["single_date"] is True and side["bare_head"]["base_sha256"] == load_change_model().info.extra["sha256"]
    model = load_model(out)
    assert model.info.single_date
    rng = np.random.default_rng(1)
    x = rng.random((1, 2, 3, 80, 72), dtype=np.float32)
    shipped = load_change_model()
    assert np.array_equal(model.predict(x, bare.RGB), shipped.predict(x, bare.RGB))
    one = model.predict(x[:, 1:], bare.RGB)
    assert one.shape == (1, 80, 72) and np.isfinite(one).all()
    score = bare.evaluate_bare(model, tiles)
    base_score = bare.evaluate_bare(load_model("baseline"), tiles)
    assert score.pixel.tp + score.pixel.fn == base_score.pixel.tp + base_score.pixel.fn == 3 * 30 * 50
    assert score.pixel.f1 > 0.5, score.as_dict()
    # the detector takes such a file for one date, as it takes the baseline
    patches = tmp_path / "bare.gpkg"
    assert main(["-q", "detect", "-a", str(pair[1]), "--model", str(out), "-o", str(patches)]) == 0
    table = pyogrio.read_dataframe(patches)
    assert set(table["change_type"]) <= {"bare"} and table["model"].str.startswith("changenet").all()


def test_a_change_file_refuses_one_date_and_says_what_to_use() -> None:
    model = load_change_model()
    assert not model.info.single_date
    with pytest.raises(ValueError, match="no single-date mode"):
        model.predict(np.zeros((1, 1, 3, 32, 32), np.float32), bare.RGB)
    with pytest.raises(TrainingError, match="no single-date mode"):
        bare.evaluate_bare(model, [])


def test_resampled_tiles_keep_their_labels(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda"])
    coarse = bare.tiles_at(tiles, 0.6)  # 0.3 m -> 0.6 m: half the side
    assert coarse[0].image.shape == (3, 48, 48) and coarse[0].resolution_m == 0.6
    assert coarse[0].bare[15:30, 10:35].all() and coarse[0].bare.sum() == 15 * 25
    assert coarse[0].unknown[30:35].all()
    assert bare.tiles_at(tiles, None)[0] is tiles[0]


def test_command_line_trains_and_scores(landcover_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "h.pt"
    assert bare.main(["train", "--data", str(landcover_root), "--sets", "landcover_loveda", "--steps", "3",
                      "-o", str(out)]) == 0
    assert out.is_file()
    report = tmp_path / "r.json"
    assert bare.main(["eval", "--data", str(landcover_root), "--model", "baseline", "--model", str(out),
                      "--sets", "landcover_deepglobe", "--resolution", "0", "--json", str(report)]) == 0
    rows = json.loads(report.read_text(encoding="utf-8"))["rows"]
    assert set(rows) == {"baseline|landcover_deepglobe", f"{out}|landcover_deepglobe"}
    assert rows["baseline|landcover_deepglobe"]["pixel"]["tp"] + rows["baseline|landcover_deepglobe"]["pixel"]["fn"] \
        == 30 * 50
    assert "baseline on landcover_deepglobe" in capsys.readouterr().out
    assert bare.main(["eval", "--data", str(tmp_path / "nowhere"), "--model", "baseline"]) == 1
    assert "land-cover sets" in capsys.readouterr().err
    assert bare.main(["eval", "--data", str(landcover_root), "--model", str(tmp_path / "missing.pt")]) == 1
    assert "nor an existing file" in capsys.readouterr().err


def test_reproduce_scores_every_fold_against_the_baseline(landcover_root: Path, tmp_path: Path) -> None:
    out = bare.reproduce(landcover_root, [0], 2, tmp_path / "runs", None)
    sets = out["sets"]["pooled"]
    assert set(sets) == {f"{m}|{s}" for m in ("baseline", "head seed 0") for s in bare.LANDCOVER_SETS}
    assert sets["head seed 0|landcover_loveda"]["pixel"]["tp"] + sets["head seed 0|landcover_loveda"]["pixel"]["fn"] \
        == 2 * 30 * 50
    # the fixture's LoveDA tiles "0" and "1" are in tile fold 0; DeepGlobe's "a" in none, so always in training
    # (folds 1 and 2 hold out nothing here: no head is trained for them)
    assert set(out["tiles"]["folds"]) == {f"tiles fold 0|{m}|landcover_loveda" for m in ("baseline", "head seed 0")}
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.pt")) == [
        "bare_sets0_s0.pt", "bare_sets1_s0.pt", "bare_tiles0_s0.pt"]
