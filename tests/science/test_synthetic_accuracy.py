"""sunrise_prep + sunalgo (baseline-1) against the injected truth of 20 synthetic nights."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sunalgo.run import run_sunalgo
from sunrise_cli.synth import synth_night, write_truth_labels
from sunrise_prep.prepare import prepare_sunrise


def test_baseline_meets_accuracy_targets_on_twenty_synthetic_nights(scored_batch):
    acc = np.array([b["agreement"]["accuracy_sw"] for b in scored_batch])
    tst_err = np.array([b["summary"]["TST"] - b["night"].tst_min for b in scored_batch])
    rdi_err = np.array([b["summary"]["RDI"] - b["night"].rdi for b in scored_batch])
    ahis = [b["night"].params["ahi"] for b in scored_batch]
    print(f"\nAHI range {min(ahis):.0f}-{max(ahis):.0f}; accuracy median {np.median(acc):.3f} "
          f"min {acc.min():.3f}; |TST err| median {np.median(abs(tst_err)):.1f} min; "
          f"|RDI err| median {np.median(abs(rdi_err)):.2f} /h, mean RDI err {rdi_err.mean():+.2f}")
    assert np.median(acc) >= 0.90
    assert np.median(np.abs(rdi_err)) <= 3.0


@pytest.mark.xfail(strict=False, reason="baseline-1 (activity only) scores quiet wake as sleep: "
                   "median |TST error| is 16.5 min on this batch (5.8 min on the development "
                   "batch it was fitted on); thresholds are not tuned on the test batch")
def test_baseline_median_tst_error_within_15_minutes(scored_batch):
    tst_err = np.array([b["summary"]["TST"] - b["night"].tst_min for b in scored_batch])
    assert np.median(np.abs(tst_err)) <= 15.0


def test_truth_stand_in_scores_equal_generator_truth(scored_batch):
    for b in scored_batch:
        psg = json.loads((b["dir"] / "results" / "scores.json").read_text())["psg_scores"]
        assert psg["TST"] == b["night"].tst_min
        assert abs(psg["RDI"] - b["night"].rdi) < 1e-9


def test_rdi_tracks_severity_across_the_batch(scored_batch):
    pred = [b["summary"]["RDI"] for b in scored_batch]
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
          f"RDI {summary['RDI']:.1f} vs {night.rdi:.1f} /h")
    assert summary["accuracy_sw"] >= 0.90
    assert abs(summary["TST"] - night.tst_min) <= 30
    assert abs(summary["RDI"] - night.rdi) <= 5
