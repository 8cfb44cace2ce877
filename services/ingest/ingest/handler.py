"""ingest: raw object finalized -> anonymised copy, night document, per-night event.

The privacy boundary. Whatever leaves here is free of personal data by construction: EDF headers
and annotation text are rewritten by :mod:`sunrise_common.edf`, label files by
:mod:`sunrise_common.labels`, object names derive from the night id, and the upload record is
keyed by a keyed hash of the raw name (which holds the subject id). Error details leave through
:func:`redact` (``sunrise_common.errors.safe_detail``): no file text, no raw-name part.

Streaming: the raw object is read and the anonymised one written in bounded chunks, never whole
in memory or ``/tmp`` (issue 26). Ordering: each raw generation writes its own anonymised object
(named by a keyed token of the generation), and the night keeps the newest raw generation of each
upload, decided inside the transaction that records it (issue 22: whatever order the ingests finish
in); another upload of a kind the night already has is refused as ``duplicate_recording``.
"""

from __future__ import annotations

import copy
import io
import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Callable, TypeVar

from sunrise_common import identity, logs, names
from sunrise_common.contracts import NightMessage, Recording, StageRun
from sunrise_common.edf import anonymise_edf
from sunrise_common.edf.header import parse_header
from sunrise_common.errors import (
    NotFound,
    PermanentError,
    PipelineError,
    PreconditionFailed,
    TransientError,
    safe_detail,
)
from sunrise_common.events import Event
from sunrise_common.labels import HEAD_BYTES, anonymise_label_file, detect_label_kind, parse_labels
from sunrise_common.labels.limits import check_size, read_bounded
from sunrise_common.service import EXHAUSTION_ERRORS, Context, run_stage
from sunrise_common.storage import ObjectInfo

from ingest import pairing
from ingest.layout import RawPath, parse_raw_name
from ingest.pairing import pairing_status

logger = logging.getLogger(__name__)

EDF_MAGIC = (b"0       ", b"\xffBIOSEMI")


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Handle one ``google.cloud.storage.object.v1.finalized`` event."""
    if event.storage is None:
        raise PermanentError("wrong_event_type", f"ingest takes {names.STORAGE_FINALIZED}, got {event.type}")
    obj = event.storage
    key = ctx.settings.key_bytes()
    upload = identity.upload_id(key, obj.bucket, obj.name)
    logs.bind(upload_id=upload)
    if obj.bucket != ctx.settings.bucket("raw"):
        raise PermanentError("wrong_bucket", f"ingest only reads {ctx.settings.bucket('raw')}, got {obj.bucket}")
    base = {"bucket": obj.bucket, "generations": {}}
    return run_stage(
        ctx, "uploads", upload, "ingest", str(obj.generation),
        lambda: _private(obj.name, lambda: _ingest(ctx, key, upload, obj.bucket, obj.name, obj.generation)),
        base=base,
    )


def redact(detail: str, raw_name: str) -> str:
    """An error detail fit to leave the privacy boundary (:func:`sunrise_common.errors.safe_detail`):
    no part of the raw object name (site, subject, file name), no quoted value (readers quote what
    they found: names, annotation text, first lines — however the repr escapes its quotes), no
    date, no character outside printable ASCII. Reasons stay exact; the detail keeps the field
    names and counts."""
    return safe_detail(detail, (raw_name,))


T = TypeVar("T")


def _private(raw_name: str, work: Callable[[], T]) -> T:
    """Run ingest's work so that whatever error it raises (recorded in Firestore, logged, answered)
    carries no personal data: ingest is the one stage that sees raw names and raw bytes."""
    try:
        return work()
    except PipelineError as exc:
        raise type(exc)(exc.reason, redact(exc.detail, raw_name)) from None
    except EXHAUSTION_ERRORS:  # a bomb: run_stage records it as permanent, without its message
        raise
    except Exception as exc:  # an unexpected failure: retried, and described without its message
        raise TransientError("unexpected", f"{type(exc).__name__} in ingest (details withheld: raw data)") from None


#: The named steps of one ingest, in order. ``step_hook(step, raw_generation)``, when set, is
#: called at each: tests pause one ingest there to control how two ingests of one recording
#: interleave (issue 22, defect 1), instead of hoping a machine's timing produces the race.
STEPS = ("opened", "parsed", "written", "recorded")
step_hook: Callable[[str, int], None] | None = None



def _step(name: str, generation: int) -> None:
    if step_hook is not None:
        step_hook(name, generation)


def _ingest(ctx: Context, key: bytes, upload: str, bucket: str, name: str, generation: int) -> dict[str, Any]:
    """One raw generation -> its anonymised object, named by that generation, and the night's
    recording if this generation is the newest of its upload.

    Streams: the raw object is read in bounded chunks (``Storage.open_read``) and the anonymised
    one written as it is produced (``Storage.write_stream``); neither sits whole in memory or in
    ``/tmp`` (issue 26)."""
    raw = parse_raw_name(name)
    try:
        with ctx.storage.open_read(bucket, name, generation=generation) as (info, src):
            if info.size == 0:
                raise PermanentError("empty_file", "the object has zero bytes")
            _step("opened", generation)
            try:
                return _ingest_stream(ctx, key, upload, raw, name, generation, src, info.size)
            except NotFound as exc:
                # Another object missing (a 404 writing or reading back the anonymised object, a
                # parked label file replaced meanwhile) says nothing about this raw generation:
                # retried. ``exc.reason`` is the storage's own word (object_not_found...).
                raise TransientError("object_missing", "an object ingest uses besides the raw one is missing "
                                                       f"({exc.reason})") from exc
    except NotFound as exc:
        # Raised opening the raw generation, or by the storage as the raw stream's own error
        # leaves its read (Cloud Storage: the generation was replaced mid-read).
        raise PermanentError("object_gone", "the raw object (this generation) no longer exists") from exc


def _ingest_stream(ctx: Context, key: bytes, upload: str, raw: RawPath, name: str, generation: int,
                   src: BinaryIO, size: int) -> dict[str, Any]:
    head = src.read(HEAD_BYTES)
    src.seek(0)
    plan = _plan(raw, src, size, head)  # bad input: EdfError/LabelError (PermanentErrors)
    start = plan.start
    if start is None and raw.kind == "labels" and (plan.label_range is not None or plan.timeless):
        return _dateless_label(ctx, key, upload, raw, name, generation, plan, src, size)
    if start is None:
        raise PermanentError("invalid_start_date", plan.start_problem or "no usable recording start date")
    night = identity.night_id(key, raw.site, raw.subject, start)
    logs.bind(night_id=night)
    label_key = identity.label_key(key, name, plan.label_kind) if raw.kind == "labels" else None
    slot = ("labels", label_key) if label_key else (raw.kind,)
    _step("parsed", generation)
    doc = ctx.state.get("nights", night)
    verdict = _verdict(_slot(doc, slot), upload, generation)
    if verdict in ("superseded", "duplicate"):  # dropped before writing anything
        return _not_recorded(ctx, night, raw.kind, slot, upload, verdict)
    if verdict == "same":  # a redelivery after this generation was recorded: announce it again
        return _announce(ctx, night, raw.kind, doc, _slot(doc, slot))
    dest = names.anonymised_object(night, raw.kind, plan.ext, label_key,
                                   version=identity.generation_token(key, upload, generation))
    anon_bucket = ctx.settings.bucket("anonymised")
    written, sha = _write(ctx, anon_bucket, dest, plan, src, size)
    _step("written", generation)
    recording = Recording(
        object=dest, generation=written.generation, token=identity.upload_token(key, dest, written.generation),
        sha256=sha, size=written.size, start_offset_s=identity.start_offset_s(start), duration_s=plan.duration_s,
        year=start.year, upload_id=upload, format=plan.format, label_kind=plan.label_kind if label_key else None,
        raw_generation=generation,
    )
    site = identity.site_pseudonym(key, raw.site)
    outcome: dict[str, str] = {}
    adopted = _adopt_waiting_labels(ctx, night, recording) if raw.kind == "psg" else {}
    doc = ctx.state.transact("nights", night, lambda d: _add_adopted(
        _add_recording(d, night, raw, label_key, recording, site, outcome), adopted))
    if outcome["verdict"] in ("superseded", "duplicate"):
        # A newer generation (or another upload) was recorded while this one was written: its
        # object is referenced by nothing, and goes.
        ctx.storage.delete(anon_bucket, dest)
        return _not_recorded(ctx, night, raw.kind, slot, upload, outcome["verdict"])
    kept = _slot(doc, slot) or {}  # transact returns the stored document, changed or not
    if kept.get("object") != dest:
        # "unchanged": the same anonymised bytes as the recording it replaces (a rewrite, `sunrise
        # backfill --via rewrite`): the night keeps naming the existing object, so no later stage
        # runs again, and the copy this attempt wrote goes.
        ctx.storage.delete(anon_bucket, dest)
    _step("recorded", generation)
    _announce_adopted(ctx, night, adopted)
    return _announce(ctx, night, raw.kind, doc, kept)


def _announce(ctx: Context, night: str, kind: str, doc: dict | None, rec: dict) -> dict[str, Any]:
    """Publish the night's recording ``rec`` on its kind's topic, and the stage's answer."""
    topic = names.TOPIC_SUNRISE_ANONYMISED if kind == "sunrise" else names.TOPIC_PSG_ANONYMISED
    message = NightMessage(night_id=night, kind=kind, object=rec["object"], generation=rec["generation"])
    ctx.publisher.publish(ctx.settings.topic(topic), message.to_bytes(), {"kind": kind})
    return {
        "outputs": {"night_id": night, "object": rec["object"], "generation": int(rec["generation"]), "kind": kind},
        "metrics": {"bytes": rec.get("size") or 0},
        "night_id": night,
        "pairing": (doc or {}).get("pairing", {}),
    }


def _not_recorded(ctx: Context, night: str, kind: str, slot: tuple[str, ...], upload: str,
                  verdict: str) -> dict[str, Any]:
    """The answer for a generation the night does not take.

    ``superseded``: a newer generation of the same upload is the night's (its own event did, or
    does, the work): done, nothing recorded, nothing published. ``duplicate``: the night already
    holds another upload's recording of this kind; this upload is rejected with
    ``duplicate_recording``, naming the other upload by its keyed id (the name is not stored;
    ``sunrise status`` resolves it from the raw bucket)."""
    if verdict == "superseded":
        return {"status": "superseded", "night_id": night,
                "detail": "a newer generation of this upload is the night's recording",
                "outputs": {"night_id": night, "superseded": True}}
    other = _slot(ctx.state.get("nights", night), slot) or {}
    # The kind in capitals: ingest redacts the raw name's segments (``psg`` among them) from details.
    what = "PSG" if kind == "psg" else kind.capitalize()
    raise PermanentError("duplicate_recording",
                         f"night {night} already has a {what} recording from upload {other.get('upload_id', '?')}; "
                         f"a night takes one {what} recording: to replace it, upload the corrected file under "
                         f"the first upload's name; removing an upload does not free the night's place (to "
                         f"start the subject over, erase it with the CLI's forget command, then upload again)")


def _slot(doc: dict | None, slot: tuple[str, ...]) -> dict | None:
    """The recording in ``slot`` (``("psg",)`` or ``("labels", label_key)``) of a night document."""
    here: Any = (doc or {}).get("recordings", {})
    for part in slot:
        here = here.get(part) if isinstance(here, dict) else None
    return here


def _verdict(previous: dict | None, upload: str, generation: int) -> str:
    """What one raw generation of ``upload`` does to the slot that holds ``previous``.

    ``add``: the slot is empty or holds an older generation of the same upload (the newest raw
    generation wins, whatever order the ingests finish in); ``same``: this generation is already
    there (a redelivery); ``superseded``: a newer generation is; ``duplicate``: another upload's
    recording is (defect 7: never silently replaced)."""
    if previous is None:
        return "add"
    if previous.get("upload_id") not in (None, upload):
        return "duplicate"
    before = previous.get("raw_generation")
    if before is None:  # written before raw generations were recorded: this one is newer
        return "add"
    before = int(before)
    return "add" if before < generation else ("same" if before == generation else "superseded")


@dataclass(frozen=True)
class Plan:
    """What one upload is, read from its head before anything is written.

    ``start`` is the ORIGINAL recording start (naive, header time): it gives the night id and the
    noon-anchor offset and is never written anywhere itself. An EDF/BDF upload is anonymised
    while it is written (:func:`_write`); a text label file is small and anonymised here."""

    start: datetime | None
    start_problem: str | None  # why ``start`` is None
    duration_s: float  # s of recording; 0 for text label files
    ext: str  # extension of the anonymised object
    format: str  # "EDF", "EDF+C", "BDF"..., or the label kind
    label_kind: str | None = None  # labels only: detected once, here, from the raw bytes and name
    label: bytes | None = None  # text label files: the anonymised bytes
    # Labels without a date only: (first, last) s from the noon anchor that the file scores, from
    # its time of day (pairing.label_range); None when the time of day is unknown too.
    label_range: tuple[float, float] | None = None
    timeless: bool = False  # labels only: no date and no time of day either (placed at the PSG's start)


def _plan(raw: RawPath, src: BinaryIO, size: int, head: bytes) -> Plan:
    """The plan for the upload ``src`` (at byte 0, left there) by its kind; bad input raises a
    PermanentError."""
    if raw.kind in ("sunrise", "psg"):
        if head[:8] not in EDF_MAGIC:
            raise PermanentError("not_edf", f"{raw.kind} uploads must be EDF/EDF+/BDF files")
        if _annotation_only(head):
            raise PermanentError("annotation_only", "the file holds annotation signals only (a scoring or hypnogram "
                                                    "file, no recorded signal): upload it as labels")
        plan = _plan_edf(src, size, None)
        if plan.duration_s <= 0:
            raise PermanentError("no_data", "the recording holds no data records")
        return plan
    kind = detect_label_kind(raw.file, head)
    if kind == "edf_hypnogram":
        plan = _plan_edf(src, size, kind)
        if plan.start is not None:
            return plan
        check_size(size)  # a hypnogram without a date: small, read whole to place it by time of day
        data = read_bounded(src)
        src.seek(0)
        rng = _dateless_range(kind, data)
        return dataclasses.replace(plan, label_range=rng if rng != "timeless" else None)
    check_size(size)  # labels.limits: MAX_BYTES, refused before reading
    label = anonymise_label_file(kind, read_bounded(src))
    rng = _dateless_range(kind, label.data) if label.start is None else None
    return Plan(label.start, "the label file has no start date", 0.0, label.extension, kind, kind, label.data,
                rng if rng != "timeless" else None, rng == "timeless")


def _annotation_only(head: bytes) -> bool:
    """An EDF+/BDF+ header whose every signal is an annotation signal (a hypnogram uploaded as a
    recording; issue 23): false when the header is too short to tell (the anonymiser decides)."""
    try:
        ns = int(head[252:256].decode("ascii").strip())
    except ValueError:
        return False
    if ns <= 0 or len(head) < 256 + 16 * ns:
        return False
    labels = {head[256 + 16 * i: 272 + 16 * i].decode("latin-1").strip() for i in range(ns)}
    return labels <= {"EDF Annotations", "BDF Annotations"}


def _plan_edf(src: BinaryIO, size: int, label_kind: str | None) -> Plan:
    header = parse_header(src, size)  # reads the header only (256 * (ns + 1) bytes)
    src.seek(0)
    return Plan(header.start, header.start_problem, header.duration, "bdf" if header.fmt == "BDF" else "edf",
                label_kind or header.fmt + (f"+{header.plus}" if header.plus else ""), label_kind)


def _write(ctx: Context, bucket: str, dest: str, plan: Plan, src: BinaryIO, size: int) -> tuple[ObjectInfo, str]:
    """Write the anonymised object ``dest`` create-if-absent; (its info, its hex SHA-256).

    ``dest`` is named by the raw generation, so an object already there holds the same bytes (an
    earlier attempt of this generation that stopped before recording it): it is kept and hashed.
    An EDF is anonymised as it streams into the bucket, hashed on the way (a stream) or read back
    through ``hashlib.file_digest`` (a local file, which the kernel copies)."""
    try:
        if plan.label is not None:
            info = ctx.storage.write_bytes(bucket, dest, plan.label, if_generation_match=0)
            return info, hashlib.sha256(plan.label).hexdigest()

        def produce(dst: BinaryIO) -> str | None:
            if _is_file(dst):
                anonymise_edf(src, dst, size)
                return None
            hashing = _Hashing(dst)
            anonymise_edf(src, hashing, size)
            return hashing.sha.hexdigest()

        info, sha = ctx.storage.write_stream(bucket, dest, produce, if_generation_match=0)
    except PreconditionFailed:
        info, sha = ctx.storage.stat(bucket, dest), None
        if info is None:
            raise TransientError("storage_race", "the anonymised object vanished while it was written") from None
    if sha is None:
        with ctx.storage.open_read(bucket, dest, generation=info.generation) as (_, written):
            sha = hashlib.file_digest(written, "sha256").hexdigest()
    return info, sha


def _is_file(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


class _Hashing:
    """A write-only stream that hashes what passes through it (SHA-256, in C by hashlib)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.inner.write(data)


def _add_recording(doc: dict | None, night: str, raw: RawPath, label_key: str | None, recording: Recording,
                   site_pseudonym: str, outcome: dict[str, str]) -> dict | None:
    """The night document with ``recording`` in its slot, if it is the newest raw generation of
    its upload there (:func:`_verdict`, decided inside the transaction, so two ingests finishing
    in any order leave the newest); None (unchanged) otherwise. ``outcome["verdict"]`` says which."""
    previous = _slot(doc, ("labels", label_key) if label_key else (raw.kind,))
    verdict = _verdict(previous, recording.upload_id or "", recording.raw_generation or 0)
    outcome["verdict"] = verdict
    if verdict != "add":
        return None
    entry = recording.to_doc()
    if previous is not None and previous.get("sha256") == recording.sha256 and previous.get("object"):
        # A newer generation with the same anonymised bytes: keep naming the object already
        # prepared (its token, hence every later stage's input key, stays), newer raw generation.
        entry = {**previous, "raw_generation": recording.raw_generation}
        outcome["verdict"] = "unchanged"
    doc = copy.deepcopy(doc) if doc else {"night_id": night, "created_at": time.time(), "recordings": {}}
    doc["subject"] = night.rsplit("-n", 1)[0]
    doc["site_pseudonym"] = site_pseudonym  # keyed (identity.site_pseudonym): per-site dataset stats
    recordings = doc.setdefault("recordings", {})
    slot = recordings.setdefault("labels", {}) if label_key else recordings
    slot[label_key or raw.kind] = entry
    doc["pairing"] = pairing_status(recordings)
    now = time.time()
    doc.setdefault("stages", {})["ingest"] = StageRun(
        state="done", input_key=recording.upload_id, finished_at=now, error=None, outputs={"object": entry["object"]},
    ).to_doc()
    doc["updated_at"] = now
    return doc


# -- label files without a date (issue 23): paired by time of day, see ingest.pairing -----------


def _dateless_range(kind: str, data: bytes) -> tuple[float, float] | str | None:
    """(first, last) s from the noon anchor that an anonymised label file without a date scores,
    from its time of day and the span of its stages and events; ``"timeless"`` for a text label
    file without any time (it starts with the recording); None for an EDF without a usable time."""
    labels = parse_labels(kind, data)  # anonymisation keeps relative times: as psg_prep will read them
    tod = labels.start_time_of_day_s
    if tod is None:
        return None if kind == "edf_hypnogram" else "timeless"
    spans = [(e.onset_s, e.onset_s + e.duration_s) for e in labels.events]
    hyp = labels.hypnogram
    if hyp is not None and hyp.stages:
        spans.append((hyp.onset_s, hyp.onset_s + len(hyp.stages) * hyp.epoch_s))
    span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0.0, 0.0)
    return pairing.label_range(identity.time_of_day_offset_s(0, 0, tod), span)


def _dateless_label(ctx: Context, key: bytes, upload: str, raw: RawPath, name: str, generation: int, anon: Plan,
                    src: BinaryIO, size: int) -> dict[str, Any]:
    """A label file with a time of day but no date: into the night of the subject's PSG that it
    overlaps, or waiting for that PSG (``pairing/{subject}``).

    As for every upload, the newest raw generation wins whatever order the ingests finish in: the
    parked and the night's objects are named by the raw generation and written create-only, the
    waiting entry and the night's recording are replaced only by a newer raw generation, and an
    object written by a generation that lost is removed (issue 22)."""
    if anon.label is not None:
        data = anon.label
    else:  # an EDF+ hypnogram without a date: small (read whole by _plan), anonymised here
        out = io.BytesIO()
        anonymise_edf(src, out, size)
        data = out.getvalue()
    _step("parsed", generation)
    subject = identity.subject_pseudonym(key, raw.site, raw.subject)
    label_key = identity.label_key(key, name, anon.label_kind)
    version = identity.generation_token(key, upload, generation)
    anon_bucket = ctx.settings.bucket("anonymised")
    rng = anon.label_range  # None: a label file without any time, placed at its PSG's start
    entry = {"range_start_s": rng[0] if rng else None, "range_end_s": rng[1] if rng else None, "upload_id": upload,
             "label_kind": anon.label_kind, "format": anon.format, "ext": anon.ext,
             "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "raw_generation": generation}
    nights = pairing.candidate_nights(_pairing_doc(ctx, subject), rng)
    if not nights:
        # Park the anonymised bytes first: a PSG that registers right after may take them.
        parked = _create(ctx, anon_bucket, pairing.waiting_object(subject, label_key, anon.ext, version), data)
        _step("written", generation)
        entry.update(object=parked.name, generation=parked.generation, since=time.time())
        outcome: dict[str, Any] = {}

        def wait(doc: dict | None) -> dict | None:
            doc = copy.deepcopy(doc) if doc else {}
            if pairing.candidate_nights(doc, rng):
                outcome["verdict"] = "night"
                return doc
            waiting = doc.setdefault("waiting_labels", {})
            outcome["verdict"] = verdict = _verdict(waiting.get(label_key), upload, generation)
            if verdict != "add":
                return None  # unchanged: a newer generation (or this one) is already parked
            outcome["replaced"] = (waiting.get(label_key) or {}).get("object")
            waiting[label_key] = {**entry, "paired_night": None}
            return doc

        doc = ctx.state.transact(pairing.PAIRING, subject, wait)
        if outcome["verdict"] in ("superseded", "duplicate"):
            ctx.storage.delete(anon_bucket, parked.name)  # this generation lost: its object goes
            # Same label key, same raw name, same upload: only ever superseded, never a duplicate.
            return {"status": "superseded", "detail": "a newer generation of this upload is waiting for its PSG",
                    "outputs": {"waiting_for": "psg", "superseded": True}}
        if outcome.get("replaced") not in (None, parked.name):
            ctx.storage.delete(anon_bucket, outcome["replaced"])  # the older generation's parked object
        if outcome["verdict"] != "night":
            _step("recorded", generation)
            logs.bind(subject=subject)
            return {"outputs": {"waiting_for": "psg", "object": parked.name, "kind": raw.kind},
                    "metrics": {"bytes": entry["size"]}}
        ctx.storage.delete(anon_bucket, parked.name)  # a PSG registered meanwhile: the night takes it
        nights = pairing.candidate_nights(ctx.state.get(pairing.PAIRING, subject), rng)
    if len(nights) > 1:
        raise PermanentError("ambiguous_night", f"the label file carries no date and {len(nights)} PSG nights of its "
                                                "subject overlap its time of day; upload it with its date")
    (night,) = nights
    logs.bind(night_id=night)
    slot = ("labels", label_key)
    verdict = _verdict(_slot(ctx.state.get("nights", night), slot), upload, generation)
    if verdict in ("superseded", "duplicate"):  # dropped before writing anything
        return _not_recorded(ctx, night, raw.kind, slot, upload, verdict)
    registered = ctx.state.get(pairing.PAIRING, subject)["psg_nights"][night]
    dest = names.anonymised_object(night, "labels", anon.ext, label_key, version=version)
    written = _create(ctx, anon_bucket, dest, data)
    _step("written", generation)
    recording = _label_recording(key, dest, written.generation, entry, registered)
    site = identity.site_pseudonym(key, raw.site)
    outcome = {}
    doc = ctx.state.transact("nights", night,
                             lambda d: _add_recording(d, night, raw, label_key, recording, site, outcome))
    if outcome["verdict"] in ("superseded", "duplicate"):
        ctx.storage.delete(anon_bucket, dest)  # a newer generation was recorded meanwhile: this object goes
        return _not_recorded(ctx, night, raw.kind, slot, upload, outcome["verdict"])
    if outcome["verdict"] == "same":
        doc = ctx.state.get("nights", night)
    _step("recorded", generation)
    message = NightMessage(night_id=night, kind="labels", object=dest, generation=written.generation)
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_ANONYMISED), message.to_bytes(), {"kind": "labels"})
    return {"outputs": {"night_id": night, "object": dest, "generation": written.generation, "kind": raw.kind,
                        "start_assumed": recording.start_assumed},
            "metrics": {"bytes": entry["size"]}, "night_id": night, "pairing": doc["pairing"] if doc else {}}


def _create(ctx: Context, bucket: str, name: str, data: bytes) -> ObjectInfo:
    """Write ``data`` as ``name`` create-only. The name carries the raw generation, so an object
    already there holds these bytes (an earlier attempt of this generation): it is kept."""
    try:
        return ctx.storage.write_bytes(bucket, name, data, if_generation_match=0)
    except PreconditionFailed:
        info = ctx.storage.stat(bucket, name)
        if info is None:
            raise TransientError("storage_race", "the anonymised object vanished while it was written") from None
        return info


def _pairing_doc(ctx: Context, subject: str) -> dict[str, Any] | None:
    """``pairing/{subject}``; for a subject without one (PSG nights ingested before date-less
    pairing existed), made once from the subject's night documents (a scan of ``nights``)."""
    doc = ctx.state.get(pairing.PAIRING, subject)
    if doc is not None:
        return doc
    for night, nd in ctx.state.list("nights"):
        psg = (nd.get("recordings") or {}).get("psg")
        if nd.get("subject") == subject and psg and psg.get("start_offset_s") is not None:
            doc = ctx.state.transact(pairing.PAIRING, subject, lambda d, n=night, p=psg: pairing.register_psg(
                d, n, p, time.time(), take=False))
    return doc


def _label_recording(key: bytes, dest: str, generation: int, entry: dict[str, Any], psg: dict[str, Any]) -> Recording:
    """The recording entry of a date-less label file placed in a night (its year is the PSG's; a
    label file without any time starts with the PSG)."""
    timeless = entry.get("range_start_s") is None
    rec = Recording(object=dest, generation=generation, token=identity.upload_token(key, dest, generation),
                    sha256=entry["sha256"], size=entry["size"],
                    start_offset_s=psg.get("start_offset_s") if timeless else entry["range_start_s"] % 86400,
                    duration_s=0.0, year=psg.get("year"), upload_id=entry["upload_id"], format=entry["format"],
                    label_kind=entry["label_kind"], raw_generation=entry.get("raw_generation"))
    # An extra field (Recording allows them), shown with the night by `sunrise status NIGHT`.
    rec.start_assumed = pairing.ASSUMED_TIMELESS if timeless else pairing.ASSUMED
    return rec


def _adopt_waiting_labels(ctx: Context, night: str, psg: Recording) -> dict[str, Recording]:
    """A PSG's ingest: register its night for its subject and take the date-less label files
    waiting for it (copied into the night; a redelivery takes the same ones again)."""
    subject = night.rsplit("-n", 1)[0]
    doc = ctx.state.transact(pairing.PAIRING, subject,
                             lambda d: pairing.register_psg(d, night, psg.model_dump(), time.time()))
    bucket = ctx.settings.bucket("anonymised")
    adopted: dict[str, Recording] = {}
    key = ctx.settings.key_bytes()
    for label_key, entry in sorted(pairing.taken_by(doc, night).items()):
        raw_generation = entry.get("raw_generation")
        version = (identity.generation_token(key, entry["upload_id"], int(raw_generation))
                   if raw_generation is not None else None)  # None: parked before generations were kept
        dest = names.anonymised_object(night, "labels", entry["ext"], label_key, version=version)
        current = ctx.storage.stat(bucket, dest)
        if current is None:  # a parked object gone meanwhile (a newer generation replaced it): retried
            current = _create(ctx, bucket, dest, ctx.storage.read_bytes(bucket, entry["object"]))
        adopted[label_key] = _label_recording(key, dest, current.generation, entry, psg.model_dump())
    return adopted


def _announce_adopted(ctx: Context, night: str, adopted: dict[str, Recording]) -> None:
    """One ``psg-anonymised`` message per label file a recorded PSG took, as if it had just been
    ingested: each label file's arrival is announced (a redelivered PSG announces them again; the
    PSG's own message finds the same inputs, so all but one psg_prep run are duplicates)."""
    for rec in adopted.values():
        message = NightMessage(night_id=night, kind="labels", object=rec.object, generation=rec.generation)
        ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_ANONYMISED), message.to_bytes(), {"kind": "labels"})


def _add_adopted(doc: dict | None, adopted: dict[str, Recording]) -> dict | None:
    """The night document with the label files its PSG took (the newest raw generation wins); None
    (unchanged) when the PSG itself was not recorded (:func:`_add_recording`)."""
    if not adopted or doc is None:
        return doc
    labels = doc["recordings"].setdefault("labels", {})
    for label_key, rec in adopted.items():
        if _verdict(labels.get(label_key), rec.upload_id or "", rec.raw_generation or 0) == "add":
            labels[label_key] = rec.to_doc()
    doc["pairing"] = pairing_status(doc["recordings"])
    return doc
