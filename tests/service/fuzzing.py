"""Property-based fuzzing of the whole OpenAPI schema with schemathesis, shared by the test and the soak run.

:func:`seed_service` fills a migrated database through the real API (districts and users come from
``tests/service/conftest.py``): imagery, a project list, a finished scan with patches, a review, an
assignment and a field photo. :func:`fuzz_app` then sends schemathesis-generated requests (valid and
deliberately invalid, seeded) to every operation of ``/openapi.json``, once for each token given, and
checks every response: no 5xx, status code / content type / body / headers as documented, and every
error an ``application/problem+json`` body with ``title``, ``detail`` and the right ``status``.
Failures are collected (not raised), so one run lists every distinct bug.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import Failure, FailureGroup

from tests.service import project_files, scan_files

__all__ = ["SeededIds", "FuzzReport", "seed_service", "fuzz_app", "problem_json", "TOKENS"]

#: The identities every operation is fuzzed with: token name in the seeded users → label.
TOKENS = {"admin": "admin", "supervisor": "district supervisor", "inspector": "inspector", "invalid": "invalid token"}
PROBLEM_JSON = "application/problem+json"
_CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)


@dataclass
class SeededIds:
    """Ids of the rows :func:`seed_service` made, used as path parameters besides generated ones."""

    project_ids: list[int]
    import_ids: list[int]
    imagery_ids: list[int]
    patch_ids: list[int]
    scan_ids: list[int]
    photo_names: list[str]

    def for_path(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Every combination of seeded values for the path parameters ``names`` (empty when one is unknown)."""
        pools: dict[str, list[Any]] = {
            "project_id": self.project_ids,
            "import_id": self.import_ids,
            "imagery_id": self.imagery_ids,
            "patch_id": self.patch_ids[:3],
            "scan_id": self.scan_ids,
            "photo_name": self.photo_names,
        }
        combos: list[dict[str, Any]] = [{}]
        for name in names:
            if name not in pools or not pools[name]:
                return []
            combos = [{**c, name: v} for c in combos for v in pools[name]]
        return combos


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 90, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def seed_service(client: Any, tokens: dict[str, str], folder: Path) -> SeededIds:
    """Fill the service behind ``client`` (a TestClient of an app *with* its scan worker) through the API."""
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    supervisor = {"Authorization": f"Bearer {tokens['supervisor']}"}
    inspector = {"Authorization": f"Bearer {tokens['inspector']}"}
    folder.mkdir(parents=True, exist_ok=True)
    imported = client.post("/api/v1/projects/import", headers=supervisor,
                           files={"file": ("清单.zip", project_files.shapefile_zip(folder).read_bytes())})  # fmt: skip
    if imported.status_code != 201:
        raise RuntimeError(f"seeding: project import failed: {imported.status_code} {imported.text}")
    before, after = scan_files.upload_pair(client, supervisor, folder / "tiles")
    started = client.post("/api/v1/scans", headers=supervisor,
                          json={"before_imagery_id": before, "after_imagery_id": after})  # fmt: skip
    if started.status_code != 202:
        raise RuntimeError(f"seeding: scan failed to start: {started.status_code} {started.text}")
    scan = scan_files.wait_for(client, supervisor, started.json()["id"])
    if scan["status"] != "succeeded":
        raise RuntimeError(f"seeding: scan ended {scan['status']}: {scan}")
    patches = client.get("/api/v1/patches", headers=admin, params={"limit": 500}).json()["data"]
    patch_ids = [p["id"] for p in patches]
    if not patch_ids:
        raise RuntimeError("seeding: the scan found no patches")
    first = client.get(f"/api/v1/patches/{patch_ids[0]}", headers=inspector)
    reviewed = client.post(f"/api/v1/patches/{patch_ids[0]}/reviews",
                           headers={**inspector, "If-Match": first.headers["ETag"]},
                           json={"verdict": "confirmed_violation", "note": "现场复核: 新开挖"})  # fmt: skip
    if reviewed.status_code != 201:
        raise RuntimeError(f"seeding: review failed: {reviewed.status_code} {reviewed.text}")
    photo = client.post(f"/api/v1/patches/{patch_ids[0]}/photos", headers=inspector,
                        files={"file": ("site.png", _png(), "image/png")})  # fmt: skip
    if photo.status_code != 201:
        raise RuntimeError(f"seeding: photo upload failed: {photo.status_code} {photo.text}")
    projects = client.get("/api/v1/projects", headers=admin).json()["data"]
    return SeededIds(
        project_ids=[p["id"] for p in projects],
        import_ids=[imported.json()["id"]],
        imagery_ids=[before, after],
        patch_ids=patch_ids,
        scan_ids=[scan["id"]],
        photo_names=[photo.json()["url"].rsplit("/", 1)[-1]],
    )


def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is ``application/problem+json`` with a string ``title`` and ``detail`` and its ``status``."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if content_type != PROBLEM_JSON:
        raise AssertionError(f"{response.status_code} answered as {content_type!r}, not {PROBLEM_JSON}")
    body = json.loads(response.content)
    missing = [k for k in ("title", "detail") if not isinstance(body.get(k), str) or not body[k]]
    if missing:
        raise AssertionError(f"problem body lacks {', '.join(missing)}: {body}")
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem status {body.get('status')!r} is not the HTTP status {response.status_code}")
    return None


@dataclass
class FuzzReport:
    """What a fuzz run did: cases per operation, statuses, and each distinct failure with one reproduction."""

    cases: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "seconds": round(self.seconds, 1),
            "operations": len(self.per_operation),
            "statuses": dict(sorted(self.statuses.items())),
            "distinct_failures": len(self.failures),
            "failures": [
                {"operation": op, "failure": kind, "example": text} for (op, kind), text in self.failures.items()
            ],  # fmt: skip
            "server_tracebacks": self.server_errors[:20],
        }

    def describe(self) -> str:
        lines = [f"{len(self.failures)} distinct failures in {self.cases} cases:"]
        for (op, kind), text in self.failures.items():
            lines.append(f"- {op}: {kind}\n    {text[:1500]}")
        lines += [f"server traceback:\n{tb}" for tb in self.server_errors[:5]]
        return "\n".join(lines)


class _Tracebacks(logging.Handler):
    """Collects the tracebacks that ``service.api.problems`` logs for unhandled errors (the 500s)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and len(self.into) < 100:
            self.into.append(record.getMessage() + "\n" + "".join(traceback.format_exception(*record.exc_info)))


def _order(method: str, path: str) -> int:
    """Reads first, then writes, deletes last, so the seeded rows serve most operations."""
    return {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}.get(method.upper(), 1)


def fuzz_app(
    app: FastAPI,
    tokens: dict[str, str],
    ids: SeededIds,
    *,
    max_examples: int,
    seed: int = 20240501,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    operations: Callable[[str, str], bool] | None = None,
    report: FuzzReport | None = None,
) -> FuzzReport:
    """Fuzz every operation of ``app`` with each token of ``tokens`` (name → token; ``"invalid"`` is made up).

    ``max_examples`` cases per operation, token and generation mode; half of the cases of an operation
    with path parameters use seeded ids. Returns the (updated) :class:`FuzzReport`.
    """
    load_all_checks()
    checks = [CHECKS.get_one(name) for name in _CHECK_NAMES]
    report = report or FuzzReport()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    handler = _Tracebacks(report.server_errors)
    problems_log = logging.getLogger("service.api.problems")
    problems_log.addHandler(handler)
    started = time.perf_counter()
    try:
        ops = [r.ok() for r in schema.get_all_operations()]
        ops.sort(key=lambda op: _order(op.method, op.path))
        if operations is not None:
            ops = [op for op in ops if operations(op.method.upper(), op.path)]
        # The invalid token goes last: its failed sign-ins trip the per-address limiter (429 for everyone).
        for name in sorted(tokens, key=lambda n: n == "invalid"):
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            for op in ops:
                known = ids.for_path([p.name for p in op.path_parameters])
                for mode in modes:
                    _fuzz_operation(op, headers, name, mode, known, checks, report, max_examples=max_examples,
                                    seed=seed)  # fmt: skip
    finally:
        problems_log.removeHandler(handler)
        report.seconds += time.perf_counter() - started
    return report


def _fuzz_operation(op: Any, headers: dict[str, str], who: str, mode: GenerationMode, known: list[dict[str, Any]],
                    checks: list[Any], report: FuzzReport, *, max_examples: int, seed: int) -> None:  # fmt: skip
    label = f"{op.method.upper()} {op.path}"
    strategy = op.as_strategy(generation_mode=mode, headers=headers)
    if known:
        strategy = st.one_of(strategy, *[op.as_strategy(generation_mode=mode, headers=headers, path_parameters=k)
                                         for k in known])  # fmt: skip

    @hypothesis.settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                         print_blob=False)  # fmt: skip
    @hypothesis.seed(seed)
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the in-process transport re-raises what the app did not handle (a 500)
            key = (label, f"unhandled {type(exc).__name__}")
            if key not in report.failures:
                curl = case.as_curl_command(headers=None)[:800]
                report.failures[key] = f"[{who}, {mode.value}] {exc!s:.300}\n    {curl}"
                report.server_errors.append("".join(traceback.format_exception(exc))[-3000:])
            report.cases += 1
            return
        report.cases += 1
        report.per_operation[label] += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, additional_checks=[problem_json], headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                _record(report, label, who, mode, failure, case, response)
        except AssertionError as exc:  # raised by a plain check outside schemathesis' own failures
            _record(report, label, who, mode, exc, case, response)

    with contextlib.suppress(hypothesis.errors.Unsatisfiable):  # nothing to make invalid (no parameters at all)
        run()


def _record(report: FuzzReport, label: str, who: str, mode: GenerationMode, failure: BaseException, case: Any,
            response: Any) -> None:  # fmt: skip
    title = failure.title if isinstance(failure, Failure) else f"{type(failure).__name__}: {failure}"
    key = (label, f"{title} (HTTP {response.status_code})")
    if key in report.failures:
        return
    message = failure.message if isinstance(failure, Failure) else str(failure)
    body = response.content[:400].decode("utf-8", "replace")
    report.failures[key] = (f"[{who}, {mode.value}] {message.strip()[:600]}\n    response: {body}\n    "
                            f"{case.as_curl_command(headers=None)[:800]}")  # fmt: skip
