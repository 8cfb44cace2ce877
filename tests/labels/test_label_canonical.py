import pytest

from sunrise_common.labels import EVENT_TYPES, STAGES, map_event, map_stage
from sunrise_common.labels.canonical import LabelEvent, Hypnogram, LabelSet


def test_rk_stages_3_and_4_become_n3():
    assert map_stage("Sleep stage 3") == ("N3", True)
    assert map_stage("Sleep stage 4") == ("N3", True)
    assert map_stage("N4") == ("N3", True)


def test_unscored_artefact_and_movement_are_uns():
    for label in ("Sleep stage ?", "?", "Movement time", "Movement", "A", "Artefact"):
        assert map_stage(label) == ("UNS", True), label


def test_domino_and_aasm_names_map_to_canonical_stages():
    assert [map_stage(x)[0] for x in ("Wake", "N1", "N2", "N3", "REM", "Sleep stage R", "Sleep stage W")] == [
        "W", "N1", "N2", "N3", "REM", "REM", "W"
    ]


def test_unknown_stage_label_is_uns_and_reported_unknown():
    assert map_stage("SNORE") == ("UNS", False)


def test_event_labels_map_to_canonical_types():
    cases = {
        "Hypopnea": "hypopnea",
        "Obstructive Apnea": "obstructive_apnea",
        "Central Apnea": "central_apnea",
        "Mixed Apnea": "mixed_apnea",
        "Apnea": "apnea",
        "Flow Limitation": "other",
        "Body event": "other",
        "PLM Arousal (EEG)": "arousal",
        "Arousal (EMG)": "arousal",
        "SpO2 desaturation": "desaturation",
        "Limb Movement (Left)": "limb_movement",
        "RERA": "rera",
        "ChinPhasic": "other",
    }
    for label, etype in cases.items():
        assert map_event(label) == etype, label
        assert etype in EVENT_TYPES


def test_hypnogram_counts_cover_all_stages():
    counts = Hypnogram(stages=["W", "N2", "N2", "REM"]).counts()
    assert set(counts) == set(STAGES)
    assert counts["N2"] == 2 and counts["N3"] == 0


def test_labelset_takes_time_of_day_from_start():
    from datetime import datetime

    ls = LabelSet(datetime(2020, 1, 1, 23, 30, 15), None, [], "x")
    assert ls.start_time_of_day_s == 23 * 3600 + 30 * 60 + 15


def test_an_event_stage_must_be_a_canonical_stage_or_none():
    assert LabelEvent("hypopnea", 0.0, 10.0).stage is None
    assert LabelEvent("hypopnea", 0.0, 10.0, stage="REM").stage == "REM"
    with pytest.raises(ValueError, match="S2"):
        LabelEvent("hypopnea", 0.0, 10.0, stage="S2")
