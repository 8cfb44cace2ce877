"""A model trained on synthetic training rows beats baseline-1 on held-out synthetic nights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL, load_model
from sunalgo.run import run_sunalgo
from sunrise_cli.train import activate_model, train_model

from .conftest import rows_of


@pytest.fixture(scope="module")
def trained(scored_batch, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    train_nights = scored_batch[:12]
    result = train_model(rows_of(train_nights), models, version="synthetic-lr-1", seed=0)
    return models, result


def test_trained_model_beats_baseline_1_on_held_out_nights(scored_batch, baseline_batch, trained,
                                                           tmp_path):
    """train_model's default recipe vs the rule it is meant to improve on (baseline-1, also
    train_model's ``base_version``), on 8 nights it never saw. The packaged default
    (logistic-1, fitted on the development batch) is printed beside them, not asserted: the
    trained model here is fitted on 12 nights of this very batch, so that comparison would
    favour it unfairly."""
    models, result = trained
    base_acc, new_acc, base_k, new_k, def_acc, def_k = [], [], [], [], [], []
    for b, bb in zip(scored_batch[12:], baseline_batch[12:]):  # never seen by train_model
        s = run_sunalgo(b["dir"] / "prep", b["dir"] / "truth_psg", tmp_path / b["dir"].name,
                        model_version="synthetic-lr-1", model_dir=models)
        new_acc.append(s["accuracy_sw"])
        new_k.append(s["kappa_sw"])
        assert bb["summary"]["algo_version"].endswith("+baseline-1")
        base_acc.append(bb["agreement"]["accuracy_sw"])
        base_k.append(bb["agreement"]["kappa_sw"])
        def_acc.append(b["agreement"]["accuracy_sw"])
        def_k.append(b["agreement"]["kappa_sw"])
    print(f"\nheld-out nights: baseline-1 accuracy {np.mean(base_acc):.4f} kappa "
          f"{np.mean(base_k):.3f}; trained accuracy {np.mean(new_acc):.4f} kappa "
          f"{np.mean(new_k):.3f}; default ({DEFAULT_MODEL}) accuracy {np.mean(def_acc):.4f} "
          f"kappa {np.mean(def_k):.3f}; train_model's own hold-out: {result['metrics']}")
    assert result["metrics"]["base_version"] == "baseline-1"
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


def test_rows_without_a_subject_are_refused_and_one_persons_nights_stay_together(scored_batch,
                                                                                   tmp_path):
    """Issue 24 defect 8: on main every CSV not named by a night id was its own subject, so
    4 nights of one person went 3 to train and 1 to test without a warning."""
    from sunrise_cli.train import night_of

    from .conftest import with_subject

    plain = [b["dir"] / "results" / "training_rows.csv" for b in scored_batch[:8]]
    with pytest.raises(ValueError, match="'subject' column"):
        train_model(plain, tmp_path / "m0", version="no-subject-1")
    # Nights 0-3 are one person, 4-7 four others: person p1's nights never split.
    rows = [with_subject(p, tmp_path / f"r{i}" / "training_rows.csv", "p1" if i < 4 else f"q{i}")
            for i, p in enumerate(plain)]
    assert {night_of(p)[1] for p in rows[:4]} == {"p1"}
    for seed in range(4):
        result = train_model(rows, tmp_path / "m", version=f"subject-{seed}", seed=seed)
        splits = json.loads((tmp_path / "m" / f"subject-{seed}.json").read_text())["splits"]
        where = {sp for sp, subjects in splits["subjects"].items() if "p1" in subjects}
        assert len(where) == 1, where
        assert result["metrics"]["model"]["n_epochs"] > 0
