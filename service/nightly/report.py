"""The nightly report: Markdown + CSV (+ a PNG overview per district), and the optional webhook POST.

Counts per district and category, the suspected violations (疑似…) of the run by priority, what
failed (unreadable files, failed units, jobs that could not be planned), and the timings.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.core.config import Settings
from service.exports import neutralise_formula
from service.models import District, NightlyJob, Patch, ScanUnit
from service.vocab import CATEGORY_LABELS, Category

__all__ = ["write_report", "post_webhook"]

log = logging.getLogger(__name__)
_SUSPECTED = [c.value for c in Category if c.value.startswith("suspected_")]
_COLOURS = {"suspected_unapproved": (220, 30, 30), "suspected_out_of_bounds": (240, 140, 0),
            "suspected_relocated": (200, 60, 200), "compliant": (40, 160, 60)}  # fmt: skip


def _label(category: str | None) -> str:
    try:
        return CATEGORY_LABELS[Category(category)] if category else "未判别"
    except ValueError:
        return str(category)


def write_report(factory: sessionmaker[Session], settings: Settings, run_id: int, out_dir: Path, result: Any,
                 *, top: int = 200) -> dict[str, Any]:  # fmt: skip
    """Write ``report.md``, ``counts.csv``, ``suspected.csv`` and ``overview-<district>.png``; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with factory() as session:
        jobs = session.scalars(select(NightlyJob).where(NightlyJob.run_id == run_id).order_by(NightlyJob.id)).all()
        scan_ids = [j.scan_id for j in jobs if j.scan_id is not None]
        patches = session.scalars(select(Patch).where(Patch.scan_id.in_(scan_ids)).order_by(Patch.id)).all()
        names = {d.code: d.name for d in session.scalars(select(District))}
        failed_units = session.execute(
            select(ScanUnit.job_id, ScanUnit.col_off, ScanUnit.row_off, ScanUnit.width, ScanUnit.height,
                   ScanUnit.attempts, ScanUnit.error)
            .where(ScanUnit.job_id.in_([j.id for j in jobs]), ScanUnit.status == "failed")
        ).all()  # fmt: skip
        counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        for p in patches:
            c = counts[(p.district_code or "", p.category or "")]
            c[0] += 1
            c[1] += p.area_m2
        suspected = sorted((p for p in patches if p.category in _SUSPECTED),
                           key=lambda p: (-p.priority, -p.area_m2, p.patch_code))  # fmt: skip
        _write_counts(out_dir / "counts.csv", counts, names)
        _write_suspected(out_dir / "suspected.csv", suspected, names)
        pngs = _write_overviews(out_dir, session, patches)
        disc = getattr(result, "discovery", None)
        unreadable = list(disc.unreadable) if disc else []
        summary: dict[str, Any] = {
            "run_id": run_id,
            "resumed": bool(getattr(result, "resumed", False)),
            "scenes_catalogued": len(disc.catalogued) if disc else 0,
            "scenes_known": disc.known if disc else 0,
            "unreadable_files": [{"path": p, "reason": r} for p, r in unreadable],
            "jobs": [{"id": j.id, "status": j.status, "before_date": str(j.before_date) if j.before_date else None,
                      "after_date": str(j.after_date), "units": j.units_total, "units_failed": j.units_failed,
                      "area_km2": round(j.area_km2, 3), "patches": j.patch_count, "message": j.message}
                     for j in jobs],  # fmt: skip
            "patches": len(patches),
            "suspected": len(suspected),
            "counts": [{"district": d, "category": c, "patches": int(n), "area_m2": round(a, 1)}
                       for (d, c), (n, a) in sorted(counts.items())],  # fmt: skip
            "failed_units": [{"job": j, "col": c, "row": r, "width": w, "height": h, "attempts": n, "error": e}
                             for j, c, r, w, h, n, e in failed_units],  # fmt: skip
            "timings_s": {k: round(v, 2) for k, v in getattr(result, "timings", {}).items()},
            "files": ["report.md", "counts.csv", "suspected.csv", *pngs],
        }
        _write_markdown(out_dir / "report.md", summary, suspected[:top], names)
    return summary


def _write_counts(path: Path, counts: dict[tuple[str, str], list[float]], names: dict[str, str]) -> None:
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel opens Chinese text correctly
        w = csv.writer(f)
        w.writerow(["district_code", "district", "category", "类别", "patches", "area_m2"])
        for (d, c), (n, a) in sorted(counts.items()):
            w.writerow([neutralise_formula(d), neutralise_formula(names.get(d, "")), c, _label(c), int(n), f"{a:.1f}"])


def _write_suspected(path: Path, patches: list[Patch], names: dict[str, str]) -> None:
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["patch_code", "priority", "category", "类别", "change_type", "district_code", "district",
                    "area_m2", "area_mu", "lon", "lat", "confidence", "before_date", "after_date"])  # fmt: skip
        for p in patches:
            # district names come from an imported boundary file: a spreadsheet must not run them as formulas
            code = p.district_code or ""
            district = [neutralise_formula(code), neutralise_formula(names.get(code, ""))]
            w.writerow([p.patch_code, p.priority, p.category, _label(p.category), p.change_type, *district,
                        f"{p.area_m2:.1f}", f"{p.area_mu:.2f}", f"{p.lon:.6f}", f"{p.lat:.6f}",
                        "" if p.confidence is None else f"{p.confidence:.3f}",
                        p.before_date, p.after_date])  # fmt: skip


def _write_markdown(path: Path, s: dict[str, Any], suspected: list[Patch], names: dict[str, str]) -> None:
    lines = [f"# Nightly scan — run {s['run_id']}", ""]
    lines.append(f"{s['patches']} patches, {s['suspected']} suspected violations (疑似, to verify on site). "
                 f"Scenes: {s['scenes_catalogued']} new, {s['scenes_known']} already catalogued, "
                 f"{len(s['unreadable_files'])} unreadable." + (" This run resumed an interrupted one." if s["resumed"]
                                                                else ""))  # fmt: skip
    lines += ["", "## Patches per district and category", "", "| district | category | patches | area (m²) |",
              "| --- | --- | ---: | ---: |"]  # fmt: skip
    for c in s["counts"]:
        d = c["district"]
        name = names.get(d, d) or "—"
        lines.append(f"| {name} {d} | {_label(c['category'])} | {c['patches']} | {c['area_m2']:.0f} |")
    lines += ["", "## Suspected violations by priority", ""]
    if suspected:
        lines += ["| patch | priority | category | change | district | area (亩) | lon, lat |",
                  "| --- | ---: | --- | --- | --- | ---: | --- |"]  # fmt: skip
        for p in suspected:
            lines.append(f"| {p.patch_code} | {p.priority} | {_label(p.category)} | {p.change_type or ''} | "
                         f"{names.get(p.district_code or '', p.district_code or '—')} | {p.area_mu:.1f} | "
                         f"{p.lon:.5f}, {p.lat:.5f} |")  # fmt: skip
        if s["suspected"] > len(suspected):
            lines.append(f"\n… and {s['suspected'] - len(suspected)} more in suspected.csv.")
    else:
        lines.append("None.")
    lines += ["", "## Pairs scanned", "", "| job | before → after | units | failed | km² | patches | note |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for j in s["jobs"]:
        lines.append(f"| {j['id']} {j['status']} | {j['before_date'] or '—'} → {j['after_date']} | {j['units']} | "
                     f"{j['units_failed']} | {j['area_km2']:.1f} | {j['patches']} | {j['message'] or ''} |")
    lines += ["", "## What failed", ""]
    failures = [f"- unreadable file `{u['path']}`: {u['reason']}" for u in s["unreadable_files"]]
    failures += [f"- job {u['job']} unit (col {u['col']}, row {u['row']}, {u['width']} x {u['height']} px) after "
                 f"{u['attempts']} tries: {u['error']}" for u in s["failed_units"]]  # fmt: skip
    failures += [f"- job {j['id']} ({j['before_date']} → {j['after_date']}): {j['message']}" for j in s["jobs"]
                 if j["status"] == "failed"]  # fmt: skip
    lines += failures or ["Nothing."]
    lines += ["", "## Timings", ""] + [f"- {k}: {v:.1f} s" for k, v in s["timings_s"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_overviews(out_dir: Path, session: Session, patches: Sequence[Patch], size: int = 512) -> list[str]:
    """A small PNG per district: its boundary (or the patches' extent) and the patches coloured by category."""
    from PIL import Image, ImageDraw

    by_district: dict[str, list[Patch]] = defaultdict(list)
    for p in patches:
        by_district[p.district_code or "none"].append(p)
    files = []
    for code, group in sorted(by_district.items()):
        district = session.get(District, code) if code != "none" else None
        boundary = district.geometry if district is not None else None
        xs = [v for p in group for v in (p.min_x, p.max_x) if v is not None]
        ys = [v for p in group for v in (p.min_y, p.max_y) if v is not None]
        left, bottom, right, top = boundary.bounds if boundary is not None else (min(xs), min(ys), max(xs), max(ys))
        span = max(right - left, top - bottom, 1e-6)
        scale = (size - 20) / span

        def px(x: float, y: float, left: float = left, top: float = top, scale: float = scale) -> tuple[float, float]:
            return (10 + (x - left) * scale, 10 + (top - y) * scale)

        img = Image.new("RGB", (size, size), (250, 250, 245))
        draw = ImageDraw.Draw(img)
        if boundary is not None:
            for poly in getattr(boundary, "geoms", [boundary]):
                draw.line([px(x, y) for x, y in poly.exterior.coords], fill=(90, 90, 90), width=2)
        for p in group:
            colour = _COLOURS.get(p.category or "", (60, 60, 220))
            for poly in getattr(p.geometry, "geoms", [p.geometry]):
                pts = [px(x, y) for x, y in poly.exterior.coords]
                if len(pts) > 2:
                    draw.polygon(pts, fill=colour, outline=colour)
            cx, cy = px(p.lon, p.lat)
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], outline=colour)  # tiny patches stay visible
        name = f"overview-{code}.png"
        img.save(out_dir / name)
        files.append(name)
    return files


def post_webhook(url: str, summary: dict[str, Any], *, timeout_s: float = 10.0) -> str | None:
    """POST the summary as JSON; returns None on success, else why it failed (never raises)."""
    import httpx

    try:
        response = httpx.post(url, json=summary, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("webhook %s failed: %s", url, exc)
        return f"{type(exc).__name__}: {exc}"
    return None
