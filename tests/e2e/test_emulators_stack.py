"""End to end on the emulators: fake-gcs-server, the official Pub/Sub and Firestore emulators.

fake-gcs-server publishes object-finalize notifications to the Pub/Sub emulator; the router pulls
them and the services' own publishes, and delivers Eventarc-format CloudEvents to the services.
"""

from __future__ import annotations

import json

import pytest

from sunrise_devstack import status
from sunrise_devstack.emulators import Emulators
from sunrise_common.service import Context
from sunrise_cli.runner import upload_example
from sunrise_cli.stack import Stack
from tests.e2e.conftest import stack_settings, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.emulators]


@pytest.fixture
def emulator_stack(tmp_path):
    emu = Emulators(tmp_path / "emulators", project="sunrise-e2e", prefix="sunrise-e2e")
    emu.start()
    try:
        emu.provision()
        settings = stack_settings(tmp_path, backend="emulators", gcs_endpoint=emu.gcs_endpoint,
                                  pubsub_emulator_host=emu.pubsub_emulator_host,
                                  firestore_emulator_host=emu.firestore_emulator_host)
        with Stack(settings, tmp_path / "logs") as stack:
            yield stack, Context.from_settings(settings)
    finally:
        emu.stop()


def test_a_night_pair_flows_through_every_stage_on_the_emulators(emulator_stack, tmp_path):
    stack, ctx = emulator_stack
    upload_example(ctx, tmp_path / "example", hours=1.0, seed=8)
    def settled():
        uploads = [d for _, d in ctx.state.list("uploads") if d.get("stages", {}).get("ingest", {}).get("state") == "done"]
        nights = list(ctx.state.list("nights"))
        return len(uploads) == 6 and status.all_done(ctx.state) and nights

    nights = wait_until(settled, 180, "the night to be scored on the emulators", interval=0.5)
    ((night_id, doc),) = nights
    assert {s: doc["stages"][s]["state"] for s in ("ingest", "sunrise_prep", "psg_prep", "sunalgo")} == {
        "ingest": "done", "sunrise_prep": "done", "psg_prep": "done", "sunalgo": "done"}
    prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
    results = {i.name for i in ctx.storage.list(ctx.settings.bucket("results"), prefix)}
    for name in ("features.csv", "predictions.csv", "scores.json", "training_rows.csv", "agreement.json"):
        assert prefix + name in results
    scores = json.loads(ctx.storage.read_bytes(ctx.settings.bucket("results"), prefix + "scores.json"))
    assert scores["psg_scores"]["TST"] > 0
    uploads = list(ctx.state.list("uploads"))
    assert len(uploads) == 2 + 4 and all(d["stages"]["ingest"]["state"] == "done" for _, d in uploads)
