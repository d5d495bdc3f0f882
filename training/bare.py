"""One date, current bare soil: a bare-soil head on the shipped change network's frozen encoder, trained and scored
on the real single-date land-cover tiles (issue #4's optional single-date head).

``soilwatch detect -a AFTER.tif`` (no before image) maps the bare soil of one image. Until this module the only
model for that was the spectral baseline's brightness-and-colour rule. Here a small head (the ChangeNet ground
head: 1x1 convolutions on the encoder's stride 4/8/16 taps, 32 channels, about 6 000 weights) learns "bare land"
from the land-cover sets of ``../shared/data`` on top of the shipped change network's encoder, which stays frozen:
a weights file it writes computes exactly the shipped change map for two dates, and bare soil for one
(``soilwatch detect -a AFTER.tif --model that.pt``).

**Not shipped** (``MODEL_CARD.md``, "Tried and not shipped: a one-date bare-soil head"): held out, it does not beat
the baseline reliably, so ``--model auto`` keeps the baseline for one date. The code stays so that the card's table
can be reproduced and a better-labelled set can be tried the same way.

Labels: the bare class (LoveDA ``barren``, DeepGlobe ``barren_land``) is the target; every other labelled class is
"not bare"; no-data and the classes ``classes.csv`` marks ``unknown`` (LoveDA's background, which hides unlabelled
bare ground) count neither in training nor in scoring.

Protocols, each against the baseline's one-date mode on the same tiles, resampled to a common ground resolution
(default 1 m; the tiles are 0.3 m and 0.5 m), with the scoring rules of ``soilwatch eval`` (pixels; objects at
IoU >= 0.25 or half covered, at least ``min_area_m2``): ``sets``, leave one land-cover set out (the head trained on
DeepGlobe is scored on LoveDA and the reverse); ``tiles``, three folds of held-out tiles (:data:`TILE_FOLDS`), the
other tiles of both sets in training.

``python -m training.bare train --sets landcover_deepglobe --seed 0 -o bare_loso_loveda.pt``
``python -m training.bare eval --model bare_loso_loveda.pt --model baseline --sets landcover_loveda``
``python -m training.bare reproduce --json bare.json`` (both folds, seeds 0-2, baseline; the model card's table)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelError
from training import augment
from training.errors import TrainingError
from training.landcover import LandcoverTile, _crop, load_landcover
from training.metrics import ObjectCounts, PixelCounts, min_area_px, score_objects, score_pixels

__all__ = ["BareConfig", "BareScore", "bare_sample", "evaluate_bare", "main", "tiles_at", "train_bare_head"]

log = logging.getLogger(__name__)

LANDCOVER_SETS = ("landcover_loveda", "landcover_deepglobe")
RGB = ("red", "green", "blue")


@dataclass(frozen=True)
class BareConfig:
    """How the bare-soil head is trained (stored in the weights' sidecar)."""

    sets: tuple[str, ...] = LANDCOVER_SETS
    steps: int = 400
    batch_size: int = 8
    crop: int = 256
    lr: float = 3e-3
    seed: int = 0
    # ground resolution (m/pixel) of the training crops, drawn log-uniformly: what a bureau's imagery spans
    resolution_m: tuple[float, float] = (0.5, 3.0)
    centre_on_bare: float = 0.5  # share of crops centred on bare ground (the class is rare)
    jitter: float = 0.05  # colour jitter strength (training.augment.jitter_dates)
    dice_weight: float = 1.0
    threads: int = 2

    def check(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.crop < 32 or self.crop % 16:
            raise TrainingError("steps and batch_size must be >= 1, crop a multiple of 16 and >= 32")
        if not self.sets:
            raise TrainingError("name at least one land-cover set to train on")
        lo, hi = self.resolution_m
        if not 0 < lo <= hi:
            raise TrainingError(f"resolution_m must be 0 < low <= high, got {self.resolution_m!r}")


def _scoring_valid(tile: LandcoverTile) -> np.ndarray:
    """Pixels that count: labelled, and not of a class that may hide unlabelled bare ground."""
    return tile.valid & ~tile.unknown if tile.unknown is not None else tile.valid


def bare_sample(tiles: Sequence[LandcoverTile], rng: np.random.Generator, cfg: BareConfig) -> augment.Sample:
    """One training crop: ``image`` ``(1, 3, crop, crop)``, ``mask`` ``(1, crop, crop)`` = bare class, ``valid``
    (labelled and not ``unknown``), at a ground resolution drawn log-uniformly from ``cfg.resolution_m``, flipped
    or rotated and colour-jittered; with probability ``cfg.centre_on_bare`` centred on bare ground."""
    lo, hi = cfg.resolution_m
    res = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    tile = tiles[int(rng.integers(len(tiles)))]
    near = tile.bare_index if rng.random() < cfg.centre_on_bare else None
    crop = _crop(tile, rng, cfg.crop, res, near=near)
    valid = crop["valid"] & ~crop["mask"][4:5].astype(bool)
    sample = {"image": crop["image"], "mask": crop["mask"][0:1], "valid": valid}
    sample = augment.flip_rot(sample, rng)
    return augment.jitter_dates(sample, rng, strength=cfg.jitter) if cfg.jitter > 0 else sample


def train_bare_head(
    base: str | Path, tiles: Sequence[LandcoverTile], cfg: BareConfig, *, on_log: Callable[[str], None] = log.info
) -> tuple[Any, list[float]]:
    """The ChangeNet of ``base`` with a bare-soil head trained on ``tiles``; every other weight frozen as loaded.

    Returns ``(network in eval mode, loss per step)``. Runs on CUDA when present.
    """
    import torch

    from models.changenet import ChangeNet, load_weights
    from training.train import _loss

    cfg.check()
    if not any(t.bare.any() for t in tiles):
        raise TrainingError("none of the land-cover tiles has bare ground to learn from")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 7])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cpu":
        torch.set_num_threads(cfg.threads)
    base_net, _ = load_weights(base)
    net = ChangeNet(replace(base_net.config, ground_head=True))
    result = net.load_state_dict(base_net.state_dict(), strict=False)
    stray = [k for k in result.missing_keys if not k.startswith("ground_")] + list(result.unexpected_keys)
    if stray:
        raise TrainingError(f"{base} does not fit a ChangeNet with a ground head: {stray[:5]}")
    net.requires_grad_(False)
    head = [net.ground_lateral, net.ground_out]
    params = [p for m in head for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    net.to(dev).to(memory_format=torch.channels_last)
    net.eval()
    for m in head:
        m.train()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    losses: list[float] = []
    t0 = time.time()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        batch = [bare_sample(tiles, rng, cfg) for _ in range(cfg.batch_size)]
        x = torch.from_numpy(np.concatenate([b["image"] for b in batch])).to(dev)
        y = torch.from_numpy(np.stack([b["mask"] for b in batch]).astype(np.float32)).to(dev)
        v = torch.from_numpy(np.stack([b["valid"] for b in batch])).to(dev)
        with torch.no_grad():
            feats = net.encoder(net._scaled(x))
        loss = _loss(net.ground_from_features(feats, x.shape[-2:]), y, v, cfg.dice_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            on_log(f"step {step + 1}/{cfg.steps}: loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
    net.eval()
    return net.cpu(), losses


# -- scoring ------------------------------------------------------------------------------------------------
@dataclass
class BareScore:
    """Pooled counts of one model on one set."""

    pixel: PixelCounts = field(default_factory=PixelCounts)
    objects: ObjectCounts = field(default_factory=ObjectCounts)
    tiles: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"pixel": self.pixel.as_dict(), "object": self.objects.as_dict(), "tiles": self.tiles}


def tiles_at(tiles: Sequence[LandcoverTile], resolution_m: float | None) -> list[LandcoverTile]:
    """``tiles`` resampled whole to ``resolution_m`` (image by area averaging, masks by nearest); None = as they are."""
    if resolution_m is None:
        return list(tiles)
    import torch
    import torch.nn.functional as F

    out = []
    for t in tiles:
        h, w = t.bare.shape
        side = (max(16, round(h * t.resolution_m / resolution_m)), max(16, round(w * t.resolution_m / resolution_m)))
        rows = (np.arange(side[0]) * h / side[0]).astype(np.intp)
        cols = (np.arange(side[1]) * w / side[1]).astype(np.intp)
        img = F.interpolate(torch.from_numpy(t.image.astype(np.float32))[None], size=side, mode="area")[0].numpy()

        def pick(m: np.ndarray | None, rows: np.ndarray = rows, cols: np.ndarray = cols) -> np.ndarray | None:
            return None if m is None else m[rows][:, cols]

        out.append(LandcoverTile(
            name=t.name, image=img.astype(np.float16), bare=pick(t.bare), valid=pick(t.valid),
            resolution_m=resolution_m, seasonal=pick(t.seasonal), built=pick(t.built), water=pick(t.water),
            unknown=pick(t.unknown),
        ))
    return out


def evaluate_bare(model: Any, tiles: Sequence[LandcoverTile], *, min_area_m2: float = 200.0) -> BareScore:
    """Run ``model`` (a :class:`models.base.ChangeModel` with ``single_date``) on each tile as one date and score
    its bare-soil map at ``model.info.threshold`` (pixels and objects, :mod:`training.metrics`)."""
    from training.evaluate import predict_pair

    if not model.info.single_date:
        raise TrainingError(f"{model.info.label} has no single-date mode")
    score = BareScore()
    for t in tiles:
        prob = predict_pair(model, None, t.image.astype(np.float32), RGB)
        pred = prob >= model.info.threshold
        valid = _scoring_valid(t)
        cut = min_area_px(min_area_m2, t.resolution_m)
        px = score_pixels(pred, t.bare, valid)
        ob = score_objects(pred, t.bare, valid, min_area_px=cut)
        score.pixel, score.objects = score.pixel + px, score.objects + ob
        score.tiles.append({"tile": t.name, "bare_share": float(t.bare[valid].mean()) if valid.any() else 0.0,
                            "flagged_share": float(pred[valid].mean()) if valid.any() else 0.0, "f1": px.f1})
    return score


def _load(spec: str) -> Any:
    from models.registry import load_model

    return load_model(spec)


def _meta(base: str | Path, cfg: BareConfig, command: str, losses: list[float]) -> dict[str, Any]:
    from models.changenet import file_sha256, load_weights

    _, base_meta = load_weights(base)
    meta = {k: v for k, v in base_meta.items() if k not in ("file", "sha256", "format", "arch")}
    meta["single_date"] = True
    meta["bare_head"] = {
        "what": "one date: bare soil (training.bare); two dates: the base file's change map, unchanged",
        "base": str(base), "base_sha256": file_sha256(Path(base)), "command": command, "config": asdict(cfg),
        "final_loss": float(np.mean(losses[-50:])), "date": _dt.date.today().isoformat(),
        "labels": "bare class = 1; other labelled classes = 0; no-data and 'unknown' classes ignored",
    }
    return meta


#: the ``tiles`` protocol of :func:`reproduce`: three folds of held-out tiles (file stems), each with bare ground
#: from both sets
TILE_FOLDS: tuple[frozenset[str], ...] = (
    frozenset({"11", "0", "1", "2", "3", "4", "5", "794214", "6399", "10233"}),
    frozenset({"15", "17", "6", "7", "8", "9", "10", "482365", "180902", "119"}),
    frozenset({"18", "20", "12", "13", "14", "16", "19", "855", "104113", "3484"}),
)


def _folds(root: Path, protocol: str) -> list[tuple[str, list[LandcoverTile], dict[str, list[LandcoverTile]]]]:
    """``(fold name, training tiles, {set: held-out tiles})`` of ``protocol``: ``sets`` (leave one land-cover set
    out) or ``tiles`` (:data:`TILE_FOLDS`: held-out tiles of both sets, the rest of both in training)."""
    if protocol == "sets":
        return [(f"held out {held}", load_landcover(root, [s for s in LANDCOVER_SETS if s != held]),
                 {held: load_landcover(root, [held])}) for held in LANDCOVER_SETS]
    tiles = load_landcover(root, LANDCOVER_SETS)
    folds = []
    for k, test in enumerate(TILE_FOLDS):
        held = [t for t in tiles if t.name.split("/", 1)[1] in test]
        folds.append((f"tiles fold {k}", [t for t in tiles if t not in held],
                      {s: [t for t in held if t.name.startswith(s + "/")] for s in LANDCOVER_SETS}))
    return folds


def reproduce(root: Path, seeds: Sequence[int], steps: int, work: Path, resolution_m: float | None,
              *, protocols: Sequence[str] = ("sets", "tiles")) -> dict[str, Any]:
    """The model card's one-date table: for each protocol and fold the baseline and a head per seed (trained on the
    fold's training tiles, written to ``work``), scored on the held-out tiles; pooled over folds per set."""
    from models.changenet import SHIPPED_WEIGHTS, save_weights

    work.mkdir(parents=True, exist_ok=True)
    baseline = _load("baseline")
    out: dict[str, Any] = {}
    for protocol in protocols:
        pooled: dict[str, BareScore] = {}
        folds_out: dict[str, Any] = {}
        for k, (fold, train_tiles, held) in enumerate(_folds(root, protocol)):
            held = {s: tiles_at(t, resolution_m) for s, t in held.items() if t}
            if not held:
                continue
            models: list[tuple[str, Any]] = [("baseline", baseline)]
            for seed in seeds:
                cfg = BareConfig(sets=tuple(sorted({t.name.split("/")[0] for t in train_tiles})), steps=steps,
                                 seed=seed)
                path = work / f"bare_{protocol}{k}_s{seed}.pt"
                net, losses = train_bare_head(SHIPPED_WEIGHTS, train_tiles, cfg, on_log=log.debug)
                save_weights(net, path, _meta(SHIPPED_WEIGHTS, cfg, f"training.bare reproduce ({fold})", losses))
                models.append((f"head seed {seed}", _load(str(path))))
            for set_name, tiles in held.items():
                for name, model in models:
                    sc = evaluate_bare(model, tiles)
                    folds_out[f"{fold}|{name}|{set_name}"] = sc.as_dict()
                    print(_table_row(f"{fold}: {name} on {set_name}", sc), flush=True)
                    key = f"{name}|{set_name}"
                    total = pooled.setdefault(key, BareScore())
                    total.pixel, total.objects = total.pixel + sc.pixel, total.objects + sc.objects
        out[protocol] = {"pooled": {k: v.as_dict() for k, v in pooled.items()}, "folds": folds_out}
        for key, sc in pooled.items():
            print(_table_row(f"{protocol} pooled: {key}", sc), flush=True)
    return out


# -- command line -----------------------------------------------------------------------------------------------
def _data_root(arg: str | None) -> Path:
    import os

    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    root = Path(arg or os.environ.get("SOILWATCH_SHARED_DATA") or default)
    if not all((root / s).is_dir() for s in LANDCOVER_SETS):
        raise TrainingError(
            f"the land-cover sets {LANDCOVER_SETS} are not under {root} (--data or SOILWATCH_SHARED_DATA)"
        )
    return root


def _table_row(name: str, s: BareScore) -> str:
    p, o = s.pixel, s.objects
    return (f"{name:34s} px P {p.precision:.3f} R {p.recall:.3f} F1 {p.f1:.3f} IoU {p.iou:.3f} | "
            f"obj P {o.precision:.3f} ({o.hits}/{o.predicted}) R {o.recall:.3f} ({o.found}/{o.true})")


def main(argv: Sequence[str] | None = None) -> int:
    from models.changenet import SHIPPED_WEIGHTS, save_weights

    ap = argparse.ArgumentParser(prog="python -m training.bare", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train the bare-soil head on land-cover sets")
    tr.add_argument("--base", default=str(SHIPPED_WEIGHTS), help="ChangeNet weights whose encoder is used (frozen)")
    tr.add_argument("--sets", default=",".join(LANDCOVER_SETS))
    tr.add_argument("--steps", type=int, default=BareConfig.steps)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("-o", "--output", required=True)
    ev = sub.add_parser("eval", help="score one-date models on land-cover sets")
    ev.add_argument("--model", action="append", required=True,
                    help="baseline or a .pt with a bare-soil head (repeatable)")
    ev.add_argument("--sets", default=",".join(LANDCOVER_SETS))
    ev.add_argument("--json")
    rp = sub.add_parser("reproduce", help="both protocols, seeds 0-2, and the baseline (the model card's table)")
    rp.add_argument("--seeds", default="0,1,2")
    rp.add_argument("--steps", type=int, default=BareConfig.steps)
    rp.add_argument("--work", default="bare-runs", help="folder for the held-out weights")
    rp.add_argument("--json")
    for p in (tr, ev, rp):
        p.add_argument("--data",
                       help="folder with the landcover_* sets (default: SOILWATCH_SHARED_DATA, ../shared/data)")
        p.add_argument("--resolution", type=float, default=1.0,
                       help="eval: ground resolution (m) the tiles are resampled to; 0 = as they are")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = _data_root(args.data)
        res = args.resolution or None
        if args.cmd == "train":
            cfg = BareConfig(sets=tuple(args.sets.split(",")), steps=args.steps, seed=args.seed)
            net, losses = train_bare_head(args.base, load_landcover(root, cfg.sets), cfg, on_log=print)
            cmd = "python -m training.bare " + " ".join(sys.argv[1:] if argv is None else argv)
            side = save_weights(net, args.output, _meta(args.base, cfg, cmd, losses))
            print(f"wrote {args.output} (sha256 {side['sha256'][:12]}…)")
            return 0
        report: dict[str, Any] = {"resolution_m": res, "min_area_m2": 200.0, "date": _dt.date.today().isoformat(),
                                  "rows": {}, "command": "python -m training.bare " + " ".join(
                                      sys.argv[1:] if argv is None else argv)}
        if args.cmd == "eval":
            for s in args.sets.split(","):
                tiles = tiles_at(load_landcover(root, [s]), res)
                for spec in args.model:
                    sc = evaluate_bare(_load(spec), tiles)
                    report["rows"][f"{spec}|{s}"] = sc.as_dict()
                    print(_table_row(f"{spec} on {s}", sc), flush=True)
        else:
            seeds = [int(v) for v in args.seeds.split(",")]
            report["protocols"] = reproduce(root, seeds, args.steps, Path(args.work), res)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return 0
    except (TrainingError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
