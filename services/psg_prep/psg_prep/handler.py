"""psg_prep: ``psg-anonymised`` event -> prepared PSG signals and canonical labels in ``prepped``.

The event may announce the PSG recording or a label file; either way the stage prepares the
night's current PSG with all its current label files. Labels that arrive before the PSG wait
for it (the PSG's own event then picks them up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sunrise_common import identity, names
from sunrise_common.events import Event
from sunrise_common.nights import open_night, rerun_count
from sunrise_common.service import Context, download, run_stage, scalars, scratch_dir, upload_folder

from psg_prep.prepare import prepare_psg

STAGE = "psg_prep"


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Prepare the PSG (and its labels) of the night an event names."""
    night, payload, doc = open_night(ctx, event)
    recordings = doc.get("recordings", {})
    psg = recordings.get("psg")
    if psg is None:
        return {"status": "waiting", "detail": "labels recorded; the PSG recording has not arrived yet"}
    labels = recordings.get("labels", {})
    input_key = "k" + identity.digest(psg["generation"], *sorted(f"{k}:{v['generation']}" for k, v in labels.items()),
                                      f"rerun:{rerun_count(doc, STAGE)}")
    return run_stage(ctx, "nights", night, STAGE, input_key, lambda: _prepare(ctx, night, psg, labels, input_key))


def _prepare(ctx: Context, night: str, psg: dict, labels: dict, input_key: str) -> dict[str, Any]:
    bucket = ctx.settings.bucket("anonymised")
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        psg_path = download(ctx, bucket, psg["object"], tmp, "psg." + psg["object"].rsplit(".", 1)[1], int(psg["generation"]))
        label_dir = tmp / "labels"
        label_dir.mkdir()
        label_paths = [
            download(ctx, bucket, rec["object"], label_dir, rec["object"].rsplit("/", 1)[1], int(rec["generation"]))
            for _, rec in sorted(labels.items())
        ]
        out = tmp / "out"
        out.mkdir()
        # Bad input raises a PermanentError (EdfError, LabelError and PrepError are ones).
        summary = prepare_psg(psg_path, label_paths, out, channel_map=ctx.settings.psg_channel_map,
                              notch_hz=ctx.settings.mains_hz or None)
        prefix = names.prepped_prefix(night, "psg", input_key)
        written = upload_folder(ctx, ctx.settings.bucket("prepped"), prefix, out)
    message = {"night_id": night, "kind": "psg", "prefix": prefix, "input_key": input_key}
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_PSG_PREPPED), json.dumps(message).encode())
    return {"outputs": {"prefix": prefix, "files": sorted(written), "labels": len(labels)},
            "metrics": {"bytes": sum(written.values())},
            "summary": scalars(summary)}
