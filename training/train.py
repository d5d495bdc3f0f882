"""Training loop for :class:`models.changenet.ChangeNet`: seeded, checkpointed, resumable, CPU-first.

Data, each batch (:class:`SampleSource`):
- synthetic scenes from :mod:`detector.synthetic` (rendered once at start, seeded, resolutions spread
  log-uniformly over ``synthetic.resolution_m``), and
- the real labelled change sets named in ``data.train_sets`` (:mod:`training.data`), each set drawn
  equally often whatever its size, then a pair uniformly within the set, and
- optionally (``data.landcover_sets``, ``data.landcover_fraction``) pairs made from real single-date
  land-cover tiles by pasting real bare or built ground into real scenes (:mod:`training.landcover`).
Every image goes through :func:`training.data.normalise_pair`, i.e. the detector's own radiometry,
and only its RGB bands are used. Augmentations: :mod:`training.augment`.

Loss: binary cross-entropy + soft Dice on valid pixels only; with ``optim.distill_from`` a share of it
(``optim.distill_weight``) is cross-entropy against the mean change probability of frozen teacher models.
Optimiser: AdamW, linear warm-up then cosine decay. With ``data.eval_sets`` the finished model is scored
with :func:`training.evaluate.evaluate` (the same code as ``soilwatch eval``) and the report goes into the
weights sidecar, marked ``held_out`` when neither the run nor a teacher trained on an eval set, else
``in_sample`` (or ``mixed``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from training import augment
from training.errors import TrainingError
from training.landcover import LandcoverTile, bare_change_sample, ground_sample, load_landcover

__all__ = ["TrainConfig", "SampleSource", "load_config", "train"]

log = logging.getLogger(__name__)

_ENV_DATA = "SOILWATCH_SHARED_DATA"


def _from_mapping(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TrainingError(f"unknown settings {unknown!r} in {where}; known: {sorted(known)!r}")
    out = {}
    for k, v in values.items():
        default = getattr(cls(), k)
        out[k] = tuple(v) if isinstance(default, tuple) else v
    return cls(**out)


@dataclass(frozen=True)
class DataConfig:
    root: str = "../shared/data"  # relative to the working directory; env SOILWATCH_SHARED_DATA wins
    train_sets: tuple[str, ...] = ()
    # pairs of train_sets not trained on, as "set/pair" (leave-one-pair-out cross-validation: training.crossval)
    exclude_pairs: tuple[str, ...] = ()
    eval_sets: tuple[str, ...] = ()
    synthetic_scenes: int = 48
    synthetic_size: int = 256
    synthetic_resolution_m: tuple[float, float] = (0.5, 10.0)
    synthetic_site_density: float = 3.0
    synthetic_seasonal: float = 0.0  # share of synthetic scenes whose water and tree canopy change colour (label 0)
    synthetic_river: float = 0.0  # share of synthetic scenes given one more river, whatever their size (label 0)
    synthetic_fraction: float = 0.4  # share of samples drawn from synthetic scenes
    # real bare or built ground pasted into real single-date scenes (training.landcover); drawn first, with this
    # probability, so the synthetic share of the whole is (1 - landcover_fraction) * synthetic_fraction
    landcover_sets: tuple[str, ...] = ()
    landcover_fraction: float = 0.0
    landcover_resolution_m: tuple[float, float] = (0.5, 3.0)
    # land-cover sets for the single-date ground head, an auxiliary task that shares the encoder (off when empty)
    ground_sets: tuple[str, ...] = ()
    ground_resolution_m: tuple[float, float] = (0.5, 3.0)


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 128
    scale: tuple[float, float] = (0.5, 2.0)
    focus_change: float = 0.5
    jitter: float = 0.05
    shift_px: int = 1
    shift_prob: float = 0.3
    paste: float = 0.2  # real samples only: paste a changed region of another real pair
    swap_synthetic: float = 0.15  # synthetic labels are directional: swap dates, clear label
    swap_real: float = 0.0  # real labels are symmetric "change": see training/augment.py
    degrade: float = 0.0  # share of samples with one date blurred or coarsened, and warped (augment.degrade_date)
    warp_px: float = 2.0  # the largest displacement of that warp, pixels
    landcover_reverse: float = 0.5  # land-cover pairs: share made by covering real bare ground in the before
    landcover_nuisance: float = 0.5  # land-cover pairs: share with a non-bare texture pasted in one date (no change)
    landcover_season: float = 0.5  # land-cover pairs: share whose fields turn soil-coloured in one date (no change)
    landcover_blur: float = 0.3  # land-cover pairs: share with one date blurred
    landcover_built: float = 0.5  # land-cover pairs: share whose disturbed ground includes buildings and roads
    landcover_water: float = 0.0  # land-cover pairs: share whose water changes colour in one date (no change)
    landcover_kind_rule: bool = False  # label a building on bare ground (and bare where a building stood) as change
    nir_dropout: float = 0.5  # model.nir: share of samples with NIR whose NIR is hidden (the model must work without)


@dataclass(frozen=True)
class ModelConfig:
    pretrained: bool = True
    freeze_blocks: int = 3
    decoder_channels: tuple[int, int, int, int] = (16, 32, 48, 64)
    encoder_blocks: int = 8  # EfficientNet-Lite0 blocks: 8 (lite0 only; the default) or 11 (+ stage 5 at stride 16)
    nir: bool = False  # use near-infrared where a sample has it (synthetic scenes, OSCD): a stem filter of its own
    encoder: str = "lite0"  # "lite0" (EfficientNet-Lite0) or "mnv3" (aerial MobileNetV3-Large: the shipped recipe)
    context: bool = False  # dilated depthwise context block at stride 16 (ChangeNetConfig.context)


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    dice_weight: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 25
    threads: int = 2
    ground_batch: int = 4  # single-date land-cover crops per step for the ground head (data.ground_sets)
    ground_weight: float = 0.5  # weight of the ground head's loss
    ema: float = 0.0  # > 0: ship an exponential moving average of the weights (and BN statistics) with this decay
    # distillation: ChangeNet weights files (e.g. other seeds of this recipe) whose mean change probability is a soft
    # target for this model; their training sets count as this run's for "held out" (off when empty)
    distill_from: tuple[str, ...] = ()
    distill_weight: float = 0.5  # share of the loss from the teachers' soft target; the labels get the rest


@dataclass(frozen=True)
class TrainConfig:
    """A training run, as read from a YAML config (:func:`load_config`)."""

    name: str = "changenet"
    seed: int = 0
    threshold: float = 0.5
    resolution_m: tuple[float, float] = (0.5, 10.0)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        values = dict(values)
        parts = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "optim": OptimConfig}
        sub = {k: _from_mapping(c, values.pop(k, None), f"{where}: {k}") for k, c in parts.items()}
        top = _from_mapping(cls, {k: v for k, v in values.items()}, where) if values else cls()
        cfg = TrainConfig(**{**{f.name: getattr(top, f.name) for f in fields(cls) if f.name not in parts}, **sub})
        return cfg.checked(where)

    def checked(self, where: str = "config") -> TrainConfig:
        """This config, after checking the values that types alone do not; raises :class:`TrainingError`."""
        cfg = self
        if cfg.optim.steps < 1 or cfg.optim.batch_size < 1:
            raise TrainingError(f"optim.steps and optim.batch_size must be >= 1 in {where}")
        if cfg.augment.crop % 16:
            raise TrainingError(f"augment.crop must be a multiple of 16, got {cfg.augment.crop!r} in {where}")
        if not 0 <= cfg.data.synthetic_fraction <= 1:
            raise TrainingError(f"data.synthetic_fraction must be in [0, 1] in {where}")
        for name in ("synthetic_seasonal", "synthetic_river"):
            if not 0 <= getattr(cfg.data, name) <= 1:
                raise TrainingError(f"data.{name} must be in [0, 1] in {where}")
        if not 0 <= cfg.data.landcover_fraction <= 1:
            raise TrainingError(f"data.landcover_fraction must be in [0, 1] in {where}")
        if cfg.data.landcover_fraction > 0 and not cfg.data.landcover_sets:
            raise TrainingError(f"data.landcover_fraction is set but data.landcover_sets is empty in {where}")
        if cfg.data.synthetic_fraction < 1 and not cfg.data.train_sets:
            raise TrainingError(f"data.train_sets is empty in {where}: set synthetic_fraction: 1.0 or name sets")
        if not (cfg.optim.ema == 0 or 0 < cfg.optim.ema < 1):
            raise TrainingError(f"optim.ema must be in (0, 1), or 0 for off; got {cfg.optim.ema!r} in {where}")
        if not 0 <= cfg.augment.degrade <= 1 or cfg.augment.warp_px < 0:
            raise TrainingError(f"augment.degrade must be in [0, 1] and augment.warp_px >= 0 in {where}")
        if cfg.data.ground_sets and (cfg.optim.ground_batch < 1 or cfg.optim.ground_weight < 0):
            raise TrainingError(f"optim.ground_batch must be >= 1 and optim.ground_weight >= 0 in {where}")
        if cfg.optim.distill_from and not 0 < cfg.optim.distill_weight <= 1:
            raise TrainingError(f"optim.distill_weight must be in (0, 1] in {where}; got {cfg.optim.distill_weight!r}")
        from models.changenet import ENCODER_DEPTHS, ENCODERS, ChangeNetConfig, encoder_block_count

        if cfg.model.encoder not in ENCODERS:
            raise TrainingError(f"model.encoder must be one of {ENCODERS!r} in {where}; got {cfg.model.encoder!r}")
        if cfg.model.encoder == "mnv3" and cfg.model.nir:
            raise TrainingError(f"model.nir needs model.encoder: lite0 in {where}")
        if cfg.model.encoder_blocks not in ENCODER_DEPTHS:
            raise TrainingError(f"model.encoder_blocks must be one of {ENCODER_DEPTHS!r} in {where}; "
                                f"got {cfg.model.encoder_blocks!r}")
        if not 0 <= cfg.augment.nir_dropout <= 1:
            raise TrainingError(f"augment.nir_dropout must be in [0, 1] in {where}")
        arch = ChangeNetConfig(encoder=cfg.model.encoder, encoder_blocks=cfg.model.encoder_blocks)
        blocks = encoder_block_count(arch)
        if not 0 <= cfg.model.freeze_blocks <= blocks:
            raise TrainingError(f"model.freeze_blocks must be in [0, {blocks}] for the {cfg.model.encoder} encoder "
                                f"in {where}; got {cfg.model.freeze_blocks!r}")
        for entry in cfg.data.exclude_pairs:
            set_name, _, pair = str(entry).partition("/")
            if not pair or set_name not in cfg.data.train_sets:
                raise TrainingError(f"data.exclude_pairs entry {entry!r} in {where} must be 'set/pair' with the set "
                                    f"in data.train_sets {list(cfg.data.train_sets)!r}")
        return cfg

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config; unknown keys are errors that name them."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingError(f"cannot read config {str(path)!r}: {exc}") from exc
    if not isinstance(values, dict):
        raise TrainingError(f"config {str(path)!r} must hold a mapping")
    return TrainConfig.from_mapping(values, where=str(path))


def data_root(cfg: TrainConfig, override: str | Path | None = None) -> Path:
    if override is not None:
        return Path(override)
    env = os.environ.get(_ENV_DATA)
    return Path(env) if env else Path(cfg.data.root)


# -- data ---------------------------------------------------------------------------------------
def _synthetic_pool(cfg: DataConfig, seed: int, nir: bool = False) -> list[augment.Sample]:
    from detector.synthetic import make_scene
    from training.data import normalise_pair

    pool = []
    lo, hi = cfg.synthetic_resolution_m
    res = np.exp(np.linspace(np.log(lo), np.log(hi), max(cfg.synthetic_scenes, 1)))
    for i in range(cfg.synthetic_scenes):
        dtype = "uint16" if i % 3 == 2 else "uint8"
        sc = make_scene(height=cfg.synthetic_size, width=cfg.synthetic_size, resolution_m=float(res[i]),
                        seed=seed * 100_003 + i, dtype=dtype, site_density=cfg.synthetic_site_density,
                        seasonal=cfg.synthetic_seasonal, river=cfg.synthetic_river)
        n = 4 if nir else 3  # red, green, blue (, nir): detector.synthetic.BAND_NAMES
        b, a = normalise_pair(sc.before[:n].astype(np.float32), sc.after[:n].astype(np.float32))
        pool.append({"image": np.stack([b, a]), "mask": sc.change[None].astype(np.uint8),
                     "valid": np.ones((1, *sc.change.shape), bool)})
    return pool


def _with_nir_slot(image: np.ndarray, nir: np.ndarray | None = None) -> np.ndarray:
    """``(2, 4, h, w)``: the RGB of ``image`` ``(2, >=3, h, w)`` and ``nir`` ``(2, h, w)`` (zeros when None)."""
    slot = np.zeros((2, 1, *image.shape[-2:]), np.float32) if nir is None else nir[:, None].astype(np.float32)
    return np.ascontiguousarray(np.concatenate([image[:, :3], slot], axis=1))


def _real_pool(root: Path, sets: tuple[str, ...], nir: bool = False,
               exclude: tuple[str, ...] = ()) -> dict[str, list[augment.Sample]]:
    """The pairs of ``sets`` but those named in ``exclude`` ("set/pair"), RGB only; with ``nir`` also a fourth band,
    the NIR where the pair has one (zeros and ``has_nir`` False where not). An ``exclude`` entry that names no pair
    is a :class:`TrainingError` (a typo must not put the pair back into training)."""
    from training.data import index_data, read_pair

    if not sets:
        return {}
    index = index_data(root, sets)
    known = {f"{name}/{f.name}" for name, files in index.sets.items() for f in files}
    unknown = sorted(set(exclude) - known)
    if unknown:
        raise TrainingError(f"data.exclude_pairs {unknown!r}: no such pair under {str(root)!r}")
    out: dict[str, list[augment.Sample]] = {}
    for name, files in index.sets.items():
        out[name] = []
        for f in files:
            if f"{name}/{f.name}" in exclude:
                continue
            pair = read_pair(f)
            s = pair.as_sample()
            if nir:
                has = "nir" in pair.bands
                s["image"] = _with_nir_slot(s["image"], s["image"][:, pair.bands.index("nir")] if has else None)
                s["has_nir"] = np.array(has)  # read by SampleSource.draw; crops do not carry it
            else:
                s["image"] = np.ascontiguousarray(s["image"][:, :3])  # RGB only
            out[name].append(s)
    return out


class SampleSource:
    """Draws augmented training samples (``image`` (2, 3, crop, crop), ``mask``, ``valid``) from the pools.

    With ``model.nir`` the image has a fourth band, NIR, and each sample a ``nir_present`` flag: False (and the
    band zero) where the source has no NIR, where a pasted source lacks it, and for ``augment.nir_dropout`` of
    the rest."""

    def __init__(self, cfg: TrainConfig, root: Path | None) -> None:
        self.cfg = cfg
        self.nir = cfg.model.nir
        self.synthetic = _synthetic_pool(cfg.data, cfg.seed, self.nir) if cfg.data.synthetic_fraction > 0 else []
        self.real = _real_pool(root, cfg.data.train_sets, self.nir, cfg.data.exclude_pairs) if root is not None else {}
        if cfg.data.synthetic_fraction < 1 and not self.real:
            raise TrainingError("no real training pairs were loaded; check data.root and data.train_sets")
        self._with_change = [s for pairs in self.real.values() for s in pairs if s["mask"].any()]
        self.landcover: list[LandcoverTile] = []
        if cfg.data.landcover_fraction > 0:
            if root is None:
                raise TrainingError("data.landcover_sets need the data root (data.root or SOILWATCH_SHARED_DATA)")
            self.landcover = load_landcover(root, cfg.data.landcover_sets)
            if not any(t.bare.any() for t in self.landcover):
                raise TrainingError(f"no tile of data.landcover_sets {list(cfg.data.landcover_sets)!r} under "
                                    f"{str(root)!r} has bare-class pixels; nothing to paste")
        self.ground: list[LandcoverTile] = []
        if cfg.data.ground_sets:
            if root is None:
                raise TrainingError("data.ground_sets need the data root (data.root or SOILWATCH_SHARED_DATA)")
            same = tuple(cfg.data.ground_sets) == tuple(cfg.data.landcover_sets)
            self.ground = self.landcover if same else load_landcover(root, cfg.data.ground_sets)

    def _crop(self, s: augment.Sample, rng: np.random.Generator) -> augment.Sample:
        a = self.cfg.augment
        return augment.crop_scaled(s, rng, size=a.crop, scale=a.scale, focus_change=a.focus_change)

    def draw(self, rng: np.random.Generator) -> augment.Sample:
        a = self.cfg.augment
        has_nir = self.nir  # model.nir: whether this sample's fourth band is real NIR
        # the land-cover draw comes first and only when configured, so older recipes draw as they did
        if self.landcover and rng.random() < self.cfg.data.landcover_fraction:
            s = bare_change_sample(self.landcover, rng, size=a.crop, resolution_m=self.cfg.data.landcover_resolution_m,
                                   reverse=a.landcover_reverse, nuisance=a.landcover_nuisance,
                                   season=a.landcover_season, blur=a.landcover_blur, built=a.landcover_built,
                                   water=a.landcover_water, kind_rule=a.landcover_kind_rule)
            if self.nir:  # the land-cover tiles are RGB
                s, has_nir = {**s, "image": _with_nir_slot(s["image"])}, False
        elif not self.real or rng.random() < self.cfg.data.synthetic_fraction:
            s = self._crop(self.synthetic[int(rng.integers(len(self.synthetic)))], rng)
            if rng.random() < a.swap_synthetic:
                s = augment.swap_dates(s, clear_mask=True)
        else:
            names = sorted(self.real)
            pairs = self.real[names[int(rng.integers(len(names)))]]
            pair = pairs[int(rng.integers(len(pairs)))]
            s, has_nir = self._crop(pair, rng), has_nir and bool(pair.get("has_nir", False))
            if self._with_change and rng.random() < a.paste:
                src_pair = self._with_change[int(rng.integers(len(self._with_change)))]
                src = self._crop(src_pair, rng)
                s = augment.paste_change(s, augment.flip_rot(src, rng))
                has_nir = has_nir and bool(src_pair.get("has_nir", False))
            if rng.random() < a.swap_real:
                s = augment.swap_dates(s, clear_mask=False)
        s = augment.flip_rot(s, rng)
        if a.jitter > 0:
            s = augment.jitter_dates(s, rng, strength=a.jitter)
        if a.shift_px > 0 and rng.random() < a.shift_prob:
            s = augment.shift_after(s, rng, max_px=a.shift_px)
        if a.degrade > 0 and rng.random() < a.degrade:  # drawn only when configured: older recipes draw as before
            s = augment.degrade_date(s, rng, warp_px=a.warp_px)
        if self.nir:
            if has_nir and rng.random() < a.nir_dropout:
                has_nir = False
            if not has_nir:  # a copy: a crop may still be a view of the pool's image
                img = s["image"].copy()
                img[:, 3] = 0.0
                s = {**s, "image": img}
            s = {**s, "nir_present": np.array(has_nir)}
        return s

    def batch(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        return _stack([self.draw(rng) for _ in range(n)])

    def ground_batch(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` single-date land-cover crops for the ground head: ``image`` ``(n, 3, crop, crop)``, ``mask`` and
        ``valid`` ``(n, 1, crop, crop)``; flips and per-image colour jitter as for change samples."""
        a = self.cfg.augment
        out = []
        for _ in range(n):
            s = augment.flip_rot(ground_sample(self.ground, rng, size=a.crop,
                                               resolution_m=self.cfg.data.ground_resolution_m), rng)
            out.append(augment.jitter_dates(s, rng, strength=a.jitter) if a.jitter > 0 else s)
        b = _stack(out)
        return {**b, "image": b["image"][:, 0]}


def _stack(samples: list[augment.Sample]) -> dict[str, np.ndarray]:
    keys = ("image", "mask", "valid", "nir_present") if "nir_present" in samples[0] else ("image", "mask", "valid")
    return {k: np.stack([s[k] for s in samples]) for k in keys}


# -- loop ---------------------------------------------------------------------------------------
@dataclass
class _Teachers:
    """The frozen models of ``optim.distill_from``: their mean change probability is a soft training target."""

    nets: list[Any]
    provenance: list[dict[str, Any]]  # file, sha256, seed, train_sets of each, as recorded in the student's sidecar

    @classmethod
    def load(cls, paths: tuple[str, ...], dev: Any) -> _Teachers:
        import torch

        from models.changenet import load_weights
        from models.errors import WeightsError

        nets, prov = [], []
        for p in paths:
            try:
                net, side = load_weights(p, require_sidecar=True)
            except WeightsError as exc:
                raise TrainingError(f"optim.distill_from: {exc}") from exc
            nets.append(net.to(dev).to(memory_format=torch.channels_last).eval())
            data = side.get("data", {})
            seen = [*data.get("train_sets", []), *(s for t in data.get("distill_from", []) for s in t["train_sets"])]
            prov.append({"file": str(p), "sha256": side.get("sha256"), "seed": side.get("seed"),
                         "train_sets": sorted(set(seen))})  # with what its own teachers saw
        return cls(nets, prov)

    @property
    def train_sets(self) -> set[str]:
        return {s for p in self.provenance for s in p["train_sets"]}

    def target(self, x: Any, nir_present: Any = None) -> Any:
        """Mean teacher probability of ``x``; RGB teachers see the first three bands only."""
        import torch

        with torch.no_grad():
            return torch.stack([torch.sigmoid(n(x, nir_present) if n.config.nir else n(x[:, :, :3]))
                                for n in self.nets]).mean(0)


def _bce(logits: Any, target: Any, valid: Any) -> Any:
    """Binary cross-entropy against ``target`` (0/1 labels or a probability per pixel), over valid pixels."""
    import torch.nn.functional as F

    v = valid.float()
    return (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * v).sum() / v.sum().clamp(min=1)


def _loss(logits: Any, mask: Any, valid: Any, dice_weight: float) -> Any:
    import torch

    v = valid.float()
    p = torch.sigmoid(logits) * v
    inter = (p * mask).sum()
    dice = 1 - (2 * inter + 1) / (p.sum() + (mask * v).sum() + 1)
    return _bce(logits, mask, valid) + dice_weight * dice


def _lr_factor(step: int, cfg: OptimConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _device_label(dev: Any) -> str:
    """What ran the training, for the sidecar: CPU model and the SIMD kernels torch used, or the GPU's name.
    The same config and seed give bit-identical weights only on the same kind of machine: float sums in
    other kernels round differently, and 1000 steps turn that into a different model (within seed noise)."""
    import torch

    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu ({cpu}, {torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads)"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class TrainResult:
    weights: Path
    losses: list[float]
    seconds: float
    meta: dict[str, Any]


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    root: str | Path | None = None,
    resume: str | Path | None = None,
    checkpoint: str | Path | None = None,
    command: str | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a ChangeNet as ``cfg`` says and write ``out`` (.pt) with its JSON sidecar.

    Args:
        cfg: the run (:func:`load_config`).
        out: weights file to write.
        root: data folder (default: env ``SOILWATCH_SHARED_DATA``, else ``cfg.data.root``).
        resume: checkpoint to continue from (its config must match ``cfg``).
        checkpoint: where to write checkpoints (default ``<out>.ckpt``), every ``optim.checkpoint_every`` steps.
        command: the command line, recorded in the weights' provenance.
        device: "cpu" or "cuda"; default CUDA when available.
        progress: called with one line of progress text now and then.
    """
    import torch

    from models.changenet import ChangeNetConfig, build_network, save_weights

    cfg = cfg.checked()
    say = progress or log.info
    out = Path(out)
    ckpt_path = Path(checkpoint) if checkpoint else out.with_suffix(".ckpt")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    ground_rng = np.random.default_rng([cfg.seed, 1])  # its own stream: change samples stay as without the head
    needs_real = bool(cfg.data.train_sets or cfg.data.eval_sets or cfg.data.landcover_sets or cfg.data.ground_sets)
    data_dir = data_root(cfg, root) if needs_real else None

    t0 = time.time()
    source = SampleSource(cfg, data_dir if cfg.data.train_sets or cfg.data.landcover_sets or cfg.data.ground_sets
                          else None)
    say(f"data: {len(source.synthetic)} synthetic scenes, real sets "
        f"{ {k: len(v) for k, v in source.real.items()} }, {len(source.landcover)} land-cover tiles, "
        f"{len(source.ground)} ground-head tiles ({time.time() - t0:.1f} s)")

    net, enc_prov = build_network(
        config=ChangeNetConfig(decoder_channels=cfg.model.decoder_channels, ground_head=bool(cfg.data.ground_sets),
                               encoder_blocks=cfg.model.encoder_blocks, nir=cfg.model.nir,
                               encoder=cfg.model.encoder, context=cfg.model.context),
        pretrained=cfg.model.pretrained
    )
    if cfg.model.freeze_blocks:
        net.freeze_encoder_blocks(cfg.model.freeze_blocks)
    teachers = _Teachers.load(cfg.optim.distill_from, dev) if cfg.optim.distill_from else None
    if teachers is not None:
        say(f"distilling from {len(teachers.nets)} teacher models (weight {cfg.optim.distill_weight})")
    net = net.to(dev).to(memory_format=torch.channels_last)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.optim))
    ema = None
    if cfg.optim.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.optim.ema), use_buffers=True)
    start, losses, spent = 0, [], 0.0
    if resume is not None:
        ck = torch.load(resume, map_location=dev, weights_only=False)
        if ck["config"] != cfg.as_dict():
            raise TrainingError(f"checkpoint {str(resume)!r} was made with another config; resume with that config")
        if teachers is not None and ck.get("teachers") != teachers.provenance:
            raise TrainingError(f"checkpoint {str(resume)!r} was made with other teacher files (optim.distill_from); "
                                "restore them or start again")
        net.load_state_dict(ck["model"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optim"])
        sched.load_state_dict(ck["sched"])
        rng.bit_generator.state = ck["rng"]
        if ck.get("ground_rng") is not None:
            ground_rng.bit_generator.state = ck["ground_rng"]
        torch.set_rng_state(ck["torch_rng"])
        start, losses, spent = ck["step"], list(ck["losses"]), float(ck["seconds"])
        say(f"resumed from {resume} at step {start}")

    def save_ckpt(step: int) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"config": cfg.as_dict(), "model": net.state_dict(), "optim": opt.state_dict(),
                    "sched": sched.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                    "ground_rng": ground_rng.bit_generator.state,
                    "step": step, "losses": losses, "seconds": spent + time.time() - t_run,
                    "ema": ema.state_dict() if ema is not None else None,
                    "teachers": teachers.provenance if teachers is not None else None}, tmp)
        os.replace(tmp, ckpt_path)

    net.train()
    t_run = time.time()
    t_log = t_run
    for step in range(start, cfg.optim.steps):
        b = source.batch(rng, cfg.optim.batch_size)
        x = torch.from_numpy(b["image"]).to(dev)
        y = torch.from_numpy(b["mask"]).float().to(dev)
        v = torch.from_numpy(b["valid"]).to(dev)
        present = torch.from_numpy(b["nir_present"]).to(dev) if "nir_present" in b else None
        logits = net(x, present)
        loss = _loss(logits, y, v, cfg.optim.dice_weight)
        if teachers is not None:
            w = cfg.optim.distill_weight
            loss = (1 - w) * loss + w * _bce(logits, teachers.target(x, present), v)
        if source.ground:
            g = source.ground_batch(ground_rng, cfg.optim.ground_batch)
            gx = torch.from_numpy(g["image"]).to(dev)
            gy = torch.from_numpy(g["mask"]).float().to(dev)
            gv = torch.from_numpy(g["valid"]).to(dev)
            loss = loss + cfg.optim.ground_weight * _loss(net.ground(gx), gy, gv, cfg.optim.dice_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(net)
        losses.append(float(loss.detach()))
        done = step + 1
        if done % cfg.optim.log_every == 0 or done == cfg.optim.steps:
            rate = (time.time() - t_log) / min(cfg.optim.log_every, done - start) if done > start else 0.0
            recent = float(np.mean(losses[-cfg.optim.log_every:]))
            say(f"step {done}/{cfg.optim.steps} loss {recent:.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"{rate:.2f} s/step, eta {rate * (cfg.optim.steps - done) / 60:.1f} min")
            t_log = time.time()
        if cfg.optim.checkpoint_every and done % cfg.optim.checkpoint_every == 0 and done < cfg.optim.steps:
            save_ckpt(done)
    seconds = spent + time.time() - t_run
    if ema is not None:  # the averaged weights and BN statistics are the ones shipped
        net.load_state_dict(ema.module.state_dict())
    net.eval()

    meta: dict[str, Any] = {
        "name": cfg.name,
        "version": _dt.date.today().strftime("%Y.%m.%d"),
        "bands": ["red", "green", "blue"],
        "optional_bands": ["nir"] if cfg.model.nir else [],
        "normalisation": "detector.radiometry (training.data.normalise_pair): after mapped linearly onto before, "
                         "common gain p99(brightest visible band of before) -> 0.8; network input (255 x - 127) / 128",
        "resolution_m": list(cfg.resolution_m),
        "threshold": cfg.threshold,
        "training_command": command,
        "seed": cfg.seed,
        "data": {"train_sets": list(cfg.data.train_sets), "exclude_pairs": list(cfg.data.exclude_pairs),
                 "eval_sets": list(cfg.data.eval_sets),
                 "synthetic_scenes": cfg.data.synthetic_scenes, "synthetic_fraction": cfg.data.synthetic_fraction,
                 "landcover_sets": list(cfg.data.landcover_sets), "landcover_fraction": cfg.data.landcover_fraction,
                 "ground_sets": list(cfg.data.ground_sets),
                 "distill_from": teachers.provenance if teachers is not None else [],
                 "root": str(data_dir) if data_dir else None},
        "pretrained_encoder": enc_prov or None,
        "config": cfg.as_dict(),
        "train_steps": cfg.optim.steps,
        "train_seconds": round(seconds, 1),
        "final_loss": float(np.mean(losses[-cfg.optim.log_every:])) if losses else None,
        "device": _device_label(dev),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
        "torch": str(torch.__version__),
    }
    if cfg.data.eval_sets and data_dir is not None:
        seen = set(cfg.data.train_sets) | (teachers.train_sets if teachers is not None else set())
        meta["metrics"] = _evaluate(net, meta, cfg, data_dir, say, seen)
    save_weights(net.cpu(), out, meta)
    say(f"wrote {out} ({seconds / 60:.1f} min of training)")
    if ckpt_path.exists():
        ckpt_path.unlink()
    return TrainResult(weights=out, losses=losses, seconds=seconds, meta=meta)


def _evaluate(net: Any, meta: dict[str, Any], cfg: TrainConfig, root: Path, say: Callable[[str], None],
              seen: set[str]) -> dict:
    """Score ``net`` on ``data.eval_sets``; a set is held out when neither the run nor any teacher trained on it."""
    from models.changenet import TorchChangeModel
    from training.data import index_data
    from training.evaluate import evaluate

    model = TorchChangeModel(net, name=cfg.name, meta=meta, num_threads=cfg.optim.threads)
    report = evaluate(model, index_data(root, cfg.data.eval_sets), spec=cfg.name).as_dict()
    held_out = sorted(set(cfg.data.eval_sets) - seen)
    kind = "held_out" if len(held_out) == len(set(cfg.data.eval_sets)) else "in_sample" if not held_out else "mixed"
    for name, s in report["sets"].items():
        px, ob = s["pixel"], s["object"]
        say(f"{'held_out' if name in held_out else 'in_sample'} {name}: pixel P/R/F1/IoU {px['precision']}/"
            f"{px['recall']}/{px['f1']}/{px['iou']} object P/R {ob['precision']}/{ob['recall']}")
    return {"kind": kind, "held_out_sets": held_out, "report": report}
