"""psg_prep: ``psg-anonymised`` event -> prepared PSG signals and canonical labels in ``prepped``.

The event may announce the PSG recording or a label file; either way the stage prepares the
night's current PSG with all its current label files. Labels that arrive before the PSG wait
for it (the PSG's own event then picks them up). An event whose upload was replaced since (its
generation is no longer the night's) is dropped, as sunrise_prep does: the newer upload's own
event prepares the night.
"""

from __future__ import annotations

from typing import Any

from sunrise_common import names
from sunrise_common.contracts import NightDoc, NightMessage, Recording, Recordings
from sunrise_common.events import Event
from sunrise_common.nights import open_night, parse_night
from sunrise_common.labels.limits import check_size, read_bounded
from sunrise_common.service import Context, run_stage, scalars, write_manifest

from psg_prep.outputs import BucketOutputs
from psg_prep.prepare import prepare_psg

STAGE = "psg_prep"


def announced(recordings: Recordings, message: NightMessage) -> Recording | None:
    """The night's current recording in the slot the message's upload went to (the PSG, or the
    label file with the message's object name), or None."""
    if message.kind == "labels":
        return next((rec for rec in recordings.labels.values() if rec.object == message.object), None)
    return recordings.psg


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Prepare the PSG (and its labels) of the night an event names."""
    night, message, doc = open_night(ctx, event)
    current = announced(doc.recordings, message)
    if current is None or current.generation != message.generation:
        return {"status": "superseded", "detail": "the night's current upload is not the one this event announces"}
    psg = doc.recordings.psg
    if psg is None:
        return {"status": "waiting", "detail": "labels recorded; the PSG recording has not arrived yet"}
    labels = doc.recordings.labels
    input_key = _input_key(doc)
    # Checked again inside the claim: a newer upload recorded since this document was read makes
    # this run superseded before it starts (issue 22, defect 1).
    return run_stage(ctx, "nights", night, STAGE, input_key, lambda: _prepare(ctx, night, psg, labels, input_key),
                     current=lambda d: d is not None and _input_key(parse_night(night, d)) == input_key)


def _read_label(ctx: Context, bucket: str, rec: Recording) -> bytes:
    """A label file's bytes, that generation, at most the label limit (checked before reading)."""
    with ctx.storage.open_read(bucket, rec.object, generation=rec.generation) as (info, stream):
        check_size(info.size)
        return read_bounded(stream)


def _input_key(doc: NightDoc) -> str | None:
    """The run's input key: the PSG's token and each label file's, sorted (names.input_key)."""
    psg = doc.recordings.psg
    if psg is None:
        return None
    return names.input_key(psg.input, *sorted(f"{k}:{v.input}" for k, v in doc.recordings.labels.items()),
                           reruns=doc.rerun_count(STAGE))


def _prepare(ctx: Context, night: str, psg: Recording, labels: dict[str, Recording], input_key: str) -> dict[str, Any]:
    """Read the PSG from the anonymised bucket as a seekable stream (range reads: nothing
    downloaded), the label files into memory (bounded by the label limits), and write the
    outputs straight into the prepped bucket (``BucketOutputs``): the request keeps nothing of
    the night in ``/tmp``, and its memory does not grow with the night's length (issue 26)."""
    bucket = ctx.settings.bucket("anonymised")
    ordered = [rec for _, rec in sorted(labels.items())]
    label_files = [(rec.object.rsplit("/", 1)[1], _read_label(ctx, bucket, rec)) for rec in ordered]
    prefix = names.prepped_prefix(night, "psg", input_key)
    out = BucketOutputs(ctx.storage, ctx.settings.bucket("prepped"), prefix)
    # A generation gone (replaced meanwhile) raises NotFound, as the download did before.
    with ctx.storage.open_read(bucket, psg.object, generation=psg.generation) as (_, source):
        # Bad input raises a PermanentError (EdfError, LabelError and PrepError are ones). Each
        # label file's kind is the one ingest detected from the raw bytes and name.
        summary = prepare_psg(source, label_files, out, label_kinds=[rec.label_kind for rec in ordered],
                              channel_map=ctx.settings.psg_channel_map, notch_hz=ctx.settings.mains_hz or None)
    written = out.written
    write_manifest(ctx, ctx.settings.bucket("prepped"), prefix, written)
    message = NightMessage(night_id=night, kind="psg")
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_PREPPED), message.to_bytes())
    labels_meta = summary.get("labels") if isinstance(summary.get("labels"), dict) else {}
    return {"outputs": {"prefix": prefix, "files": sorted(written), "labels": len(labels),
                        # recorded on the night, shown by `sunrise status NIGHT` (issue 23)
                        "label_warnings": labels_meta.get("warnings", []),
                        "label_misaligned": labels_meta.get("misaligned")},
            "metrics": {"bytes": sum(written.values())},
            "summary": scalars(summary)}
