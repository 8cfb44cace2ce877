"""psg_prep's handler through its FastAPI app on the embedded backend, after ingest's real app has
recorded a real PSG and hypnogram: a superseded upload is dropped by generation, the prepped
message names the night only, no generation appears in the output names, and each label file is
parsed as the kind ingest recorded (content detection only where no kind is recorded)."""

from __future__ import annotations

import json

import pytest

from sunrise_common.contracts import NightMessage
from sunrise_common.events import storage_event
from tests.conftest import CORPUS, app_client
from tests.inprocess import post_message, published

PSG = CORPUS / "edf" / "edfio__short_psg.edf"
HYPNOGRAM = CORPUS / "edf" / "edfio__SC4001EC-Hypnogram.edf"


@pytest.fixture
def night(settings, ctx):
    """A night with a PSG and one hypnogram, ingested by ingest's app; its id."""
    with app_client("ingest", settings) as client:
        ids = set()
        for name, path in (("psg/namur/P001/psg.edf", PSG), ("labels/namur/P001/SC4001EC-Hypnogram.edf", HYPNOGRAM)):
            info = ctx.storage.upload_file(ctx.settings.bucket("raw"), name, path, if_generation_match=None)
            headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
            resp = client.post("/", headers=headers, content=json.dumps(body))
            assert resp.json()["status"] == "done", resp.text
            ids.add(resp.json()["night_id"])
    (night_id,) = ids
    return night_id


def post(settings, message: dict) -> dict:
    return post_message(settings, "psg_prep", "psg-anonymised", message)


def announce(ctx, night_id: str, slot: str = "psg", **change) -> dict:
    doc = ctx.state.get("nights", night_id)["recordings"]
    rec = doc["psg"] if slot == "psg" else next(iter(doc["labels"].values()))
    return {"night_id": night_id, "kind": slot, "object": rec["object"], "generation": str(rec["generation"]), **change}


def test_the_psg_event_prepares_the_night_under_a_key_without_generations(settings, ctx, night):
    message = announce(ctx, night)
    assert published(settings, "psg-anonymised")[0] == message  # what ingest sent is what psg_prep reads
    done = post(settings, message)
    assert done["status"] == "done" and done["outputs"]["labels"] == 1, done
    doc = ctx.state.get("nights", night)
    gens = [str(doc["recordings"]["psg"]["generation"])] + [str(r["generation"]) for r in doc["recordings"]["labels"].values()]
    assert not any(g in done["outputs"]["prefix"] for g in gens)
    assert done["outputs"]["prefix"] == f"nights/{night}/psg/{done['input_key']}/"
    assert published(settings, "psg-prepped") == [{"night_id": night, "kind": "psg"}]
    # The label file's own event finds the same inputs: the same run, done.
    assert post(settings, announce(ctx, night, "labels"))["status"] == "duplicate"


@pytest.mark.parametrize("slot", ["psg", "labels"])
def test_an_event_of_a_replaced_upload_is_dropped_by_generation(settings, ctx, night, slot):
    current = announce(ctx, night, slot)
    for stale in (announce(ctx, night, slot, generation=str(int(current["generation"]) - 1)),
                  {k: v for k, v in current.items() if k != "generation"}):
        assert post(settings, stale)["status"] == "superseded"
    assert post(settings, announce(ctx, night, "labels", object=f"nights/{night}/labels/none.txt"))["status"] == "superseded"
    assert "psg_prep" not in ctx.state.get("nights", night).get("runs", {})
    assert published(settings, "psg-prepped") == []


def test_labels_before_their_psg_wait(settings, ctx):
    with app_client("ingest", settings) as client:
        info = ctx.storage.upload_file(ctx.settings.bucket("raw"), "labels/namur/P9/hyp.edf", HYPNOGRAM,
                                       if_generation_match=None)
        headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
        night_id = client.post("/", headers=headers, content=json.dumps(body)).json()["night_id"]
    assert post(settings, announce(ctx, night_id, "labels"))["status"] == "waiting"


def test_each_label_file_is_parsed_as_the_kind_ingest_recorded(settings, ctx, night):
    def relabel(kind):
        def fn(doc):
            (label,) = doc["recordings"]["labels"].values()
            if kind is None:
                label.pop("label_kind")
            else:
                label["label_kind"] = kind
            doc.setdefault("reruns", {})["psg_prep"] = doc.get("reruns", {}).get("psg_prep", 0) + 1  # a new run
            return doc
        ctx.state.transact("nights", night, fn)

    relabel("nsrr_xml")  # the record says XML: the EDF hypnogram is not re-detected, it fails to parse
    rejected = post(settings, announce(ctx, night))
    assert rejected["status"] == "rejected" and rejected["reason"] != "unknown_label_format", rejected
    relabel(None)  # a night recorded without kinds: detected from the content
    assert post(settings, announce(ctx, night))["status"] == "done"


def test_a_rerun_message_from_the_cli_is_read_like_ingests(settings, ctx, night):
    from sunrise_cli import ops

    job = ops.rerun_job(ctx, night, "psg_prep", model_version=None)
    job()
    [sent] = published(settings, "psg-anonymised")[-1:]
    assert NightMessage.parse(sent).generation == ctx.state.get("nights", night)["recordings"]["psg"]["generation"]
    assert post(settings, sent)["status"] == "done"
