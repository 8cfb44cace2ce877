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
from sunrise_common.events import storage_event
from sunrise_common.labels import parse_labels
from tests.conftest import app_client

START = datetime(2024, 5, 30, 23, 0, 0)
PSG_S = 2 * 3600
N_EPOCHS = 240


def profile_before_start() -> bytes:
    """A DOMINO sleep profile (newer layout, dated rows): 240 epochs from 22:50, Start Time 23:00."""
    first = START - timedelta(minutes=10)
    rows = [f"{first + timedelta(seconds=30 * i):%d.%m.%Y %H:%M:%S},000; {('Wake', 'N1', 'N2', 'REM')[i % 4]}"
            for i in range(N_EPOCHS)]
    head = ["Signal ID: SchlafProfil\\profil", f"Start Time: {START:%d.%m.%Y %H:%M:%S}", "Patient: Jane Example",
            "Unit: ", "Signal Type: Discret", "Events list: N4,N3,N2,N1,REM,Wake,Movement", "Rate: 30 s", ""]
    return ("\r\n".join(head + rows) + "\r\n").encode("cp1252")


def psg_edf(path: Path) -> bytes:
    """A one-channel EEG EDF (100 Hz) of 2 h from 23:00."""
    x = np.random.default_rng(1).normal(0.0, 20.0, PSG_S * 100)
    sig = EdfSignal(x, 100, label="EEG C3-M2", physical_dimension="uV", physical_range=(-500.0, 500.0))
    Edf([sig], recording=Recording(startdate=START.date()), starttime=START.time(), data_record_duration=1).write(path)
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
