"""The newest raw generation of a recording is the night's, whatever order the work finishes in,
and a second upload of a kind the night already has is refused, not swapped in (issue 22,
defects 1 and 7).

The interleavings are controlled, not timed: ingest calls ``ingest.handler.step_hook`` at each of
its named steps, and the test holds one generation's ingest there (a ``threading.Event``) while
the other generation is uploaded and ingested to the end. Real EDF files, the real handler, on
the embedded backend and on the emulators (fake-gcs-server, the Firestore and Pub/Sub emulators).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path

import pytest

import ingest.handler as ingest_handler
from sunrise_common import identity
from sunrise_common.errors import PipelineError
from sunrise_common.events import parse_event, storage_event
from sunrise_common.service import Context
from sunrise_common.settings import Settings
from tests.conftest import CORPUS, TEST_KEY
from tests.ports.conftest import PREFIX, PROJECT, emulators, emulators_session  # noqa: F401 - fixtures

PSG = CORPUS / "edf" / "edfio__short_psg.edf"
NAME = "psg/namur/P001/night.edf"
WAIT_S = 120.0  # a bound on a condition, not a timing: a loaded machine passes well within it


@pytest.fixture(params=["embedded", pytest.param("emulators", marks=pytest.mark.emulators)])
def ctx(request, tmp_path: Path) -> Context:
    if request.param == "embedded":
        settings = Settings(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY,
                            prefix=PREFIX, project=PROJECT, lease_s=30)
    else:
        emu = request.getfixturevalue("emulators")
        settings = Settings(backend="emulators", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY,
                            prefix=PREFIX, project=PROJECT, lease_s=30, gcs_endpoint=emu.gcs_endpoint,
                            pubsub_emulator_host=emu.pubsub_emulator_host,
                            firestore_emulator_host=emu.firestore_emulator_host)
    context = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        context.storage.ensure_bucket(settings.bucket(logical))
    return context


def corrected(data: bytes, nth: int) -> bytes:
    """The PSG with one data byte changed near its end: the same night (same header), other signals."""
    at = len(data) - 1000 - nth
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]


def put(ctx: Context, data: bytes, name: str = NAME):
    return ctx.storage.write_bytes(ctx.settings.bucket("raw"), name, data, if_generation_match=None)


def ingest(ctx: Context, info) -> dict:
    """One finalize event through ingest's handler: its answer, or the error it raised."""
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    try:
        return ingest_handler.handle(parse_event(headers, json.dumps(body).encode()), ctx)
    except PipelineError as exc:
        return {"status": "error", "reason": exc.reason}


class Gate:
    """Holds the ingest of one raw generation at one named step until released."""

    def __init__(self, generation: int, step: str) -> None:
        self.generation, self.step = generation, step
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, step: str, generation: int) -> None:
        if generation == self.generation and step == self.step:
            self.reached.set()
            if not self.release.wait(WAIT_S):
                raise RuntimeError(f"gate at {step} never released")


def held(ctx: Context, info, step: str, monkeypatch) -> tuple[threading.Thread, Gate, dict]:
    """Start ``info``'s ingest in a thread and wait until it is held at ``step``."""
    gate = Gate(info.generation, step)
    monkeypatch.setattr(ingest_handler, "step_hook", gate)
    answer: dict = {}
    thread = threading.Thread(target=lambda: answer.update(ingest(ctx, info)), daemon=True)
    thread.start()
    if not gate.reached.wait(WAIT_S):
        raise AssertionError(f"the ingest never reached {step}: {answer}")
    return thread, gate, answer


def anonymised_sha(ctx: Context, obj: str) -> str:
    return hashlib.sha256(ctx.storage.read_bytes(ctx.settings.bucket("anonymised"), obj)).hexdigest()


def night_psg(ctx: Context) -> tuple[str, dict]:
    ((night, doc),) = list(ctx.state.list("nights"))
    return night, doc["recordings"]["psg"]


@pytest.mark.parametrize("step", ingest_handler.STEPS)
def test_an_older_generation_finishing_last_never_replaces_the_newer_one(ctx, step, monkeypatch):
    """G1's ingest is held at ``step`` while G2 replaces the raw object and is ingested to the
    end; then G1 goes on. Today's main let G1 (finishing last) win."""
    original = PSG.read_bytes()
    g1 = put(ctx, original)
    thread, gate, first = held(ctx, g1, step, monkeypatch)
    g2 = put(ctx, corrected(original, 1))
    assert g2.generation > g1.generation
    second = ingest(ctx, g2)
    assert second["status"] == "done", second
    gate.release.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    # G1 either could not read its generation any more (Cloud Storage keeps no old generation
    # here), found the newer one recorded, or recorded first and was then replaced.
    assert first.get("status") in ("superseded", "done") or first.get("reason") == "object_gone", first
    _, psg = night_psg(ctx)
    assert psg["raw_generation"] == g2.generation
    assert psg["object"] == second["outputs"]["object"]
    assert anonymised_sha(ctx, psg["object"]) == psg["sha256"]  # the object holds G2's bytes, untouched
    if step != "recorded":  # G1 never became the night's: its object is gone (or was never written)
        objects = [o.name for o in ctx.storage.list(ctx.settings.bucket("anonymised"))]
        assert objects == [psg["object"]]


@pytest.mark.parametrize("step", ingest_handler.STEPS)
def test_the_newer_generation_held_at_any_step_still_wins_over_an_older_one_finishing_first(ctx, step, monkeypatch):
    original = PSG.read_bytes()
    g1 = put(ctx, original)
    holder, g1_gate, first = held(ctx, g1, "opened", monkeypatch)  # G1 holds its bytes open
    g2 = put(ctx, corrected(original, 2))
    g2_gate = Gate(g2.generation, step)
    both = lambda s, g: (g1_gate(s, g), g2_gate(s, g))  # noqa: E731
    monkeypatch.setattr(ingest_handler, "step_hook", both)
    second: dict = {}
    newer = threading.Thread(target=lambda: second.update(ingest(ctx, g2)), daemon=True)
    newer.start()
    assert g2_gate.reached.wait(WAIT_S)
    g1_gate.release.set()  # G1 finishes while G2 is held
    holder.join(WAIT_S)
    g2_gate.release.set()
    newer.join(WAIT_S)
    assert second["status"] == "done", second
    assert first.get("status") in ("done", "superseded") or first.get("reason") == "object_gone", first
    _, psg = night_psg(ctx)
    assert psg["raw_generation"] == g2.generation and psg["object"] == second["outputs"]["object"]
    assert anonymised_sha(ctx, psg["object"]) == psg["sha256"]


def test_a_stale_event_of_a_replaced_generation_is_dropped_by_psg_prep(ctx, monkeypatch):
    """G1 recorded and published, then G2 recorded: G1's message reaches psg_prep late and is
    dropped (its generation is no longer the night's); G2's message is prepared."""
    from psg_prep.handler import handle as psg_prep

    from sunrise_common.contracts import NightMessage

    original = PSG.read_bytes()
    g1 = put(ctx, original)
    first = ingest(ctx, g1)
    g2 = put(ctx, corrected(original, 3))
    second = ingest(ctx, g2)
    assert first["status"] == second["status"] == "done"
    night, psg = night_psg(ctx)
    for answer, expected in ((first, "superseded"), (second, "done")):
        out = answer["outputs"]
        message = NightMessage(night_id=night, kind="psg", object=out["object"], generation=out["generation"])
        headers = {"ce-id": f"m-{expected}", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
                   "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-specversion": "1.0",
                   "content-type": "application/json"}
        body = {"message": {"data": base64.b64encode(message.to_bytes()).decode(), "messageId": "1"},
                "subscription": "projects/p/subscriptions/s"}
        result = psg_prep(parse_event(headers, json.dumps(body).encode()), ctx)
        assert result["status"] == expected, result
    assert psg["raw_generation"] == g2.generation


def test_a_second_psg_upload_for_the_same_night_is_recorded_as_a_duplicate_not_swapped_in(ctx):
    """Defect 7: two PSG files (two raw names) of one night. The first stays the night's; the
    second upload ends ``failed`` with ``duplicate_recording`` naming the first by its keyed
    upload id (no raw name is stored)."""
    original = PSG.read_bytes()
    first = ingest(ctx, put(ctx, original, "psg/namur/P001/night-a.edf"))
    second = ingest(ctx, put(ctx, corrected(original, 4), "psg/namur/P001/night-b.edf"))
    assert first["status"] == "done"
    assert second == {"status": "error", "reason": "duplicate_recording"}
    _, psg = night_psg(ctx)
    assert psg["object"] == first["outputs"]["object"]
    first_id = identity.upload_id(TEST_KEY.encode(), ctx.settings.bucket("raw"), "psg/namur/P001/night-a.edf")
    second_id = identity.upload_id(TEST_KEY.encode(), ctx.settings.bucket("raw"), "psg/namur/P001/night-b.edf")
    record = ctx.state.get("uploads", second_id)
    assert record["stages"]["ingest"]["state"] == "failed"
    assert record["stages"]["ingest"]["error"].startswith("duplicate_recording: ")
    assert first_id in record["stages"]["ingest"]["error"]
    # It advises only what frees the night's place: nothing handles a deleted upload.
    assert "remove one of the two uploads" not in record["stages"]["ingest"]["error"]
    assert "under the first upload's name" in record["stages"]["ingest"]["error"]
    assert "forget command" in record["stages"]["ingest"]["error"]
    assert "night-a" not in json.dumps(record) and "P001" not in json.dumps(record)
    objects = [o.name for o in ctx.storage.list(ctx.settings.bucket("anonymised"))]
    assert objects == [psg["object"]]  # nothing of the second upload was written


def test_sunrise_status_upload_shows_the_duplicate_with_its_reason(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sunrise_cli.main import app

    for var, value in (("SUNRISE_DATA_DIR", str(tmp_path / "data")), ("SUNRISE_PSEUDONYM_KEY", TEST_KEY),
                       ("SUNRISE_PREFIX", PREFIX), ("SUNRISE_PROJECT", PROJECT)):
        monkeypatch.setenv(var, value)
    context = Context.from_settings(Settings())
    for logical in ("raw", "anonymised", "prepped", "results"):
        context.storage.ensure_bucket(context.settings.bucket(logical))
    original = PSG.read_bytes()
    assert ingest(context, put(context, original, "psg/namur/P001/night-a.edf"))["status"] == "done"
    ingest(context, put(context, corrected(original, 5), "psg/namur/P001/night-b.edf"))
    out = CliRunner().invoke(app, ["status", "--upload", "psg/namur/P001/night-b.edf"]).output
    assert "failed" in out and "duplicate_recording" in out and "already has a PSG recording" in out, out


def test_psg_prep_that_read_the_night_before_a_newer_generation_was_recorded_does_not_start(ctx, monkeypatch):
    """psg_prep reads the night (G1 current), then G2's ingest commits, then psg_prep claims its
    run: the claim sees the newer recording in its transaction and answers ``superseded``, so a
    run of the old input can never become the stage's latest."""
    import psg_prep.handler as psg_prep_handler

    from sunrise_common.contracts import NightMessage

    original = PSG.read_bytes()
    g1 = put(ctx, original)
    first = ingest(ctx, g1)
    real_open_night = psg_prep_handler.open_night

    def open_then_replace(context, event):
        opened = real_open_night(context, event)  # the document as it was: G1 is the night's PSG
        assert ingest(ctx, put(ctx, corrected(original, 6)))["status"] == "done"  # G2 recorded meanwhile
        return opened

    monkeypatch.setattr(psg_prep_handler, "open_night", open_then_replace)
    out = first["outputs"]
    message = NightMessage(night_id=out["night_id"], kind="psg", object=out["object"], generation=out["generation"])
    headers = {"ce-id": "m-race", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-specversion": "1.0",
               "content-type": "application/json"}
    body = {"message": {"data": base64.b64encode(message.to_bytes()).decode(), "messageId": "1"},
            "subscription": "projects/p/subscriptions/s"}
    result = psg_prep_handler.handle(parse_event(headers, json.dumps(body).encode()), ctx)
    assert result["status"] == "superseded", result
    doc = ctx.state.get("nights", out["night_id"])
    assert "psg_prep" not in doc.get("runs", {})  # no run of the old input was ever started


def test_sunrise_status_upload_says_an_older_generation_was_superseded(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from sunrise_cli.main import app

    for var, value in (("SUNRISE_DATA_DIR", str(tmp_path / "data")), ("SUNRISE_PSEUDONYM_KEY", TEST_KEY),
                       ("SUNRISE_PREFIX", PREFIX), ("SUNRISE_PROJECT", PROJECT)):
        monkeypatch.setenv(var, value)
    context = Context.from_settings(Settings())
    for logical in ("raw", "anonymised", "prepped", "results"):
        context.storage.ensure_bucket(context.settings.bucket(logical))
    original = PSG.read_bytes()
    g1 = put(context, original)
    thread, gate, first = held(context, g1, "parsed", monkeypatch)
    assert ingest(context, put(context, corrected(original, 7)))["status"] == "done"
    gate.release.set()
    thread.join(WAIT_S)
    assert first["status"] == "superseded", first
    out = CliRunner().invoke(app, ["status", "--upload", NAME]).output
    lines = out.strip().splitlines()
    assert "(newest, in the bucket now): ingested" in lines[0], out
    assert any(f"generation {g1.generation}: superseded" in line for line in lines), out


@pytest.mark.parametrize("step", ingest_handler.STEPS)
def test_an_ingest_that_dies_at_any_step_is_finished_by_its_retry_with_one_object(ctx, step, monkeypatch):
    """A crash at ``step`` (an exception there: the answer is 5xx, the event is redelivered): the
    retry finds what the first attempt wrote (create-if-absent, same name, same bytes) and ends
    with the night naming exactly one object of this generation."""

    def crash(s, generation):
        if s == step:
            raise RuntimeError(f"simulated crash at {s}")

    g1 = put(ctx, PSG.read_bytes())
    monkeypatch.setattr(ingest_handler, "step_hook", crash)
    assert ingest(ctx, g1) == {"status": "error", "reason": "unexpected"}
    monkeypatch.setattr(ingest_handler, "step_hook", None)
    retried = ingest(ctx, g1)
    assert retried["status"] == "done", retried
    _, psg = night_psg(ctx)
    assert psg["raw_generation"] == g1.generation and psg["object"] == retried["outputs"]["object"]
    assert [o.name for o in ctx.storage.list(ctx.settings.bucket("anonymised"))] == [psg["object"]]
    assert anonymised_sha(ctx, psg["object"]) == psg["sha256"]


def test_a_rewrite_with_the_same_bytes_keeps_the_recording_so_no_stage_runs_again(ctx, monkeypatch):
    """`sunrise backfill --via rewrite`: a new raw generation, the same bytes. The night takes the
    newer raw generation but keeps naming the object already there (same token, same input keys
    downstream); the object the rewrite's ingest wrote goes."""
    g1 = put(ctx, PSG.read_bytes())
    first = ingest(ctx, g1)
    _, before = night_psg(ctx)
    g2 = ctx.storage.rewrite(ctx.settings.bucket("raw"), NAME)
    assert g2.generation > g1.generation

    def crash(step, generation):  # the first attempt dies once the night is updated
        if step == "recorded":
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(ingest_handler, "step_hook", crash)
    assert ingest(ctx, g2)["reason"] == "unexpected"
    monkeypatch.setattr(ingest_handler, "step_hook", None)
    second = ingest(ctx, g2)  # the retry finds this generation recorded and announces it again
    assert second["status"] == "done", second
    _, after = night_psg(ctx)
    assert after["raw_generation"] == g2.generation
    assert {k: v for k, v in after.items() if k != "raw_generation"} == \
        {k: v for k, v in before.items() if k != "raw_generation"}
    assert second["outputs"]["object"] == first["outputs"]["object"]
    assert second["outputs"]["generation"] == first["outputs"]["generation"]
    assert [o.name for o in ctx.storage.list(ctx.settings.bucket("anonymised"))] == [before["object"]]


# -- date-less label files (issue 22 review, item 1): the same rule on the pairing path ---------

from tests.label_night import FORMATS  # noqa: E402
from tests.label_night import psg_edf as label_night_psg  # noqa: E402

NSRR_XML = FORMATS / "nsrr_xml" / "shhs-like-nsrr.xml"  # ClockTime "00.00.00 23.10.00": no date
LABEL_NAME = "labels/namur/P001/shhs1-200001-nsrr.xml"
LABEL_PSG = "psg/namur/P001/shhs1-200001.edf"


def corrected_xml(data: bytes) -> bytes:
    """The XML with one event's duration changed: the same night and time of day, other content."""
    assert b"<Duration>18.5</Duration>" in data
    return data.replace(b"<Duration>18.5</Duration>", b"<Duration>19.5</Duration>", 1)


def anonymised_names(ctx: Context, prefix: str) -> list[str]:
    return sorted(o.name for o in ctx.storage.list(ctx.settings.bucket("anonymised")) if o.name.startswith(prefix))


def night_label(ctx: Context, night: str) -> dict:
    (rec,) = ctx.state.get("nights", night)["recordings"]["labels"].values()
    return rec


def prepares(ctx: Context, night: str) -> dict:
    """psg_prep on the night as it stands (it reads every recorded object at its generation)."""
    from psg_prep.handler import handle as psg_prep

    from sunrise_common.contracts import NightMessage

    rec = ctx.state.get("nights", night)["recordings"]["psg"]
    message = NightMessage(night_id=night, kind="psg", object=rec["object"], generation=rec["generation"])
    headers = {"ce-id": "m-prep", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-specversion": "1.0",
               "content-type": "application/json"}
    body = {"message": {"data": base64.b64encode(message.to_bytes()).decode(), "messageId": "1"},
            "subscription": "projects/p/subscriptions/s"}
    try:
        return psg_prep(parse_event(headers, json.dumps(body).encode()), ctx)
    except PipelineError as exc:
        return {"status": "error", "reason": exc.reason}


@pytest.mark.parametrize("step", ingest_handler.STEPS)
def test_an_older_dateless_label_generation_finishing_last_never_replaces_the_newer_one(ctx, step, monkeypatch,
                                                                                       tmp_path):
    """The PSG is there; label G1 is held at ``step`` while G2 is ingested into the night; then G1
    goes on. Today's main: G1 overwrote the night's label object (one fixed name, no precondition),
    the night kept G2's generation, and psg_prep failed for good (NotFound)."""
    psg = ingest(ctx, put(ctx, label_night_psg(tmp_path / "psg.edf").read_bytes(), LABEL_PSG))
    night = psg["night_id"]
    original = NSRR_XML.read_bytes()
    g1 = put(ctx, original, LABEL_NAME)
    thread, gate, first = held(ctx, g1, step, monkeypatch)
    g2 = put(ctx, corrected_xml(original), LABEL_NAME)
    second = ingest(ctx, g2)
    assert second["status"] == "done" and second["night_id"] == night, second
    gate.release.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert first.get("status") in ("superseded", "done") or first.get("reason") == "object_gone", first
    rec = night_label(ctx, night)
    assert rec["raw_generation"] == g2.generation and rec["object"] == second["outputs"]["object"]
    assert anonymised_sha(ctx, rec["object"]) == rec["sha256"]
    if step != "recorded":  # G1 never became the night's: its object is gone (or was never written)
        assert anonymised_names(ctx, f"nights/{night}/labels/") == [rec["object"]]
    assert prepares(ctx, night)["status"] == "done"


@pytest.mark.parametrize("step", ingest_handler.STEPS)
def test_an_older_waiting_label_generation_finishing_last_never_replaces_the_newer_one(ctx, step, monkeypatch,
                                                                                      tmp_path):
    """No PSG yet: label G1 is held at ``step`` while G2 is parked; G1 goes on; then the PSG
    arrives and takes the label file. Today's main: G1 replaced the waiting entry and the parked
    object, and the PSG took G1."""
    original = NSRR_XML.read_bytes()
    g1 = put(ctx, original, LABEL_NAME)
    thread, gate, first = held(ctx, g1, step, monkeypatch)
    g2 = put(ctx, corrected_xml(original), LABEL_NAME)
    second = ingest(ctx, g2)
    assert second["status"] == "done" and second["outputs"]["waiting_for"] == "psg", second
    gate.release.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert first.get("status") in ("superseded", "done") or first.get("reason") == "object_gone", first
    assert anonymised_names(ctx, "waiting/") == [second["outputs"]["object"]]  # G1's parked object went
    psg = ingest(ctx, put(ctx, label_night_psg(tmp_path / "psg.edf").read_bytes(), LABEL_PSG))
    assert psg["status"] == "done", psg
    rec = night_label(ctx, psg["night_id"])
    assert rec["raw_generation"] == g2.generation
    assert anonymised_sha(ctx, rec["object"]) == rec["sha256"]
    assert rec["sha256"] == anonymised_sha(ctx, second["outputs"]["object"])  # G2's bytes
    assert prepares(ctx, psg["night_id"])["status"] == "done"


@pytest.mark.parametrize("second_name", [LABEL_PSG, "psg/namur/P001/other.edf"], ids=["superseded", "duplicate"])
def test_a_psg_that_loses_its_night_does_not_rewrite_the_nights_pairing_entry(ctx, second_name, monkeypatch,
                                                                              tmp_path):
    """A 10-minute PSG of the night is held after writing its object while the 2-hour PSG (a
    newer generation of the same upload, or another upload) is recorded; then it goes on and
    loses. Today's main: it registered its 600 s in ``pairing/{subject}`` before losing."""
    short = put(ctx, label_night_psg(tmp_path / "short.edf", seconds=600).read_bytes(),
                LABEL_PSG if second_name == LABEL_PSG else "psg/namur/P001/first-short.edf")
    thread, gate, first = held(ctx, short, "written", monkeypatch)
    long_info = put(ctx, label_night_psg(tmp_path / "long.edf").read_bytes(), second_name)
    second = ingest(ctx, long_info)
    assert second["status"] == "done", second
    gate.release.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert first.get("status") == "superseded" or first.get("reason") in ("object_gone", "duplicate_recording"), first
    night = second["night_id"]
    registered = ctx.state.get("pairing", night.rsplit("-n", 1)[0])["psg_nights"][night]
    assert registered["duration_s"] == 7200.0  # the recorded PSG's, not the loser's 600 s
    assert registered.get("raw_generation") == long_info.generation
