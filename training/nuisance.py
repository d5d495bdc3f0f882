"""False alarms on pairs whose only difference is a nuisance: issue #4's "low false alarms on the ploughing and
seasonal cases", measured.

No real change set here isolates ploughing or the seasons (SZTAKI even labels fresh plough-land as change),
so the pairs are made, with label 0 everywhere, in two ways:

- **land-cover** (real texture): each single-date land-cover tile of ``../shared/data`` (``landcover_loveda``:
  rural China at 0.3 m; ``landcover_deepglobe``: 0.5 m), resampled whole to ``resolution_m``, is the before
  image; the after image is the same tile with its fields and grass turned the colour of bare soil, keeping
  their texture (harvest, ploughing, a dry season: :func:`training.landcover._season`), and each date gets its
  own colour jitter. The soil colour is drawn from the bare ground of the land-cover tiles. The shipped model
  never trained on these tiles; the change itself is soilwatch's, not a photograph's.
- **synthetic**: :mod:`detector.synthetic` scenes with no construction (``site_density=0``) and the seasonal
  nuisances on (``seasonal=1``): crop rotation, harvest, ploughing, phenology, haze, shadows, water level and
  colour, canopy colour, old sites, radiometric differences. Their seeds are not any training run's, but the
  generator is the one the synthetic training scenes come from: a sanity check, not evidence about real imagery.

Each pair is scored as :mod:`training.evaluate` would (the detector's normalisation, windows, the model's
threshold, objects under ``min_area_m2`` dropped): the share of pixels flagged, the share of the *nuisance*
pixels flagged (the recoloured fields; for synthetic scenes every pixel), and false patches per km².

``python -m training.nuisance --model changenet --model baseline --json nuisance.json``
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training import augment
from training.metrics import min_area_px, score_objects

__all__ = ["NuisancePair", "landcover_pairs", "main", "score_model", "synthetic_pairs"]

#: Synthetic nuisance scenes are drawn from seeds at and above this (training uses ``seed * 100_003 + i``, i < 1000).
SYNTHETIC_SEED_BASE = 9_000_000


@dataclass(frozen=True)
class NuisancePair:
    """A pair with no change: ``before``/``after`` float32 ``(bands, h, w)`` in [0, 1] (bands ``bands``),
    ``nuisance`` bool ``(h, w)`` the pixels the nuisance touched, ``valid`` bool ``(h, w)``."""

    kind: str
    name: str
    before: np.ndarray
    after: np.ndarray
    bands: tuple[str, ...]
    nuisance: np.ndarray
    valid: np.ndarray
    resolution_m: float


def synthetic_pairs(n: int = 8, *, size: int = 512, resolution_m: Sequence[float] = (0.5, 1.0, 2.0, 4.0)
                    ) -> Iterator[NuisancePair]:
    """``n`` synthetic scenes without construction, seasonal nuisances on, resolutions cycling through
    ``resolution_m``; RGB + NIR, normalised as the detector does."""
    from detector.synthetic import BAND_NAMES, make_scene
    from training.data import normalise_pair

    for i in range(n):
        res = float(resolution_m[i % len(resolution_m)])
        sc = make_scene(height=size, width=size, resolution_m=res, seed=SYNTHETIC_SEED_BASE + i,
                        dtype="uint8" if i % 2 == 0 else "uint16", site_density=0.0, seasonal=1.0)
        if sc.change.any():  # the generator's promise; a pair with change would not measure false alarms
            raise AssertionError(f"synthetic scene {i} without sites has changed pixels")
        b, a = normalise_pair(sc.before.astype(np.float32), sc.after.astype(np.float32))
        every = np.ones(sc.change.shape, bool)
        yield NuisancePair("synthetic", f"scene{i}_{res:g}m", b, a, tuple(BAND_NAMES), every, every, res)


def landcover_pairs(root: str | Path, sets: Sequence[str] = ("landcover_loveda", "landcover_deepglobe"), *,
                    resolution_m: float = 1.0, seed: int = 0, jitter: float = 0.05) -> Iterator[NuisancePair]:
    """One pair per land-cover tile with fields and grass (see the module docstring); RGB."""
    from training.landcover import _season, load_landcover

    tiles = load_landcover(root, list(sets))
    soil_pixels = [t.image[:, t.bare].astype(np.float32) for t in tiles if t.bare.sum() >= 100]
    if not soil_pixels:
        raise ValueError(f"no bare ground in the land-cover sets {list(sets)!r}: no soil colour to draw")
    soils = np.stack([p.mean(axis=1) for p in soil_pixels])  # one mean soil colour per tile with bare ground
    rng = np.random.default_rng([seed, 0x9015])
    for t in tiles:
        if t.seasonal is None or t.seasonal.sum() < 100:
            continue
        h, w = t.bare.shape
        size = max(16, int(round(min(h, w) * t.resolution_m / resolution_m)))
        side = min(h, w)  # square tiles: resample the central square whole
        r0, c0 = (h - side) // 2, (w - side) // 2
        crop = {"image": t.image[None, :, r0:r0 + side, c0:c0 + side].astype(np.float32),
                "mask": t.seasonal[None, r0:r0 + side, c0:c0 + side].astype(np.uint8),
                "valid": t.valid[None, r0:r0 + side, c0:c0 + side]}
        crop = augment.resize(crop, size)
        fields = crop["mask"][0].astype(bool) & crop["valid"][0]
        before = crop["image"][0]
        after = _season(before, fields, soils[int(rng.integers(len(soils)))], rng).astype(np.float32)
        pair = {"image": np.stack([before, after]), "mask": crop["mask"], "valid": crop["valid"]}
        pair = augment.jitter_dates(pair, rng, strength=jitter)
        yield NuisancePair("landcover", t.name, pair["image"][0], pair["image"][1], ("red", "green", "blue"),
                           fields, crop["valid"][0], resolution_m)


@dataclass
class _Tally:
    """Counts over the pairs of one kind: valid pixels, flagged ones, nuisance pixels and flagged ones among them,
    kept patches (all false: nothing changed), area."""

    pixels: int = 0
    flagged: int = 0
    nuisance: int = 0
    nuisance_flagged: int = 0
    patches: int = 0
    km2: float = 0.0
    pairs: int = 0

    def add(self, pred: np.ndarray, p: NuisancePair, min_area_m2: float) -> None:
        v = p.valid
        self.pixels += int(v.sum())
        self.flagged += int((pred & v).sum())
        self.nuisance += int((p.nuisance & v).sum())
        self.nuisance_flagged += int((pred & p.nuisance & v).sum())
        cut = min_area_px(min_area_m2, p.resolution_m)
        self.patches += score_objects(pred, np.zeros_like(pred), v, min_area_px=cut).predicted
        self.km2 += float(v.sum()) * p.resolution_m**2 / 1e6
        self.pairs += 1

    def as_dict(self) -> dict[str, Any]:
        def share(a: int, b: int) -> float | None:
            return round(a / b, 5) if b else None

        return {"pairs": self.pairs, "km2": round(self.km2, 4), "flagged_share": share(self.flagged, self.pixels),
                "nuisance_flagged_share": share(self.nuisance_flagged, self.nuisance),
                "false_patches": self.patches,
                "false_patches_per_km2": round(self.patches / self.km2, 2) if self.km2 else None}


def score_model(model: Any, pairs: Sequence[NuisancePair], *, min_area_m2: float = 200.0,
                threshold: float | None = None) -> dict[str, Any]:
    """Score one model on ``pairs``: a tally per kind of pair (see :class:`_Tally`'s fields)."""
    from training.evaluate import model_bands, predict_pair

    thr = model.info.threshold if threshold is None else threshold
    tallies: dict[str, _Tally] = {}
    for p in pairs:
        model_bands(model, p.bands)  # a clear error when the model needs bands the pair lacks
        pred = predict_pair(model, p.before, p.after, p.bands) >= thr
        tallies.setdefault(p.kind, _Tally()).add(pred, p, min_area_m2)
    return {"threshold": thr, "min_area_m2": min_area_m2, **{k: t.as_dict() for k, t in tallies.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    from models import load_model

    ap = argparse.ArgumentParser(prog="python -m training.nuisance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=None,
                    help="a registered model name or a weights file (repeatable; default: changenet and baseline)")
    ap.add_argument("--data", default=None, help="folder with the landcover_* sets (default: env "
                    "SOILWATCH_SHARED_DATA, else ../shared/data as soilwatch train)")
    ap.add_argument("--synthetic", type=int, default=8, help="synthetic nuisance scenes (512², default 8)")
    ap.add_argument("--resolution", type=float, default=1.0, help="land-cover pairs' resolution, m (default 1)")
    ap.add_argument("--model-config", default=None, help="YAML file of model settings given to every --model, as "
                    "soilwatch eval's (e.g. 'scales: [1.0]' runs ChangeNet at one scale)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    from typer import BadParameter

    from detector.cli.options import load_model_config

    try:
        config = load_model_config(Path(args.model_config) if args.model_config else None)
    except BadParameter as exc:  # an unreadable or non-mapping file: a usage error, as in soilwatch eval
        ap.error(exc.format_message())
    pairs = list(synthetic_pairs(args.synthetic))
    root = Path(args.data or os.environ.get("SOILWATCH_SHARED_DATA") or "../shared/data")
    if any((root / s).is_dir() for s in ("landcover_loveda", "landcover_deepglobe")):
        sets = [s for s in ("landcover_loveda", "landcover_deepglobe") if (root / s).is_dir()]
        pairs += list(landcover_pairs(root, sets, resolution_m=args.resolution))
    else:
        print(f"no land-cover sets under {str(root)!r}: only the synthetic pairs are scored", file=sys.stderr)
    cmd = " ".join(["python -m training.nuisance", *(argv if argv is not None else sys.argv[1:])])
    out: dict[str, Any] = {"command": cmd,
                           "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "data": str(root),
                           "synthetic_seed_base": SYNTHETIC_SEED_BASE, "models": {}}
    for spec in args.model or ["changenet", "baseline"]:
        model = load_model(spec) if config is None else load_model(spec, config=config)
        res = score_model(model, pairs)
        out["models"][spec] = {"label": model.info.label, "sha256": model.info.extra.get("sha256"),
                               "scales": model.info.extra.get("scales"), **res}
        for kind in ("synthetic", "landcover"):
            if kind in res:
                r = res[kind]
                print(f"{spec:>12} {kind:>9}: {r['pairs']} pairs, {r['km2']} km², flagged {r['flagged_share']}, "
                      f"nuisance flagged {r['nuisance_flagged_share']}, {r['false_patches']} false patches "
                      f"({r['false_patches_per_km2']} per km²)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
