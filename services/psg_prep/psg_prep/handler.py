"""psg_prep: ``psg-anonymised`` event -> prepared PSG signals and canonical labels in ``prepped``.

The event may announce the PSG recording or a label file; either way the stage prepares the
night's current PSG with all its current label files. Labels that arrive before the PSG wait
for it (the PSG's own event then picks them up). An event whose upload was replaced since (its
generation is no longer the night's) is dropped, as sunrise_prep does: the newer upload's own
event prepares the night.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunrise_common import names
from sunrise_common.contracts import NightDoc, NightMessage, Recording, Recordings
from sunrise_common.events import Event
from sunrise_common.nights import open_night, parse_night
from sunrise_common.service import Context, download, run_stage, scalars, scratch_dir, upload_folder

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


def _input_key(doc: NightDoc) -> str | None:
    """The run's input key: the PSG's token and each label file's, sorted (names.input_key)."""
    psg = doc.recordings.psg
    if psg is None:
        return None
    return names.input_key(psg.input, *sorted(f"{k}:{v.input}" for k, v in doc.recordings.labels.items()),
                           reruns=doc.rerun_count(STAGE))


def _prepare(ctx: Context, night: str, psg: Recording, labels: dict[str, Recording], input_key: str) -> dict[str, Any]:
    bucket = ctx.settings.bucket("anonymised")
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        psg_path = download(ctx, bucket, psg.object, tmp, "psg." + psg.object.rsplit(".", 1)[1], psg.generation)
        label_dir = tmp / "labels"
        label_dir.mkdir()
        ordered = [rec for _, rec in sorted(labels.items())]
        label_paths = [download(ctx, bucket, rec.object, label_dir, rec.object.rsplit("/", 1)[1], rec.generation)
                       for rec in ordered]
        out = tmp / "out"
        out.mkdir()
        # Bad input raises a PermanentError (EdfError, LabelError and PrepError are ones). Each
        # label file's kind is the one ingest detected from the raw bytes and name.
        summary = prepare_psg(psg_path, label_paths, out, label_kinds=[rec.label_kind for rec in ordered],
                              channel_map=ctx.settings.psg_channel_map, notch_hz=ctx.settings.mains_hz or None)
        prefix = names.prepped_prefix(night, "psg", input_key)
        written = upload_folder(ctx, ctx.settings.bucket("prepped"), prefix, out)
    message = NightMessage(night_id=night, kind="psg")
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_PREPPED), message.to_bytes())
    labels_meta = summary.get("labels") if isinstance(summary.get("labels"), dict) else {}
    return {"outputs": {"prefix": prefix, "files": sorted(written), "labels": len(labels),
                        # recorded on the night, shown by `sunrise status NIGHT` (issue 23)
                        "label_warnings": labels_meta.get("warnings", []),
                        "label_misaligned": labels_meta.get("misaligned")},
            "metrics": {"bytes": sum(written.values())},
            "summary": scalars(summary)}
