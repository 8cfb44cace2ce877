"""sunrise_prep + sunalgo against the injected truth of 20 synthetic nights (the TEST batch).

The packaged default model (logistic-4) is held to the targets; baseline-1 (activity rule) is
reported beside it and keeps its documented TST miss (quiet wake scored as sleep).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL, load_model
from sunalgo.run import run_sunalgo
from sunrise_cli.synth import synth_night, write_truth_labels
from sunrise_night.prepare import prepare_sunrise


def _errors(batch: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    acc = np.array([b["agreement"]["accuracy_sw"] for b in batch])
    tst_err = np.array([b["summary"]["TST"] - b["night"].tst_min for b in batch])
    rdi_err = np.array([b["summary"]["AHI"] - b["night"].rdi for b in batch])
    return acc, tst_err, rdi_err


def _report(name: str, batch: list[dict]) -> None:
    acc, tst_err, rdi_err = _errors(batch)
    ahis = [b["night"].params["ahi"] for b in batch]
    print(f"\n{name}: AHI range {min(ahis):.0f}-{max(ahis):.0f}; accuracy median "
          f"{np.median(acc):.3f} min {acc.min():.3f}; |TST err| median "
          f"{np.median(abs(tst_err)):.1f} min (median bias {np.median(tst_err):+.1f}); "
          f"|RDI err| median {np.median(abs(rdi_err)):.2f} /h, mean RDI err {rdi_err.mean():+.2f}")


def test_default_model_is_logistic_4_fitted_on_the_fit_batch_and_chosen_on_the_choice_batch():
    model = load_model()
    assert DEFAULT_MODEL == model.version == "logistic-4"
    # Version 4: sleep/wake for still wake (defect 4) and the central-event rules (defect 6);
    # its rule baseline shares the respiratory detector.
    assert model.respiratory == load_model("baseline-4").respiratory
    assert model.respiratory == {**load_model("logistic-3").respiratory, "central_extent_ratio": 0.85,
                                 "desat_after_onset": True, "desat_to_latest_event": True}
    assert "still" in model.spec["sleep_wake"]
    assert "seeds 7000-7011" in model.spec["fitted_on"]["summary"]
    assert "9180-9185" in model.spec["fitted_on"]["summary"]  # choice, not report (240000..)
    assert "2024" not in model.spec["fitted_on"]["summary"]  # nor the test batch
    assert model.spec["sleep_wake"]["kind"] == "logistic"
    assert model.respiratory["normalise"] == "per_night"
    # The earlier versions stay loadable and unchanged (their results keep their meaning).
    assert load_model("baseline-1").spec["sleep_wake"]["kind"] == "oakley"
    assert load_model("logistic-1").spec["sleep_wake"]["features"][0] == "act_count@oakley"
    assert "normalise" not in load_model("logistic-1").respiratory


def test_default_model_meets_accuracy_targets_on_twenty_synthetic_nights(scored_batch):
    assert all(b["summary"]["algo_version"].endswith("+" + DEFAULT_MODEL) for b in scored_batch)
    _report(DEFAULT_MODEL, scored_batch)
    acc, tst_err, rdi_err = _errors(scored_batch)
    assert np.median(acc) >= 0.90
    assert np.median(np.abs(tst_err)) <= 15.0
    assert np.median(np.abs(rdi_err)) <= 3.0


def test_baseline_1_accuracy_and_rdi_on_twenty_synthetic_nights(baseline_batch):
    _report("baseline-1", baseline_batch)
    acc, _, rdi_err = _errors(baseline_batch)
    assert np.median(acc) >= 0.90
    assert np.median(np.abs(rdi_err)) <= 3.0


@pytest.mark.xfail(strict=True, reason="baseline-1 (activity only) scores quiet wake as sleep: "
                   "median |TST error| is 16.5 min on this batch (5.0 min on the development "
                   "batch it was fitted on); thresholds are not tuned on the test batch. "
                   "The default model (logistic-4) meets the target (test above).")
def test_baseline_1_median_tst_error_within_15_minutes(baseline_batch):
    _, tst_err, _ = _errors(baseline_batch)
    assert np.median(np.abs(tst_err)) <= 15.0


def test_default_model_beats_baseline_1_on_tst_error(scored_batch, baseline_batch):
    _, new, _ = _errors(scored_batch)
    _, old, _ = _errors(baseline_batch)
    assert np.median(np.abs(new)) < np.median(np.abs(old))


def test_truth_stand_in_scores_equal_generator_truth(scored_batch):
    for b in scored_batch:
        psg = json.loads((b["dir"] / "results" / "scores.json").read_text())["psg_scores"]
        assert psg["TST"] == b["night"].tst_min
        assert abs(psg["RDI"] - b["night"].rdi) < 1e-9


def test_rdi_tracks_severity_across_the_batch(scored_batch):
    pred = [b["summary"]["AHI"] for b in scored_batch]
    true = [b["night"].rdi for b in scored_batch]
    assert np.corrcoef(pred, true)[0, 1] > 0.95


def test_eight_hour_night_end_to_end(tmp_path):
    night = synth_night(tmp_path / "n8", seed=88, hours=8.0, ahi=25.0)
    t0 = time.perf_counter()
    prepare_sunrise(night.sunrise, tmp_path / "prep")
    t1 = time.perf_counter()
    summary = run_sunalgo(tmp_path / "prep", write_truth_labels(night, tmp_path / "psg"),
                          tmp_path / "out")
    t2 = time.perf_counter()
    print(f"\n8-h night: sunrise_prep {t1 - t0:.2f} s + sunalgo {t2 - t1:.2f} s "
          f"= {t2 - t0:.2f} s; accuracy {summary['accuracy_sw']:.3f}, "
          f"TST {summary['TST']:.1f} vs {night.tst_min:.1f} min, "
          f"AHI {summary['AHI']:.1f} vs {night.ahi:.1f} /h")
    assert summary["accuracy_sw"] >= 0.90
    assert abs(summary["TST"] - night.tst_min) <= 30
    assert abs(summary["AHI"] - night.ahi) <= 5
