"""Cloud Logging JSON lines with trace, event id, night id, stage and object on every record.

Modules use ``logging.getLogger(__name__)``; only entry points call :func:`configure`. Fields of
one line (counts, keys, metrics) go through :func:`event`, the one way to add them, from any
logger. A field a first-party caller (a logger under ``sunrise_common``, ``sunrise_devstack``,
``sunrise_cli`` or a service package) still passes as ``extra={...}`` is written to the line
too; third-party loggers' extras (uvicorn's, a client library's) are not. Neither ever replaces
a key the formatter set itself (``severity``, ``message``, ``time``, ``logger``, the trace, the
context's fields).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context", default={})

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (event_id, night_id, stage, object, trace) to every record logged inside."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current context (e.g. the night id once it is known)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def current() -> dict[str, Any]:
    return dict(_context.get())


def event(logger: logging.Logger, level: int, msg: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:
    """Log ``msg % args`` at ``level`` with ``fields`` as keys of its JSON line.

    ``event(log, logging.INFO, "psg prepared", channels=12, n_epochs=960)``.
    """
    if logger.isEnabledFor(level):
        logger.log(level, msg, *args, exc_info=exc_info, extra={"fields": fields}, stacklevel=2)


# Attributes every LogRecord has (and those logging.Formatter adds); anything else on a record
# came in through ``extra=``. uvicorn adds ``color_message`` (the message with ANSI colours).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "fields", "color_message",
}


def _first_party_prefixes() -> tuple[str, ...]:
    from sunrise_common.names import SERVICES

    return ("sunrise_common", "sunrise_devstack", "sunrise_cli", *SERVICES)


_FIRST_PARTY = _first_party_prefixes()


def first_party(name: str) -> bool:
    """Whether logger ``name`` is the pipeline's own (a package of this repository or below)."""
    return any(name == p or name.startswith(p + ".") for p in _FIRST_PARTY)


class JsonFormatter(logging.Formatter):
    """One JSON object per line in the shape Cloud Logging parses (``severity``, ``message``)."""

    def __init__(self, project: str = "") -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        ctx = _context.get()
        trace = ctx.get("trace")
        for key, value in ctx.items():
            if key != "trace":
                entry[key] = value
        if trace:
            entry["logging.googleapis.com/trace"] = (
                f"projects/{self.project}/traces/{trace}" if self.project else trace
            )
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        elif fields is not None:
            entry.setdefault("fields", fields)
        if first_party(record.name):
            for key, value in vars(record).items():
                if key not in _RECORD_ATTRIBUTES:
                    entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "INFO", project: str = "") -> None:
    """Entry points only: send JSON lines to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(project))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "urllib3", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def trace_from_header(value: str | None) -> str | None:
    """The trace id of ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` or W3C ``traceparent``."""
    if not value:
        return None
    if value.count("-") == 3 and len(value) >= 55:  # traceparent: 00-<32 hex>-<16 hex>-01
        return value.split("-")[1]
    return value.split("/")[0] or None
