"""sunalgo never loads a model from a path an event names: model versions are checked against a
strict pattern and the model store's list (issue 13)."""

from __future__ import annotations

import json
import shutil
from importlib import resources

import numpy as np
import pytest

from sunalgo.handler import resolve_version
from sunrise_algo.builtin.model import ModelError, load_model
from sunrise_common.errors import PermanentError
from sunrise_common.events import pubsub_event
from tests.conftest import app_client

NIGHT = "sabcdefghijkl-nabcdefgh"


@pytest.fixture
def evil_model(tmp_path):
    """A valid artifact outside the model store, named as a path would name it."""
    folder = tmp_path / "x"
    folder.mkdir()
    spec = json.loads(resources.files("sunrise_algo.builtin").joinpath("models", "logistic-1.json").read_text())
    spec["version"] = str(folder / "evil")
    (folder / "evil.json").write_text(json.dumps(spec))
    return folder / "evil"


@pytest.mark.parametrize("bad", ["../logistic-1", "a/b", ".hidden", "-rf", "x" * 65, "x" * 5000, "", "v1\n",
                                 "ünï", 7, ["logistic-1"], {"v": 1}])
def test_a_version_that_is_not_a_plain_name_is_a_permanent_rejection(tmp_path, bad):
    with pytest.raises(PermanentError) as info:
        resolve_version(bad, tmp_path / "models")
    assert info.value.reason == "unknown_model"
    assert len(str(info.value)) < 300  # never echoes a 5,000-character value


def test_a_path_to_a_real_artifact_is_not_loaded(tmp_path, evil_model):
    with pytest.raises(PermanentError):
        resolve_version(str(evil_model), tmp_path / "models")
    with pytest.raises(ModelError):
        load_model(str(evil_model), model_dir=tmp_path / "models")


def test_only_models_the_store_lists_are_loaded(tmp_path):
    store = tmp_path / "models"
    store.mkdir()
    spec = json.loads(resources.files("sunrise_algo.builtin").joinpath("models", "logistic-1.json").read_text())
    spec["version"] = "mine-1"
    (store / "mine-1.json").write_text(json.dumps(spec))
    assert resolve_version("mine-1", store) == "mine-1"
    assert resolve_version("baseline-1", store) == "baseline-1"  # packaged
    with pytest.raises(PermanentError, match="unknown model version 'mine-2'"):
        resolve_version("mine-2", store)


def test_an_event_naming_a_path_is_answered_2xx_with_the_reason_and_writes_nothing(settings, ctx, evil_model):
    ctx.state.set("nights", NIGHT, {"recordings": {"sunrise": {"object": f"nights/{NIGHT}/sunrise.edf", "generation": 1}}, "stages": {
        "sunrise_prep": {"state": "done", "input_key": "g1", "outputs": {"prefix": "nights/x/sunrise/g1/"}}}})
    for version in (str(evil_model), "y" * 5000):
        headers, body = pubsub_event(settings.project, settings.topic("sunrise-prepped"),
                                     json.dumps({"night_id": NIGHT, "model_version": version}).encode())
        with app_client("sunalgo", settings) as client:
            resp = client.post("/", headers=headers, content=json.dumps(body))
        assert resp.status_code == 200, resp.text
        assert resp.json()["reason"] == "unknown_model"
        assert str(evil_model.parent) not in resp.text and len(resp.text) < 600
    assert list(ctx.storage.list(settings.bucket("results"))) == []
    assert "runs" not in (ctx.state.get("nights", NIGHT) or {})
    shutil.rmtree(evil_model.parent)


def test_a_still_part_scores_wake_only_where_its_gate_says_there_is_no_movement():
    """logistic-4 (issue 24): a movement model, and on still epochs a breathing model."""
    from sunrise_algo.builtin.model import Model

    part = {"mean": [0.0], "scale": [1.0], "intercept": 0.0}
    spec = {"version": "t", "respiratory": {}, "sleep_wake": {
        "kind": "logistic", "features": ["act"], "coef": [4.0], "mean": [0.0], "scale": [1.0],
        "intercept": -2.0, "threshold": 0.5,
        "rescore": [],
        "still": {"gate": {"feature": "act", "max": 0.5}, "features": ["irregular"],
                  "coef": [4.0], **part}}}
    feats = {"act": np.array([0.0, 0.0, 2.0, 2.0, -2.0]),
             "irregular": np.array([1.0, -1.0, 1.0, -1.0, -1.0])}
    wake = Model(spec).predict_wake(feats)
    # still + irregular -> wake; still + regular -> sleep; moving -> the movement model decides
    # (act 2 -> wake whatever the breathing); very still and regular -> sleep.
    assert wake.tolist() == [True, False, True, True, False]
    no_still = {**spec, "sleep_wake": {k: v for k, v in spec["sleep_wake"].items() if k != "still"}}
    assert Model(no_still).predict_wake(feats).tolist() == [False, False, True, True, False]
