"""Log lines: one JSON object in Cloud Logging's shape, with the context of the event."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path

from sunrise_common import logs
from sunrise_common.logs import JsonFormatter, bind, log_context, trace_from_header

REPO = Path(__file__).resolve().parents[2]


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


def lines_of(emit, name: str = "sunrise_common.test.fields", project: str = "") -> list[dict]:
    """The JSON lines logger ``name`` writes while ``emit(logger)`` runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(project))
    logger = logging.getLogger(name)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_fields_given_to_event_are_keys_of_the_line():
    (line,) = lines_of(lambda log: logs.event(log, logging.INFO, "psg prepared in %d s", 3, channels=12, n_epochs=960))
    assert line["message"] == "psg prepared in 3 s"
    assert (line["severity"], line["channels"], line["n_epochs"]) == ("INFO", 12, 960)


def test_a_field_passed_through_extra_reaches_the_line_instead_of_being_dropped():
    (plain, wrapped) = lines_of(lambda log: (log.info("a", extra={"channels": 7}),
                                             log.info("b", extra={"fields": {"labels": 2}})))
    assert plain["channels"] == 7
    assert wrapped["labels"] == 2 and "fields" not in wrapped


def test_event_below_the_level_writes_nothing_and_keeps_the_callers_location():
    def emit(log):
        log.setLevel(logging.INFO)
        logs.event(log, logging.DEBUG, "hidden", x=1)
        logs.event(log, logging.WARNING, "seen", x=2)

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    keep = Keep()
    logging.getLogger("sunrise_common.test.fields").addHandler(keep)
    try:
        assert [line["message"] for line in lines_of(emit)] == ["seen"]
    finally:
        logging.getLogger("sunrise_common.test.fields").removeHandler(keep)
    assert records[0].funcName == "emit" and records[0].pathname == __file__


def test_extras_never_overwrite_what_the_formatter_set():
    def emit(log):
        with log_context(stage="psg_prep", trace="t1"):
            log.warning("real", extra={"severity": "DEBUG", "time": "never", "logger": "other",
                                       "stage": "sunalgo", "logging.googleapis.com/trace": "x", "kept": 1})
            logs.event(log, logging.INFO, "ev", **{"severity": "DEBUG", "time": "never", "stage": "sunalgo"},
                       channels=3)

    plain, ev = lines_of(emit, project="proj")
    for line, severity, message in ((plain, "WARNING", "real"), (ev, "INFO", "ev")):
        assert (line["severity"], line["message"], line["logger"]) == (severity, message, "sunrise_common.test.fields")
        assert line["time"].endswith("Z") and line["stage"] == "psg_prep"
        assert line["logging.googleapis.com/trace"] == "projects/proj/traces/t1"
    assert plain["kept"] == 1 and ev["channels"] == 3


def test_loose_extras_come_only_from_first_party_loggers():
    for name in ("thirdparty.test", "sunrise_commons", "psg_prepx.mod", "uvicornx.test"):
        (line,) = lines_of(lambda log: log.info("x", extra={"peer": "1.2.3.4"}), name=name)
        assert "peer" not in line, name
    for name in ("sunrise_common.test.x", "sunrise_devstack.test.x", "sunrise_cli.test.x", "psg_prep.test.x",
                 "sunalgo", "ingest.test.x", "sunrise_prep.test.x"):
        (line,) = lines_of(lambda log: log.info("x", extra={"peer": "1.2.3.4"}), name=name)
        assert line["peer"] == "1.2.3.4", name


def test_event_fields_reach_the_line_from_any_logger():
    (line,) = lines_of(lambda log: logs.event(log, logging.INFO, "started", port=8080), name="thirdparty.test")
    assert line["port"] == 8080


LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "log"}


def test_no_log_call_outside_logs_py_passes_extra():
    """Fields go through logs.event: a bare ``extra=`` is how fields got lost before."""
    offenders = []
    for folder in ("services", "libs", "cli"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "logs.py" or ".venv" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in LOG_METHODS and any(k.arg == "extra" for k in node.keywords)):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"use sunrise_common.logs.event(logger, level, msg, **fields): {offenders}"
