"""``benchmarks/bench_load.py`` in miniature: 2 clients for 2 s against a real server while a scan runs.

About 10 s, so not marked slow. Only correctness is checked — every request answered without a 5xx
or transport error, and no unexpected 4xx; speed is never asserted (the figures are in BENCHMARKS.md).
"""

from __future__ import annotations

from benchmarks.bench_load import LoadOptions, format_report, run_load


def test_a_short_load_run_reports_no_errors(tmp_path):
    # at least 12 requests however slow the machine is: a count, not a rate, is what this test may rely on
    opts = LoadOptions(clients=2, duration_s=2.0, patches=500, projects=20, chip_patches=20, tile_px=256,
                       min_requests=12, out_dir=tmp_path / "load")  # fmt: skip
    report = run_load(opts)
    text = format_report(report)
    overall = report["overall"]
    assert overall["requests"] >= 12, text
    assert overall["errors"] == 0 and overall["unexpected_4xx"] == 0, text
    assert sum(k["requests"] for k in report["kinds"].values()) == overall["requests"]
    assert all(report["kinds"][kind]["requests"] > 0 for kind in ("list", "detail")), text
    assert not report["scan_failures"], text
    assert "| **all** |" in text
