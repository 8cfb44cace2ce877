"""ingest: raw object finalized -> anonymised copy, night document, per-night event.

The privacy boundary. Whatever leaves here is free of personal data by construction: EDF headers
and annotation text are rewritten by :mod:`sunrise_common.edf`, label files by
:mod:`sunrise_common.labels`, object names derive from the night id, and the upload record is
keyed by a keyed hash of the raw name (which holds the subject id).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sunrise_common import identity, logs, names
from sunrise_common.contracts import NightMessage, Recording, StageRun
from sunrise_common.edf import anonymise_edf
from sunrise_common.edf.anonymise import AnonymisationReport
from sunrise_common.errors import NotFound, PermanentError, PipelineError, TransientError
from sunrise_common.events import Event
from sunrise_common.labels import HEAD_BYTES, anonymise_label_file, detect_label_kind, parse_labels
from sunrise_common.labels.limits import read_bounded
from sunrise_common.service import Context, run_stage, scratch_dir

from ingest.layout import RawPath, parse_raw_name
from ingest import pairing
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


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_DATE = re.compile(r"\b\d{1,4}[./-](\d{1,2}|[A-Za-z]{3})[./-]\d{2,4}\b")


def redact(detail: str, raw_name: str) -> str:
    """An error detail fit to leave the privacy boundary: no part of the raw object name (site,
    subject, file name), no quoted value (readers quote what they found: names, annotation text,
    first lines), no date. Reasons stay exact; the detail keeps the field names and counts."""
    for part in sorted({raw_name, *raw_name.split("/"), *(p.rsplit(".", 1)[0] for p in raw_name.split("/"))},
                       key=len, reverse=True):
        if len(part) >= 2:
            detail = detail.replace(part, "<name>")
    return _DATE.sub("<date>", _QUOTED.sub("<value>", detail))


def _private(raw_name: str, work):  # noqa: ANN001, ANN202
    """Run ingest's work so that whatever error it raises (recorded in Firestore, logged, answered)
    carries no personal data: ingest is the one stage that sees raw names and raw bytes."""
    try:
        return work()
    except PipelineError as exc:
        raise type(exc)(exc.reason, redact(exc.detail, raw_name)) from None
    except Exception as exc:  # an unexpected failure: retried, and described without its message
        raise TransientError("unexpected", f"{type(exc).__name__} in ingest (details withheld: raw data)") from None


def _ingest(ctx: Context, key: bytes, upload: str, bucket: str, name: str, generation: int) -> dict[str, Any]:
    raw = parse_raw_name(name)
    with scratch_dir() as tmp:
        src = Path(tmp) / "raw"
        try:
            info = ctx.storage.download_to_file(bucket, name, src, generation=generation)
        except NotFound as exc:
            raise PermanentError("object_gone", "the raw object (this generation) no longer exists") from exc
        if info.size == 0:
            raise PermanentError("empty_file", "the object has zero bytes")
        out = Path(tmp) / "anonymised"
        anon = _anonymise(raw, src, out, info.size)  # bad input: EdfError/LabelError (PermanentErrors)
        start = anon.start
        if start is None and raw.kind == "labels" and (anon.label_range is not None or anon.timeless):
            return _dateless_label(ctx, key, upload, raw, name, anon, out)
        if start is None:
            raise PermanentError("invalid_start_date", anon.start_problem or "no usable recording start date")
        night = identity.night_id(key, raw.site, raw.subject, start)
        logs.bind(night_id=night)
        label_key = identity.label_key(key, name, anon.label_kind) if raw.kind == "labels" else None
        dest = names.anonymised_object(night, raw.kind, anon.ext, label_key)
        sha = _sha256(out)
        size = out.stat().st_size
        anon_bucket = ctx.settings.bucket("anonymised")
        current = ctx.storage.stat(anon_bucket, dest)
        previous = _recording(ctx, night, raw.kind, label_key)
        if current is not None and previous and previous.get("sha256") == sha and previous.get("generation") == current.generation:
            written = current  # a redelivery after a crash: the same bytes are already there
        else:
            written = ctx.storage.upload_file(anon_bucket, dest, out, if_generation_match=None)
    recording = Recording(
        object=dest, generation=written.generation, token=identity.upload_token(key, dest, written.generation),
        sha256=sha, size=size, start_offset_s=identity.start_offset_s(start), duration_s=anon.duration_s,
        year=start.year, upload_id=upload, format=anon.format, label_kind=anon.label_kind if label_key else None,
    )
    site = identity.site_pseudonym(key, raw.site)
    adopted = _adopt_waiting_labels(ctx, night, recording) if raw.kind == "psg" else {}
    doc = ctx.state.transact("nights", night, lambda d: _add_adopted(
        _add_recording(d, night, raw, label_key, recording, site), adopted))
    topic = names.TOPIC_SUNRISE_ANONYMISED if raw.kind == "sunrise" else names.TOPIC_PSG_ANONYMISED
    message = NightMessage(night_id=night, kind=raw.kind, object=dest, generation=written.generation)
    ctx.publisher.publish(ctx.settings.topic(topic), message.to_bytes(), {"kind": raw.kind})
    pairing = doc["pairing"] if doc else {}
    return {
        "outputs": {"night_id": night, "object": dest, "generation": written.generation, "kind": raw.kind},
        "metrics": {"bytes": size},
        "night_id": night,
        "pairing": pairing,
    }


@dataclass(frozen=True)
class Anonymised:
    """What anonymising one upload into ``out`` found.

    ``start`` is the ORIGINAL recording start (naive, header time): it gives the night id and the
    noon-anchor offset and is never written anywhere itself."""

    start: datetime | None
    start_problem: str | None  # why ``start`` is None
    duration_s: float  # s of recording; 0 for text label files
    ext: str  # extension of the anonymised object
    format: str  # "EDF", "EDF+C", "BDF"..., or the label kind
    label_kind: str | None = None  # labels only: detected once, here, from the raw bytes and name
    # Labels without a date only: (first, last) s from the noon anchor that the file scores, from
    # its time of day (pairing.label_range); None when the time of day is unknown too.
    label_range: tuple[float, float] | None = None
    timeless: bool = False  # labels only: no date and no time of day either (placed at the PSG's start)


def _anonymise(raw: RawPath, src: Path, out: Path, size: int) -> Anonymised:
    """Anonymise the upload ``src`` into ``out`` by its kind (bad input raises a PermanentError)."""
    with open(src, "rb") as f:
        head = f.read(HEAD_BYTES)
    if raw.kind in ("sunrise", "psg"):
        return _anonymise_recording(raw, src, out, size, head)
    return _anonymise_label(raw, src, out, size, head)


def _anonymise_recording(raw: RawPath, src: Path, out: Path, size: int, head: bytes) -> Anonymised:
    """A Sunrise or PSG recording: EDF/EDF+/BDF with data records."""
    if head[:8] not in EDF_MAGIC:
        raise PermanentError("not_edf", f"{raw.kind} uploads must be EDF/EDF+/BDF files")
    if _annotation_only(head):
        raise PermanentError("annotation_only", "the file holds annotation signals only (a scoring or hypnogram "
                                                "file, no recorded signal): upload it as labels")
    report = _anonymise_edf(src, out, size)
    if report.duration_s <= 0:
        raise PermanentError("no_data", "the recording holds no data records")
    return Anonymised(report.start, report.start_problem, report.duration_s, _edf_ext(report),
                      report.fmt + (f"+{report.plus}" if report.plus else ""))


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


def _anonymise_label(raw: RawPath, src: Path, out: Path, size: int, head: bytes) -> Anonymised:
    """A label file: its kind detected from the raw name and bytes, then anonymised as that kind."""
    kind = detect_label_kind(raw.file, head)
    if kind == "edf_hypnogram":
        report = _anonymise_edf(src, out, size)
        rng = _dateless_range(kind, out) if report.start is None else None
        return Anonymised(report.start, report.start_problem, report.duration_s, _edf_ext(report), kind, kind,
                          rng if rng != "timeless" else None)
    with open(src, "rb") as f:
        label = anonymise_label_file(kind, read_bounded(f))  # labels.limits: MAX_BYTES
    out.write_bytes(label.data)
    rng = _dateless_range(kind, out) if label.start is None else None
    return Anonymised(label.start, "the label file has no start date", 0.0, label.extension, kind, kind,
                      rng if rng != "timeless" else None, rng == "timeless")


def _anonymise_edf(src: Path, out: Path, size: int) -> AnonymisationReport:
    with open(src, "rb") as f, open(out, "wb") as g:
        return anonymise_edf(f, g, size)


def _edf_ext(report: AnonymisationReport) -> str:
    return "bdf" if report.fmt == "BDF" else "edf"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recording(ctx: Context, night: str, kind: str, label_key: str | None) -> dict[str, Any] | None:
    doc = ctx.state.get("nights", night) or {}
    recordings = doc.get("recordings", {})
    return recordings.get("labels", {}).get(label_key) if label_key else recordings.get(kind)


def _add_recording(doc: dict | None, night: str, raw: RawPath, label_key: str | None, recording: Recording,
                   site_pseudonym: str) -> dict:
    doc = copy.deepcopy(doc) if doc else {"night_id": night, "created_at": time.time(), "recordings": {}}
    doc["subject"] = night.rsplit("-n", 1)[0]
    doc["site_pseudonym"] = site_pseudonym  # keyed (identity.site_pseudonym): per-site dataset stats
    recordings = doc.setdefault("recordings", {})
    slot = recordings.setdefault("labels", {}) if label_key else recordings
    slot_key = label_key or raw.kind
    previous = slot.get(slot_key)
    # Two uploads racing for the same anonymised object: the object holds the last write (the
    # larger generation), so that is the one the night must name.
    if previous is None or int(previous.get("generation", 0)) <= recording.generation:
        slot[slot_key] = recording.to_doc()
    doc["pairing"] = pairing_status(recordings)
    now = time.time()
    doc.setdefault("stages", {})["ingest"] = StageRun(
        state="done", input_key=recording.upload_id, finished_at=now, error=None, outputs={"object": recording.object},
    ).to_doc()
    doc["updated_at"] = now
    return doc


# -- label files without a date (issue 23): paired by time of day, see ingest.pairing -----------


def _dateless_range(kind: str, out: Path) -> tuple[float, float] | str | None:
    """(first, last) s from the noon anchor that an anonymised label file without a date scores,
    from its time of day and the span of its stages and events; ``"timeless"`` for a text label
    file without any time (it starts with the recording); None for an EDF without a usable time."""
    labels = parse_labels(kind, out.read_bytes())  # the anonymised bytes: what psg_prep reads
    tod = labels.start_time_of_day_s
    if tod is None:
        return None if kind == "edf_hypnogram" else "timeless"
    spans = [(e.onset_s, e.onset_s + e.duration_s) for e in labels.events]
    hyp = labels.hypnogram
    if hyp is not None and hyp.stages:
        spans.append((hyp.onset_s, hyp.onset_s + len(hyp.stages) * hyp.epoch_s))
    span = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0.0, 0.0)
    return pairing.label_range(identity.time_of_day_offset_s(0, 0, tod), span)


def _dateless_label(ctx: Context, key: bytes, upload: str, raw: RawPath, name: str, anon: Anonymised,
                    out: Path) -> dict[str, Any]:
    """A label file with a time of day but no date: into the night of the subject's PSG that it
    overlaps, or waiting for that PSG (``pairing/{subject}``)."""
    subject = identity.subject_pseudonym(key, raw.site, raw.subject)
    label_key = identity.label_key(key, name, anon.label_kind)
    rng = anon.label_range  # None: a label file without any time, placed at its PSG's start
    entry = {"range_start_s": rng[0] if rng else None, "range_end_s": rng[1] if rng else None, "upload_id": upload,
             "label_kind": anon.label_kind, "format": anon.format, "ext": anon.ext, "sha256": _sha256(out),
             "size": out.stat().st_size}
    nights = pairing.candidate_nights(_pairing_doc(ctx, subject), rng)
    if not nights:
        # Park the anonymised bytes first: a PSG that registers right after may take them.
        parked = ctx.storage.upload_file(ctx.settings.bucket("anonymised"),
                                         pairing.waiting_object(subject, label_key, anon.ext), out,
                                         if_generation_match=None)
        entry.update(object=parked.name, generation=parked.generation, since=time.time())

        def wait(doc: dict | None) -> dict:
            doc = copy.deepcopy(doc) if doc else {}
            found = pairing.candidate_nights(doc, rng)
            if not found:
                doc.setdefault("waiting_labels", {})[label_key] = {**entry, "paired_night": None}
            return doc

        doc = ctx.state.transact(pairing.PAIRING, subject, wait)
        nights = pairing.candidate_nights(doc, rng)
        if not nights:
            logs.bind(subject=subject)
            return {"outputs": {"waiting_for": "psg", "object": parked.name, "kind": raw.kind},
                    "metrics": {"bytes": entry["size"]}}
    if len(nights) > 1:
        raise PermanentError("ambiguous_night", f"the label file carries no date and {len(nights)} PSG nights of its "
                                                "subject overlap its time of day; upload it with its date")
    (night,) = nights
    logs.bind(night_id=night)
    registered = ctx.state.get(pairing.PAIRING, subject)["psg_nights"][night]
    dest = names.anonymised_object(night, "labels", anon.ext, label_key)
    written = ctx.storage.upload_file(ctx.settings.bucket("anonymised"), dest, out, if_generation_match=None)
    recording = _label_recording(key, dest, written.generation, entry, registered)
    site = identity.site_pseudonym(key, raw.site)
    doc = ctx.state.transact("nights", night, lambda d: _add_recording(d, night, raw, label_key, recording, site))
    message = NightMessage(night_id=night, kind="labels", object=dest, generation=written.generation)
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_ANONYMISED), message.to_bytes(), {"kind": "labels"})
    return {"outputs": {"night_id": night, "object": dest, "generation": written.generation, "kind": raw.kind,
                        "start_assumed": recording.start_assumed},
            "metrics": {"bytes": entry["size"]}, "night_id": night, "pairing": doc["pairing"] if doc else {}}


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
                    label_kind=entry["label_kind"])
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
        dest = names.anonymised_object(night, "labels", entry["ext"], label_key)
        current = ctx.storage.stat(bucket, dest)
        if current is None:
            current = ctx.storage.write_bytes(bucket, dest, ctx.storage.read_bytes(bucket, entry["object"]),
                                              if_generation_match=None)
        adopted[label_key] = _label_recording(key, dest, current.generation, entry, psg.model_dump())
    return adopted


def _add_adopted(doc: dict, adopted: dict[str, Recording]) -> dict:
    """The night document with the label files its PSG took (the newest generation wins)."""
    if not adopted:
        return doc
    labels = doc["recordings"].setdefault("labels", {})
    for label_key, rec in adopted.items():
        if int(labels.get(label_key, {}).get("generation", -1)) <= rec.generation:
            labels[label_key] = rec.to_doc()
    doc["pairing"] = pairing_status(doc["recordings"])
    return doc
