"""What every service shares: the FastAPI app, the CloudEvent endpoint and the stage runner.

A handler is ``handle(event, ctx) -> dict``. The app maps the error tree to HTTP:
``BadEvent`` -> 400 (with what is wrong), ``PermanentError`` -> 200 with the recorded reason,
``Busy`` -> 429, ``TransientError`` and anything unexpected -> 5xx (the platform retries).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from sunrise_common import logs
from sunrise_common.errors import (
    BadEvent,
    Busy,
    LeaseLost,
    NotFound,
    PermanentError,
    PipelineError,
    PreconditionFailed,
    TransientError,
)
from sunrise_common.events import Event, parse_event
from sunrise_common.publisher import Publisher, make_publisher
from sunrise_common.settings import Settings, get_settings
from sunrise_common.state import StateStore, make_state
from sunrise_common.state.runs import Heartbeat, Outcome, StageRuns
from sunrise_common.storage import Storage, make_storage

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """The ports a handler works with, built once per process."""

    settings: Settings
    storage: Storage
    state: StateStore
    publisher: Publisher
    runs: StageRuns = field(init=False)

    def __post_init__(self) -> None:
        self.runs = StageRuns(self.state, lease_s=self.settings.lease_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Context":
        return cls(settings, make_storage(settings), make_state(settings), make_publisher(settings))


Handler = Callable[[Event, Context], dict[str, Any]]


def run_stage(
    ctx: Context,
    collection: str,
    doc_id: str,
    stage: str,
    input_key: str,
    work: Callable[[], dict[str, Any]],
    *,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``work`` at most once per (document, stage, input_key), under a lease.

    ``work`` returns ``{"outputs": {...}, "metrics": {...}, ...}``. A permanent error is recorded
    and re-raised (the app answers 2xx); a transient one is recorded as ``retrying`` and re-raised
    (5xx). A duplicate delivery of finished work returns ``{"status": "duplicate"}``.
    The lease is renewed while ``work`` runs (:class:`~sunrise_common.state.runs.Heartbeat`); the
    completion is fenced on this claim's attempt, and an attempt that was taken over raises
    :class:`LeaseLost` (429) instead of completing a second time.
    """
    claim = ctx.runs.claim(collection, doc_id, stage, input_key, base=base)
    if claim.outcome is Outcome.DONE:
        return {"status": "duplicate", "input_key": input_key, "outputs": claim.run.get("outputs", {})}
    if claim.outcome is Outcome.FAILED:
        return {"status": "rejected", "reason": claim.run.get("error"), "input_key": input_key, "duplicate": True}
    if claim.outcome is Outcome.BUSY:
        raise Busy("lease_held", f"{stage} for {doc_id} is running (attempt {claim.run.get('attempts')})")
    attempt = claim.run["attempts"]
    started = time.perf_counter()
    cpu0 = time.process_time()
    heartbeat = Heartbeat(ctx.runs, collection, doc_id, stage, input_key, attempt)
    try:
        with heartbeat:
            result = work()
    except PermanentError as exc:
        ctx.runs.fail(collection, doc_id, stage, input_key, reason=str(exc), permanent=True, attempt=attempt)
        raise
    except Exception as exc:
        ctx.runs.fail(collection, doc_id, stage, input_key, reason=f"transient: {exc}"[:500], permanent=False,
                      attempt=attempt)
        raise
    metrics = dict(result.get("metrics", {}))
    metrics.setdefault("wall_s", round(time.perf_counter() - started, 4))
    metrics.setdefault("cpu_s", round(time.process_time() - cpu0, 4))
    if not ctx.runs.complete(collection, doc_id, stage, input_key, outputs=result.get("outputs", {}),
                             metrics=metrics, attempt=attempt):
        # Another attempt took the run over (this worker stalled past its lease despite the
        # heartbeat): it owns the completion. 429 makes the platform ask again later, and the
        # retry then finds the run done (a duplicate) or takes over a run that died.
        logger.warning("%s attempt %d lost its lease to another attempt; its result is dropped", stage, attempt,
                       extra={"fields": {"input_key": input_key, "heartbeats": heartbeat.beats}})
        raise LeaseLost("lease_lost", f"{stage} for {doc_id}: attempt {attempt} was taken over")
    logger.info(
        "%s done in %.3f s", stage, metrics["wall_s"],
        extra={"fields": {"summary": True, "input_key": input_key, **metrics}},
    )
    return {"status": "done", "input_key": input_key, **{k: v for k, v in result.items() if k != "metrics"}, "metrics": metrics}


def scalars(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The flat part of a science function's summary, fit for the state document."""
    return {k: v for k, v in (summary or {}).items() if isinstance(v, (int, float, str, bool))}


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A private temporary folder for one event's files."""
    return tempfile.TemporaryDirectory(prefix="sunrise-")


def create_app(
    service: str, handler: Handler, *, settings: Settings | None = None,
    startup_check: Callable[[Settings], object] | None = None,
) -> FastAPI:
    """The FastAPI app of one service: ``POST /`` takes a CloudEvent, ``GET /healthz``.

    ``startup_check`` runs once at boot (e.g. ingest reads its pseudonym key): a bad deploy fails
    there, not on every event."""
    state: dict[str, Context] = {}

    def context() -> Context:
        if "ctx" not in state:
            state["ctx"] = Context.from_settings(settings or get_settings())
        return state["ctx"]

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        s = settings or get_settings()
        logs.configure(s.log_level, s.project)
        if startup_check is not None:
            startup_check(s)
        context()
        yield

    app = FastAPI(title=f"sunrise {service}", version="0.1.0", lifespan=lifespan)
    app.state.context = context

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok", "service": service}

    @app.post("/")
    async def receive(request: Request) -> JSONResponse:
        """Take one CloudEvent (binary or structured mode)."""
        body = await request.body()
        trace = logs.trace_from_header(
            request.headers.get("x-cloud-trace-context") or request.headers.get("traceparent")
        )
        try:
            event = parse_event(request.headers, body)
        except BadEvent as exc:
            with logs.log_context(stage=service, trace=trace):
                logger.warning("rejected a malformed request: %s", exc)
            return JSONResponse({"error": exc.reason, "detail": exc.detail}, status_code=400)
        with logs.log_context(stage=service, event_id=event.id, trace=trace):
            try:
                result = await run_in_threadpool(handler, event, context())
                return JSONResponse(result, status_code=200)
            except BadEvent as exc:
                logger.warning("rejected an event: %s", exc)
                return JSONResponse({"error": exc.reason, "detail": exc.detail}, status_code=400)
            except PermanentError as exc:
                logger.warning("permanent failure, acknowledged: %s", exc)
                return JSONResponse({"status": "rejected", "reason": exc.reason, "detail": exc.detail}, status_code=200)
            except Busy as exc:
                logger.info("duplicate while running: %s", exc)
                return JSONResponse({"status": "busy", "detail": exc.detail}, status_code=429)
            except TransientError as exc:
                logger.error("transient failure, will be retried: %s", exc)
                return JSONResponse({"status": "retry", "reason": exc.reason, "detail": exc.detail}, status_code=503)
            except PipelineError as exc:
                logger.error("failure: %s", exc)
                return JSONResponse({"status": "retry", "reason": exc.reason}, status_code=500)
            except Exception as exc:  # an unexpected bug: 500 so the platform retries, then dead-letters
                logger.exception("unexpected error")
                return JSONResponse({"status": "error", "detail": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return app


def download(ctx: Context, bucket: str, name: str, folder: Path, filename: str, generation: int | None = None) -> Path:
    """Fetch one object into ``folder/filename``."""
    path = folder / filename
    ctx.storage.download_to_file(bucket, name, path, generation=generation)
    return path


def upload_folder(ctx: Context, bucket: str, prefix: str, folder: Path) -> dict[str, int]:
    """Upload every file of ``folder`` under ``prefix``, then a ``_MANIFEST.json`` last.

    Objects are written create-if-absent: names derive from the inputs, so an object that exists
    already holds the same result (a crashed earlier attempt) and is kept. Readers trust a prefix
    only once its manifest exists, so a crash never exposes a partial result.
    """
    written: dict[str, int] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        try:
            info = ctx.storage.upload_file(bucket, prefix + rel, path, if_generation_match=0)
        except PreconditionFailed:
            info = ctx.storage.stat(bucket, prefix + rel)
            if info is None:
                raise TransientError("storage_race", f"{bucket}/{prefix}{rel} vanished")
        written[rel] = info.size
    manifest = json.dumps({"files": written}, sort_keys=True).encode()
    try:
        ctx.storage.write_bytes(bucket, prefix + "_MANIFEST.json", manifest, if_generation_match=0)
    except PreconditionFailed:
        pass
    return written


def download_folder(ctx: Context, bucket: str, prefix: str, folder: Path) -> Path:
    """Fetch a finished prefix (its manifest must exist) into ``folder``."""
    try:
        manifest = json.loads(ctx.storage.read_bytes(bucket, prefix + "_MANIFEST.json"))
    except NotFound as exc:
        raise TransientError("inputs_not_ready", f"{bucket}/{prefix} has no manifest yet") from exc
    folder.mkdir(parents=True, exist_ok=True)
    for rel in manifest["files"]:
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        ctx.storage.download_to_file(bucket, prefix + rel, dest)
    return folder
