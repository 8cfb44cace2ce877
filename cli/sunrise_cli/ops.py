"""Operations behind the CLI: upload, replay, backfill, rerun, dead letters.

They work on every backend through the ports; the CLI (``main.py``) only parses options and
prints. Events are POSTed in Eventarc's binary mode, exactly as the platform would.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import httpx

from sunrise_common import identity, names
from sunrise_common.contracts import NightMessage
from sunrise_common.events import storage_event
from sunrise_common.settings import Settings
from sunrise_common.storage import ObjectInfo

if TYPE_CHECKING:
    from sunrise_common.service import Context

    from sunrise_cli.synth import SynthNight


def raw_name(kind: str, site: str, subject: str, file_name: str) -> str:
    return f"{kind}/{site}/{subject}/{file_name}"


def upload(ctx: Context, path: Path, *, kind: str, site: str, subject: str, name: str | None = None) -> ObjectInfo:
    """Put a local file in the raw bucket at ``{kind}/{site}/{subject}/{file}`` (atomic write)."""
    if kind not in names.UPLOAD_KINDS:
        raise ValueError(f"--kind must be one of {', '.join(names.UPLOAD_KINDS)}, not {kind!r}")
    bucket = ctx.settings.bucket("raw")
    ctx.storage.ensure_bucket(bucket)
    return ctx.storage.upload_file(bucket, raw_name(kind, site, subject, name or path.name), path, if_generation_match=None)


def upload_night(ctx: Context, night: SynthNight, *, site: str, subject: str) -> list[str]:
    """Upload a synthetic night (``synth_night``'s Sunrise EDF+, PSG EDF and label files) to the
    raw bucket under one site and subject; returns the raw object names."""
    uploaded = [upload(ctx, Path(night.sunrise), kind="sunrise", site=site, subject=subject).name,
                upload(ctx, Path(night.psg), kind="psg", site=site, subject=subject).name]
    for label in night.labels:
        uploaded.append(upload(ctx, Path(label), kind="labels", site=site, subject=subject).name)
    return uploaded


# -- events as files and curl commands
def load_event_file(path: Path) -> tuple[dict[str, str], bytes]:
    """Read an event file: ``{method, path, headers, body}`` (as in tests/data/cloudevents)
    or a structured-mode envelope (``{"specversion": ..., "data": ...}``)."""
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "headers" in doc and "body" in doc:
        headers = {k: v for k, v in doc["headers"].items() if k.lower() != "authorization"}
        return headers, json.dumps(doc["body"]).encode()
    if "specversion" in doc:
        return {"Content-Type": "application/cloudevents+json"}, json.dumps(doc).encode()
    raise ValueError(f"{path}: neither a {{headers, body}} request nor a structured CloudEvent")


def object_event(settings: Settings, name: str, info: ObjectInfo | None = None) -> tuple[dict[str, str], bytes]:
    """The finalize event Eventarc would send for a raw object."""
    bucket = settings.bucket("raw")
    headers, body = storage_event(bucket, name, info.generation if info else 1, info.size if info else 0)
    return headers, json.dumps(body).encode()


def curl_command(url: str, headers: dict[str, str], body: bytes) -> str:
    """A curl command that sends the same request (pastes into a POSIX shell)."""
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url)]
    for k, v in headers.items():
        parts += ["-H", shlex.quote(f"{k}: {v}")]
    parts += ["--data-binary", shlex.quote(body.decode())]
    return " ".join(parts)


def post(url: str, headers: dict[str, str], body: bytes, *, token: str | None = None, timeout: float = 300.0) -> httpx.Response:
    if token:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return httpx.post(url, headers=headers, content=body, timeout=timeout)


def service_for(headers: dict[str, str], body: bytes, settings: Settings) -> str:
    """Which service a request belongs to, by its type and source (the trigger table).

    A Pub/Sub event is routed by the topic in its ``ce-source``
    (``//pubsub.googleapis.com/projects/P/topics/T``): the prefixed topic of this deployment or
    its logical name (``sunrise-prepped``), so events copied from another environment route too.

    Raises
    ------
    ValueError
        One line that names the type or topic and the choices (``--to SERVICE``).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if "ce-type" in lowered:
        ce_type, source = lowered["ce-type"], lowered.get("ce-source", "")
    else:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the event body is not JSON ({exc}); pass --to SERVICE") from exc
        doc = doc if isinstance(doc, dict) else {}
        ce_type, source = str(doc.get("type", "")), str(doc.get("source", ""))
    if ce_type == names.STORAGE_FINALIZED:
        return next(t.service for t in names.TRIGGERS if t.event_type == ce_type)
    if ce_type != names.PUBSUB_PUBLISHED:
        raise ValueError(f"event type {ce_type or '(none)'!r} is neither {names.STORAGE_FINALIZED} nor "
                         f"{names.PUBSUB_PUBLISHED}; pass --to SERVICE")
    topic = source.rsplit("/topics/", 1)[1] if "/topics/" in source else ""
    routes = {}
    for trig in names.TRIGGERS:
        if trig.event_type == ce_type:
            routes[settings.topic(trig.source)] = trig.service
            routes.setdefault(trig.source, trig.service)
    if topic in routes:
        return routes[topic]
    listened = ", ".join(sorted({settings.topic(t.source) for t in names.TRIGGERS if t.event_type == ce_type}))
    where = repr(topic) if topic else f"(none: ce-source is {source!r})"
    raise ValueError(f"no trigger listens on topic {where}: the pipeline's topics are {listened}; "
                     "pass --to SERVICE to send it anyway")


# -- backfill
@dataclass
class Summary:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "skipped": self.skipped, "failed": self.failed, "failures": self.failures[:20]}


class Throttle:
    """At most ``rate`` starts per second."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            time.sleep(delay)


def upload_done(ctx: Context, name: str, generation: int) -> bool:
    """Was this raw object generation ingested (or rejected for good) already?"""
    key = ctx.settings.key_bytes()
    doc = ctx.state.get("uploads", identity.upload_id(key, ctx.settings.bucket("raw"), name))
    run = (doc or {}).get("runs", {}).get("ingest", {}).get(str(generation))
    return bool(run) and (run["state"] == "done" or (run["state"] == "failed" and run.get("permanent")))


def send_all(
    jobs: Iterable[tuple[str, Callable[[], httpx.Response] | None]],  # None: skipped
    *,
    rate: float | None,
    max_in_flight: int,
    on_progress: Callable[[str, str], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Run send jobs with a rate limit and a cap on requests in flight. 2xx is success."""
    summary = Summary()
    throttle = Throttle(rate)
    inflight: dict[Future, str] = {}
    lock = threading.Lock()

    def settle(fut: Future, label: str) -> None:
        try:
            resp = fut.result()
            ok, detail = 200 <= resp.status_code < 300, f"{resp.status_code} {resp.text[:200]}"
        except Exception as exc:  # network trouble counts as a failure of this item, the run goes on
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        with lock:
            if ok:
                summary.sent += 1
            else:
                summary.failed += 1
                summary.failures.append(f"{label}: {detail}")
        if on_progress:
            on_progress(label, "sent" if ok else "failed")

    with ThreadPoolExecutor(max_workers=max_in_flight) as pool:
        for label, job in jobs:
            if stop is not None and stop.is_set():
                break
            if job is None:
                summary.skipped += 1
                if on_progress:
                    on_progress(label, "skipped")
                continue
            while len(inflight) >= max_in_flight:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for fut in done:
                    settle(fut, inflight.pop(fut))
            throttle.wait()
            inflight[pool.submit(job)] = label
        for fut in list(inflight):
            settle(fut, inflight.pop(fut))
    return summary


def backfill_jobs(ctx: Context, prefix: str, *, force: bool, url: str, token: str | None, checkpoint: Path | None,
                  via: str = "post") -> Iterator[tuple[str, Callable[[], httpx.Response] | None]]:
    """(label, job) pairs for every raw object under prefix; job None when skipped.

    ``via="post"`` sends the finalize event Eventarc would send straight to ingest (``url``);
    ``via="rewrite"`` writes the object onto itself so that the bucket's own notification fires
    (the way to replay in the cloud, where ingest only accepts internal traffic).
    """
    if via not in ("post", "rewrite"):
        raise ValueError(f"--via must be post or rewrite, not {via!r}")
    done_names: set[str] = set()
    if checkpoint and checkpoint.exists():
        done_names = set(checkpoint.read_text().split("\n"))
    lock = threading.Lock()
    bucket = ctx.settings.bucket("raw")
    for info in ctx.storage.list(bucket, prefix):
        marker = f"{info.name}#{info.generation}"
        if not force and (marker in done_names or upload_done(ctx, info.name, info.generation)):
            yield info.name, None
            continue
        if via == "rewrite":
            def send(name: str = info.name) -> httpx.Response:
                new = ctx.storage.rewrite(bucket, name)
                return httpx.Response(200, text=f"rewrote {name} as generation {new.generation}")
        else:
            headers, body = object_event(ctx.settings, info.name, info)

            def send(headers: dict[str, str] = headers, body: bytes = body) -> httpx.Response:
                return post(url, headers, body, token=token)

        def job(send: Callable[[], httpx.Response] = send, marker: str = marker) -> httpx.Response:
            resp = send()
            if checkpoint and 200 <= resp.status_code < 300:
                with lock, open(checkpoint, "a") as f:
                    f.write(marker + "\n")
            return resp

        yield info.name, job


# -- rerun
RERUN_TOPIC = {
    "sunrise_prep": names.TOPIC_SUNRISE_ANONYMISED,
    "psg_prep": names.TOPIC_PSG_ANONYMISED,
    "sunalgo": names.TOPIC_SUNRISE_PREPPED,
}


def select_nights(ctx: Context, stage: str, *, nights: list[str] | None, failed: bool, all_nights: bool) -> list[str]:
    if nights:
        return nights
    chosen = []
    for night_id, doc in ctx.state.list("nights"):
        st = doc.get("stages", {}).get(stage, {})
        if all_nights or (failed and st.get("state") in ("failed", "retrying")):
            chosen.append(night_id)
    return chosen


def reset_stage(ctx: Context, night_id: str, stage: str) -> None:
    """Ask for a stage again: its next event does the work anew (a new input key, new outputs)."""

    def fn(doc: dict | None) -> dict | None:
        if doc is None:
            return None
        doc = json.loads(json.dumps(doc))
        # A new rerun count changes the stage's input key: new outputs beside the old ones, which stay.
        doc.setdefault("reruns", {})[stage] = int(doc["reruns"].get(stage, 0)) + 1
        st = doc.get("stages", {}).get(stage)
        if st:
            doc["stages"][stage] = {**st, "state": "pending", "error": None}
        return doc

    ctx.state.transact("nights", night_id, fn)


def rerun_job(ctx: Context, night_id: str, stage: str, *, model_version: str | None) -> Callable[[], httpx.Response] | None:
    """A job that publishes the stage's input event for a night on the stage's topic (the same way
    everywhere: the local router, the emulator, Pub/Sub in the cloud), or None if there is nothing
    to rerun."""
    doc = ctx.state.get("nights", night_id) or {}
    if stage in ("sunrise_prep", "psg_prep"):
        kind = "sunrise" if stage == "sunrise_prep" else "psg"
        rec = doc.get("recordings", {}).get(kind)
        if not rec:
            return None
        message = NightMessage(night_id=night_id, kind=kind, object=rec["object"], generation=rec["generation"])
    elif stage == "sunalgo":
        message = NightMessage(night_id=night_id, kind="rerun", model_version=model_version or None)
    else:
        raise ValueError(f"rerun takes sunrise_prep, psg_prep or sunalgo, not {stage!r} (use backfill for ingest)")
    topic = ctx.settings.topic(RERUN_TOPIC[stage])

    def job() -> httpx.Response:
        message_id = ctx.publisher.publish(topic, message.to_bytes(), {"kind": "rerun"})
        return httpx.Response(200, text=f"published {message_id} on {topic}")

    return job
