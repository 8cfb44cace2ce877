"""sunrise_prep: ``sunrise-anonymised`` event -> prepared jaw-movement signals in ``prepped``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sunrise_common import names
from sunrise_common.errors import PermanentError
from sunrise_common.events import Event
from sunrise_common.nights import open_night, rerun_count
from sunrise_common.service import Context, download, run_stage, scalars, scratch_dir, upload_folder

from sunrise_prep.prepare import prepare_sunrise

STAGE = "sunrise_prep"


def handle(event: Event, ctx: Context) -> dict[str, Any]:
    """Prepare the Sunrise recording a ``sunrise-anonymised`` event names."""
    night, payload, doc = open_night(ctx, event)
    rec = doc.get("recordings", {}).get("sunrise")
    if rec is None:
        raise PermanentError("no_sunrise_recording", f"nights/{night} lists no Sunrise recording")
    if str(rec["generation"]) != str(payload.get("generation")):
        return {"status": "superseded", "detail": "a newer upload of this recording exists"}
    reruns = rerun_count(doc, STAGE)
    input_key = f"g{rec['generation']}" + (f"r{reruns}" if reruns else "")
    return run_stage(ctx, "nights", night, STAGE, input_key, lambda: _prepare(ctx, night, rec, input_key))


def _prepare(ctx: Context, night: str, rec: dict[str, Any], input_key: str) -> dict[str, Any]:
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        src = download(ctx, ctx.settings.bucket("anonymised"), rec["object"], tmp, "sunrise.edf", int(rec["generation"]))
        out = tmp / "out"
        out.mkdir()
        summary = prepare_sunrise(src, out)  # bad input raises a PermanentError (EdfError is one)
        prefix = names.prepped_prefix(night, "sunrise", input_key)
        written = upload_folder(ctx, ctx.settings.bucket("prepped"), prefix, out)
    message = {"night_id": night, "kind": "sunrise", "prefix": prefix, "input_key": input_key}
    ctx.publisher.publish(ctx.settings.topic(names.TOPIC_SUNRISE_PREPPED), json.dumps(message).encode())
    return {"outputs": {"prefix": prefix, "files": sorted(written)}, "metrics": {"bytes": sum(written.values())},
            "summary": scalars(summary)}

