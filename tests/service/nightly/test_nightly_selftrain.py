"""``soilwatch scan --self-train``: each pair's model is adapted to it before the units run (service.nightly.adapt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from models.changenet import SHIPPED_WEIGHTS, file_sha256, load_weights
from service.core.config import Settings, get_settings
from service.db import make_engine, make_sessionmaker
from service.models import NightlyJob, Scan
from service.nightly.adapt import adapt_to_pair
from tests.fixtures import field_scene, write_tif
from tests.service.nightly import inbox as world
from tests.service.nightly.helpers import UNIT_PX, fresh_sqlite, options, run

pytestmark = pytest.mark.slow
STEPS = 5  # a few steps: what is tested is the plumbing and the provenance, not the gain (MODEL_CARD.md has that)


def _jobs(settings: Settings) -> list[tuple[NightlyJob, Scan | None]]:
    engine = make_engine(settings)
    with make_sessionmaker(engine)() as session:
        jobs = session.scalars(select(NightlyJob).order_by(NightlyJob.id)).all()
        out = [(j, session.get(Scan, j.scan_id) if j.scan_id else None) for j in jobs]
    engine.dispose()
    return out


def test_scan_self_trains_each_pair_from_the_cli(sqlite_template, tmp_path: Path, monkeypatch) -> None:
    settings = fresh_sqlite(sqlite_template, tmp_path, "scan")
    inbox = world.write_inbox(tmp_path / "inbox", broken=False)
    monkeypatch.setenv("SOILWATCH_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("SOILWATCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SOILWATCH_SCAN_SELF_TRAIN_STEPS", str(STEPS))
    get_settings.cache_clear()
    app = typer.Typer()
    from service.cli.scan import scan

    app.command()(scan)
    work, reports = tmp_path / "work", tmp_path / "reports"
    try:
        res = CliRunner().invoke(app, ["--inbox", str(inbox), "--work-dir", str(work), "--report-dir", str(reports),
                                       "--unit-px", str(UNIT_PX), "--workers", "1", "--no-progress", "--self-train"])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    (base_job, _), (job, scan) = _jobs(settings)
    assert base_job.status == "baseline"  # the first date has nothing to compare with: nothing to adapt
    assert job.status == "done" and scan is not None
    assert job.message.startswith(f"self-trained on this pair: {job.key[:16]}.pt, {STEPS} steps")
    adapted = work / "adapted" / f"{job.key[:16]}.pt"
    _, meta = load_weights(adapted, require_sidecar=True)  # hash checked
    # provenance: from the shipped weights, on this job's two mosaics, without labels
    assert meta["init"]["sha256"] == file_sha256(SHIPPED_WEIGHTS)
    assert meta["data"]["kind"] == "bureau-self-train" and "labels" not in meta["data"]
    assert (meta["data"]["before"]["path"], meta["data"]["after"]["path"]) == (job.before_path, job.after_path)
    assert meta["train_steps"] == STEPS and meta["seed"] == 0
    assert "+st." in scan.model  # the scan says which model found its patches
    # the adapted model still finds every site of the world (a few steps from the shipped start)
    assert scan.patch_count == len(world.SQUARES)
    md = next(reports.glob("run-*/report.md")).read_text(encoding="utf-8")
    assert "self-trained on this pair" in md and "- self_train_s: " in md


def _pair(tmp_path: Path) -> tuple[str, str]:
    before, after = field_scene(160, 160, squares=[(40, 40, 48, 48)], seed=5)
    return str(write_tif(tmp_path / "b.tif", before)), str(write_tif(tmp_path / "a.tif", after))


def _state(path: Path) -> dict:
    return load_weights(path)[0].state_dict()


def test_adapted_weights_survive_a_kill_and_a_cut_short_file_is_made_again(tmp_path: Path) -> None:
    before, after = _pair(tmp_path)
    out = tmp_path / "adapted" / "job.pt"
    first = adapt_to_pair("changenet", before, after, out, steps=STEPS, threads=1)
    assert first.adapted and first.model == str(out) and "earlier try" not in first.note
    digest, weights = file_sha256(out), _state(out)
    again = adapt_to_pair("changenet", before, after, out, steps=STEPS, threads=1)  # the rerun after a kill
    assert again.adapted and again.model == str(out) and again.note.endswith("(from an earlier try)")
    assert file_sha256(out) == digest
    out.write_bytes(out.read_bytes()[:1000])  # killed while writing: the sidecar's hash no longer matches
    remade = adapt_to_pair("changenet", before, after, out, steps=STEPS, threads=1)
    assert remade.adapted and "earlier try" not in remade.note
    remade_weights = _state(out)
    assert remade_weights.keys() == weights.keys()
    assert all(torch.equal(remade_weights[k], v) for k, v in weights.items())  # seeded: the same weights again
    # asked for more steps than the file was trained with: not reused
    longer = adapt_to_pair("changenet", before, after, out, steps=STEPS + 1, threads=1)
    assert "earlier try" not in longer.note and load_weights(out)[1]["train_steps"] == STEPS + 1
    # the model to adapt changed since (another weights file): not reused either
    other = tmp_path / "other.pt"
    shutil.copyfile(out, other)
    shutil.copyfile(out.with_suffix(".json"), other.with_suffix(".json"))
    newer = adapt_to_pair(str(other), before, after, out, steps=STEPS + 1, threads=1)
    assert newer.adapted and "earlier try" not in newer.note
    assert load_weights(out)[1]["init"]["sha256"] == file_sha256(other)


def test_a_pair_that_cannot_be_adapted_is_scanned_with_the_model_as_it_is(sqlite_template, tmp_path: Path,
                                                                          monkeypatch) -> None:  # fmt: skip
    before, after = _pair(tmp_path)
    out = tmp_path / "adapted" / "job.pt"
    plain = adapt_to_pair("baseline", before, after, out, steps=STEPS)
    assert (plain.model, plain.adapted) == ("baseline", False)
    assert plain.note == "not self-trained: 'baseline' is not a learned model" and not out.exists()

    # over the self-training memory cap: the scan goes on with the shipped model and says why
    monkeypatch.setattr("training.bureau._MAX_PSEUDO_PX", 10_000)
    settings = fresh_sqlite(sqlite_template, tmp_path, "scan")
    inbox = world.write_inbox(tmp_path / "inbox", broken=False)
    run(settings, options(inbox, tmp_path / "work", self_train=True, self_train_steps=STEPS))
    (_, _), (job, scan) = _jobs(settings)
    assert job.status == "done" and scan is not None
    assert job.message.startswith("not self-trained: the images' common area is")
    assert "+st." not in scan.model and scan.model.startswith("changenet@")
    assert scan.patch_count == len(world.SQUARES)
    assert not (tmp_path / "work" / "adapted").exists()
