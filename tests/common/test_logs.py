"""Log lines: one JSON object in Cloud Logging's shape, with the context of the event."""

from __future__ import annotations

import json
import logging

from sunrise_common.logs import JsonFormatter, bind, log_context, trace_from_header


def format_inside(**context) -> dict:
    record = logging.LogRecord("sunrise.test", logging.WARNING, __file__, 1, "stage %s failed", ("psg_prep",), None)
    with log_context(**context):
        bind(night_id="sabc-n1")
        return json.loads(JsonFormatter(project="proj").format(record))


def test_a_log_line_carries_severity_event_night_stage_and_trace():
    line = format_inside(event_id="e-1", stage="psg_prep", trace="abc123")
    assert line["severity"] == "WARNING"
    assert line["message"] == "stage psg_prep failed"
    assert (line["event_id"], line["night_id"], line["stage"]) == ("e-1", "sabc-n1", "psg_prep")
    assert line["logging.googleapis.com/trace"] == "projects/proj/traces/abc123"


def test_context_does_not_leak_out_of_its_block():
    format_inside(event_id="e-2")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "after", (), None)
    assert "event_id" not in json.loads(JsonFormatter().format(record))


def test_trace_ids_come_from_either_header_form():
    assert trace_from_header("105445aa7843bc8bf206b12000100000/1;o=1") == "105445aa7843bc8bf206b12000100000"
    assert trace_from_header("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_from_header(None) is None
