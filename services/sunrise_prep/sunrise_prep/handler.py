"""sunrise_prep: ``sunrise-anonymised`` event -> prepared jaw-movement signals in ``prepped``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunrise_common import names
from sunrise_common.contracts import NightDoc, NightMessage, Recording
from sunrise_common.errors import PermanentError
from sunrise_common.events import Event
from sunrise_common.nights import open_night, parse_night
from sunrise_common.service import Context, download, run_stage, scalars, scratch_dir, upload_folder
from sunrise_night.prepare import prepare_sunrise

STAGE = "sunrise_prep"


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Prepare the Sunrise recording a ``sunrise-anonymised`` event names."""
    night, message, doc = open_night(ctx, event)
    rec = doc.recordings.sunrise
    if rec is None:
        raise PermanentError("no_sunrise_recording", f"nights/{night} lists no Sunrise recording")
    if rec.generation != message.generation:
        return {"status": "superseded", "detail": "a newer upload of this recording exists"}
    input_key = _input_key(doc)
    # Checked again inside the claim: a newer upload recorded since this document was read makes
    # this run superseded before it starts (issue 22, defect 1).
    return run_stage(ctx, "nights", night, STAGE, input_key, lambda: _prepare(ctx, night, rec, input_key),
                     current=lambda d: d is not None and _input_key(parse_night(night, d)) == input_key)


def _input_key(doc: NightDoc) -> str | None:
    rec = doc.recordings.sunrise
    return None if rec is None else names.input_key(rec.input, reruns=doc.rerun_count(STAGE))


def _prepare(ctx: Context, night: str, rec: Recording, input_key: str) -> dict[str, Any]:
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        src = download(ctx, ctx.settings.bucket("anonymised"), rec.object, tmp, "sunrise.edf", rec.generation)
        out = tmp / "out"
        out.mkdir()
        summary = prepare_sunrise(src, out)  # bad input raises a PermanentError (EdfError is one)
        prefix = names.prepped_prefix(night, "sunrise", input_key)
        written = upload_folder(ctx, ctx.settings.bucket("prepped"), prefix, out)
    message = NightMessage(night_id=night, kind="sunrise")
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_SUNRISE_PREPPED), message.to_bytes())
    # The generation prepared: the gold layer's lineage reads it here (the input key is a digest).
    return {"outputs": {"prefix": prefix, "files": sorted(written), "generation": rec.generation},
            "metrics": {"bytes": sum(written.values())}, "summary": scalars(summary)}
