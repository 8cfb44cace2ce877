"""End to end on the embedded default: real service processes, the router, a night pair."""

from __future__ import annotations

import json
import shutil

import pytest

from sunrise_common import status
from sunrise_cli.runner import upload_example
from tests.conftest import CORPUS
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.slow

PERSONAL = [b"Jane_Synthetic", b"12-MAR-1961", b"05-MAR-2024", b"05.03.24", b"05.03.2024", b"Tech_Smith", b"LAB-7",
            b"demo-001", b"demo-site", b"SunriseSim"]


def night_done(ctx):
    nights = list(ctx.state.list("nights"))
    return nights if nights and status.all_done(ctx.state) else None


def bucket_bytes(ctx, logical):
    bucket = ctx.settings.bucket(logical)
    for info in ctx.storage.list(bucket):
        yield info.name, ctx.storage.read_bytes(bucket, info.name)


def test_a_night_pair_flows_through_every_stage_and_leaves_no_personal_data(embedded_stack, tmp_path):
    stack, ctx = embedded_stack
    upload_example(ctx, tmp_path / "example", hours=1.0, seed=3)
    ((night_id, doc),) = wait_until(lambda: night_done(ctx), 120, "the night to be scored")
    for stage in ("ingest", "sunrise_prep", "psg_prep", "sunalgo"):
        assert doc["stages"][stage]["state"] == "done", (stage, doc["stages"][stage])
    assert doc["pairing"]["state"] == "paired" and doc["pairing"]["overlap_s"] > 0
    results = {name for name, _ in bucket_bytes(ctx, "results")}
    prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
    for required in ("features.csv", "predictions.csv", "scores.json", "training_rows.csv", "agreement.json", "_MANIFEST.json"):
        assert prefix + required in results, required
    scores = json.loads(ctx.storage.read_bytes(ctx.settings.bucket("results"), prefix + "scores.json"))
    assert scores["scores"]["TST"] > 0 and scores["psg_scores"]["TST"] > 0
    for logical in ("anonymised", "prepped", "results"):
        for name, data in bucket_bytes(ctx, logical):
            for needle in PERSONAL:
                assert needle not in data and needle.decode() not in name, (logical, name, needle)


def test_a_file_copied_into_the_raw_folder_is_processed(embedded_stack):
    stack, ctx = embedded_stack
    raw = ctx.settings.data_dir / "buckets" / ctx.settings.bucket("raw") / "psg" / "liege" / "P9"
    raw.mkdir(parents=True)
    shutil.copy(CORPUS / "edf" / "edfio__short_psg.edf", raw / "copied.edf")
    nights = wait_until(
        lambda: [d for _, d in ctx.state.list("nights") if d.get("stages", {}).get("psg_prep", {}).get("state") == "done"],
        60, "psg_prep of the copied file",
    )
    assert nights[0]["recordings"]["psg"]["object"].endswith("/psg.edf")


def test_a_service_that_is_down_gets_its_events_later(embedded_stack, tmp_path):
    stack, ctx = embedded_stack
    stack.kill("sunalgo")
    upload_example(ctx, tmp_path / "example", hours=1.0, seed=4)
    wait_until(lambda: [d for _, d in ctx.state.list("nights")
                        if d.get("stages", {}).get("sunrise_prep", {}).get("state") == "done"], 60, "sunrise_prep")
    stack.start_service("sunalgo")
    stack.wait_healthy(services=["sunalgo"])
    ((night_id, doc),) = wait_until(lambda: night_done(ctx), 120, "the night to be scored after sunalgo came back")
    assert doc["stages"]["sunalgo"]["state"] == "done"
