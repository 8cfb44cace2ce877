"""sunrise_common.nights: a per-night event's message, checked, and its night document, typed, on
the SQLite state; unknown nights, forged ids and unreadable documents are permanent rejections."""

from __future__ import annotations

import json

import pytest

from sunrise_common import logs
from sunrise_common.contracts import NightDoc
from sunrise_common.errors import NotFound, PermanentError
from sunrise_common.events import Event, pubsub_event
from sunrise_common.nights import load_night, night_event, open_night

NIGHT = "sabcdefghijkl-nabcdefgh"
SUNRISE = {"object": f"nights/{NIGHT}/sunrise.edf", "generation": 1712345678901234, "sha256": "ab" * 32,
           "size": 1000, "start_offset_s": 37800.0, "duration_s": 28800.0, "year": 2024, "upload_id": "u" + "a" * 24,
           "format": "EDF+C"}


def event_of(payload: dict | bytes) -> Event:
    from sunrise_common.events import parse_event

    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers, body = pubsub_event("p", "sunrise-test-sunrise-anonymised", data)
    return parse_event(headers, json.dumps(body).encode())


def test_open_night_gives_the_message_and_the_typed_document_and_binds_the_night_id(ctx):
    ctx.state.set("nights", NIGHT, {"night_id": NIGHT, "recordings": {"sunrise": SUNRISE}})
    with logs.log_context():
        night, message, doc = open_night(ctx, event_of(
            {"night_id": NIGHT, "kind": "sunrise", "object": SUNRISE["object"], "generation": "1712345678901234"}))
        assert logs.current().get("night_id") == NIGHT
    assert night == NIGHT and isinstance(doc, NightDoc)
    assert message.generation == doc.recordings.sunrise.generation == 1712345678901234
    assert doc.recordings.psg is None and doc.recordings.labels == {}


def test_a_night_that_does_not_exist_is_a_permanent_not_found(ctx):
    with pytest.raises(NotFound) as raised:
        load_night(ctx, NIGHT)
    assert raised.value.reason == "night_not_found" and raised.value.status_code == 200


@pytest.mark.parametrize("payload", [{}, {"night_id": NIGHT + "\n"}, {"night_id": 5}, {"night_id": "../x"},
                                     {"night_id": NIGHT, "generation": "12abc"}, {"night_id": NIGHT, "generation": True},
                                     {"night_id": NIGHT, "kind": "anything"}])
def test_a_message_that_is_not_a_night_message_is_a_permanent_bad_payload(payload):
    with pytest.raises(PermanentError) as raised:
        night_event(event_of(payload))
    assert raised.value.reason == "bad_payload"


def test_messages_older_code_sent_still_read():
    """The prepped topics carried prefix and input_key until issue 17; nobody read them."""
    old = night_event(event_of({"night_id": NIGHT, "kind": "sunrise", "prefix": f"nights/{NIGHT}/sunrise/g1/",
                                "input_key": "g1"}))
    assert old.night_id == NIGHT and old.generation is None
    assert night_event(event_of({"night_id": NIGHT, "generation": 17})).generation == 17


def test_a_stored_document_that_does_not_read_is_a_permanent_rejection_naming_the_field(ctx):
    ctx.state.set("nights", NIGHT, {"recordings": {"sunrise": {"object": "x"}}})  # no generation
    with pytest.raises(PermanentError) as raised:
        load_night(ctx, NIGHT)
    assert raised.value.reason == "bad_night_document" and "recordings.sunrise.generation" in raised.value.detail


def test_a_document_written_before_typed_contracts_reads_and_keeps_its_unknown_fields(ctx):
    legacy = {"night_id": NIGHT, "subject": NIGHT.split("-")[0], "recordings": {"sunrise": SUNRISE}, "pairing": {},
              "stages": {"sunrise_prep": {"state": "done", "input_key": "g1712345678901234", "attempts": 1,
                                          "outputs": {"prefix": "p/"}, "lease_expires": 0}},
              "runs": {"sunrise_prep": {"g1712345678901234": {"state": "done", "attempts": 1}}},
              "reruns": {"sunrise_prep": 2}, "some_future_field": {"x": 1}}
    ctx.state.set("nights", NIGHT, legacy)
    doc = load_night(ctx, NIGHT)
    assert doc.recordings.sunrise.token is None and doc.recordings.sunrise.input == "1712345678901234"
    assert doc.latest_done("sunrise_prep").outputs == {"prefix": "p/"} and doc.latest_done("psg_prep") is None
    assert doc.rerun_count("sunrise_prep") == 2 and doc.rerun_count("sunalgo") == 0
    assert not doc.in_progress("sunrise_prep")
    assert doc.model_dump()["some_future_field"] == {"x": 1}


def test_a_stage_running_or_retrying_is_in_progress():
    for state, busy in (("running", True), ("retrying", True), ("done", False), ("failed", False), ("pending", False)):
        doc = NightDoc.model_validate({"stages": {"psg_prep": {"state": state}}})
        assert doc.in_progress("psg_prep") is busy, state
