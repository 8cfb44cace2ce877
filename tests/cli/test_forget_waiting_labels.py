"""`sunrise forget` erases what date-less label pairing keeps of a subject (issue 23): a label
file waiting for its PSG (``anonymised/waiting/{pseudonym}/…``) and ``pairing/{pseudonym}``."""

from __future__ import annotations

import json

from sunrise_common import identity
from sunrise_common.events import storage_event
from sunrise_devstack.dead_letters import make_dead_letters
from sunrise_cli import forget as lib
from tests.conftest import TEST_KEY, app_client
from tests.label_night import FORMATS, START, psg_edf

NSRR_XML = (FORMATS / "nsrr_xml" / "shhs-like-nsrr.xml").read_bytes()  # ClockTime 00.00.00 23.10.00


def ingest(settings, ctx, name: str, data: bytes) -> dict:
    info = ctx.storage.write_bytes(settings.bucket("raw"), name, data, if_generation_match=None)
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    with app_client("ingest", settings) as client:
        resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200 and resp.json()["status"] == "done", resp.text
    return resp.json()


def test_forget_erases_a_waiting_label_file_and_the_subjects_pairing_document(settings, ctx, tmp_path):
    morning = psg_edf(tmp_path / "nap.edf", start=START.replace(hour=8), seconds=600, rate=8)
    ingest(settings, ctx, "psg/lab/MRN4471902/nap.edf", morning.read_bytes())  # registers pairing/{pseudonym}
    waiting = ingest(settings, ctx, "labels/lab/MRN4471902/night-nsrr.xml", NSRR_XML)  # no overlapping PSG
    assert waiting["outputs"]["waiting_for"] == "psg"
    pseudonym = identity.subject_pseudonym(TEST_KEY.encode(), "lab", "MRN4471902")
    anonymised = settings.bucket("anonymised")
    assert [o.name for o in ctx.storage.list(anonymised, f"waiting/{pseudonym}/")]
    assert ctx.state.get("pairing", pseudonym) is not None

    outcome = lib.forget(settings, ctx.storage, ctx.state, make_dead_letters(settings), lib.Subject(pseudonym),
                         apply=True)
    assert outcome.complete and outcome.removed["pairing"] == 1 and outcome.removed["anonymised"] >= 2
    assert list(ctx.storage.list(anonymised, f"waiting/{pseudonym}/")) == []
    assert ctx.state.get("pairing", pseudonym) is None
