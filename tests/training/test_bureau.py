"""Bureau fine-tune (issue #4): two GeoTIFFs + a 图斑 Shapefile → fine-tuned ChangeNet weights.

A tiny synthetic pair in CGCS2000 / Gauss-Krüger (EPSG:4548, 1 m) with bare squares in the after image, and
its labels as a GBK Shapefile in EPSG:4326 (another CRS), all written here.
"""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

import soilwatch.cli
from tests.fixtures import GK_CRS, GK_ORIGIN, MarkerModel, field_scene, shared_data, write_tif
from training.bureau import FinetuneConfig, finetune, load_init, load_scene, parse_holdout
from training.errors import BureauDataError

TRAIN_EP = EntryPoint(name="train", value="training.cli.train:train_cmd", group="soilwatch.commands")
SIZE = 160
#: (row, col, height, width) in pixels of the before grid (1 m pixels, origin GK_ORIGIN)
SQUARES = [(20, 20, 24, 24), (100, 30, 20, 30), (40, 108, 20, 20), (110, 112, 24, 24)]


def _square_m(r: int, c: int, h: int, w: int, dx: float = 0.0) -> object:
    x0, y1 = GK_ORIGIN[0] + c + dx, GK_ORIGIN[1] - r
    return box(x0, y1 - h, x0 + w, y1)


def write_labels(path: Path, geoms: list, *, crs: str = "EPSG:4326", src_crs: str = GK_CRS, **kw: object) -> Path:
    """Polygons given in ``src_crs`` written to ``path`` in ``crs``, with GBK (Chinese) attribute names."""
    frame = gpd.GeoDataFrame({"图斑编号": [f"TB{i:03d}" for i in range(len(geoms))],
                              "扰动类型": ["施工扰动"] * len(geoms)}, geometry=geoms, crs=src_crs)
    frame = frame.to_crs(crs) if crs != src_crs else frame
    frame.to_file(path, engine="pyogrio", **kw)
    return path


@pytest.fixture
def bureau(tmp_path: Path) -> dict[str, Path]:
    before, after = field_scene(SIZE, SIZE, squares=SQUARES, bands=3, seed=3)
    b = write_tif(tmp_path / "2023-06-01.tif", before)
    a = write_tif(tmp_path / "2024-06-01.tif", after)
    shp = write_labels(tmp_path / "2023图斑.shp", [_square_m(*s) for s in SQUARES], encoding="gbk")
    assert shp.with_suffix(".cpg").read_text().strip().upper() == "GBK"
    return {"before": b, "after": a, "labels": shp, "dir": tmp_path}


@pytest.fixture(scope="module")
def model() -> object:
    from models.changenet import TorchChangeModel

    net, meta, _ = load_init("shipped")
    return TorchChangeModel(net, meta=meta, num_threads=1)


def _cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    monkeypatch.setattr(soilwatch.cli, "entry_points", lambda group: [TRAIN_EP])
    monkeypatch.setattr(soilwatch.cli.app, "registered_commands", [])
    monkeypatch.setattr(soilwatch.cli.app, "registered_groups", [])
    return soilwatch.cli.main(args)


# -- labels on the grid ---------------------------------------------------------------------------
def test_rasterised_label_is_pixel_exact(bureau: dict[str, Path], model: object) -> None:
    scene = load_scene(bureau["before"], bureau["after"], bureau["labels"], model=model)
    assert (int(scene.area.width), int(scene.area.height)) == (SIZE, SIZE)
    expected = np.zeros((SIZE, SIZE), np.uint8)
    for r, c, h, w in SQUARES:
        expected[r:r + h, c:c + w] = 1
    np.testing.assert_array_equal(scene.label(scene.area), expected)
    from rasterio.windows import Window

    part = Window(15, 10, 40, 50)  # a window cutting the first square: same pixels, offset
    np.testing.assert_array_equal(scene.label(part), expected[10:60, 15:55])
    assert scene.files["labels"]["features"] == len(SQUARES)


def test_after_on_another_grid_is_warped_onto_the_before_grid(tmp_path: Path, model: object) -> None:
    before, after = field_scene(SIZE, SIZE, squares=SQUARES, bands=3, seed=3)
    b = write_tif(tmp_path / "b.tif", before)
    # after: the same ground, but its grid starts 8 m further east (its column 0 = before column 8)
    shifted = after[:, :, 8:]
    a = write_tif(tmp_path / "a.tif", np.ascontiguousarray(shifted),
                  transform=Affine(1.0, 0, GK_ORIGIN[0] + 8, 0, -1.0, GK_ORIGIN[1]))
    shp = write_labels(tmp_path / "l.gpkg", [_square_m(*s) for s in SQUARES], crs="EPSG:32650")
    scene = load_scene(b, a, shp, model=model)
    assert int(scene.area.col_off) == 8 and int(scene.area.width) == SIZE - 8
    with scene:
        img, ok = scene.read(scene.area)
    bare = img[1, 0] > (img[1, 0].max() + img[1, 0].min()) / 2  # red of the after date: soil is bright
    assert ok.all()
    np.testing.assert_array_equal(bare, scene.label(scene.area).astype(bool))


# -- holdout --------------------------------------------------------------------------------------
def test_holdout_forms(bureau: dict[str, Path], model: object) -> None:
    scene = load_scene(bureau["before"], bureau["after"], bureau["labels"], model=model)
    tr, crs, area = scene.plan.before.grid.transform, scene.plan.before.grid.crs, scene.area
    east = parse_holdout("east:0.3", area=area, transform=tr, crs=crs)
    assert east.region_px.bounds == (112.0, 0.0, 160.0, 160.0)
    assert parse_holdout("north:25%", area=area, transform=tr, crs=crs).region_px.bounds == (0.0, 0.0, 160.0, 40.0)
    x0, y1 = GK_ORIGIN
    bbox = parse_holdout(f"{x0 + 100},{y1 - 60},{x0 + 160},{y1}", area=area, transform=tr, crs=crs)
    assert bbox.region_px.bounds == (100.0, 0.0, 160.0, 60.0)
    poly_file = write_labels(bureau["dir"] / "hold.geojson", [box(x0 + 80, y1 - 160, x0 + 160, y1 - 80)])
    poly = parse_holdout(str(poly_file), area=area, transform=tr, crs=crs)
    np.testing.assert_allclose(poly.region_px.bounds, (80, 80, 160, 160), atol=1e-6)
    with pytest.raises(BureauDataError, match="does not overlap"):
        parse_holdout(f"{x0 - 500},{y1 - 600},{x0 - 400},{y1 - 500}", area=area, transform=tr, crs=crs)
    with pytest.raises(BureauDataError, match="not east:0.3"):
        parse_holdout("eastern third", area=area, transform=tr, crs=crs)
    with pytest.raises(BureauDataError, match="nothing to train"):
        parse_holdout(f"{x0 - 10},{y1 - 200},{x0 + 200},{y1 + 10}", area=area, transform=tr, crs=crs)


def test_training_windows_stay_out_of_the_holdout(bureau: dict[str, Path], model: object) -> None:
    scene = load_scene(bureau["before"], bureau["after"], bureau["labels"], model=model, holdout="east:0.3")
    rng = np.random.default_rng(0)
    cfg = FinetuneConfig(crop=32, batch_size=4)
    with scene:
        wins = [scene.sample_window(rng, 32, 0.5) for _ in range(200)]
        batch = scene.batch(rng, cfg)
    assert max(int(w.col_off + w.width) for w in wins) <= 112
    assert batch["image"].shape == (4, 2, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert batch["image"].dtype == np.float32 and batch["image"].min() >= 0 and batch["image"].max() <= 1
    assert sum(bool(m.any()) for m in batch["mask"]) >= 1  # focus on labelled polygons


# -- end to end -----------------------------------------------------------------------------------
def test_cli_finetune_writes_loadable_hash_checked_weights(
    bureau: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = bureau["dir"] / "mymodel.pt"
    args = ["train", "--before", str(bureau["before"]), "--after", str(bureau["after"]), "--labels",
            str(bureau["labels"]), "--init", "shipped", "--holdout", "east:0.3", "--steps", "3", "--seed", "7",
            "--batch-size", "2", "--crop", "64", "-o", str(out)]
    assert _cli(monkeypatch, args) == 0
    printed = capsys.readouterr()
    assert "held-out pixel F1" in printed.out and "object F1" in printed.out
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["seed"] == 7 and side["init"]["spec"] == "shipped" and len(side["init"]["sha256"]) == 64
    assert "--labels" in side["training_command"] and side["data"]["labels"]["name"] == "2023图斑.shp"
    assert len(side["data"]["before"]["sha256"]) == 64 and side["bands"] == ["red", "green", "blue"]
    held = side["held_out"]
    assert held["init"]["pixel"]["tp"] + held["init"]["pixel"]["fn"] > 0  # the holdout holds labelled change
    assert set(held["finetuned"]["object"]) >= {"precision", "recall", "f1"}

    from models import load_model
    from models.errors import WeightsError

    m = load_model(out)
    assert m.info.version.endswith(side["version"].split("+")[1]) and m.info.extra["sha256"] == side["sha256"]
    # detect with it, as `soilwatch detect --model mymodel.pt` does
    from detector.pipeline import DetectOptions, detect_pair

    res = detect_pair(bureau["before"], bureau["after"], None, options=DetectOptions(model=str(out)))
    assert res.model.startswith("changenet@")
    assert _cli(monkeypatch, args) == 2  # exists: no overwrite
    blob = bytearray(out.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    out.write_bytes(bytes(blob))
    with pytest.raises(WeightsError, match="sha256"):
        load_model(out)


def test_few_steps_lower_the_loss(bureau: dict[str, Path]) -> None:
    """From an untrained decoder (random init written as a weights file) the loss must fall clearly."""
    from models.changenet import build_network, save_weights

    net, _ = build_network(pretrained=False)
    init = bureau["dir"] / "random.pt"
    save_weights(net, init, {"name": "changenet", "version": "random", "threshold": 0.5, "resolution_m": [0.5, 10]})
    cfg = FinetuneConfig(steps=40, batch_size=4, crop=64, lr=3e-3, warmup=2, freeze_blocks=0, seed=0, log_every=10)
    res = finetune(bureau["before"], bureau["after"], bureau["labels"], bureau["dir"] / "ft.pt", init=init, cfg=cfg)
    first, last = np.mean(res.losses[:8]), np.mean(res.losses[-8:])
    assert last < first - 0.1, (first, last)
    assert res.scores_init is None and json.loads((bureau["dir"] / "ft.json").read_text())["held_out"] is None


# -- self-training (no 图斑) -----------------------------------------------------------------------
def test_pseudo_labels_cover_the_overlap_block_by_block(
    bureau: dict[str, Path], model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rasterio.windows import Window

    import training.bureau as tb

    # 160 px in blocks of at most 48 px plus margins; the marker model's p (the after image's red band) is
    # pointwise, so the map must equal it exactly wherever the blocks are cut
    monkeypatch.setattr(tb, "_PSEUDO_BLOCK", 48)
    scene = load_scene(bureau["before"], bureau["after"], None, model=model)
    assert scene.labels_px == [] and scene.holdout is None and "labels" not in scene.files
    with scene:
        img, _ = scene.read(scene.area)
        lo, hi = (float(q) for q in np.quantile(img[1, 0], [0.3, 0.8]))
        stats = scene.make_pseudo_labels(MarkerModel(), hi=hi, lo=lo)  # p = after red: pointwise
        expected = np.rint(img[1, 0] * 255)
        a = scene.area
        full, trusted = scene.target(a)
        assert np.array_equal(full, expected >= np.ceil(hi * 255))
        assert np.array_equal(trusted, (expected >= np.ceil(hi * 255)) | (expected <= np.floor(lo * 255)))
        assert 0 < stats["change_share"] < 1 and 0 < stats["no_change_share"] < 1
        assert stats["change_share"] + stats["no_change_share"] + stats["ignored_share"] == pytest.approx(1, abs=1e-4)
        win = Window(a.col_off + 30, a.row_off + 50, 64, 64)  # a window's target is its part of the map
        m, t = scene.target(win)
        assert np.array_equal(m, full[50:114, 30:94]) and np.array_equal(t, trusted[50:114, 30:94])
        rng = np.random.default_rng(0)
        for _ in range(20):  # focused windows hold confident change; they may lie anywhere
            w = scene.sample_window(rng, 32, focus_change=1.0)
            assert scene.target(w)[0].any()


def test_self_train_learns_the_init_models_confident_pixels(bureau: dict[str, Path], model: object) -> None:
    """Self-training from the shipped model at a high learning rate: the loss falls and both its confident
    change and its confident no-change keep their class. Targets lost, all 'no change' or all 'change'
    (checked by breaking them below) move one class over within these steps."""
    cfg = FinetuneConfig(steps=30, batch_size=4, crop=64, lr=2e-3, warmup=2, seed=0, log_every=10, self_train=True)
    res = finetune(bureau["before"], bureau["after"], None, bureau["dir"] / "st.pt", cfg=cfg)
    assert np.mean(res.losses[-8:]) < np.mean(res.losses[:8]), res.losses
    assert res.meta["data"]["kind"] == "bureau-self-train" and res.meta["data"]["pseudo_labels"]["change_share"] > 0.01
    change_kept, stable_kept = _kept_classes(bureau, model, bureau["dir"] / "st.pt")
    assert change_kept > 0.95 and stable_kept > 0.98, (change_kept, stable_kept)


def _kept_classes(bureau: dict[str, Path], model: object, weights: Path) -> tuple[float, float]:
    """Share of the init model's confident change / no-change pixels that ``weights`` still puts in that class."""
    from models import load_model
    from training.evaluate import predict_pair

    scene = load_scene(bureau["before"], bureau["after"], None, model=model)
    with scene:
        img, ok = scene.read(scene.area)
        scene.make_pseudo_labels(model, hi=0.7, lo=0.3)
        change, trusted = scene.target(scene.area)
    p1 = predict_pair(load_model(weights), img[0], img[1], scene.bands) >= 0.5
    is_change = change.astype(bool) & ok
    is_stable = trusted & ~change.astype(bool) & ok
    return float(p1[is_change].mean()), float((~p1)[is_stable].mean())


@pytest.mark.parametrize("broken", ["zeros", "ones"])
def test_the_self_train_check_catches_broken_targets(
    bureau: dict[str, Path], model: object, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    from training.bureau import BureauScene

    real_target = BureauScene.target

    def target(self: BureauScene, window: object) -> tuple[np.ndarray, np.ndarray]:
        mask, trusted = real_target(self, window)
        return (np.zeros_like(mask) if broken == "zeros" else np.ones_like(mask)), trusted

    cfg = FinetuneConfig(steps=30, batch_size=4, crop=64, lr=2e-3, warmup=2, seed=0, log_every=10, self_train=True)
    monkeypatch.setattr(BureauScene, "target", target)
    finetune(bureau["before"], bureau["after"], None, bureau["dir"] / "bad.pt", cfg=cfg)
    monkeypatch.setattr(BureauScene, "target", real_target)
    change_kept, stable_kept = _kept_classes(bureau, model, bureau["dir"] / "bad.pt")
    assert change_kept < 0.95 if broken == "zeros" else stable_kept < 0.98, (change_kept, stable_kept)


def test_cli_self_train_with_and_without_labels(
    bureau: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from models import load_model

    base = ["train", "--before", str(bureau["before"]), "--after", str(bureau["after"]), "--self-train",
            "--steps", "3", "--batch-size", "2", "--crop", "64"]
    out = bureau["dir"] / "adapted.pt"
    assert _cli(monkeypatch, [*base, "-o", str(out)]) == 0
    assert "not scored" in capsys.readouterr().out
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["data"]["kind"] == "bureau-self-train" and "labels" not in side["data"]
    assert "--self-train" in side["training_command"] and "--labels" not in side["training_command"]
    assert side["finetune"]["self_train"] is True and "+st." in side["version"] and side["held_out"] is None
    assert load_model(out).info.extra["sha256"] == side["sha256"]
    # with 图斑 and a holdout, the labels only score it: init and self-trained model on the same region
    scored = bureau["dir"] / "scored.pt"
    args = [*base, "--labels", str(bureau["labels"]), "--holdout", "east:0.3", "-o", str(scored)]
    assert _cli(monkeypatch, args) == 0
    assert "held-out pixel F1" in capsys.readouterr().out
    held = json.loads(scored.with_suffix(".json").read_text(encoding="utf-8"))["held_out"]
    assert "holdout included" in held["training_windows"] and held["init"]["valid_px"] == held["finetuned"]["valid_px"]
    # refused, with the fix named: a holdout without labels, labels without a holdout, no images
    bad = str(bureau["dir"] / "bad.pt")
    assert _cli(monkeypatch, [*base, "--holdout", "east:0.3", "-o", bad]) == 1
    assert "no --labels" in capsys.readouterr().err
    assert _cli(monkeypatch, [*base, "--labels", str(bureau["labels"]), "-o", bad]) == 1
    assert "--holdout" in capsys.readouterr().err
    assert _cli(monkeypatch, ["train", "--self-train", "--after", str(bureau["after"]), "-o", bad]) == 2
    assert "--before" in capsys.readouterr().err
    assert not Path(bad).exists()


def test_self_train_refuses_a_model_that_is_sure_of_nothing(bureau: dict[str, Path]) -> None:
    """A network whose head outputs 0 everywhere (p = 0.5) gives no pseudo-label: a clear error."""
    import torch

    from models.changenet import build_network, save_weights

    net, _ = build_network(pretrained=False)
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    init = bureau["dir"] / "unsure.pt"
    save_weights(net, init, {"name": "changenet", "version": "unsure", "threshold": 0.5, "resolution_m": [0.5, 10]})
    cfg = FinetuneConfig(steps=2, batch_size=2, crop=64, self_train=True)
    with pytest.raises(BureauDataError, match="confident nowhere"):
        finetune(bureau["before"], bureau["after"], None, bureau["dir"] / "u.pt", init=init, cfg=cfg)
    with pytest.raises(BureauDataError, match="--labels, or --self-train"):
        finetune(bureau["before"], bureau["after"], None, bureau["dir"] / "u.pt", init=init)
    assert not (bureau["dir"] / "u.pt").exists()


# -- bad inputs -----------------------------------------------------------------------------------
def test_labels_that_miss_the_images(bureau: dict[str, Path], model: object) -> None:
    far = write_labels(bureau["dir"] / "far.shp", [_square_m(0, 0, 20, 20, dx=50_000)])
    with pytest.raises(BureauDataError, match=r"far\.shp.*overlaps the images.*\.prj"):
        load_scene(bureau["before"], bureau["after"], far, model=model)


def test_labels_without_or_with_unusable_crs(bureau: dict[str, Path], model: object) -> None:
    no_prj = write_labels(bureau["dir"] / "noprj.shp", [_square_m(*SQUARES[0])], crs=GK_CRS)
    no_prj.with_suffix(".prj").unlink()
    with pytest.raises(BureauDataError, match=r"noprj\.shp.*no coordinate reference system.*\.prj"):
        load_scene(bureau["before"], bureau["after"], no_prj, model=model)
    local = ('LOCAL_CS["arbitrary",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    loc = write_labels(bureau["dir"] / "local.shp", [box(0, 0, 10, 10)], crs=local, src_crs=local)
    with pytest.raises(BureauDataError, match=r"cannot reproject .*local\.shp"):
        load_scene(bureau["before"], bureau["after"], loc, model=model)
    # metres labelled as degrees: reprojection gives no finite coordinates
    wrong = write_labels(bureau["dir"] / "wrong.shp", [_square_m(*SQUARES[0])], crs="EPSG:4326", src_crs="EPSG:4326")
    with pytest.raises(BureauDataError, match=r"wrong\.shp.*cannot be reprojected"):
        load_scene(bureau["before"], bureau["after"], wrong, model=model)


def test_empty_missing_and_not_vector_label_files(bureau: dict[str, Path], model: object) -> None:
    empty = bureau["dir"] / "empty.gpkg"
    gpd.GeoDataFrame({"图斑编号": []}, geometry=[], crs=GK_CRS).to_file(empty, engine="pyogrio")
    with pytest.raises(BureauDataError, match=r"empty\.gpkg.*no features"):
        load_scene(bureau["before"], bureau["after"], empty, model=model)
    with pytest.raises(BureauDataError, match=r"missing\.shp.*does not exist"):
        load_scene(bureau["before"], bureau["after"], bureau["dir"] / "missing.shp", model=model)
    with pytest.raises(BureauDataError, match=r"2023-06-01\.tif.*as vector data"):
        load_scene(bureau["before"], bureau["after"], bureau["before"], model=model)


def test_bands_the_init_model_lacks(bureau: dict[str, Path], model: object) -> None:
    two = write_tif(bureau["dir"] / "two.tif", np.zeros((2, SIZE, SIZE), np.uint8), order="gray")
    with pytest.raises(BureauDataError, match=r"two\.tif.*init model.*--bands"):
        load_scene(two, bureau["after"], bureau["labels"], model=model)
    with pytest.raises(BureauDataError, match=r"init model.*--bands"):
        load_scene(bureau["before"], bureau["after"], bureau["labels"], model=model, bands_before="red,green,nir=1,2,3")


def test_cli_errors_are_one_line(
    bureau: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    far = write_labels(bureau["dir"] / "far.shp", [_square_m(0, 0, 20, 20, dx=50_000)])
    base = ["train", "--before", str(bureau["before"]), "--after", str(bureau["after"])]
    out = str(bureau["dir"] / "x.pt")
    capsys.readouterr()  # drop the Shapefile writer's warnings about cut field names
    assert _cli(monkeypatch, [*base, "--labels", str(far), "-o", out]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "far.shp" in err and "overlaps" in err
    assert _cli(monkeypatch, [*base, "-o", out]) == 2  # --labels missing
    assert "--labels" in capsys.readouterr().err
    assert _cli(monkeypatch, [*base, "--labels", str(bureau["labels"]), "--config", "x.yaml", "-o", out]) == 2
    assert _cli(monkeypatch, [*base, "--labels", str(bureau["labels"]), "--crop", "50", "-o", out]) == 2
    assert _cli(monkeypatch, [*base, "--labels", str(bureau["labels"]), "--init", "baseline", "-o", out]) == 1
    assert "baseline" in capsys.readouterr().err
    assert not Path(out).exists()


# -- real data ------------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.slow
def test_oscd_finetune_is_not_worse_on_the_holdout(tmp_path: Path) -> None:
    """Fine-tune on the western 70 % of OSCD beihai (labels as a bureau-style GBK Shapefile in UTM), score the
    eastern 30 %: pixel F1 of the fine-tuned model within a small tolerance of the init model's, or better."""
    root = shared_data()
    if root is None or not (root / "oscd_s2" / "A" / "beihai.tif").is_file():
        pytest.skip("real data not found (oscd_s2/beihai); set SOILWATCH_SHARED_DATA to the shared/data folder")
    from training.bureau_demo import labels_to_shapefile

    d = root / "oscd_s2"
    shp = tmp_path / "beihai图斑.shp"
    assert labels_to_shapefile(d / "label" / "beihai.png", d / "A" / "beihai.tif", shp) > 50
    cfg = FinetuneConfig(steps=40, batch_size=4, seed=0)
    res = finetune(d / "A" / "beihai.tif", d / "B" / "beihai.tif", shp, tmp_path / "b.pt", holdout="east:0.3", cfg=cfg)
    before, after = res.scores_init["pixel"]["f1"], res.scores_finetuned["pixel"]["f1"]
    assert before is not None and before > 0.2, before  # the shipped model finds beihai's changes at all
    assert after >= before - 0.05, (before, after)


def test_demo_says_when_the_shared_data_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.bureau_demo import main

    assert main(["--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "shared data not found" in err and "SOILWATCH_SHARED_DATA" in err


@pytest.mark.parametrize("set_name", ["pngset", "tifset"])
def test_selftrain_demo_adapts_each_pair_and_scores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], set_name: str
) -> None:
    """The model card's scene-by-scene self-training table, end to end on the fake sets (8-bit RGB PNGs, and 6-band
    uint16 Sentinel-2-like GeoTIFFs at 10 m): each pair becomes two GeoTIFFs, is self-trained alone, and init and
    adapted model are scored on it with the eval rules."""
    import rasterio

    from tests.training.fake_data import PNG_CHANGES, TIF_CHANGES, make_fake_dataset
    from training.data import read_image
    from training.selftrain_demo import main, write_geotiff

    root = make_fake_dataset(tmp_path / "data")
    out = tmp_path / "st.json"
    args = ["--data", str(root), "--set", set_name, "--init", "shipped", "--steps", "2", "--crop", "32"]
    assert main([*args, "--json", str(out)]) == 0
    assert "self-trained, 2 steps" in capsys.readouterr().out
    res = json.loads(out.read_text(encoding="utf-8"))
    assert [r["pair"] for r in res["per_pair"]] == sorted(PNG_CHANGES if set_name == "pngset" else TIF_CHANGES)
    for key in ("init", "adapted"):
        px = res["pooled"][key]["pixel"]
        assert px["tp"] + px["fn"] == sum(r["pixel"]["tp"] + r["pixel"]["fn"] for r in
                                          (p[key] for p in res["per_pair"])) > 0  # the labelled change, pooled
    assert all(0 <= r["pseudo_labels"]["ignored_share"] <= 1 for r in res["per_pair"])
    # the GeoTIFFs keep the file's values and band names: uint8 stays uint8, reflectance x 10000 is kept as float
    first = sorted((root / set_name / "A").iterdir())[0]
    raw = read_image(first)
    tif = write_geotiff(raw.data, tmp_path / "w.tif", 2.0, raw.bands)
    with rasterio.open(tif) as src:
        assert src.dtypes[0] == ("uint8" if set_name == "pngset" else "float32")
        assert src.descriptions == raw.bands and src.res == (2.0, 2.0) and src.crs.to_epsg() == 32650
        assert np.array_equal(src.read().astype(np.float32), raw.data)
    assert main(["--data", str(tmp_path / "nowhere"), "--set", set_name, "--init", "shipped"]) == 2
    assert "shared data not found" in capsys.readouterr().err
