"""sleep_scores: exact values on hand-computed hypnograms, YASA conventions on Sleep-EDF."""

from __future__ import annotations


import numpy as np
import pytest

from sunalgo.scores import severity, sleep_scores

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


def test_unknown_stage_is_rejected_with_the_label():
    with pytest.raises(ValueError, match="N5"):
        sleep_scores(["W", "N5"])


@pytest.mark.parametrize("ahi, cls", [(4.99, "normal"), (5, "mild"), (14.99, "mild"),
                                      (15, "moderate"), (29.99, "moderate"), (30, "severe")])
def test_severity_boundaries(ahi, cls):
    assert severity(ahi) == cls


# --- YASA conventions, re-implemented by hand from science.md §3.2 (YASA is not installed) ---

_YASA_INT = {"W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4, "UNS": -2}


def _yasa_sleep_statistics(hypno: np.ndarray, sf_hyp: float) -> dict:
    """YASA's function-API convention: TIB = whole hypnogram, SPT first..last sleep, TST =
    sleep stages in SPT, stage minutes over the whole hypnogram, % of TST, latencies from the
    start, SE = TST/TIB, SME = TST/SPT."""
    stats = {"TIB": len(hypno)}
    sleep = np.flatnonzero(hypno > 0)
    first, last = sleep[0], sleep[-1]
    spt = hypno[first : last + 1]
    stats.update(SPT=spt.size, WASO=int(np.sum(spt == 0)), TST=int(np.sum(spt > 0)))
    for k, code in (("N1", 1), ("N2", 2), ("N3", 3), ("REM", 4)):
        stats[k] = int(np.sum(hypno == code))
        stats[f"Lat_{k}"] = np.flatnonzero(hypno == code)[0] if (hypno == code).any() else np.nan
    stats["NREM"] = stats["N1"] + stats["N2"] + stats["N3"]
    stats["SOL"] = first
    stats = {k: v / (60 * sf_hyp) for k, v in stats.items()}
    for k in ("N1", "N2", "N3", "REM", "NREM"):
        stats[f"%{k}"] = 100 * stats[k] / stats["TST"]
    stats["SE"] = 100 * stats["TST"] / stats["TIB"]
    stats["SME"] = 100 * stats["TST"] / stats["SPT"]
    return stats


def _read_sleep_edf_hypnogram() -> list[str]:
    edfio = pytest.importorskip("edfio")
    from sunrise_common.labels.canonical import map_stage

    edf = edfio.read_edf(SLEEP_EDF_HYPNOGRAM)
    stages: list[str] = []
    t_end = 0.0
    for ann in edf.annotations:
        if not ann.text.startswith("Sleep stage") and ann.text != "Movement time":
            continue
        n = int(round(ann.duration / 30))
        stage = map_stage(ann.text)[0]
        assert abs(ann.onset - t_end) < 1e-6  # contiguous 30-s epochs
        stages.extend([stage] * n)
        t_end = ann.onset + n * 30
    return stages


def test_scores_follow_yasa_conventions_on_the_sleep_edf_hypnogram():
    stages = _read_sleep_edf_hypnogram()
    assert len(stages) > 2000
    ours = sleep_scores(stages)
    yasa = _yasa_sleep_statistics(np.array([_YASA_INT[s] for s in stages]), 1 / 30)
    for key in ("TIB", "SPT", "WASO", "TST", "N1", "N2", "N3", "REM", "NREM", "SOL", "Lat_N1",
                "Lat_N2", "Lat_N3", "Lat_REM", "%N1", "%N2", "%N3", "%REM", "%NREM", "SE",
                "SME"):
        assert ours[key] == pytest.approx(yasa[key]), key
    assert ours["REM_latency"] == pytest.approx(yasa["Lat_REM"] - yasa["SOL"])
