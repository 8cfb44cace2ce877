"""sunrise report carries the event-level and wake-specificity figures of each night's
agreement (issue 24)."""

from __future__ import annotations

from sunrise_cli.report import build_report


def test_the_report_pools_event_sensitivity_ppv_and_wake_specificity(scored_batch, tmp_path):
    folders = [b["dir"] / "results" for b in scored_batch[:4]]
    build_report(folders, tmp_path / "report")
    page = next((tmp_path / "report").glob("*.html")).read_text()
    assert "event sensitivity: obstructive apnea" in page
    assert "event ppv: obstructive event" in page
    assert "specificity (wake)" in page
