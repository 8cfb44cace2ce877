"""ingest through its real FastAPI app on the embedded backend, with real EDF files."""

from __future__ import annotations

import json
import re

import pytest

from sunrise_common import identity
from sunrise_common.events import storage_event
from sunrise_devstack.router.queue import Queue
from sunrise_devstack.settings import DevStackSettings
from tests.conftest import CORPUS, TEST_KEY, app_client

PSG = CORPUS / "edf" / "edfio__short_psg.edf"
HYPNOGRAM = CORPUS / "edf" / "edfio__SC4001EC-Hypnogram.edf"


def put_raw(ctx, name, path_or_bytes):
    bucket = ctx.settings.bucket("raw")
    if isinstance(path_or_bytes, bytes):
        return ctx.storage.write_bytes(bucket, name, path_or_bytes, if_generation_match=None)
    return ctx.storage.upload_file(bucket, name, path_or_bytes, if_generation_match=None)


def finalize(client, ctx, info):
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    return client.post("/", headers=headers, content=json.dumps(body))


def upload_doc(ctx, name):
    return ctx.state.get("uploads", identity.upload_id(TEST_KEY.encode(), ctx.settings.bucket("raw"), name))


@pytest.fixture
def client(settings, ctx):
    with app_client("ingest", settings) as c:
        yield c


def test_ingest_anonymises_a_psg_records_the_night_and_publishes_once(client, ctx):
    info = put_raw(ctx, "psg/namur/P001/night one.edf", PSG)
    first = finalize(client, ctx, info)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "done"
    night = first.json()["night_id"]
    doc = ctx.state.get("nights", night)
    obj = doc["recordings"]["psg"]["object"]
    assert re.fullmatch(rf"nights/{night}/psg-g[a-z2-7]{{12}}\.edf", obj)  # named by the raw generation's token
    assert doc["recordings"]["psg"]["raw_generation"] == info.generation
    assert doc["pairing"]["state"] == "psg_only"
    out = ctx.storage.read_bytes(ctx.settings.bucket("anonymised"), obj)
    assert b"Female_33yr" not in out and b"24-APR-1989" not in out and b"24.04.89" not in out
    assert b"P001" not in out and b"namur" not in out
    queue = Queue(ctx.settings.data_dir / "router.db")
    queue.route_messages(DevStackSettings.model_validate(ctx.settings.model_dump()))
    assert [d.service for d in queue.deliveries()] == ["psg_prep"]

    second = finalize(client, ctx, info)  # the same event again: acknowledged, nothing redone
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    queue.route_messages(DevStackSettings.model_validate(ctx.settings.model_dump()))
    assert len(list(queue.deliveries())) == 1


def test_ingest_pairs_the_hypnogram_with_the_psg_of_the_same_night(client, ctx):
    psg = finalize(client, ctx, put_raw(ctx, "psg/namur/P001/psg.edf", PSG)).json()
    hyp = finalize(client, ctx, put_raw(ctx, "labels/namur/P001/SC4001EC-Hypnogram.edf", HYPNOGRAM)).json()
    assert hyp["status"] == "done", hyp
    assert hyp["night_id"] == psg["night_id"]
    doc = ctx.state.get("nights", psg["night_id"])
    assert len(doc["recordings"]["labels"]) == 1
    (label,) = doc["recordings"]["labels"].values()
    assert label["object"].startswith(f"nights/{psg['night_id']}/labels/edf_hypnogram-")
    assert "Hypnogram" not in label["object"]


def test_ingest_records_a_bad_file_and_answers_2xx(client, ctx):
    name = "psg/namur/P002/broken.edf"
    resp = finalize(client, ctx, put_raw(ctx, name, PSG.read_bytes()[:5000]))
    assert resp.status_code == 200
    assert resp.json()["status"] == "rejected"
    assert resp.json()["reason"] == "truncated"
    run = upload_doc(ctx, name)["stages"]["ingest"]
    assert run["state"] == "failed" and run["error"].startswith("truncated")
    assert ctx.storage.stat(ctx.settings.bucket("raw"), name) is not None  # the raw object stays


@pytest.mark.parametrize(
    "name, reason",
    [
        ("psg/namur/onlythree.edf", "bad_layout"),
        ("video/namur/P1/x.edf", "unknown_kind"),
        ("psg/namur/P1/extra/x.edf", "bad_layout"),
        ("psg/na mur/P1/x.edf", "bad_site"),
        ("psg/namur/P1;rm -rf/x.edf", "bad_subject"),
    ],
)
def test_ingest_rejects_names_outside_the_raw_contract(client, ctx, name, reason):
    resp = finalize(client, ctx, put_raw(ctx, name, PSG))
    assert resp.status_code == 200
    assert resp.json()["reason"] == reason


def test_ingest_rejects_events_from_another_bucket(client, ctx):
    headers, body = storage_event("some-other-bucket", "psg/a/b/c.edf", 1, 10)
    resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200
    assert resp.json()["reason"] == "wrong_bucket"


def test_a_malformed_request_gets_a_400_that_says_what_is_wrong(client):
    resp = client.post("/", headers={"Content-Type": "application/json"}, content=b'{"hello": 1}')
    assert resp.status_code == 400
    assert resp.json()["error"] == "not_a_cloudevent"
    assert "ce-specversion" in resp.json()["detail"]


def test_a_live_lease_makes_a_concurrent_duplicate_retry_later(client, ctx):
    info = put_raw(ctx, "psg/namur/P003/psg.edf", PSG)
    uid = identity.upload_id(TEST_KEY.encode(), info.bucket, info.name)
    ctx.runs.claim("uploads", uid, "ingest", str(info.generation))  # another instance is working on it
    resp = finalize(client, ctx, info)
    assert resp.status_code == 429


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok", "service": "ingest"}


def test_recorded_errors_carry_no_name_content_or_date_of_the_raw_file(client, ctx):
    name = "labels/namur/Doe_John/Doe_John_2023-02-01.txt"
    resp = finalize(client, ctx, put_raw(ctx, name, b"Patient: John Doe born 01.02.1960\nmore lines\n"))
    assert resp.status_code == 200 and resp.json()["reason"] == "unknown_label_format"
    doc = upload_doc(ctx, name)
    stored = json.dumps(doc) + resp.text
    for needle in ("Doe", "John", "namur", "2023-02-01", "01.02.1960", "Patient"):
        assert needle not in stored, needle


def test_redact_keeps_reasons_and_field_names():
    from ingest.handler import redact

    detail = "bad_header_field: startdate '24.04.89' of psg/site1/SUBJ7/night.edf, 24-APR-1989"
    out = redact(detail, "psg/site1/SUBJ7/night.edf")
    assert out.startswith("bad_header_field: startdate <value> of <name>")
    assert "24" not in out and "SUBJ7" not in out and "site1" not in out


def test_ingest_writes_the_night_document_the_later_stages_read(client, ctx):
    from sunrise_common.contracts import NightDoc

    night = finalize(client, ctx, put_raw(ctx, "psg/namur/P004/psg.edf", PSG)).json()["night_id"]
    finalize(client, ctx, put_raw(ctx, "labels/namur/P004/SC4001EC-Hypnogram.edf", HYPNOGRAM))
    doc = NightDoc.model_validate(ctx.state.get("nights", night))
    psg, (label,) = doc.recordings.psg, doc.recordings.labels.values()
    assert label.label_kind == "edf_hypnogram" and psg.label_kind is None  # detected once, here
    for rec in (psg, label):
        assert rec.token == identity.upload_token(TEST_KEY.encode(), rec.object, rec.generation)
        assert str(rec.generation) not in rec.token
    assert doc.stages["ingest"].state == "done" and doc.stages["ingest"].input_key == label.upload_id


HOSTILE_FIRST_LINE = 'Patient "Zofia" O\'Neill-Kowalczyk, ward 4'


def test_a_label_whose_first_line_names_a_patient_leaves_no_fragment_in_state_logs_or_status(
        client, ctx, settings, caplog, monkeypatch):
    """Defect 6 of issue 22: the repr of this line holds both quote characters and slipped through
    the old pattern; state (SQLite with its WAL), the logs, the answer and `sunrise status --json`
    must hold nothing of it."""
    import logging

    from typer.testing import CliRunner

    from sunrise_cli.main import app

    caplog.set_level(logging.DEBUG)
    name = "labels/namur/P009/scoring.txt"
    resp = finalize(client, ctx, put_raw(ctx, name, (HOSTILE_FIRST_LINE + "\nEpoch;Stage\n1;W\n").encode()))
    assert resp.status_code == 200 and resp.json()["status"] == "rejected", resp.text
    for var, value in (("SUNRISE_DATA_DIR", str(settings.data_dir)), ("SUNRISE_PSEUDONYM_KEY", TEST_KEY),
                       ("SUNRISE_PREFIX", settings.prefix), ("SUNRISE_PROJECT", settings.project)):
        monkeypatch.setenv(var, value)
    cli = CliRunner().invoke(app, ["status", "--json"])
    assert cli.exit_code == 0, cli.output
    assert upload_doc(ctx, name)["stages"]["ingest"]["state"] == "failed"  # the rejection was recorded
    state_files = [p for p in settings.data_dir.rglob("*") if p.is_file() and "buckets" not in p.parts]
    assert any(p.suffix == ".db" for p in state_files)  # read as bytes below, with their -wal files if any
    surfaces = {"answer": resp.text, "logs": caplog.text, "status --json": cli.output,
                **{p.name: p.read_bytes().decode("latin-1") for p in state_files}}
    for fragment in ("Zofia", "Neill", "Kowalczyk", "ward 4", "Patient", "P009", "scoring"):
        for where, text in surfaces.items():
            assert fragment not in text, f"{fragment!r} in {where}"
