"""Reading the night document from a per-night event (shared by the stages after ingest).

The message and the document are typed in :mod:`sunrise_common.contracts`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sunrise_common import logs
from sunrise_common.contracts import NightDoc, NightMessage
from sunrise_common.errors import NotFound, PermanentError
from sunrise_common.events import Event, _problems
from sunrise_common.service import Context


def night_event(event: Event) -> NightMessage:
    """The message of a per-night Pub/Sub event, checked (``bad_payload`` otherwise)."""
    return NightMessage.parse(event.payload())


def load_night(ctx: Context, night_id: str) -> NightDoc:
    """The night document.

    A night that does not exist is a permanent rejection (:class:`NotFound`, answered 2xx with
    the reason and logged with the night id), not a retry: ingest writes ``nights/{night_id}``
    before it publishes the night's event, so an event about an unknown night was forged or
    belongs to a night that was purged, and retrying it for 24 h cannot help. A document that
    does not read as a :class:`NightDoc` is permanent too (``bad_night_document``): retrying reads
    the same document; once it is repaired, ``sunrise rerun`` asks again."""
    doc = ctx.state.get("nights", night_id)
    if doc is None:
        raise NotFound("night_not_found", f"nights/{night_id} does not exist")
    return parse_night(night_id, doc)


def parse_night(night_id: str, doc: dict[str, Any]) -> NightDoc:
    """A stored night document as a :class:`NightDoc`."""
    try:
        return NightDoc.model_validate(doc)
    except ValidationError as exc:
        raise PermanentError("bad_night_document", f"nights/{night_id}: {_problems(exc)}") from None


def open_night(ctx: Context, event: Event) -> tuple[str, NightMessage, NightDoc]:
    """(night id, message, night document) of a per-night event; binds the night id to the log
    context."""
    message = night_event(event)
    logs.bind(night_id=message.night_id)
    return message.night_id, message, load_night(ctx, message.night_id)


__all__ = ["NotFound", "load_night", "night_event", "open_night", "parse_night"]
