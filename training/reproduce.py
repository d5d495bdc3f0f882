"""Reproduce the model card's held-out table in one command.

    python -m training.reproduce --data ../shared/data --out /tmp/sw_runs --json heldout.json

For every leave-one-set-out config (``training/configs/changenet_loso_*.yaml``) it trains the model (or, when the
config is the shipped recipe with only its name and scored sets changed, scores the shipped weights, which are the
same model), scores it on its held-out set, scores the spectral baseline on the same set, and prints one Markdown
row per model as in ``models/weights/MODEL_CARD.md``. About 20 minutes on 2 CPU cores. ``--as-detected`` scores the
map ``soilwatch detect`` writes instead of the bare thresholded one (``soilwatch eval --as-detected``). ChangeNet runs
at its default scales (1 and 0.5 since 2026-12-08); ``--scales 1`` scores it at one scale, as the card's tables
dated earlier were.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.train import TrainConfig, data_root, load_config

__all__ = ["CONFIGS", "heldout_rows", "main", "markdown_row"]

CONFIGS = Path(__file__).parent / "configs"
SHIPPED_CONFIG = CONFIGS / "changenet.yaml"


def _recipe(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` without what does not change the trained weights (its name and the sets scored at the end)."""
    return dataclasses.replace(cfg, name="", data=dataclasses.replace(cfg.data, eval_sets=()))


def markdown_row(label: str, scores: dict[str, Any]) -> str:
    px, ob = scores["pixel"], scores["object"]
    return (
        f"| {label} | {px['precision']:.3f} | {px['recall']:.3f} | {px['f1']:.3f} | {px['iou']:.3f} | "
        f"{ob['precision']:.3f} | {ob['recall']:.3f} | {ob['predicted']}/{ob['true']} |"
    )


def heldout_rows(
    configs: Sequence[Path],
    out: Path,
    *,
    root: Path | None = None,
    shipped: tuple[Path, Path] | None = None,
    say: Callable[[str], None] = print,
    as_detected: bool = False,
    scales: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Train (or reuse) and score each leave-one-set-out config; returns one dict per held-out set with the
    model's and the baseline's scores. ``shipped``: (its config, its weights) to reuse for an identical recipe.
    ``as_detected``: score as :func:`training.evaluate.evaluate` does with that flag. ``scales``: the scales ChangeNet
    runs at (None: its default, :data:`models.changenet.DEFAULT_SCALES`)."""
    from models import get_model
    from models.changenet import load_change_model
    from training.data import index_data
    from training.evaluate import evaluate
    from training.train import train

    out.mkdir(parents=True, exist_ok=True)
    baseline = get_model("baseline")
    rows = []
    shipped_recipe = _recipe(load_config(shipped[0])) if shipped is not None else None
    for path in configs:
        cfg = load_config(path)
        data = data_root(cfg, root)
        index = index_data(data, cfg.data.eval_sets)
        if shipped is not None and _recipe(cfg) == shipped_recipe:
            weights, source = shipped[1], f"{shipped[1]} (the shipped recipe: same data, seed and steps)"
        else:
            weights = out / f"{path.stem}.pt"
            say(f"training {path.name} → {weights}")
            train(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, eval_sets=())), weights, root=data,
                  command=f"python -m training.reproduce ({path.name})", progress=say)  # fmt: skip
            source = str(weights)
        change_model = load_change_model(weights, scales=scales)
        model = evaluate(change_model, index, spec=str(weights), as_detected=as_detected).as_dict()
        base = evaluate(baseline, index, spec="baseline", as_detected=as_detected).as_dict()
        for name in cfg.data.eval_sets:
            rows.append({"set": name, "config": path.name, "weights": source, "as_detected": as_detected,
                         "scales": list(change_model.scales), "model": model["sets"][name],
                         "baseline": base["sets"][name]})  # fmt: skip
            say(markdown_row(f"**{name}** ChangeNet held out", model["sets"][name]))
            say(markdown_row(f"{name} baseline", base["sets"][name]))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: as soilwatch train)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/sw_runs"), help="weights of the held-out models")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--as-detected", action="store_true",
                        help="score the map soilwatch detect writes (as soilwatch eval --as-detected)")
    parser.add_argument("--scales", type=float, nargs="+", default=None,
                        help="scales ChangeNet runs at (default: its own, 1 and 0.5; '--scales 1' gives the "
                        "one-scale tables dated before 2026-12-08)")
    args = parser.parse_args(argv)
    from models.changenet import SHIPPED_WEIGHTS, check_scales
    from training.errors import TrainingError

    if args.scales is not None:
        try:
            check_scales(args.scales)
        except ValueError as exc:
            parser.error(str(exc))  # exits 2 before anything is trained

    configs = sorted(CONFIGS.glob("changenet_loso_*.yaml"))
    try:
        rows = heldout_rows(configs, args.out, root=args.data, shipped=(SHIPPED_CONFIG, SHIPPED_WEIGHTS),
                            as_detected=args.as_detected, scales=args.scales)
    except (TrainingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n| set / model | px P | px R | px F1 | px IoU | obj P | obj R | objects pred/true |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(markdown_row(f"**{row['set']}** ChangeNet held out", row["model"]))
        print(markdown_row(f"{row['set']} baseline", row["baseline"]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
