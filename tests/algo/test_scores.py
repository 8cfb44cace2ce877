"""sleep_scores: exact values on hand-computed hypnograms; equal to YASA on Sleep-EDF and on any hypnogram."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yasa
from hypothesis import given, settings
from hypothesis import strategies as st

from psg_prep.prepare import prepare_psg
from sunalgo.run import psg_scores_from, read_psg
from sunrise_algo.scores import severity, sleep_scores

from tests.conftest import CORPUS

SLEEP_EDF_HYPNOGRAM = CORPUS / "edf" / "edfio__SC4001EC-Hypnogram.edf"


def test_scores_of_a_small_hand_computed_hypnogram():
    # 12 epochs of 30 s: W W N1 N2 W N2 N3 REM W N2 W W
    hyp = ["W", "W", "N1", "N2", "W", "N2", "N3", "REM", "W", "N2", "W", "W"]
    s = sleep_scores(hyp)
    assert s["TRT"] == 6.0 and s["TIB"] == 6.0
    assert s["SOL"] == 1.0  # two wake epochs
    assert s["SPT"] == 4.0  # epochs 2..9
    assert s["WASO"] == 1.0  # epochs 4 and 8
    assert s["TST"] == 3.0
    assert s["SE"] == pytest.approx(50.0)
    assert s["SME"] == pytest.approx(75.0)
    assert s["N1"] == 0.5 and s["N2"] == 1.5 and s["N3"] == 0.5 and s["REM"] == 0.5
    assert s["W"] == 3.0
    assert s["%N2"] == pytest.approx(50.0)
    assert s["%REM"] == pytest.approx(100 / 6)
    assert s["Lat_REM"] == 3.5  # from the recording start (YASA)
    assert s["REM_latency"] == 2.5  # from sleep onset (AASM)


def test_event_indices_are_per_hour_of_tst():
    hyp = ["W"] * 20 + ["N2"] * 240 + ["W"] * 20  # 2 h TST
    events = [("obstructive_apnea", 700, 20), ("hypopnea", 900, 15), ("central_apnea", 1200, 12),
              ("rera", 1500, 10), ("desaturation", 1600, 15), ("arousal", 1700, 5),
              ("hypopnea", 99999, 10)]  # the last starts after the hypnogram: not counted
    s = sleep_scores(hyp, events=events)
    assert s["TST"] == 120.0
    assert s["AHI"] == pytest.approx(1.5)
    assert s["RDI"] == pytest.approx(2.0)
    assert s["ORDI"] == pytest.approx(1.5)  # OA + hypopnea + RERA
    assert s["CAI"] == pytest.approx(0.5)
    assert s["ODI"] == pytest.approx(0.5)
    assert sleep_scores(hyp)["ODI"] is None  # no oximetry: undefined, not zero
    assert sleep_scores(hyp, desaturations=[])["ODI"] == 0.0


def test_sleep_wake_only_predictions_have_no_stage_figures():
    s = sleep_scores(["W", "S", "S", "W", "S", "W"])
    assert s["TST"] == 1.5 and s["WASO"] == 0.5 and s["SOL"] == 0.5
    assert s["staged"] is False and s["%REM"] is None and s["REM_latency"] is None


def test_unscored_epochs_are_neither_sleep_nor_wake():
    s = sleep_scores(["W", "N2", "UNS", "N2", "W"])
    assert s["SPT"] == 1.5 and s["TST"] == 1.0 and s["WASO"] == 0.0


def test_no_sleep_gives_undefined_latencies():
    s = sleep_scores(["W"] * 4)
    assert s["TST"] == 0.0 and s["SOL"] is None and s["SME"] is None and s["AHI"] is None
    assert s["SOL_5min"] is None and s["SFI"] is None


def test_waso_without_sleep_is_undefined_not_zero():
    # No sleep onset: there is no "after sleep onset" to count wake in (YASA returns NaN).
    assert sleep_scores(["W"] * 4)["WASO"] is None
    assert sleep_scores(["W", "UNS", "W"])["WASO"] is None
    assert sleep_scores(["W", "N1", "W"])["WASO"] == 0.0  # sleep, but no wake inside SPT


def test_sfi_counts_sleep_to_wake_transitions_per_hour_of_tst():
    # W W N1 N2 | W | N2 N3 REM | W | N2 | W W: three sleep->W transitions in 3 min of TST.
    hyp = ["W", "W", "N1", "N2", "W", "N2", "N3", "REM", "W", "N2", "W", "W"]
    assert sleep_scores(hyp)["SFI"] == pytest.approx(3 / (3.0 / 60))
    # sleep -> UNS -> W is not a direct transition (YASA); N2 -> W at the end is.
    assert sleep_scores(["N2", "UNS", "W", "N2", "W"])["SFI"] == pytest.approx(1 / (1.0 / 60))


def test_sol_5min_is_the_start_of_the_first_five_minutes_of_unbroken_sleep():
    # 4 W, 3 N1 (1.5 min: too short), W, then 10 epochs (5 min) of N2/N3 mixed.
    hyp = ["W"] * 4 + ["N1"] * 3 + ["W"] + ["N2"] * 6 + ["N3"] * 4 + ["W"]
    s = sleep_scores(hyp)
    assert s["SOL"] == 2.0
    assert s["SOL_5min"] == 4.0  # epoch 8
    # An unscored epoch breaks persistent sleep; 9 epochs of sleep are not 5 minutes.
    broken = ["W"] + ["N2"] * 5 + ["UNS"] + ["N2"] * 4
    assert sleep_scores(broken)["SOL_5min"] is None
    # 15-s epochs: 5 min is 20 of them.
    assert sleep_scores(["W"] * 2 + ["N2"] * 20, epoch_s=15)["SOL_5min"] == 0.5


def test_respiratory_events_in_wake_are_not_counted():
    # One hour of pre-sleep wake holding 10 hypopneas, then one hour of N2 without events.
    hyp = ["W"] * 120 + ["N2"] * 120
    events = [("hypopnea", 300.0 * k + 10, 15.0) for k in range(10)]
    s = sleep_scores(hyp, events=events)
    assert s["TST"] == 60.0
    assert s["AHI"] == 0.0 and s["RDI"] == 0.0 and s["ORDI"] == 0.0
    assert s["event_counts"] == {} and s["event_counts_not_sleep"] == {"hypopnea": 10}
    # The same events in the sleep hour count: 10 per hour of TST.
    assert sleep_scores(hyp, events=[(t, o + 3600, d) for t, o, d in events])["AHI"] == 10.0


def test_the_exported_stage_at_an_event_wins_over_the_hypnogram():
    hyp = ["W"] * 120 + ["N2"] * 120
    events = [("obstructive_apnea", 100.0, 12.0, "N1"),   # hypnogram says W, scorer says N1
              ("hypopnea", 4000.0, 15.0, "W"),            # hypnogram says N2, scorer says W
              ("central_apnea", 5000.0, 12.0, ""),        # no exported stage: hypnogram (N2)
              {"type": "rera", "onset_s": 200.0, "duration_s": 10.0, "stage": None}]  # W
    s = sleep_scores(hyp, events=events)
    assert s["event_counts"] == {"obstructive_apnea": 1, "central_apnea": 1}
    assert s["event_counts_not_sleep"] == {"hypopnea": 1, "rera": 1}
    assert s["AHI"] == 2.0 and s["RDI"] == 2.0 and s["CAI"] == 1.0


def test_desaturations_in_wake_are_left_out_of_the_odi():
    hyp = ["W"] * 120 + ["N2"] * 120
    s = sleep_scores(hyp, desaturations=[(60.0, 20.0, 4.0), (3700.0, 20.0, 3.5)])
    assert s["ODI"] == 1.0


def test_sleep_wake_predictions_count_only_events_in_predicted_sleep():
    pred = ["W"] * 60 + ["S"] * 120  # 30 min predicted wake, then 1 h predicted sleep
    events = [("obstructive_event", 600.0, 20.0), ("obstructive_event", 2000.0, 20.0),
              ("central_event", 2500.0, 15.0)]
    s = sleep_scores(pred, events=events)
    assert s["AHI"] == 2.0 and s["ORDI"] == 1.0 and s["CAI"] == 1.0


def test_an_unknown_stage_at_an_event_is_rejected_with_the_label():
    with pytest.raises(ValueError, match="N5"):
        sleep_scores(["N2"] * 4, events=[("hypopnea", 10.0, 12.0, "N5")])


def test_unknown_stage_is_rejected_with_the_label():
    with pytest.raises(ValueError, match="N5"):
        sleep_scores(["W", "N5"])


@pytest.mark.parametrize("ahi, cls", [(4.99, "normal"), (5, "mild"), (14.99, "mild"),
                                      (15, "moderate"), (29.99, "moderate"), (30, "severe")])
def test_severity_boundaries(ahi, cls):
    assert severity(ahi) == cls


# --- YASA (installed as a test dependency) on the corpus's Sleep-EDF hypnogram ---------------
#
# Conventions where the names differ (module docstring of sunrise_algo.scores): our ``W`` is YASA's
# ``WAKE`` (we report both); the canonical labels fold YASA's ``ART`` (artefact, movement time)
# into ``UNS``; our ``S`` (sleep/wake-only) is YASA's 2-stage ``SLEEP``; None is YASA's NaN.

_YASA_STR = {"W": "WAKE", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "REM", "UNS": "UNS"}
_YASA_INT = {"W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4, "UNS": -2}


def _yasa_stats(stages: list[str]) -> dict[str, dict]:
    """Both of YASA 0.8's APIs: the Hypnogram method and the (deprecated) function."""
    method = yasa.Hypnogram([_YASA_STR[s] for s in stages], n_stages=5, freq="30s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the function API is deprecated in 0.8
        func = yasa.sleep_statistics(np.array([_YASA_INT[s] for s in stages]), sf_hyp=1 / 30)
    return {"Hypnogram.sleep_statistics": method.sleep_statistics(), "sleep_statistics": func}


def _assert_superset_and_equal(ours: dict, reference: dict[str, dict]) -> int:
    compared = 0
    for api, stats in reference.items():
        for key, value in stats.items():
            assert key in ours, f"{api}: {key} missing from sleep_scores"
            if np.isnan(value):
                assert ours[key] is None, f"{api}: {key} is {ours[key]}, YASA says undefined"
            else:
                assert ours[key] == pytest.approx(float(value), abs=0.01), f"{api}: {key}"
            compared += 1
    return compared


@pytest.fixture(scope="module")
def sleep_edf_labels(tmp_path_factory) -> dict:
    """The Sleep-EDF hypnogram through the real path: psg_prep (labels only) -> read_psg."""
    out = tmp_path_factory.mktemp("sleep_edf") / "psg"
    prepare_psg(None, [SLEEP_EDF_HYPNOGRAM], out)
    return read_psg(out)


def test_scores_equal_yasa_on_the_sleep_edf_hypnogram(sleep_edf_labels):
    ours = psg_scores_from(sleep_edf_labels)
    assert ours["window"]["basis"] == "labels" and ours["n_epochs"] == 2880
    stages = sleep_edf_labels["stages"]
    assert {"W", "N1", "N2", "N3", "REM", "UNS"} <= set(stages)  # a real, fully staged night
    assert _assert_superset_and_equal(ours, _yasa_stats(stages)) == 20 + 21  # every key of both
    assert ours["TST"] == pytest.approx(326.5) and ours["SFI"] == pytest.approx(2.0214, abs=1e-4)


def test_scores_equal_yasa_on_the_sleep_edf_sleep_period(sleep_edf_labels):
    # The same labels cropped to 10 min before sleep onset .. 10 min after the last sleep epoch,
    # as a lights-off..lights-on window would: SE, SOL and the latencies change, TST does not.
    stages = sleep_edf_labels["stages"]
    sleep = [i for i, s in enumerate(stages) if s in ("N1", "N2", "N3", "REM")]
    cropped = stages[sleep[0] - 20 : sleep[-1] + 21]
    ours = sleep_scores(cropped)
    assert ours["SOL"] == 10.0 and ours["SE"] > 80
    _assert_superset_and_equal(ours, _yasa_stats(cropped))


def test_scores_equal_yasa_when_there_is_no_sleep():
    stages = ["W"] * 6 + ["UNS"] * 2 + ["W"] * 2
    _assert_superset_and_equal(sleep_scores(stages), _yasa_stats(stages))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["W", "N1", "N2", "N3", "REM", "UNS"]), min_size=2, max_size=200))
def test_scores_equal_yasa_on_any_hypnogram(stages):
    _assert_superset_and_equal(sleep_scores(stages), _yasa_stats(stages))
