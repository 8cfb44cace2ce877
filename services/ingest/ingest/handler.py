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
from sunrise_common.labels import HEAD_BYTES, anonymise_label_file, detect_label_kind
from sunrise_common.service import EXHAUSTION_ERRORS, Context, run_stage, scratch_dir

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
    except EXHAUSTION_ERRORS:  # a bomb: run_stage records it as permanent, without its message
        raise
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
    doc = ctx.state.transact("nights", night, lambda d: _add_recording(d, night, raw, label_key, recording, site))
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
    report = _anonymise_edf(src, out, size)
    if report.duration_s <= 0:
        raise PermanentError("no_data", "the recording holds no data records")
    return Anonymised(report.start, report.start_problem, report.duration_s, _edf_ext(report),
                      report.fmt + (f"+{report.plus}" if report.plus else ""))


def _anonymise_label(raw: RawPath, src: Path, out: Path, size: int, head: bytes) -> Anonymised:
    """A label file: its kind detected from the raw name and bytes, then anonymised as that kind."""
    kind = detect_label_kind(raw.file, head)
    if kind == "edf_hypnogram":
        report = _anonymise_edf(src, out, size)
        return Anonymised(report.start, report.start_problem, report.duration_s, _edf_ext(report), kind, kind)
    label = anonymise_label_file(kind, src.read_bytes())
    out.write_bytes(label.data)
    return Anonymised(label.start, "the label file has no start date", 0.0, label.extension, kind, kind)


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
