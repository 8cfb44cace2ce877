"""The abuse scenarios (reliability/abuse.py) at CI size: hostile requests and files get a recorded
2xx rejection, never a 5xx from parsing, never a hang."""

from __future__ import annotations

import pytest

from reliability import abuse
from reliability.harness import SERVICES, stack_settings


def test_fuzzed_cloudevents_never_get_a_5xx_from_parsing_nor_hang(tmp_path):
    row = abuse.abuse_events(tmp_path, 60)
    assert row["details"]["bad"] == []
    assert row["details"]["hangs"] == 0, row["details"]["live"]["slow"]
    n_cases = len(abuse.hostile_requests(stack_settings(tmp_path / "x"), "s" + "a" * 12 + "-n" + "b" * 8))
    assert row["details"]["branches"]["issue_13"] == 4 * n_cases
    assert row["events"] == 4 * (60 + n_cases) + row["details"]["live"]["requests"]
    assert row["details"]["live"]["requests"] == 4 * (n_cases + 7)
    # the API browser is not served over HTTP, and the slow clients were dropped, not answered late
    answers = row["details"]["live"]["answers"]
    for service in SERVICES:
        for path in ("docs", "openapi.json", "redoc"):
            assert answers[f"{service} GET /{path}"] == 404
        assert answers[f"{service} headers never finished"] == "dropped"
        assert answers[f"{service} body never finished"] in ("dropped", 400)
        assert answers[f"{service} 20 MB chunked body"] == 400 or str(answers[f"{service} 20 MB chunked body"]).startswith("no answer")
        assert answers[f"{service} 20 MB declared body"] in (400, 413) or str(answers[f"{service} 20 MB declared body"]).startswith("no answer")


@pytest.mark.slow
def test_hostile_names_and_malformed_edf_are_rejected_fast_beside_a_good_night(tmp_path):
    row = abuse.abuse_files(tmp_path, 1)
    assert row["lost"] == 0, row["details"]["lost"]
    assert row["duplicated"] == 0, row["details"].get("duplicated_runs")
    assert row["details"]["wrong"] == []
    assert row["details"]["rejected_recorded"] == row["details"]["malformed"]
    assert row["details"]["max_seconds_per_file"] < abuse.HANG_S  # an outcome (no hang), not a benchmark
