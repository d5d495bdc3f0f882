"""Land-cover pairs (training.landcover): the class tables, and pairs labelled where the ground became bare."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from training.errors import DataReadError, TrainingError
from training.landcover import bare_change_sample, ground_sample, load_landcover
from training.train import SampleSource, load_config

SMOKE = Path(__file__).resolve().parents[2] / "training" / "configs" / "changenet_smoke.yaml"
N = 96
BARE = (slice(30, 60), slice(20, 70))  # the bare rectangle of every tile
NODATA = (slice(0, 10), slice(0, N))  # the ignored rows of the coded set
ROOF = (slice(70, 86), slice(10, 40))  # a grey building in the coded set


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A green, textured field with a brown bare rectangle."""
    img = np.empty((N, N, 3), np.uint8)
    img[...] = (60, 120, 50)
    img = np.clip(img + rng.integers(-15, 16, (N, N, 1)), 0, 255).astype(np.uint8)
    img[BARE] = (170, 130, 90)
    return img


def make_landcover(root: Path) -> Path:
    """``landcover_loveda`` (single-band codes, 5 = barren, 0 = no-data) and ``landcover_deepglobe`` (RGB codes)."""
    rng = np.random.default_rng(3)
    coded = root / "landcover_loveda"
    for sub in ("image", "mask"):
        (coded / sub).mkdir(parents=True)
    (coded / "classes.csv").write_text("code,name,is_bare\n0,nodata,ignore\n1,background,unknown\n5,barren,YES\n"
                                       "2,building,no\n7,agriculture,no\n", encoding="utf-8")
    for i in range(2):
        mask = np.full((N, N), 7, np.uint8)
        mask[BARE] = 5
        mask[NODATA] = 0
        mask[ROOF] = 2
        img = _scene(rng)
        img[NODATA] = 0
        img[ROOF] = (150, 150, 150)
        Image.fromarray(img).save(coded / "image" / f"{i}.png")
        Image.fromarray(mask).save(coded / "mask" / f"{i}.png")
    rgb = root / "landcover_deepglobe"
    for sub in ("image", "mask"):
        (rgb / sub).mkdir(parents=True)
    (rgb / "classes.csv").write_text('code_rgb,name,is_bare\n"255,255,0",agriculture_land,no\n'
                                     '"255,255,255",barren_land,YES\n"0,0,0",unknown,ignore\n', encoding="utf-8")
    mask = np.zeros((N, N, 3), np.uint8)
    mask[...] = (255, 255, 0)
    mask[BARE] = (255, 255, 255)
    Image.fromarray(_scene(rng)).save(rgb / "image" / "a.png")
    Image.fromarray(mask).save(rgb / "mask" / "a.png")
    return root


@pytest.fixture
def landcover_root(tmp_path: Path) -> Path:
    return make_landcover(tmp_path / "data")


def test_class_tables_give_bare_and_ignored_pixels(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda", "landcover_deepglobe"])
    assert [t.name for t in tiles] == ["landcover_loveda/0", "landcover_loveda/1", "landcover_deepglobe/a"]
    want = np.zeros((N, N), bool)
    want[BARE] = True
    for t in tiles:
        assert t.image.shape == (3, N, N) and t.image.min() >= 0 and t.image.max() <= 1
        assert np.array_equal(t.bare, want & t.valid)
    assert not tiles[0].valid[NODATA].any()
    assert tiles[0].valid[10:].all()
    assert tiles[2].valid.all() and (tiles[0].resolution_m, tiles[2].resolution_m) == (0.3, 0.5)


@pytest.mark.parametrize("reverse", [0.0, 1.0], ids=["forward", "reverse"])
def test_the_label_is_where_the_ground_became_bare(landcover_root: Path, reverse: float) -> None:
    tiles = load_landcover(landcover_root, ["landcover_deepglobe"])
    # every tile is bare in the same place, so only a scene drawn elsewhere gets new bare ground: draw until one does
    rng = np.random.default_rng(0)
    seen_change = False
    for _ in range(20):
        s = bare_change_sample(tiles, rng, size=32, resolution_m=(0.5, 0.5), reverse=reverse,
                               nuisance=0.0, season=0.0, blur=0.0, built=0.0)
        assert s["image"].shape == (2, 3, 32, 32) and s["mask"].shape == s["valid"].shape == (1, 32, 32)
        before, after = s["image"]
        label = s["mask"][0].astype(bool)
        differs = np.abs(after - before).max(axis=0) > 1e-6
        # outside the label (and bare ground pasted onto bare ground, and their feathered rims) the dates are
        # identical; inside, they differ. At the tile's own resolution nothing is resampled, so edges stay sharp.
        near = binary_dilation(label | _pasted_onto_bare(s), structure=np.ones((3, 3), bool))  # the 3x3 feather
        assert not (differs & ~near).any()
        assert differs[label].all()
        interior = label & ~binary_dilation(~label, structure=np.ones((3, 3), bool))
        if interior.any():
            seen_change = True
            # the new bare ground is in the after image either way: red over green, not a field
            assert (after[0][interior] > after[1][interior]).mean() > 0.9
    assert seen_change


def test_nuisances_change_pixels_but_not_the_label(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda", "landcover_deepglobe"])
    rng = np.random.default_rng(1)
    outside = 0
    for _ in range(20):
        s = bare_change_sample(tiles, rng, size=32, resolution_m=(0.5, 0.5), nuisance=1.0, season=0.0, blur=0.0,
                               built=0.0)
        before, after = s["image"]
        new = s["mask"][0].astype(bool) | _pasted_onto_bare(s)
        near = binary_dilation(new, structure=np.ones((3, 3), bool))
        moved = (np.abs(after - before).max(axis=0) > 1e-6) & ~near & s["valid"][0]
        # what changed outside the label is a field pasted in one date (over a field, or over bare ground: a
        # revegetation, which is no disturbance either): green in at least one date
        assert ((before[0] <= before[1]) | (after[0] <= after[1]))[moved].all()
        outside += int(moved.sum())
    assert outside > 0
    blurred = bare_change_sample(tiles, np.random.default_rng(2), size=32, nuisance=0.0, season=0.0, blur=1.0)
    plain = bare_change_sample(tiles, np.random.default_rng(2), size=32, nuisance=0.0, season=0.0, blur=0.0)
    assert np.array_equal(blurred["mask"], plain["mask"]) and not np.array_equal(blurred["image"], plain["image"])


def test_fields_change_colour_with_the_season_but_not_the_label(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda", "landcover_deepglobe"])
    assert tiles[0].seasonal[40:].any() and not tiles[0].seasonal[BARE].any()
    browned = 0
    for seed in range(10):
        kw = {"size": 32, "resolution_m": (0.5, 0.5), "nuisance": 0.0, "blur": 0.0, "built": 0.0}
        plain = bare_change_sample(tiles, np.random.default_rng(seed), season=0.0, **kw)
        seasoned = bare_change_sample(tiles, np.random.default_rng(seed), season=1.0, **kw)
        assert np.array_equal(plain["mask"], seasoned["mask"])
        # a field that turned the colour of bare soil: green before (or after), red over green in the other date
        was_green = plain["image"][:, 1] > plain["image"][:, 0]
        now_brown = seasoned["image"][:, 0] > seasoned["image"][:, 1]
        browned += int((was_green & now_brown).sum())
    assert browned > 0


def test_built_ground_counts_as_disturbance_when_asked(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda"])
    want = np.zeros((N, N), bool)
    want[ROOF] = True
    assert np.array_equal(tiles[0].built, want)

    def labelled_roof(built: float) -> int:
        rng, n = np.random.default_rng(4), 0
        for _ in range(30):
            s = bare_change_sample(tiles, rng, size=32, resolution_m=(0.3, 0.3), nuisance=0.0, season=0.0,
                                   blur=0.0, built=built)
            after = s["image"][1]
            grey = (np.abs(after[0] - after[1]) < 0.02) & (np.abs(after[1] - after[2]) < 0.02)
            n += int((grey & s["mask"][0].astype(bool)).sum())
        return n

    assert labelled_roof(1.0) > 0 and labelled_roof(0.0) == 0


def test_the_kind_rule_labels_bare_ground_where_a_building_stood(landcover_root: Path) -> None:
    """Bare ground pasted onto built ground is no change by default and change with ``kind_rule``; water that
    changes colour is never change."""
    tiles = load_landcover(landcover_root, ["landcover_loveda"])
    # a scene with a building where the other tile has its bare rectangle: grey roof, class built, nothing bare
    image = tiles[1].image.copy()
    image[:, BARE[0], BARE[1]] = image[:, ROOF[0], ROOF[1]].mean(axis=(1, 2), keepdims=True)
    built_scene = dataclasses.replace(tiles[1], image=image, bare=np.zeros_like(tiles[1].bare),
                                      built=tiles[0].bare.copy())

    def labelled(kind_rule: bool) -> int:
        rng, n = np.random.default_rng(5), 0
        for _ in range(40):
            s = bare_change_sample([tiles[0], built_scene], rng, size=32, resolution_m=(0.3, 0.3), reverse=0.0,
                                   nuisance=0.0, season=0.0, blur=0.0, built=1.0, kind_rule=kind_rule)
            n += int(s["mask"].sum())
        return n

    assert labelled(True) > labelled(False)
    water = np.zeros((N, N), bool)
    water[60:, 60:] = True
    wet = dataclasses.replace(tiles[0], water=water & ~tiles[0].bare & ~tiles[0].built)
    kw = {"size": 32, "resolution_m": (0.3, 0.3), "nuisance": 0.0, "season": 0.0, "blur": 0.0, "built": 0.0}
    for seed in range(20):
        dry = bare_change_sample([wet], np.random.default_rng(seed), water=0.0, **kw)
        shifted = bare_change_sample([wet], np.random.default_rng(seed), water=1.0, **kw)
        assert np.array_equal(dry["mask"], shifted["mask"])
        if not np.array_equal(dry["image"], shifted["image"]):
            break
    else:
        pytest.fail("the water of no sample changed colour")


def _pasted_onto_bare(s: dict[str, np.ndarray]) -> np.ndarray:
    """Pixels where bare ground went onto ground that was bare already: they differ, but are not new bare ground."""
    before, after = s["image"]
    return (before[0] > before[1]) & (after[0] > after[1])


def test_nothing_to_paste_and_broken_tables_are_clear_errors(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda"])
    bare_free = [dataclasses.replace(t, bare=np.zeros_like(t.bare)) for t in tiles]
    with pytest.raises(ValueError, match="no land-cover tile has bare"):
        bare_change_sample(bare_free, np.random.default_rng(0), size=32)
    (landcover_root / "landcover_loveda" / "classes.csv").write_text("code,name\n5,barren\n", encoding="utf-8")
    with pytest.raises(DataReadError, match="is_bare"):
        load_landcover(landcover_root, ["landcover_loveda"])
    with pytest.raises(DataReadError, match="image/ and mask/"):
        load_landcover(landcover_root, ["missing_set"])


def test_a_recipe_with_landcover_draws_from_it(landcover_root: Path, fake_data: Path) -> None:
    base = load_config(SMOKE)
    data = dataclasses.replace(base.data, train_sets=("pngset",), synthetic_fraction=0.0,
                               landcover_sets=("landcover_loveda", "landcover_deepglobe"), landcover_fraction=1.0)
    for name in ("landcover_loveda", "landcover_deepglobe"):
        (landcover_root / name).rename(fake_data / name)
    src = SampleSource(dataclasses.replace(base, data=data), fake_data)
    assert len(src.landcover) == 3
    batch = src.batch(np.random.default_rng(0), 4)
    assert batch["image"].shape == (4, 2, 3, base.augment.crop, base.augment.crop)
    for name in ("landcover_loveda", "landcover_deepglobe"):  # a set without bare ground fails at the start
        for mask in (fake_data / name / "mask").iterdir():
            Image.fromarray(np.zeros_like(np.asarray(Image.open(mask)))).save(mask)
    with pytest.raises(TrainingError, match="has bare-class pixels"):
        SampleSource(dataclasses.replace(base, data=data), fake_data)
    with pytest.raises(TrainingError, match="landcover_sets is empty"):
        type(base).from_mapping({"data": {"train_sets": ["pngset"], "landcover_fraction": 0.5}})


def test_ground_samples_label_bare_and_built_ground(landcover_root: Path) -> None:
    tiles = load_landcover(landcover_root, ["landcover_loveda"])
    s = ground_sample(tiles, np.random.default_rng(0), size=N, resolution_m=(0.3, 0.3))  # the whole tile
    assert s["image"].shape == (1, 3, N, N) and s["mask"].shape == s["valid"].shape == (1, N, N)
    want = np.zeros((N, N), bool)
    want[BARE] = want[ROOF] = True  # bare land and the building; the fields are not disturbed ground
    want[NODATA] = False
    assert np.array_equal(s["mask"][0].astype(bool), want)
    assert not s["valid"][0][NODATA].any() and s["valid"][0][10:].all()


def test_the_ground_head_trains_on_landcover_tiles(landcover_root: Path, tmp_path: Path) -> None:
    import torch

    from models.changenet import ChangeNet, load_weights
    from training.train import train

    base = load_config(SMOKE)
    cfg = dataclasses.replace(
        base, data=dataclasses.replace(base.data, ground_sets=("landcover_loveda",)),
        augment=dataclasses.replace(base.augment, crop=48),
        optim=dataclasses.replace(base.optim, steps=40, lr=5e-3, warmup=1, log_every=10, ground_weight=1.0))
    train(cfg, tmp_path / "g.pt", root=landcover_root)
    net, meta = load_weights(tmp_path / "g.pt")
    assert net.config.ground_head and meta["data"]["ground_sets"] == ["landcover_loveda"]
    tile = load_landcover(landcover_root, ["landcover_loveda"])[0]
    with torch.no_grad():
        x = torch.from_numpy(tile.image[None, :, :N - N % 16, :N - N % 16].astype(np.float32))
        p = torch.sigmoid(net.ground(x))[0, 0].numpy()
    fields = np.ones_like(p, bool)
    fields[BARE] = fields[ROOF] = fields[NODATA] = False
    assert p[BARE].mean() > p[fields].mean() + 0.2, (p[BARE].mean(), p[fields].mean())  # it learnt bare ground
    with pytest.raises(ValueError, match="no ground head"):
        ChangeNet().ground(torch.zeros(1, 3, 32, 32))
