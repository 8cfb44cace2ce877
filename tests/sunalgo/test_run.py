"""run_sunalgo and the PSG side: reference scores, agreement and training rows over one window.

The scoring window is the hypnogram epochs inside the PSG recording (psg_prep's
``in_recording``) and, when the labels carry them, inside lights-off..lights-on.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from psg_prep.prepare import prepare_psg
from sunalgo.run import psg_scores_from, psg_window, read_psg, run_sunalgo
from sunrise_cli.synth import synth_night, write_truth_labels
from sunrise_night.prepare import prepare_sunrise

from tests.conftest import CORPUS

SHORT_PSG = CORPUS / "edf" / "edfio__short_psg.edf"  # 300 s of Sleep-EDF SC4001, starts 16:13:00
SLEEP_EDF_HYPNOGRAM = CORPUS / "edf" / "edfio__SC4001EC-Hypnogram.edf"  # 24 h of labels


def _nsrr_xml(path: Path, stages: list[tuple[str, float, float]],
              events: list[tuple[str, str, float, float]], clock: str = "16.13.00") -> Path:
    """An NSRR PSGAnnotation file (structure as tests/labels/fixtures/make_nsrr_xml.py)."""
    rows = ['<?xml version="1.0" encoding="UTF-8"?>', "<PSGAnnotation>",
            "<EpochLength>30</EpochLength>", "<ScoredEvents>",
            "<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept>"
            f"<Start>0</Start><Duration>600</Duration><ClockTime>00.00.00 {clock}</ClockTime>"
            "</ScoredEvent>"]
    for concept, start, dur in stages:
        rows.append(f"<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>{concept}"
                    f"</EventConcept><Start>{start}</Start><Duration>{dur}</Duration></ScoredEvent>")
    for etype, concept, start, dur in events:
        rows.append(f"<ScoredEvent><EventType>{etype}</EventType><EventConcept>{concept}"
                    f"</EventConcept><Start>{start}</Start><Duration>{dur}</Duration></ScoredEvent>")
    rows += ["</ScoredEvents>", "</PSGAnnotation>"]
    path.write_text("\n".join(rows))
    return path


def test_psg_scores_of_a_short_psg_cover_the_recording_not_the_whole_label_file(tmp_path):
    # The 5-min Sleep-EDF PSG paired with its 24-h hypnogram: 10 epochs overlap the recording.
    prepare_psg(SHORT_PSG, [SLEEP_EDF_HYPNOGRAM], tmp_path / "psg")
    psg = read_psg(tmp_path / "psg")
    assert len(psg["stages"]) == 2880 and sum(psg["in_recording"]) == 10
    s = psg_scores_from(psg)
    assert s["TRT"] == 5.0 and s["n_epochs"] == 10  # not 1440 min
    assert s["W"] == 5.0 and s["TST"] == 0.0 and s["SE"] == 0.0  # not 22.7 %
    assert s["window"] == {"basis": "recording", "start_s": 0.0, "end_s": 300.0, "n_epochs": 10,
                           "n_label_epochs": 2880, "gap_epochs": 0, "lights_off_s": None,
                           "lights_on_s": None}


def test_labels_without_a_recording_are_scored_whole_and_say_so(tmp_path):
    prepare_psg(None, [SLEEP_EDF_HYPNOGRAM], tmp_path / "psg")
    s = psg_scores_from(read_psg(tmp_path / "psg"))
    assert s["window"]["basis"] == "labels" and s["TRT"] == 1440.0


def test_lights_markers_crop_the_window_inside_the_recording(tmp_path):
    # 20 min of labels against the 5-min PSG; lights off at 60 s, lights on at 240 s.
    stages = [("Wake|0", 0, 90), ("Stage 2 sleep|2", 90, 150), ("REM sleep|5", 240, 960)]
    events = [("Miscellaneous|Miscellaneous", "Lights Off|Lights Off", 60.0, 0.0),
              ("Miscellaneous|Miscellaneous", "Lights On|Lights On", 240.0, 0.0),
              ("Respiratory|Respiratory", "Hypopnea|Hypopnea", 30.0, 12.0),    # before lights off
              ("Respiratory|Respiratory", "Hypopnea|Hypopnea", 130.0, 12.0),   # in the window
              ("Respiratory|Respiratory", "Hypopnea|Hypopnea", 500.0, 12.0)]   # after lights on
    xml = _nsrr_xml(tmp_path / "labels.xml", stages, events)
    prepare_psg(SHORT_PSG, [xml], tmp_path / "psg")
    s = psg_scores_from(read_psg(tmp_path / "psg"))
    w = s["window"]
    assert w["basis"] == "recording+lights"
    assert (w["lights_off_s"], w["lights_on_s"]) == (60.0, 240.0)
    assert (w["start_s"], w["end_s"], w["n_epochs"]) == (60.0, 240.0, 6)
    assert s["TRT"] == 3.0 and s["SOL"] == 0.5 and s["TST"] == 2.5 and s["REM"] == 0.0
    assert s["event_counts"] == {"hypopnea": 1}
    assert s["AHI"] == pytest.approx(1 / (2.5 / 60))


@pytest.mark.parametrize("label", ["Ligths-Off#1", "lights out", "Licht aus", "LIGHTS_OFF"])
def test_lights_off_spellings_are_recognised(label):
    psg = {"meta": {"duration_s": 600.0}, "epoch_s": 30.0, "onsets": [30.0 * k for k in range(20)],
           "stages": ["W"] * 20, "in_recording": [True] * 20, "events": [],
           "markers": [(label, 120.0)]}
    w = psg_window(psg)["window"]
    assert w["basis"] == "recording+lights" and w["start_s"] == 120.0 and w["n_epochs"] == 16


def test_gaps_inside_the_window_are_unscored(tmp_path):
    psg = {"meta": {"duration_s": 300.0}, "epoch_s": 30.0, "onsets": [30.0 * k for k in range(10)],
           "stages": ["N2"] * 10, "in_recording": [True] * 4 + [False] * 2 + [True] * 4,
           "events": [], "markers": []}
    win = psg_window(psg)
    assert win["stages"] == ["N2"] * 4 + ["UNS"] * 2 + ["N2"] * 4
    assert win["window"]["gap_epochs"] == 2


def _with_stage_column(events_csv: Path, stage_of) -> None:
    """Add the ``stage`` column psg_prep writes for labels that export it (DOMINO)."""
    with events_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with events_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0].keys(), "stage"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "stage": stage_of(r)})


def test_psg_events_in_wake_use_the_exported_stage_or_the_hypnogram(tmp_path):
    stages = [("Wake|0", 0, 120), ("Stage 2 sleep|2", 120, 180)]
    events = [("Respiratory|Respiratory", "Obstructive apnea|Obstructive Apnea", 20.0, 12.0),
              ("Respiratory|Respiratory", "Hypopnea|Hypopnea", 150.0, 12.0),
              ("Respiratory|Respiratory", "Hypopnea|Hypopnea", 200.0, 12.0)]
    prepare_psg(SHORT_PSG, [_nsrr_xml(tmp_path / "l.xml", stages, events)], tmp_path / "psg")
    s = psg_scores_from(read_psg(tmp_path / "psg"))  # no stage column: the hypnogram decides
    assert s["event_counts"] == {"hypopnea": 2}
    assert s["event_counts_not_sleep"] == {"obstructive_apnea": 1}
    # The scorer's own stage at each event (empty = unknown) wins over the hypnogram.
    _with_stage_column(tmp_path / "psg" / "events.csv",
                       lambda r: {"20.000": "N1", "150.000": "W"}.get(r["onset_s"], ""))
    s = psg_scores_from(read_psg(tmp_path / "psg"))
    assert s["event_counts"] == {"obstructive_apnea": 1, "hypopnea": 1}
    assert s["event_counts_not_sleep"] == {"hypopnea": 1}


def test_agreement_and_training_rows_use_the_psg_window(one_hour_night, tmp_path):
    root = one_hour_night
    psg_dir = tmp_path / "psg"
    psg_dir.mkdir()
    for name in ("hypnogram.csv", "events.csv"):
        (psg_dir / name).write_bytes((root / "psg" / name).read_bytes())
    # The PSG recorded only the first 30 min of the labelled hour.
    meta = json.loads((root / "psg" / "meta.json").read_text())
    (psg_dir / "meta.json").write_text(json.dumps({**meta, "duration_s": 1800.0}))
    run_sunalgo(root / "prep", psg_dir, tmp_path / "out")
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    agr = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert scores["psg_window"]["end_s"] == 1800.0 and scores["psg_scores"]["TRT"] == 30.0
    a, b = agr["window"]["sunrise_epochs"]
    assert b - a <= 60 and agr["n_epochs_compared"] <= b - a
    # Predicted scores compared with the PSG's cover the same 30 min, not the whole Sunrise night.
    assert agr["TST_pred"] <= 30.0 and agr["TST_psg"] == scores["psg_scores"]["TST"]
    with (tmp_path / "out" / "training_rows.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    labelled = [i for i, r in enumerate(rows) if r["psg_sleep"] != ""]
    assert labelled and a <= labelled[0] and labelled[-1] < b
    assert all(r["psg_stage"] == "UNS" for r in rows[b:])
    # The full hour scored the same way labels more epochs (the window is what limited them).
    run_sunalgo(root / "prep", root / "psg", tmp_path / "full")
    with (tmp_path / "full" / "training_rows.csv").open(newline="") as f:
        assert sum(r["psg_sleep"] != "" for r in csv.DictReader(f)) > len(labelled) + 40


def test_labels_outside_the_recording_give_empty_reference_scores_and_a_warning(one_hour_night,
                                                                                tmp_path):
    root = one_hour_night
    psg_dir = tmp_path / "psg"
    psg_dir.mkdir()
    for name in ("meta.json", "events.csv"):
        (psg_dir / name).write_bytes((root / "psg" / name).read_bytes())
    with (root / "psg" / "hypnogram.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    with (psg_dir / "hypnogram.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0].keys(), "in_recording"])
        w.writeheader()
        w.writerows({**r, "in_recording": 0} for r in rows)  # psg_prep: none in the recording
    run_sunalgo(root / "prep", psg_dir, tmp_path / "out")
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    agr = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert scores["psg_scores"]["TRT"] == 0.0 and scores["psg_scores"]["AHI"] is None
    assert any("no PSG label epoch" in w for w in scores["warnings"])
    assert agr["n_epochs_compared"] == 0 and agr["window"]["sunrise_epochs"] == [0, 0]
    with (tmp_path / "out" / "training_rows.csv").open(newline="") as f:
        assert all(r["psg_sleep"] == "" for r in csv.DictReader(f))


def _domino(path: Path, header: list[str], rows: list[str]) -> Path:
    path.write_text("\r\n".join([*header, "", *rows]) + "\r\n", encoding="utf-8")
    return path


def test_domino_stage_at_each_event_decides_through_psg_prep(tmp_path):
    # Newer DOMINO layout: a date on every row and the stage after the event label.
    start = "Start Time: 30.05.2024 23:00:00"
    stages = ["Wake"] * 4 + ["N2"] * 16  # 2 min of wake, then 8 min of N2
    profile = _domino(tmp_path / "Sleep profile - x.txt",
                      ["Signal ID: SchlafProfil\\profil", start, "Unit: ", "Signal Type: Discret",
                       "Events list: N4,N3,N2,N1,REM,Wake,Movement", "Rate: 30 s"],
                      [f"30.05.2024 23:{30 * k // 60:02d}:{30 * k % 60:02d},000; {s}"
                       for k, s in enumerate(stages)])
    flow = _domino(tmp_path / "Flow Events - x.txt",
                   ["Signal ID: FlowD\\flow", start, "Unit: s", "Signal Type: Impuls"],
                   ["30.05.2024 23:00:40,000-23:00:56,000; 16;Hypopnea; Wake",      # W, W
                    "30.05.2024 23:01:10,000-23:01:30,000; 20;Obstructive Apnea",    # -, W
                    "30.05.2024 23:03:00,000-23:03:16,000; 16;Hypopnea; Wake",      # W, N2
                    "30.05.2024 23:05:00,000-23:05:20,000; 20;Obstructive Apnea; N2"])  # N2
    prepare_psg(None, [profile, flow], tmp_path / "psg")
    psg = read_psg(tmp_path / "psg")
    assert [e[3] for e in psg["events"]] == ["W", "", "W", "N2"]
    s = psg_scores_from(psg)
    assert s["TST"] == 8.0
    assert s["event_counts"] == {"obstructive_apnea": 1}
    assert s["event_counts_not_sleep"] == {"hypopnea": 2, "obstructive_apnea": 1}
    assert s["AHI"] == pytest.approx(7.5)  # 1 event in 8 min of sleep, not 4 (30/h)


def test_a_flat_gyroscope_is_a_permanent_error_not_a_retry(tmp_path):
    """A stuck or disconnected gyroscope (activity exactly 0 all night) cannot be normalised to its
    night's floor: that is bad input, recorded and acknowledged, never a retry storm."""
    import numpy as np

    from sunrise_algo.builtin.features import FlatSensorError
    from sunrise_common.errors import PermanentError

    night = synth_night(tmp_path / "n", seed=5, hours=1.0, ahi=20.0)
    prep = tmp_path / "prep"
    prepare_sunrise(night.sunrise, prep)
    with np.load(prep / "prepped.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["activity_dps"] = np.zeros_like(arrays["activity_dps"])
    np.savez(prep / "prepped.npz", **arrays)
    with pytest.raises(FlatSensorError) as caught:
        run_sunalgo(prep, None, tmp_path / "out")
    assert isinstance(caught.value, PermanentError) and caught.value.reason == "flat_gyroscope"


def test_sensor_off_epochs_are_unscored_and_leave_tst_and_the_indices(tmp_path):
    """Issue 24 defect 3: a sensor taken off during a 30-min awakening made it sleep on main;
    its epochs are now UNS, outside TST, every per-hour index and the valid recording time."""
    from sunrise_cli.synth import SynthSettings

    night = synth_night(tmp_path / "n", seed=33, hours=3.0, ahi=20,
                        settings=SynthSettings(wake_block_min=30, sensor_off_min=20))
    prepare_sunrise(night.sunrise, tmp_path / "prep")
    psg = write_truth_labels(night, tmp_path / "psg")
    run_sunalgo(tmp_path / "prep", psg, tmp_path / "out")
    with (tmp_path / "out" / "predictions.csv").open() as f:
        stage = [r["stage"] for r in csv.DictReader(f)]
    a, b = (int((t - night.sunrise_offset_s) // 30) for t in night.params["sensor_off_s"])
    assert set(stage[a + 2 : b - 2]) == {"UNS"}
    assert "S" not in stage[a + 2 : b - 2]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["scores"]
    n_uns = stage.count("UNS")
    assert scores["UNS"] == n_uns * 0.5 and scores["VRT"] == scores["TRT"] - n_uns * 0.5
    assert 38 <= n_uns <= 42


def test_the_predicted_index_is_an_ahi_and_each_sides_odi_criterion_is_recorded(tmp_path):
    """Issue 24 defect 7: sunalgo detects no RERAs, so its index is an AHI (compared with the
    PSG AHI) and its RDI is None, not the AHI under a name that the PSG fills with RERAs."""
    night = synth_night(tmp_path / "n", seed=34, hours=1.0, ahi=20)
    prepare_sunrise(night.sunrise, tmp_path / "prep")
    psg = write_truth_labels(night, tmp_path / "psg")
    s = run_sunalgo(tmp_path / "prep", psg, tmp_path / "out")
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["scores"]
    agr = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert scores["RDI"] is None and s["RDI"] is None and scores["AHI"] is not None
    assert agr["RDI_pred"] is None and agr["RDI_diff"] is None
    assert agr["AHI_diff"] == pytest.approx(agr["AHI_pred"] - agr["AHI_psg"])
    assert s["AHI_psg"] == agr["AHI_psg"]
    assert "3 %" in agr["ODI_criterion_pred"] and "export" in agr["ODI_criterion_psg"]
    # Event level on the Sunrise time base: the truth events of the window are all counted.
    ev = agr["events"]
    in_window = sum(1 for t, o, d in night.events if o >= night.sunrise_offset_s)
    assert sum(v["n"] for v in ev["psg"].values()) == in_window >= 5
    found = sum(v["n"] * v["sensitivity"] for v in ev["psg"].values() if v["n"])
    assert found / in_window >= 0.6
    assert agr["specificity_wake"] is not None
