"""sunrise_prep's handler through its FastAPI app, after ingest's real app has recorded a synthetic
Sunrise recording: a superseded upload is dropped by generation, the output prefix carries no
generation, the run records the generation it prepared, and the prepped message names the night."""

from __future__ import annotations

import json

import pytest

from sunrise_common.events import storage_event
from tests.conftest import app_client
from tests.inprocess import post_message, published, synth


@pytest.fixture
def night(settings, ctx, tmp_path):
    sunrise = synth(tmp_path / "n", 7, hours=0.5).sunrise
    with app_client("ingest", settings) as client:
        info = ctx.storage.upload_file(ctx.settings.bucket("raw"), "sunrise/lab/P1/night.edf", sunrise,
                                       if_generation_match=None)
        headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
        resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.json()["status"] == "done", resp.text
    return resp.json()["night_id"]


def post(settings, message: dict) -> dict:
    return post_message(settings, "sunrise_prep", "sunrise-anonymised", message)


def prepped_messages(settings) -> list[dict]:
    return published(settings, "sunrise-prepped")


def test_the_current_upload_is_prepared_under_a_key_without_its_generation(settings, ctx, night):
    rec = ctx.state.get("nights", night)["recordings"]["sunrise"]
    message = {"night_id": night, "kind": "sunrise", "object": rec["object"], "generation": str(rec["generation"])}
    done = post(settings, message)
    assert done["status"] == "done", done
    assert str(rec["generation"]) not in done["input_key"] and done["input_key"].startswith("k")
    assert done["outputs"]["prefix"] == f"nights/{night}/sunrise/{done['input_key']}/"
    assert done["outputs"]["generation"] == rec["generation"]  # for the gold layer's lineage
    assert prepped_messages(settings) == [{"night_id": night, "kind": "sunrise"}]
    assert post(settings, message)["status"] == "duplicate"


def test_an_event_of_a_replaced_upload_is_superseded(settings, ctx, night):
    rec = ctx.state.get("nights", night)["recordings"]["sunrise"]
    for generation in (str(rec["generation"] - 1), None):
        message = {"night_id": night, "kind": "sunrise", "object": rec["object"], "generation": generation}
        assert post(settings, {k: v for k, v in message.items() if v is not None})["status"] == "superseded"
    assert "runs" not in ctx.state.get("nights", night) or "sunrise_prep" not in ctx.state.get("nights", night)["runs"]
    assert prepped_messages(settings) == []
