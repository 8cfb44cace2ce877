"""Reading the night document from a per-night event (shared by the stages after ingest)."""

from __future__ import annotations

import re
from typing import Any

from sunrise_common.errors import NotFound, PermanentError
from sunrise_common.events import Event

_NIGHT_ID = re.compile(r"\As[a-z2-7]{12}-n[a-z2-7]{8}\Z")  # \A...\Z: no trailing newline


def night_event(event: Event) -> dict[str, Any]:
    """The payload of a per-night Pub/Sub event, checked."""
    payload = event.payload()
    night = payload.get("night_id")
    if not isinstance(night, str) or not _NIGHT_ID.match(night):
        raise PermanentError("bad_payload", f"night_id must look like s<12 base32>-n<8 base32>, got {str(night)[:40]!r}")
    return payload


def load_night(ctx, night_id: str) -> dict[str, Any]:  # noqa: ANN001 - Context
    """The night document.

    A night that does not exist is a permanent rejection (:class:`NotFound`, answered 2xx with
    the reason and logged with the night id), not a retry: ingest writes ``nights/{night_id}``
    before it publishes the night's event, so an event about an unknown night was forged or
    belongs to a night that was purged, and retrying it for 24 h cannot help."""
    doc = ctx.state.get("nights", night_id)
    if doc is None:
        raise NotFound("night_not_found", f"nights/{night_id} does not exist")
    return doc


def open_night(ctx, event: Event) -> tuple[str, dict[str, Any], dict[str, Any]]:  # noqa: ANN001 - Context
    """(night id, event payload, night document) of a per-night event; binds the night id to the
    log context."""
    from sunrise_common import logs

    payload = night_event(event)
    night = payload["night_id"]
    logs.bind(night_id=night)
    return night, payload, load_night(ctx, night)


def latest_done(doc: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """The stage's latest run if it finished, else None."""
    st = doc.get("stages", {}).get(stage)
    return st if st and st.get("state") == "done" else None


def rerun_count(doc: dict[str, Any], stage: str) -> int:
    """How many times ``sunrise rerun`` asked for this stage again; folded into the stage's input key
    so that a rerun writes new outputs instead of finding the old ones done."""
    return int(doc.get("reruns", {}).get(stage, 0))


def in_progress(doc: dict[str, Any], stage: str) -> bool:
    """The stage's latest run is working or waiting for a retry."""
    return doc.get("stages", {}).get(stage, {}).get("state") in ("running", "retrying")


__all__ = ["NotFound", "in_progress", "latest_done", "load_night", "night_event", "open_night", "rerun_count"]
