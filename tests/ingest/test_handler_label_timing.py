"""Label timing through ingest: an anonymised DOMINO profile stays where the scorer put it.

Issue 12, defect 1: a profile whose first row (22:50) precedes its ``Start Time`` (23:00) was
moved by +24 h once ingest had stripped its row dates (+85,800 s, 0 epochs on the PSG).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from edfio import Edf, EdfSignal, Recording

from psg_prep.prepare import prepare_psg
from sunrise_common import identity
from sunrise_common.events import storage_event
from sunrise_common.labels import parse_labels
from tests.conftest import TEST_KEY, app_client
from tests.inprocess import published
from tests.label_night import FORMATS, MASTER, START, canonical_stage
from tests.label_night import psg_edf as examples_psg

DOMINO_START = datetime(2024, 5, 30, 23, 0, 0)
PSG_S = 2 * 3600
N_EPOCHS = 240


def profile_before_start() -> bytes:
    """A DOMINO sleep profile (newer layout, dated rows): 240 epochs from 22:50, Start Time 23:00."""
    first = DOMINO_START - timedelta(minutes=10)
    rows = [f"{first + timedelta(seconds=30 * i):%d.%m.%Y %H:%M:%S},000; {('Wake', 'N1', 'N2', 'REM')[i % 4]}"
            for i in range(N_EPOCHS)]
    head = ["Signal ID: SchlafProfil\\profil", f"Start Time: {DOMINO_START:%d.%m.%Y %H:%M:%S}", "Patient: Jane Example",
            "Unit: ", "Signal Type: Discret", "Events list: N4,N3,N2,N1,REM,Wake,Movement", "Rate: 30 s", ""]
    return ("\r\n".join(head + rows) + "\r\n").encode("cp1252")


def psg_edf(path: Path) -> bytes:
    """A one-channel EEG EDF (100 Hz) of 2 h from 23:00."""
    x = np.random.default_rng(1).normal(0.0, 20.0, PSG_S * 100)
    sig = EdfSignal(x, 100, label="EEG C3-M2", physical_dimension="uV", physical_range=(-500.0, 500.0))
    Edf([sig], recording=Recording(startdate=DOMINO_START.date()), starttime=DOMINO_START.time(), data_record_duration=1).write(path)
    return path.read_bytes()


@pytest.fixture
def client(settings, ctx):
    with app_client("ingest", settings) as c:
        yield c


def send(client, ctx, name: str, data: bytes) -> dict:
    info = ctx.storage.write_bytes(ctx.settings.bucket("raw"), name, data, if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "done", resp.json()
    return resp.json()


def test_a_profile_starting_before_start_time_lands_at_minus_600_s_and_overlaps_its_psg(client, ctx, tmp_path):
    psg = send(client, ctx, "psg/site/SUBJ/night.edf", psg_edf(tmp_path / "raw.edf"))
    lab = send(client, ctx, "labels/site/SUBJ/Sleep profile - SUBJ.txt", profile_before_start())
    assert lab["night_id"] == psg["night_id"]
    anon_bucket = ctx.settings.bucket("anonymised")
    label_path, psg_path = tmp_path / "profile.txt", tmp_path / "psg.edf"
    label_path.write_bytes(ctx.storage.read_bytes(anon_bucket, lab["outputs"]["object"]))
    psg_path.write_bytes(ctx.storage.read_bytes(anon_bucket, psg["outputs"]["object"]))
    assert b"30.05.2024" not in label_path.read_bytes() and b"Jane" not in label_path.read_bytes()

    labels = parse_labels("domino_sleep_profile", label_path.read_bytes())
    assert labels.hypnogram.onset_s == -600.0  # relative to its Start Time, not +85,800
    assert len(labels.hypnogram.stages) == N_EPOCHS

    meta = prepare_psg(psg_path, [label_path], tmp_path / "prepped")
    with (tmp_path / "prepped" / "hypnogram.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_EPOCHS
    assert rows[0]["epoch"] == "-20" and rows[0]["onset_s"] == "-600.000"
    assert sum(r["in_recording"] == "1" for r in rows) == 220
    assert meta["labels_overlap"]["label_start_s"] == -600.0
    assert meta["labels_overlap"]["overlap_s"] == 6600.0


# -- label files without a date: paired by time of day with the subject's PSG (issue 23) --------

NSRR_XML = FORMATS / "nsrr_xml" / "shhs-like-nsrr.xml"  # ClockTime "00.00.00 23.10.00", as NSRR ships it


def send_any(client, ctx, name: str, data: bytes) -> dict:
    info = ctx.storage.write_bytes(ctx.settings.bucket("raw"), name, data, if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200, resp.text
    return resp.json()


def prepared_hypnogram(ctx, night_id: str, tmp_path: Path) -> list[dict]:
    """The night's hypnogram.csv as psg_prep makes it from the anonymised PSG and label files."""
    doc = ctx.state.get("nights", night_id)
    anon = ctx.storage.read_bytes
    bucket = ctx.settings.bucket("anonymised")
    psg_path = tmp_path / "psg.edf"
    psg_path.write_bytes(anon(bucket, doc["recordings"]["psg"]["object"]))
    labels, kinds = [], []
    for i, rec in enumerate(doc["recordings"]["labels"].values()):
        p = tmp_path / f"label{i}.{rec['object'].rsplit('.', 1)[1]}"
        p.write_bytes(anon(bucket, rec["object"]))
        labels.append(p)
        kinds.append(rec["label_kind"])
    prepare_psg(psg_path, labels, tmp_path / "prepped", label_kinds=kinds)
    with (tmp_path / "prepped" / "hypnogram.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_an_nsrr_xml_with_its_date_deidentified_pairs_with_its_psg_by_time_of_day(client, ctx, tmp_path):
    psg = send_any(client, ctx, "psg/site/SUBJ/shhs1-200001.edf", examples_psg(tmp_path / "raw.edf").read_bytes())
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "done", lab  # today's main: rejected, invalid_start_date
    assert lab["night_id"] == psg["night_id"]
    (rec,) = ctx.state.get("nights", psg["night_id"])["recordings"]["labels"].values()
    assert rec["start_assumed"].startswith("the label file carries no date")
    rows = prepared_hypnogram(ctx, psg["night_id"], tmp_path)
    assert [r["stage"] for r in rows] == [canonical_stage(s) for s in MASTER["stages"]]
    assert [r["epoch"] for r in rows] == [str(k) for k in range(N_EPOCHS)]
    assert all(r["in_recording"] == "1" for r in rows)


def test_an_nsrr_xml_without_its_psg_waits_for_it_and_the_psg_takes_it(client, ctx, tmp_path):
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "done", lab
    assert lab["outputs"]["waiting_for"] == "psg" and "night_id" not in lab["outputs"]
    assert list(ctx.state.list("nights")) == []
    psg = send_any(client, ctx, "psg/site/SUBJ/shhs1-200001.edf", examples_psg(tmp_path / "raw.edf").read_bytes())
    doc = ctx.state.get("nights", psg["night_id"])
    (rec,) = doc["recordings"]["labels"].values()
    assert rec["label_kind"] == "nsrr_xml" and rec["object"].startswith(f"nights/{psg['night_id']}/labels/")
    assert doc["pairing"]["labels"] == 1
    sent = [m for m in published(ctx.settings, "psg-anonymised") if m["night_id"] == psg["night_id"]]
    assert sorted(m["kind"] for m in sent) == ["labels", "psg"]  # psg_prep hears of the label file too
    rows = prepared_hypnogram(ctx, psg["night_id"], tmp_path)
    assert [r["stage"] for r in rows] == [canonical_stage(s) for s in MASTER["stages"]]


def test_a_dateless_label_file_waits_when_the_subjects_psg_is_another_time_of_day(client, ctx, tmp_path):
    morning = START.replace(hour=8)  # 08:00-10:00: the XML (23:10-01:10) cannot be its scoring
    send_any(client, ctx, "psg/site/SUBJ/nap.edf", examples_psg(tmp_path / "raw.edf", start=morning).read_bytes())
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "done" and lab["outputs"]["waiting_for"] == "psg", lab
    other = send_any(client, ctx, "psg/site/OTHER/night.edf", examples_psg(tmp_path / "other.edf").read_bytes())
    assert not ctx.state.get("nights", other["night_id"])["recordings"].get("labels")  # another subject's night


def test_a_hypnogram_uploaded_as_psg_is_told_to_go_to_labels(client, ctx):
    hypnogram = (FORMATS.parent.parent / "edf" / "edfio__SC4001EC-Hypnogram.edf").read_bytes()
    resp = send_any(client, ctx, "psg/site/SUBJ/SC4001EC-Hypnogram.edf", hypnogram)
    assert resp["status"] == "rejected" and resp["reason"] == "annotation_only", resp  # main: no_data
    doc = ctx.state.get("uploads", resp.get("upload_id") or next(iter(dict(ctx.state.list("uploads")))))
    assert "upload it as labels" in doc["stages"]["ingest"]["error"]


def xml_without_start_time() -> bytes:
    """The NSRR example without its Recording Start Time event: no date and no time (its Start
    values count from the recording start, as in the formats that carry no clock at all)."""
    data = NSRR_XML.read_bytes()
    a = data.index(b"<ScoredEvent>")
    b = data.index(b"</ScoredEvent>", a) + len(b"</ScoredEvent>")
    assert b"Recording Start Time" in data[a:b]
    return data[:a] + data[b:]


def test_a_label_file_without_any_time_starts_with_its_subjects_only_psg(client, ctx, tmp_path):
    lab = send_any(client, ctx, "labels/site/SUBJ/scoring.xml", xml_without_start_time())
    assert lab["outputs"]["waiting_for"] == "psg", lab
    psg = send_any(client, ctx, "psg/site/SUBJ/night.edf", examples_psg(tmp_path / "raw.edf").read_bytes())
    (rec,) = ctx.state.get("nights", psg["night_id"])["recordings"]["labels"].values()
    assert rec["start_assumed"].startswith("the label file carries no date and no time")
    rows = prepared_hypnogram(ctx, psg["night_id"], tmp_path)
    assert [r["stage"] for r in rows] == [canonical_stage(s) for s in MASTER["stages"]]
    assert rows[0]["epoch"] == "0"


def test_a_dateless_label_file_matching_two_psg_nights_by_time_of_day_is_rejected_as_ambiguous(client, ctx, tmp_path):
    for day in (0, 7):
        start = START + timedelta(days=day)
        send_any(client, ctx, f"psg/site/SUBJ/night{day}.edf", examples_psg(tmp_path / f"{day}.edf", start=start).read_bytes())
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "rejected" and lab["reason"] == "ambiguous_night", lab


def test_a_psg_ingested_before_dateless_pairing_existed_is_found_from_the_night_documents(client, ctx, tmp_path):
    psg = send_any(client, ctx, "psg/site/SUBJ/shhs1-200001.edf", examples_psg(tmp_path / "raw.edf").read_bytes())
    subject = psg["night_id"].rsplit("-n", 1)[0]
    ctx.state.delete("pairing", subject)  # as a deployment from before this document kept it
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "done" and lab["night_id"] == psg["night_id"], lab


def test_a_psg_registering_while_a_dateless_label_decides_to_wait_still_gets_it(client, ctx, tmp_path, monkeypatch):
    # The race the pairing document closes: the label file looked (no PSG yet), then the PSG is
    # ingested in full, then the label file's waiting transaction runs: it must see the night.
    from ingest import handler

    real = handler._pairing_doc
    psg_bytes = examples_psg(tmp_path / "raw.edf").read_bytes()
    seen: dict = {}

    def look_then_psg_arrives(ctx_, subject):
        doc = real(ctx_, subject)
        seen["psg"] = send_any(client, ctx, "psg/site/SUBJ/shhs1-200001.edf", psg_bytes)
        return doc

    monkeypatch.setattr(handler, "_pairing_doc", look_then_psg_arrives)
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    assert lab["status"] == "done" and lab["night_id"] == seen["psg"]["night_id"], lab
    subject = lab["night_id"].rsplit("-n", 1)[0]
    assert not (ctx.state.get("pairing", subject) or {}).get("waiting_labels")
    assert len(ctx.state.get("nights", lab["night_id"])["recordings"]["labels"]) == 1


def test_a_parked_label_file_missing_when_its_psg_takes_it_is_retried_not_object_gone(client, ctx, tmp_path):
    # Issue 22 review, item 2: only the raw generation's absence is the permanent object_gone.
    # A parked label file gone from the anonymised bucket (a newer generation of it replaced it
    # meanwhile) says nothing about the PSG: its ingest is retried (5xx), not failed for good.
    lab = send_any(client, ctx, "labels/site/SUBJ/shhs1-200001-nsrr.xml", NSRR_XML.read_bytes())
    ctx.storage.delete(ctx.settings.bucket("anonymised"), lab["outputs"]["object"])
    info = ctx.storage.write_bytes(ctx.settings.bucket("raw"), "psg/site/SUBJ/shhs1-200001.edf",
                                   examples_psg(tmp_path / "raw.edf").read_bytes(), if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code >= 500, resp.text  # today's main: 200, rejected object_gone
    upload = ctx.state.get("uploads", identity.upload_id(TEST_KEY.encode(), info.bucket, info.name))
    assert upload["stages"]["ingest"]["state"] != "failed", upload
    assert "object_gone" not in json.dumps(upload)
