"""What every service shares: the FastAPI app, the CloudEvent endpoint and the stage runner.

A handler is ``handle(event, ctx) -> dict``. The app answers an error of the tree
(:mod:`sunrise_common.errors`) with its class's ``status_code`` and ``body()``: ``BadEvent`` ->
400 (with what is wrong), ``PermanentError`` -> 200 with the recorded reason, ``Busy`` -> 429,
``PreconditionFailed`` -> 409, ``TransientError`` -> 503; anything unexpected -> 500 (the
platform retries every non-2xx). A ``MemoryError`` or ``RecursionError`` raised while a handler
works on its input is a permanent failure (:func:`exhausted`): the same file would exhaust the
same limit on every retry, so it is recorded with a reason and acknowledged, not retried into the
dead-letter topic.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

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
from sunrise_common.events import MAX_BODY_BYTES, Event, parse_event
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
        ports = {"storage": make_storage(settings), "state": make_state(settings), "publisher": make_publisher(settings)}
        for wrapper in PORT_WRAPPERS:
            ports = {port: wrapper(port, adapter) for port, adapter in ports.items()}
        return cls(settings, ports["storage"], ports["state"], ports["publisher"])


#: Wrappers ``(port name, adapter) -> adapter`` that every :class:`Context` built afterwards applies
#: to its storage, state and publisher. The library registers none; the dev stack's fault injection
#: (``sunrise_devstack.faults.install``, for the reliability suite) is the one user.
PORT_WRAPPERS: list[Callable[[str, Any], Any]] = []


Handler = Callable[[Event, Context], dict[str, Any]]

#: What a hostile input exhausts (memory, the interpreter's stack): deterministic for a given file.
EXHAUSTION_ERRORS = (MemoryError, RecursionError)


class InputExhausted(PermanentError):
    """The input made the work run out of memory or stack (a decompression, sample-rate or nesting
    bomb that no earlier limit caught): permanent, since a retry reads the same bytes."""


def exhausted(exc: BaseException) -> InputExhausted:
    """The permanent failure for a ``MemoryError``/``RecursionError`` raised while working on an
    input. The reason names the resource; the detail carries only the exception's type (its
    message may quote the input: numpy's names a shape, a parser's may name what it was reading)."""
    if isinstance(exc, RecursionError):
        return InputExhausted("input_too_deep", "RecursionError: the input nests deeper than the "
                              f"interpreter's recursion limit ({sys.getrecursionlimit()})")
    return InputExhausted("input_too_large", f"{type(exc).__name__}: working on the input needed more memory than "
                          "the process could allocate")


def run_stage(
    ctx: Context,
    collection: str,
    doc_id: str,
    stage: str,
    input_key: str,
    work: Callable[[], dict[str, Any]],
    *,
    base: dict[str, Any] | None = None,
    current: Callable[[dict[str, Any] | None], bool] | None = None,
) -> dict[str, Any]:
    """Run ``work`` at most once per (document, stage, input_key), under a lease.

    ``work`` returns ``{"outputs": {...}, "metrics": {...}, ...}``. ``current`` (optional) is
    checked on the document inside the claim: False answers ``superseded`` without running. A permanent error is recorded
    and re-raised (the app answers 2xx); a transient one is recorded as ``retrying`` and re-raised
    (5xx). A duplicate delivery of finished work returns ``{"status": "duplicate"}``.
    The lease is renewed while ``work`` runs (:class:`~sunrise_common.state.runs.Heartbeat`); the
    completion is fenced on this claim's attempt, and an attempt that was taken over raises
    :class:`LeaseLost` (429) instead of completing a second time.
    """
    claim = ctx.runs.claim(collection, doc_id, stage, input_key, base=base, current=current)
    if claim.outcome is Outcome.SUPERSEDED:  # ``current`` found the inputs replaced: nothing to do
        return {"status": "superseded", "input_key": input_key,
                "detail": "the document's inputs changed since this event was read; the newer input's event does the work"}
    if claim.outcome is Outcome.DONE:
        return {"status": "duplicate", "input_key": input_key, "outputs": claim.run.get("outputs", {})}
    if claim.outcome is Outcome.FAILED:
        return {"status": "rejected", "reason": claim.run.get("error"), "input_key": input_key, "duplicate": True}
    if claim.outcome is Outcome.BUSY:
        raise Busy("lease_held", f"{stage} for {doc_id} is running (attempt {claim.run.get('attempts')})")
    attempt = claim.run["attempts"]
    started = time.perf_counter()
    cpu0 = time.process_time()
    settings = getattr(ctx, "settings", None)
    heartbeat = Heartbeat(ctx.runs, collection, doc_id, stage, input_key, attempt,
                          max_s=settings.stage_max_run_s if settings is not None else None)
    try:
        with heartbeat:
            try:
                result = work()
            except EXHAUSTION_ERRORS as exc:
                raise exhausted(exc) from None
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
        logs.event(logger, logging.WARNING, "%s attempt %d lost its lease to another attempt; its result is dropped",
                   stage, attempt, input_key=input_key, heartbeats=heartbeat.beats)
        raise LeaseLost("lease_lost", f"{stage} for {doc_id}: attempt {attempt} was taken over")
    logs.event(logger, logging.INFO, "%s done in %.3f s", stage, metrics["wall_s"],
               **{"summary": True, "input_key": input_key, **metrics})
    return {"status": "done", "input_key": input_key, **{k: v for k, v in result.items() if k != "metrics"}, "metrics": metrics}


def scalars(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The flat part of a science function's summary, fit for the state document."""
    return {k: v for k, v in (summary or {}).items() if isinstance(v, (int, float, str, bool))}


# Scratch folders hold anonymised signals and spool files. A SIGKILL skips their clean-up, so
# they are named after their process and swept: at service start, and from any scratch_dir()
# call at most every SWEEP_EVERY_S. A folder goes once its process is gone, or in any case once
# it is older than SCRATCH_MAX_AGE_S (no stage works that long on one event).
SCRATCH_MAX_AGE_S = 3600.0
SWEEP_EVERY_S = 600.0
# tempfile's names: "sunrise-" + pid + "-" + 8 of [a-z0-9_]; the pid-less form is the old one.
_SCRATCH_NAME = re.compile(r"\Asunrise-(?:(\d{1,10})-)?[a-z0-9_]{8}\Z")
_last_sweep = {"at": float("-inf")}


def scratch_dir() -> tempfile.TemporaryDirectory:
    """A private temporary folder (mode 0700) for one event's files, ``{tmp}/sunrise-{pid}-*``."""
    if time.monotonic() - _last_sweep["at"] > SWEEP_EVERY_S:
        _last_sweep["at"] = time.monotonic()
        clean_stale_scratch()
    return tempfile.TemporaryDirectory(prefix=f"sunrise-{os.getpid()}-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid <= 2**22  # another user's live process (or a number no process can have)
    return True


def clean_stale_scratch(root: Path | None = None, *, max_age_s: float = SCRATCH_MAX_AGE_S,
                        now: float | None = None) -> list[Path]:
    """Remove this user's scratch folders under ``root`` (default: the system temp folder) whose
    process is dead, or that are older than ``max_age_s`` seconds (by modification time).

    Returns the folders removed. Only names :func:`scratch_dir` makes are touched."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(root.iterdir())
    except OSError:
        return removed
    for path in candidates:
        m = _SCRATCH_NAME.match(path.name)
        if m is None:
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        pid = int(m.group(1)) if m.group(1) else None
        too_old = now - st.st_mtime > max_age_s
        orphaned = pid is not None and pid != os.getpid() and not _pid_alive(pid)
        if too_old or orphaned:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        logger.info("removed %d stale scratch folder(s) under %s", len(removed), root)
    return removed


def create_app(
    service: str, handler: Handler, *, settings: Settings | None = None,
    startup_check: Callable[[Settings], object] | None = None,
    default_settings: Callable[[], Settings] = get_settings,
) -> FastAPI:
    """The FastAPI app of one service: ``POST /`` takes a CloudEvent, ``GET /healthz``.

    ``startup_check`` runs once at boot (e.g. ingest reads its pseudonym key): a bad deploy fails
    there, not on every event. Without ``settings``, ``default_settings()`` reads them from the
    environment at startup: a service with settings of its own (sunalgo's ``AlgorithmSettings``)
    passes its reader."""
    state: dict[str, Context] = {}

    def context() -> Context:
        if "ctx" not in state:
            state["ctx"] = Context.from_settings(settings or default_settings())
        return state["ctx"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or default_settings()
        logs.configure(s.log_level, s.project)
        if startup_check is not None:
            startup_check(s)
        clean_stale_scratch()
        _last_sweep["at"] = time.monotonic()
        ctx = context()
        sweep = getattr(ctx.storage, "clean_stale_staging", None)
        if sweep is not None:  # local folders: half-written objects of a killed writer
            sweep()
        yield

    # No /docs, /redoc or /openapi.json: the services take events, not visitors, and a schema
    # browser only tells an attacker what to send.
    app = FastAPI(title=f"sunrise {service}", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.context = context

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process is up (with the launcher's per-run token, if it set one)."""
        token = (settings or default_settings()).instance_token
        return {"status": "ok", "service": service, **({"instance": token} if token else {})}

    @app.post("/")
    async def receive(request: Request) -> JSONResponse:
        """Take one CloudEvent (binary or structured mode)."""
        trace = logs.trace_from_header(
            request.headers.get("x-cloud-trace-context") or request.headers.get("traceparent")
        )
        try:
            body = await read_body(request)
            event = parse_event(request.headers, body)
        except BadEvent as exc:
            with logs.log_context(stage=service, trace=trace):
                logger.warning("rejected a malformed request: %s", exc)
            return JSONResponse(exc.body(), status_code=exc.status_code)
        with logs.log_context(stage=service, event_id=event.id, trace=trace):
            try:
                result = await run_in_threadpool(handler, event, context())
                return JSONResponse(result, status_code=200)
            except PipelineError as exc:  # the class says how it is answered (errors.py)
                logger.log(exc.log_level, "%s: %s", exc.summary, exc)
                return JSONResponse(exc.body(), status_code=exc.status_code)
            except EXHAUSTION_ERRORS as exc:  # outside run_stage: still the input's fault, acknowledged
                err = exhausted(exc)
                logger.log(err.log_level, "%s: %s", err.summary, err)
                return JSONResponse(err.body(), status_code=err.status_code)
            except Exception as exc:  # an unexpected bug: 500 so the platform retries, then dead-letters
                logger.exception("unexpected error")
                return JSONResponse({"status": "error", "detail": f"{type(exc).__name__}: {exc}"}, status_code=500)

    return app


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused as soon as it exceeds ``limit`` bytes (1 MiB): a declared
    Content-Length over the limit is refused before reading, and a chunked or lying body is
    counted while it streams in, so a 20 MB body never sits in memory."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 12:
            raise BadEvent("bad_content_length", f"Content-Length must be a byte count, got {declared[:20]!r}")
        if int(declared) > limit:
            raise BadEvent("body_too_large", f"Content-Length {declared} bytes > {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadEvent("body_too_large", f"more than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise BadEvent("client_disconnected", "the client went away before sending its whole body") from exc
    return b"".join(chunks)


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
    write_manifest(ctx, bucket, prefix, written)
    return written


def write_manifest(ctx: Context, bucket: str, prefix: str, written: dict[str, int]) -> None:
    """``prefix + _MANIFEST.json`` listing ``written`` (name -> size), create-if-absent: written
    last, once every file of the prefix is in place (readers trust a prefix only then)."""
    manifest = json.dumps({"files": written}, sort_keys=True).encode()
    try:
        ctx.storage.write_bytes(bucket, prefix + "_MANIFEST.json", manifest, if_generation_match=0)
    except PreconditionFailed:
        pass


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
