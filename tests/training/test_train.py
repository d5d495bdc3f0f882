"""Training: config checks, augmentations, a few-step run that lowers the loss, checkpoint/resume, the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np
import pytest

import soilwatch.cli
from training import augment
from training.errors import TrainingError
from training.train import TrainConfig, TrainResult, load_config, train

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"
SMOKE = CONFIGS / "changenet_smoke.yaml"
TRAIN_EP = EntryPoint(name="train", value="training.cli.train:train_cmd", group="soilwatch.commands")


def _smoke(**optim: object) -> TrainConfig:
    cfg = load_config(SMOKE)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, **optim))


def _sample(h: int = 32, w: int = 32) -> augment.Sample:
    rng = np.random.default_rng(1)
    img = rng.random((2, 3, h, w), dtype=np.float32)
    mask = np.zeros((1, h, w), np.uint8)
    mask[0, 4:12, 20:30] = 1
    return {"image": img, "mask": mask, "valid": np.ones((1, h, w), bool)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.augment.crop % 16 == 0 and cfg.optim.steps >= 1


def test_loso_configs_hold_their_set_out() -> None:
    for path in CONFIGS.glob("changenet_loso_*.yaml"):
        cfg = load_config(path)
        assert len(cfg.data.eval_sets) == 1 and not set(cfg.data.eval_sets) & set(cfg.data.train_sets), path.name
        assert len(cfg.data.train_sets) >= 2, path.name
    # LEVIR-CD labels buildings only (its "no change" holds bare-soil sites): no soilwatch model trains on it
    for path in CONFIGS.glob("changenet*.yaml"):
        assert "levircd_bit" not in load_config(path).data.train_sets, path.name


def test_unknown_config_keys_are_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  stpes: 3\n")
    with pytest.raises(TrainingError, match="stpes"):
        load_config(p)


@pytest.mark.parametrize("text, what", [
    ("optim:\n  ema: 1.0\n", "optim.ema"),
    ("augment:\n  degrade: 1.5\n", "augment.degrade"),
    ("data:\n  synthetic_seasonal: -0.1\n", "data.synthetic_seasonal"),
    ("data:\n  synthetic_river: 1.5\n", "data.synthetic_river"),
    ("augment:\n  warp_px: -1\n", "augment.warp_px"),
    ("data:\n  ground_sets: [landcover_loveda]\noptim:\n  ground_batch: 0\n", "optim.ground_batch"),
    ("optim:\n  distill_from: [t.pt]\n  distill_weight: 0\n", "optim.distill_weight"),
    ("model:\n  encoder_blocks: 9\n", "model.encoder_blocks"),
    ("model:\n  encoder: resnet\n", "model.encoder"),
    ("model:\n  encoder: mnv3\n  nir: true\n", "model.nir"),
    ("model:\n  freeze_blocks: 9\n", "model.freeze_blocks must be in [0, 8] for the lite0"),
    ("model:\n  encoder: mnv3\n  freeze_blocks: 13\n", "model.freeze_blocks must be in [0, 12] for the mnv3"),
    ("augment:\n  nir_dropout: 2\n", "augment.nir_dropout"),
])
def test_out_of_range_options_are_named(tmp_path: Path, text: str, what: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  synthetic_fraction: 1.0\n" + text if not text.startswith("data") else
                 text.replace("data:\n", "data:\n  synthetic_fraction: 1.0\n"))
    with pytest.raises(TrainingError, match=re.escape(what)):
        load_config(p)


def test_geometric_augmentations_move_image_and_mask_together() -> None:
    s = _sample()
    s["image"][:, :, s["mask"][0] == 1] = 5.0  # mark the changed pixels in the image
    rng = np.random.default_rng(0)
    for _ in range(8):
        t = augment.flip_rot(s, rng)
        assert np.array_equal(t["image"][0, 0] == 5.0, t["mask"][0] == 1)
    c = augment.crop_scaled(s, rng, size=16, scale=(0.5, 2.0), focus_change=1.0)
    assert c["image"].shape == (2, 3, 16, 16) and c["mask"].shape == (1, 16, 16)


def test_paste_and_swap() -> None:
    target = _sample()
    target["mask"][:] = 0
    source = _sample()
    source["image"] += 10
    out = augment.paste_change(target, source)
    m = source["mask"][0] == 1
    assert np.array_equal(out["mask"][0] == 1, m)
    assert np.all(out["image"][1][:, m] >= 10) and np.all(out["image"][0] < 10)  # before keeps its own pixels
    swapped = augment.swap_dates(source, clear_mask=True)
    assert np.array_equal(swapped["image"][0], source["image"][1]) and not swapped["mask"].any()
    assert augment.swap_dates(source, clear_mask=False)["mask"].sum() == source["mask"].sum()


def test_jitter_keeps_range_and_no_data() -> None:
    s = _sample()
    s["image"][:, :, :2] = 0.0
    j = augment.jitter_dates(s, np.random.default_rng(0), strength=0.2)
    assert j["image"].min() >= 0 and j["image"].max() <= 1 and not j["image"][:, :, :2].any()


def test_another_sensor_degrades_one_date_only() -> None:
    s = _sample(48, 48)
    s["image"][:, :, :4] = 0.0  # no-data rows
    rng = np.random.default_rng(0)
    for _ in range(6):
        d = augment.degrade_date(s, rng, warp_px=2.0)
        changed = [not np.array_equal(d["image"][i], s["image"][i]) for i in (0, 1)]
        assert sum(changed) == 1  # one date, the other untouched
        assert np.array_equal(d["mask"], s["mask"]) and np.array_equal(d["valid"], s["valid"])
        assert d["image"].min() >= 0 and d["image"].max() <= 1 and not d["image"][:, :, :4].any()
        i = changed.index(True)  # blur or a coarser pixel smooths the noise image; the mean stays
        assert d["image"][i].std() < s["image"][i].std() * 0.9
        assert abs(d["image"][i, :, 8:].mean() - s["image"][i, :, 8:].mean()) < 0.03
    flat = {**s, "image": np.full_like(s["image"], 0.4)}  # nothing to smear: a flat scene stays flat
    np.testing.assert_allclose(augment.degrade_date(flat, rng, warp_px=3.0)["image"], 0.4, atol=1e-5)


def test_the_recipe_switches_the_sensor_augmentation(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.train import SampleSource

    calls: list[float] = []
    real = augment.degrade_date

    def counted(s: augment.Sample, rng: np.random.Generator, *, warp_px: float) -> augment.Sample:
        calls.append(warp_px)
        return real(s, rng, warp_px=warp_px)

    monkeypatch.setattr(augment, "degrade_date", counted)
    base = load_config(SMOKE)
    for degrade, want in ((0.0, 0), (1.0, 6)):
        cfg = dataclasses.replace(base, augment=dataclasses.replace(base.augment, degrade=degrade, warp_px=1.5))
        calls.clear()
        SampleSource(cfg, None).batch(np.random.default_rng(0), 6)
        assert calls == [1.5] * want


def test_few_steps_lower_the_loss(tmp_path: Path) -> None:
    res = train(_smoke(steps=30, lr=3e-3, warmup=1, log_every=10), tmp_path / "m.pt")
    first, last = np.mean(res.losses[:8]), np.mean(res.losses[-8:])
    assert last < first - 0.05, (first, last)
    side = json.loads((tmp_path / "m.json").read_text())
    assert side["seed"] == 0 and side["bands"] == ["red", "green", "blue"] and len(side["sha256"]) == 64


def test_the_config_chooses_the_encoder_depth(tmp_path: Path) -> None:
    from models.changenet import load_weights

    cfg = _smoke(steps=2, log_every=1)
    res = train(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, encoder_blocks=11)), tmp_path / "d.pt")
    net, meta = load_weights(res.weights)
    assert net.config.encoder_blocks == 11 and len(net.encoder._blocks) == 11


def test_the_config_adds_the_context_block_and_trains_it(tmp_path: Path) -> None:
    from models.changenet import load_weights

    cfg = _smoke(steps=3, log_every=1, warmup=1)
    res = train(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, context=True)), tmp_path / "c.pt")
    net, _ = load_weights(res.weights)
    assert net.config.context and net.context is not None
    assert float(net.context.mix.weight.abs().sum()) > 0  # started at zero, moved by training


def _nir_config(fake_data: Path, dropout: float) -> TrainConfig:
    base = _smoke(steps=3, log_every=1)
    return dataclasses.replace(
        base, model=dataclasses.replace(base.model, nir=True),
        augment=dataclasses.replace(base.augment, nir_dropout=dropout),
        data=dataclasses.replace(base.data, train_sets=("pngset", "tifset"), synthetic_fraction=0.3))


def test_nir_samples_carry_nir_only_where_the_source_has_it(fake_data: Path) -> None:
    from training.train import SampleSource

    src = SampleSource(_nir_config(fake_data, 0.0).checked(), fake_data)
    rng = np.random.default_rng(0)
    flags = []
    for _ in range(60):
        s = src.draw(rng)
        assert s["image"].shape == (2, 4, 32, 32)
        flags.append(bool(s["nir_present"]))
        if not flags[-1]:
            assert not s["image"][:, 3].any()  # no NIR: the band is zero and marked absent
    assert 0 < sum(flags) < len(flags)  # synthetic scenes and tifset have NIR, pngset does not
    # the pool keeps its NIR: hiding it in one sample must not write into the pool
    assert any(p["image"][:, 3].any() for p in src.real["tifset"])
    assert not any(p["image"][:, 3].any() for p in src.real["pngset"])
    hidden = SampleSource(_nir_config(fake_data, 1.0).checked(), fake_data)
    assert not any(bool(hidden.draw(rng)["nir_present"]) for _ in range(20))
    plain = SampleSource(_smoke().checked(), None).draw(rng)  # without model.nir: RGB, no flag, as before
    assert plain["image"].shape[1] == 3 and "nir_present" not in plain


def test_a_nir_run_learns_its_nir_filter_and_ships_it(tmp_path: Path, fake_data: Path) -> None:
    from models import load_model
    from models.changenet import load_weights

    res = train(_nir_config(fake_data, 0.3), tmp_path / "nir.pt", root=fake_data)
    net, side = load_weights(res.weights)
    assert net.config.nir and net.encoder.conv_stem_nir.weight.abs().sum() > 0  # it started at zero
    assert side["bands"] == ["red", "green", "blue"] and side["optional_bands"] == ["nir"]
    assert load_model(res.weights).info.optional_bands == ("nir",)


class _Crash(Exception):
    pass


def _crash_at_3(line: str) -> None:
    """A progress callback that crashes a run as it reports step 3."""
    if line.startswith("step 3/"):
        raise _Crash


def _crash_at_step_3_and_resume(cfg: TrainConfig, out: Path) -> TrainResult:
    """Train ``cfg`` into ``out``, crash it at step 3 (the checkpoint is kept), then resume from that checkpoint."""
    ckpt = out.with_suffix(".ckpt")
    with pytest.raises(_Crash):
        train(cfg, out, checkpoint=ckpt, progress=_crash_at_3)
    assert ckpt.exists()
    return train(cfg, out, checkpoint=ckpt, resume=ckpt)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    cfg = _smoke(steps=4, checkpoint_every=2, log_every=1)
    full = train(cfg, tmp_path / "full.pt")
    resumed = _crash_at_step_3_and_resume(cfg, tmp_path / "cut.pt")
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-4)


def test_ema_ships_the_averaged_weights_and_resumes_exactly(tmp_path: Path) -> None:
    import torch

    from models.changenet import load_weights

    plain = train(_smoke(steps=4, log_every=1), tmp_path / "plain.pt")
    cfg = _smoke(steps=4, checkpoint_every=2, log_every=1, ema=0.5)
    full = train(cfg, tmp_path / "ema.pt")
    np.testing.assert_allclose(full.losses, plain.losses, rtol=1e-5)  # the average does not change training
    w_plain, _ = load_weights(plain.weights)
    w_ema, _ = load_weights(full.weights)
    diff = {k for k, v in w_ema.state_dict().items() if v.is_floating_point()
            and not torch.equal(v, w_plain.state_dict()[k])}
    assert any(k.endswith("running_mean") for k in diff) and any(k.endswith(".weight") for k in diff)

    w_cut, _ = load_weights(_crash_at_step_3_and_resume(cfg, tmp_path / "cut.pt").weights)
    for k, v in w_ema.state_dict().items():
        torch.testing.assert_close(w_cut.state_dict()[k], v, rtol=1e-4, atol=1e-6, msg=k)
    with pytest.raises(TrainingError, match="optim.ema"):  # also when the config was built in code
        train(_smoke(steps=1, ema=1.5), tmp_path / "bad.pt")


def test_train_entry_point_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eps = {e.name: e.value for e in entry_points(group="soilwatch.commands")}
    assert eps.get("train") == TRAIN_EP.value, "run `.venv/bin/pip install -e . --no-deps` to register it"
    monkeypatch.setattr(soilwatch.cli, "entry_points", lambda group: [TRAIN_EP])
    # a fresh command list, restored afterwards, so this test neither depends on nor changes the others' group
    monkeypatch.setattr(soilwatch.cli.app, "registered_commands", [])
    monkeypatch.setattr(soilwatch.cli.app, "registered_groups", [])
    out = tmp_path / "cli.pt"
    assert soilwatch.cli.main(["train", "--config", str(SMOKE), "-o", str(out), "--steps", "2"]) == 0
    assert out.exists() and out.with_suffix(".json").exists()
    assert soilwatch.cli.main(["train", "--config", str(SMOKE), "-o", str(out), "--steps", "2"]) == 2  # no overwrite
    from models import load_model

    model = load_model(out)
    y = model.predict(np.zeros((1, 2, 3, 20, 24), np.float32), ["red", "green", "blue"])
    assert y.shape == (1, 20, 24)


def test_the_sidecar_says_which_scores_are_held_out(tmp_path: Path, fake_data: Path) -> None:
    base = _smoke(steps=2, log_every=1)
    cfg = dataclasses.replace(base, data=dataclasses.replace(
        base.data, train_sets=("pngset",), eval_sets=("pngset", "tifset"), synthetic_fraction=0.5))  # fmt: skip
    lines: list[str] = []
    train(cfg, tmp_path / "m.pt", root=fake_data, progress=lines.append)
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert (metrics["kind"], metrics["held_out_sets"]) == ("mixed", ["tifset"])
    assert set(metrics["report"]["sets"]) == {"pngset", "tifset"}
    assert any(line.startswith("held_out tifset:") for line in lines)
    assert any(line.startswith("in_sample pngset:") for line in lines)


def _teacher(path: Path, bias: float, root: Path | None = None, **data: object) -> Path:
    """A 1-step smoke model whose change logit is shifted by ``bias`` (a teacher with an unmistakable opinion)."""
    import torch

    from models.changenet import load_weights, save_weights

    base = _smoke(steps=1, log_every=1)
    res = train(dataclasses.replace(base, data=dataclasses.replace(base.data, **data)), path, root=root)
    net, side = load_weights(res.weights)
    with torch.no_grad():
        net.head.bias += bias
    save_weights(net, path, {k: v for k, v in side.items() if k not in ("file", "sha256", "format", "arch")})
    return path


def _mean_probability(weights: Path) -> float:
    import torch

    from models.changenet import load_weights

    net, _ = load_weights(weights)
    x = torch.from_numpy(np.random.default_rng(3).random((2, 2, 3, 32, 32), dtype=np.float32))
    with torch.no_grad():
        return float(torch.sigmoid(net(x)).mean())


def test_distillation_pulls_the_student_to_the_teachers(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path / "teacher.pt", bias=6.0)  # says "change" almost everywhere
    plain = train(_smoke(steps=30, lr=3e-3, warmup=1, log_every=10), tmp_path / "plain.pt")
    student = train(_smoke(steps=30, lr=3e-3, warmup=1, log_every=10, distill_from=(str(teacher),), distill_weight=0.9),
                    tmp_path / "student.pt")
    p_plain, p_student = _mean_probability(plain.weights), _mean_probability(student.weights)
    assert p_student > p_plain + 0.07, (p_plain, p_student)  # measured: 0.49 -> 0.63 (the same seed)
    side = json.loads((tmp_path / "student.json").read_text())
    (t,) = side["data"]["distill_from"]
    assert t["sha256"] == json.loads((tmp_path / "teacher.json").read_text())["sha256"] and t["seed"] == 0


def test_distillation_resumes_exactly_and_checks_its_teachers(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path / "teacher.pt", bias=2.0)
    cfg = _smoke(steps=4, checkpoint_every=2, log_every=1, distill_from=(str(teacher),))
    full = train(cfg, tmp_path / "full.pt")
    resumed = _crash_at_step_3_and_resume(cfg, tmp_path / "cut.pt")
    np.testing.assert_allclose(resumed.losses, full.losses, rtol=1e-4)

    with pytest.raises(_Crash):  # a checkpoint, then the teacher file is replaced by another one
        train(cfg, tmp_path / "again.pt", progress=_crash_at_3)
    _teacher(teacher, bias=-2.0)
    with pytest.raises(TrainingError, match="other teacher files"):
        train(cfg, tmp_path / "again.pt", resume=tmp_path / "again.ckpt")
    with pytest.raises(TrainingError, match="optim.distill_from"):
        train(_smoke(steps=1, distill_from=(str(tmp_path / "missing.pt"),)), tmp_path / "x.pt")


def test_a_set_a_teacher_trained_on_is_not_held_out(tmp_path: Path, fake_data: Path) -> None:
    teacher = _teacher(tmp_path / "teacher.pt", 0.0, fake_data, train_sets=("tifset",), synthetic_fraction=0.5)
    # a synthetic-only model distilled from it has seen tifset through its teacher, and passes that on
    middle = train(_smoke(steps=1, log_every=1, distill_from=(str(teacher),)), tmp_path / "middle.pt").weights
    for name, teachers in (("direct", teacher), ("chain", middle)):
        base = _smoke(steps=1, log_every=1, distill_from=(str(teachers),))
        cfg = dataclasses.replace(base, data=dataclasses.replace(
            base.data, train_sets=("pngset",), eval_sets=("tifset",), synthetic_fraction=0.5))  # fmt: skip
        train(cfg, tmp_path / f"{name}.pt", root=fake_data)
        metrics = json.loads((tmp_path / f"{name}.json").read_text())["metrics"]
        assert (metrics["kind"], metrics["held_out_sets"]) == ("in_sample", []), name


def test_the_sidecar_names_the_machine_kind() -> None:
    """Weights are bit-reproducible only on the same kind of machine, so the sidecar says which kernels ran."""
    import torch

    from training.train import _device_label

    label = _device_label(torch.device("cpu"))
    assert label.startswith("cpu (") and f"{torch.backends.cpu.get_cpu_capability()} kernels" in label
    assert f"{torch.get_num_threads()} threads" in label
