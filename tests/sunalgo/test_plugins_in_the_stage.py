"""Two plug-ins in one pipeline: the stage runs whichever a run asks for through the same path, their
results and gold-layer rows sit side by side under their own algo_version, and an external algorithm
service (a real HTTP server started by the test) is called with signed references to the night."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL
from sunrise_algo.builtin.plugin import Builtin
from sunrise_algo.http import create_app
from sunrise_common import dataset as ds
from sunrise_common.service import Context
from sunrise_common.settings import Settings
from tests.algo.test_http import serve
from tests.conftest import TEST_KEY
from tests.inprocess import Pipeline, post_message, synth


def make_pipeline(tmp_path, **extra) -> Pipeline:
    settings = Settings(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY,
                        prefix="sunrise-test", project="sunrise-test", lease_s=30, **extra)
    return Pipeline(Context.from_settings(settings))


@pytest.fixture
def pipeline(tmp_path):
    p = make_pipeline(tmp_path)
    yield p
    p.close()


def test_a_second_plugin_runs_beside_the_builtin_and_both_reach_the_gold_layer(pipeline, tmp_path):
    pipeline.upload_night(synth(tmp_path / "n", 5), site="lab", subject="P1")
    pipeline.drain()
    [(night_id, _)] = list(pipeline.ctx.state.list("nights"))
    answer = post_message(pipeline.settings, "sunalgo", "sunrise-prepped",
                          {"night_id": night_id, "kind": "rerun", "model_version": "activity-rule"})
    assert answer["status"] == "done", answer
    doc = pipeline.ctx.state.get("nights", night_id)
    prefixes = {doc["stages"][s]["outputs"]["prefix"].split("/")[2] for s in ("sunalgo", "sunalgo:activity-rule.default")}
    assert prefixes == {f"sunalgo-1.0+{DEFAULT_MODEL}", "activity-rule-1.0+default"}
    data = ds.Dataset(pipeline.ctx.storage.bucket_path(pipeline.settings.bucket("results")) / "dataset")
    parts = data.latest(ds.TRAINING_ROWS)
    by_version = {p.lineage.algo_version: pq.read_schema(p.path) for p in parts}
    assert set(by_version) == {f"sunalgo-1.0+{DEFAULT_MODEL}", "activity-rule-1.0+default"}
    rule = by_version["activity-rule-1.0+default"]
    assert rule.field("act_rule_sum").metadata[b"unit"] == b"1" and "act_mean_dps" not in rule.names


def test_an_unknown_plugin_named_by_an_event_is_a_recorded_permanent_rejection(pipeline, tmp_path):
    pipeline.upload_night(synth(tmp_path / "n", 6), site="lab", subject="P1")
    pipeline.drain()
    [(night_id, _)] = list(pipeline.ctx.state.list("nights"))
    answer = post_message(pipeline.settings, "sunalgo", "sunrise-prepped",
                          {"night_id": night_id, "kind": "rerun", "model_version": "no-such-plugin"})
    assert answer["reason"] == "unknown_model"


def test_the_stage_calls_an_external_algorithm_service_with_references(tmp_path):
    with serve(create_app(Builtin())) as url:
        p = make_pipeline(tmp_path, algorithm_url=url)
        try:
            p.upload_night(synth(tmp_path / "n", 7), site="lab", subject="P1")
            p.drain()
            [(night_id, doc)] = list(p.ctx.state.list("nights"))
        finally:
            p.close()
    run = doc["stages"]["sunalgo"]
    assert run["state"] == "done" and run["outputs"]["prefix"].split("/")[2] == f"sunalgo-1.0+{DEFAULT_MODEL}"
    assert "predictions.csv" in str(run["outputs"]["files"])
