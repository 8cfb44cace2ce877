"""A model trained on synthetic training rows beats the baseline on held-out synthetic nights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sunalgo.model import load_model
from sunalgo.run import run_sunalgo
from sunrise_cli.train import activate_model, train_model

from .conftest import rows_of


@pytest.fixture(scope="module")
def trained(scored_batch, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    train_nights = scored_batch[:12]
    result = train_model(rows_of(train_nights), models, version="synthetic-lr-1", seed=0)
    return models, result


def test_trained_model_beats_baseline_on_held_out_nights(scored_batch, trained, tmp_path):
    models, result = trained
    base_acc, new_acc, base_k, new_k = [], [], [], []
    for b in scored_batch[12:]:  # never seen by train_model
        s = run_sunalgo(b["dir"] / "prep", b["dir"] / "truth_psg", tmp_path / b["dir"].name,
                        model_version="synthetic-lr-1", model_dir=models)
        new_acc.append(s["accuracy_sw"])
        new_k.append(s["kappa_sw"])
        base_acc.append(b["agreement"]["accuracy_sw"])
        base_k.append(b["agreement"]["kappa_sw"])
    print(f"\nheld-out nights: baseline accuracy {np.mean(base_acc):.4f} kappa "
          f"{np.mean(base_k):.3f}; trained accuracy {np.mean(new_acc):.4f} kappa "
          f"{np.mean(new_k):.3f}; train_model's own hold-out: {result['metrics']}")
    assert np.mean(new_acc) > np.mean(base_acc)
    assert np.mean(new_k) > np.mean(base_k)


def test_trained_artifact_is_plain_json_loadable_by_sunalgo(trained):
    models, result = trained
    spec = json.loads((models / "synthetic-lr-1.json").read_text())
    assert spec["sleep_wake"]["kind"] == "logistic"
    assert len(spec["sleep_wake"]["coef"]) == len(spec["sleep_wake"]["features"])
    model = load_model("synthetic-lr-1", model_dir=models)
    assert model.algo_version == "sunalgo-1.0+synthetic-lr-1"


def test_training_does_not_activate_and_activation_writes_pointer(trained, tmp_path):
    models, _ = trained
    pointer = tmp_path / "active-model.json"
    assert not pointer.exists()
    activate_model("synthetic-lr-1", pointer, model_dir=models)
    assert json.loads(pointer.read_text())["active"] == "synthetic-lr-1"
