"""sunalgo's handler through its FastAPI app: it never scores a night while a half is being prepared."""

from __future__ import annotations

import json

from sunrise_common.events import pubsub_event
from tests.conftest import app_client

NIGHT = "sabcdefghijkl-nabcdefgh"
SUNRISE = {"object": f"nights/{NIGHT}/sunrise.edf", "generation": 1}
PSG = {"object": f"nights/{NIGHT}/psg.edf", "generation": 2}


def post_prepped(client, settings):
    headers, body = pubsub_event(settings.project, settings.topic("sunrise-prepped"),
                                 json.dumps({"night_id": NIGHT, "kind": "sunrise"}).encode())
    return client.post("/", headers=headers, content=json.dumps(body))


def test_a_prepped_event_while_the_other_half_runs_is_retried_not_dropped(settings, ctx):
    ctx.state.set("nights", NIGHT, {"recordings": {"sunrise": SUNRISE, "psg": PSG}, "stages": {
        "sunrise_prep": {"state": "running", "input_key": "g1"}, "psg_prep": {"state": "done", "input_key": "k1"}}})
    with app_client("sunalgo", settings) as client:
        resp = post_prepped(client, settings)
    assert resp.status_code == 429
    assert "sunrise_prep is still running" in resp.json()["detail"]


def test_a_night_without_its_sunrise_half_waits(settings, ctx):
    ctx.state.set("nights", NIGHT, {"recordings": {"psg": PSG}, "stages": {"psg_prep": {"state": "done"}}})
    with app_client("sunalgo", settings) as client:
        resp = post_prepped(client, settings)
    assert resp.status_code == 200 and resp.json()["status"] == "waiting"


def test_a_forged_night_id_is_a_recorded_2xx(settings, ctx):
    headers, body = pubsub_event(settings.project, "t", json.dumps({"night_id": NIGHT + "\n"}).encode())
    with app_client("sunalgo", settings) as client:
        resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200 and resp.json()["reason"] == "bad_payload"
