"""DOMINO exports: exact counts on the real RBDtector files, layouts built in the tests."""

from collections import Counter
from datetime import datetime

import pytest

from sunrise_common.labels import LabelError, parse_labels
from sunrise_common.labels.domino import parse_start_time


def _parse(domino_dir, name, kind):
    return parse_labels(kind, (domino_dir / name).read_bytes())


def test_sleep_profile_has_121_epochs_with_the_real_stage_counts(domino_dir):
    ls = _parse(domino_dir, "Sleep profile - test1 Unbekannt.txt", "domino_sleep_profile")
    assert ls.start == datetime(2020, 9, 23, 1, 0, 0)
    assert ls.hypnogram.epoch_s == 30.0
    assert ls.hypnogram.onset_s == 0.0
    assert len(ls.hypnogram.stages) == 121
    assert ls.hypnogram.counts() == {"W": 3, "N1": 10, "N2": 45, "N3": 0, "REM": 63, "UNS": 0}
    assert ls.hypnogram.stages[:3] == ["N1", "N2", "N1"]
    assert ls.warnings == []


def test_snore_variant_maps_five_epochs_to_uns_with_a_warning(domino_dir):
    ls = _parse(domino_dir, "Sleep profile - test1 Unbekannt SNORE.txt", "domino_sleep_profile")
    assert len(ls.hypnogram.stages) == 121
    assert ls.hypnogram.counts() == {"W": 3, "N1": 10, "N2": 45, "N3": 0, "REM": 58, "UNS": 5}
    assert any("unknown stage label" in w for w in ls.warnings)
    assert not any("SNORE" in w for w in ls.warnings)  # warnings never quote the file


def test_flow_events_are_13_hypopneas_and_one_flow_limitation(domino_dir):
    ls = _parse(domino_dir, "Flow Events - test1 Unbekannt.txt", "domino_flow_events")
    assert Counter(e.type for e in ls.events) == {"hypopnea": 13, "other": 1}
    other = [e for e in ls.events if e.type == "other"]
    assert other[0].label == "Flow Limitation"
    first = ls.events[0]
    assert first.onset_s == pytest.approx(264.411)  # 01:04:24,411 after 01:00:00
    assert first.duration_s == pytest.approx(17.26)
    assert first.channel == "FlowD\\flow"


def test_arousal_file_has_29_arousals(domino_dir):
    ls = _parse(domino_dir, "Classification Arousals - test1 Unbekannt.txt", "domino_arousals")
    assert len(ls.events) == 29
    assert {e.type for e in ls.events} == {"arousal"}
    assert Counter(e.label for e in ls.events)["PLM Arousal (EEG)"] == 12


def test_generic_file_has_631_rows_without_a_duration_column(domino_dir):
    ls = _parse(domino_dir, "Generic - test1 Unbekannt.txt", "domino_generic")
    assert len(ls.events) == 631
    assert ls.events[0].label == "ChinArtifact"
    assert ls.events[0].duration_s == pytest.approx(29.675)


def test_generic_no_reads_the_us_start_time_and_flags_the_odd_pm(domino_dir):
    ls = _parse(domino_dir, "Generic_NO_test1.txt", "domino_generic")
    assert ls.start == datetime(2020, 9, 23, 13, 0, 0)
    assert len(ls.events) == 862
    # Rows are at 01:18..01:51 while the header says 1 PM: within ±12 h of the start the first row
    # is 11.7 h before it (the midnight rule), reported as a likely AM/PM mistake.
    assert ls.events[0].onset_s == pytest.approx(-(11 * 3600 + 42 * 60) + 0.865)
    assert any("AM/PM" in w for w in ls.warnings)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("23.09.2020 01:00:00", datetime(2020, 9, 23, 1, 0, 0)),
        ("9/23/2020 01:00:00 PM", datetime(2020, 9, 23, 13, 0, 0)),
        ("5/30/2024 8:59:00 PM", datetime(2024, 5, 30, 20, 59, 0)),
        ("12/1/2024 12:10:00 AM", datetime(2024, 12, 1, 0, 10, 0)),
        ("30-05-2024 21:22:30", datetime(2024, 5, 30, 21, 22, 30)),
        # the shared clock parser (labels.common.parse_clock): fractions beyond microseconds truncated
        ("30-05-2024 21:22:30,1234567", datetime(2024, 5, 30, 21, 22, 30, 123456)),
    ],
)
def test_start_time_forms(text, expected):
    assert parse_start_time(text) == expected


def test_a_row_time_out_of_range_is_a_bad_time_naming_domino_not_the_value():
    data = b"Signal ID: FlowD\\flow\nStart Time: 30.05.2024 23:00:00\n\n25:00:00,000-25:00:10,000; 10;Hypopnea\n"
    with pytest.raises(LabelError) as info:
        parse_labels("domino_flow_events", data)
    assert info.value.reason == "bad_time"
    assert info.value.detail.startswith("DOMINO: row time: time out of range (25:0:0)")


def test_bad_start_time_is_rejected_with_a_reason():
    data = b"Signal ID: FlowD\\flow\nStart Time: yesterday\n\n01:00:00,000-01:00:10,000; 10;Hypopnea\n"
    with pytest.raises(LabelError) as info:
        parse_labels("domino_flow_events", data)
    assert info.value.reason == "bad_start_time"


PROFILE_ACROSS_MIDNIGHT = (
    "Signal ID: SchlafProfil\\profil\r\n"
    "Start Time: 30.05.2024 23:59:00\r\n"
    "Unit: \r\n"
    "Signal Type: Discret\r\n"
    "Events list: N4,N3,N2,N1,REM,Wake,Movement\r\n"
    "Rate: 30 s\r\n"
    "\r\n"
    "23:59:00,000; Wake\r\n"
    "23:59:30,000; N1\r\n"
    "00:00:00,000; N2\r\n"
    "00:00:30,000; N4\r\n"
    "00:01:00,000; Movement\r\n"
    "00:01:30,000; A\r\n"
    "00:02:00,000; REM\r\n"
)


def test_midnight_rollover_and_crlf_in_a_time_only_profile():
    ls = parse_labels("domino_sleep_profile", PROFILE_ACROSS_MIDNIGHT.encode())
    assert ls.hypnogram.stages == ["W", "N1", "N2", "N3", "UNS", "UNS", "REM"]
    assert ls.warnings == []


def test_events_across_midnight_have_increasing_onsets():
    text = (
        "Signal ID: FlowD\\flow\nStart Time: 30.05.2024 23:00:00\nUnit: s\nSignal Type: Impuls\n\n"
        "23:58:50,000-23:59:10,000; 20;Obstructive Apnea\n"
        "23:59:55,500-00:00:12,000; 17;Hypopnea\n"
        "01:00:00,000-01:00:15,000; 15;Central Apnea\n"
    )
    ls = parse_labels("domino_flow_events", text.encode())
    assert [e.type for e in ls.events] == ["obstructive_apnea", "hypopnea", "central_apnea"]
    assert [e.onset_s for e in ls.events] == pytest.approx([3530.0, 3595.5, 7200.0])
    assert ls.events[1].duration_s == pytest.approx(16.5)


def test_cp1252_file_is_decoded():
    text = "Signal ID: Generic\\generic\nStart Time: 23.09.2020 01:00:00\nUnit: \nSignal Type: Impuls\n\n" \
           "01:00:01,000-01:00:02,000; Bewegung Kopf\u00e4\n"
    ls = parse_labels("domino_generic", text.encode("cp1252"))
    assert ls.events[0].label == "Bewegung Kopf\u00e4"


NEWER_FLOW = (
    "Signal ID: FlowD\\flow\r\n"
    "Start Time: 5/30/2024 8:59:00 PM\r\n"
    "Unit: s\r\n"
    "Signal Type: Impuls\r\n"
    "\r\n"
    "30.05.2024 23:48:45,119-23:49:01,408; 16;Hypopnea; N1\r\n"
    "30.05.2024 23:59:50,000-00:00:20,000; 30;Obstructive Apnea; N2\r\n"
    "31.05.2024 02:10:00,000-02:10:12,500; 12;Mixed Apnea; REM\r\n"
    "31.05.2024 03:00:00,000-03:00:05,000; 5;Body event; W\r\n"
)

NEWER_PROFILE = (
    "Signal ID: SchlafProfil\\profil\r\n"
    "Start Time: 30-05-2024 20:59:00\r\n"
    "Patient: Jane Example\r\n"
    "Signal Type: Discret\r\n"
    "Rate: 30 s\r\n"
    "\r\n"
    "30.05.2024 20:59:00,000; Wake\r\n"
    "30.05.2024 20:59:30,000; N1\r\n"
    "30.05.2024 21:00:00,000; SNORE\r\n"
    "30.05.2024 21:00:30,000; N3\r\n"
)


def test_newer_layout_with_dates_on_every_row():
    ls = parse_labels("domino_flow_events", NEWER_FLOW.encode())
    assert ls.start == datetime(2024, 5, 30, 20, 59, 0)
    assert [e.type for e in ls.events] == ["hypopnea", "obstructive_apnea", "mixed_apnea", "other"]
    assert ls.events[0].onset_s == pytest.approx(2 * 3600 + 49 * 60 + 45.119)
    assert ls.events[0].duration_s == pytest.approx(16.289)
    assert ls.events[1].duration_s == pytest.approx(30.0)
    assert ls.events[2].onset_s == pytest.approx(5 * 3600 + 11 * 60)


def test_newer_layout_events_keep_the_stage_at_each_event():
    ls = parse_labels("domino_flow_events", NEWER_FLOW.encode())
    assert [e.stage for e in ls.events] == ["N1", "N2", "REM", "W"]
    assert ls.warnings == []


def test_events_without_a_stage_column_have_no_stage(domino_dir):
    for name, kind in (("Flow Events - test1 Unbekannt.txt", "domino_flow_events"),
                       ("Classification Arousals - test1 Unbekannt.txt", "domino_arousals"),
                       ("Generic - test1 Unbekannt.txt", "domino_generic")):
        ls = _parse(domino_dir, name, kind)
        assert ls.events and {e.stage for e in ls.events} == {None}, name


def test_stage_after_a_label_without_a_duration_column_and_unknown_stage_text():
    text = (
        "Signal ID: Generic\\generic\nStart Time: 23.09.2020 01:00:00\nUnit: \nSignal Type: Impuls\n\n"
        "01:00:01,000-01:00:02,000; ChinPhasic; N4\n"
        "01:00:03,000-01:00:04,000; ChinPhasic; Wake\n"
        "01:00:05,000-01:00:06,000; ChinPhasic; Movement\n"
        "01:00:07,000-01:00:08,000; ChinPhasic; lights\n"
        "01:00:09,000-01:00:10,000; ChinPhasic;\n"
    )
    ls = parse_labels("domino_generic", text.encode())
    assert [e.stage for e in ls.events] == ["N3", "W", "UNS", None, None]
    assert [e.label for e in ls.events] == ["ChinPhasic"] * 5
    assert any("unknown stage (6 characters)" in w for w in ls.warnings)


def test_newer_layout_profile_with_unknown_label():
    ls = parse_labels("domino_sleep_profile", NEWER_PROFILE.encode())
    assert ls.hypnogram.stages == ["W", "N1", "UNS", "N3"]
    assert any("unknown stage label" in w for w in ls.warnings)
    assert not any("SNORE" in w for w in ls.warnings)  # warnings never quote the file


def test_missing_profile_rows_are_filled_with_uns_and_reported():
    text = "Signal ID: SchlafProfil\\profil\nStart Time: 01.01.2020 22:00:00\nRate: 30 s\n\n" \
           "22:00:00,000; Wake\n22:01:30,000; N2\n"
    ls = parse_labels("domino_sleep_profile", text.encode())
    assert ls.hypnogram.stages == ["W", "UNS", "UNS", "N2"]
    assert any("missing" in w for w in ls.warnings)


def test_profile_with_a_corrupt_row_date_is_refused_not_expanded():
    text = NEWER_PROFILE.replace("30.05.2024 21:00:30,000", "30.05.2099 21:00:30,000")
    with pytest.raises(LabelError) as info:
        parse_labels("domino_sleep_profile", text.encode())
    assert info.value.reason == "absurd_value"
