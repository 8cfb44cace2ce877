"""Anonymisation of text/XML label files: no dates left, times kept, parse results unchanged."""

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sunrise_common.labels import LabelError, anonymise_label_file, detect_label_kind, parse_labels

from .test_label_domino import NEWER_FLOW, NEWER_PROFILE, PROFILE_ACROSS_MIDNIGHT

REAL = [
    "Sleep profile - test1 Unbekannt.txt",
    "Sleep profile - test1 Unbekannt SNORE.txt",
    "Flow Events - test1 Unbekannt.txt",
    "Classification Arousals - test1 Unbekannt.txt",
    "Generic - test1 Unbekannt.txt",
    "Generic_NO_test1.txt",
]


def _same(a, b):
    assert (a.hypnogram is None) == (b.hypnogram is None)
    if a.hypnogram is not None:
        assert a.hypnogram.stages == b.hypnogram.stages
        assert a.hypnogram.onset_s == b.hypnogram.onset_s  # exactly: times are kept, not re-derived
    assert [(e.type, e.label, e.channel, e.stage) for e in a.events] == [(e.type, e.label, e.channel, e.stage) for e in b.events]
    assert [e.onset_s for e in a.events] == [e.onset_s for e in b.events]
    assert [e.duration_s for e in a.events] == [e.duration_s for e in b.events]
    assert a.start_time == b.start_time


def test_every_domino_file_of_the_corpus_is_in_the_list(domino_dir):
    found = set()
    for path in domino_dir.iterdir():
        try:
            detect_label_kind(path.name, path.read_bytes()[:4096])
        except LabelError:
            continue
        found.add(path.name)
    assert found == set(REAL)


@pytest.mark.parametrize("name", REAL)
def test_real_domino_file_keeps_only_year_and_times(domino_dir, name):
    data = (domino_dir / name).read_bytes()
    kind = detect_label_kind(name, data[:4096])
    anon = anonymise_label_file(kind, data)
    text = anon.data.decode()
    assert "23.09.2020" not in text and "9/23/2020" not in text
    assert "Start Time: 01.01.2020 " in text
    assert anon.start.date() == datetime(2020, 9, 23).date()  # original, for pairing only
    _same(parse_labels(kind, data), parse_labels(kind, anon.data))
    assert detect_label_kind("renamed.txt", anon.data[:4096]) == kind


def test_us_start_time_is_rewritten_in_24_h(domino_dir):
    anon = anonymise_label_file("domino_generic", (domino_dir / "Generic_NO_test1.txt").read_bytes())
    assert "Start Time: 01.01.2020 13:00:00" in anon.data.decode()


def test_real_rows_keep_their_times(domino_dir):
    data = (domino_dir / "Flow Events - test1 Unbekannt.txt").read_bytes()
    anon = anonymise_label_file("domino_flow_events", data)
    assert b"01:04:24,411-01:04:41,671; 17;Hypopnea" in anon.data


def test_newer_layout_rows_get_shifted_dates_and_unknown_headers_go():
    for raw, kind in ((NEWER_FLOW, "domino_flow_events"), (NEWER_PROFILE, "domino_sleep_profile")):
        data = raw.encode("cp1252")
        anon = anonymise_label_file(kind, data)
        text = anon.data.decode("cp1252")
        for date in ("30.05.2024", "31.05.2024", "5/30/2024", "30-05-2024"):
            assert date not in text
        assert "Patient" not in text and "Jane" not in text
        assert "\r\n" in text  # line endings kept
        _same(parse_labels(kind, data), parse_labels(kind, anon.data))
    anon = anonymise_label_file("domino_flow_events", NEWER_FLOW.encode())
    # 30.05.2024 (the start's date) becomes 01.01.2024; the next day's rows move with it.
    assert "\r\n01.01.2024 23:48:45,119-23:49:01,408; 16;Hypopnea; N1\r\n" in anon.data.decode()
    assert "\r\n02.01.2024 02:10:00,000-02:10:12,500; 12;Mixed Apnea; REM\r\n" in anon.data.decode()


def test_midnight_profile_survives_anonymisation():
    data = PROFILE_ACROSS_MIDNIGHT.encode()
    anon = anonymise_label_file("domino_sleep_profile", data)
    _same(parse_labels("domino_sleep_profile", data), parse_labels("domino_sleep_profile", anon.data))


def test_nsrr_xml_loses_patient_block_and_clock_date():
    xml = (Path(__file__).parent / "fixtures" / "nsrr_small.xml").read_bytes()
    dated = xml.replace(b"00.00.00 23.00.00", b"14.03.21 23.00.00")
    anon = anonymise_label_file("nsrr_xml", dated)
    assert b"PatientInfo" not in anon.data and b"Jane" not in anon.data and b"1950" not in anon.data
    assert b"14.03.21" not in anon.data and b"23.00.00" in anon.data
    assert anon.start == datetime(2021, 3, 14, 23, 0, 0)
    assert anon.extension == "xml"
    _same(parse_labels("nsrr_xml", dated), parse_labels("nsrr_xml", anon.data))


def test_edf_hypnograms_are_left_to_the_edf_anonymiser(corpus):
    data = (corpus / "edf" / "edfio__SC4001EC-Hypnogram.edf").read_bytes()
    with pytest.raises(LabelError) as info:
        anonymise_label_file("edf_hypnogram", data)
    assert info.value.reason == "not_text_label"


# --------------------------------------------------------------------------------------------
# Generated DOMINO exports: every row keeps its exact time relative to Start Time.

_PROFILE_NAMES = ("Wake", "N1", "N2", "N3", "REM", "N4", "Movement")
_CANONICAL = {"Wake": "W", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "REM", "N4": "N3", "Movement": "UNS"}


def _date(d: datetime, form: str) -> str:
    return f"{d.month}/{d.day}/{d.year}" if form == "us" else f"{d:%d.%m.%Y}"


def _start_line(start: datetime, form: str) -> str:
    if form == "us":
        return f"Start Time: {_date(start, form)} {start:%I:%M:%S %p}"
    return f"Start Time: {_date(start, form)} {start:%H:%M:%S}"


def _clock(t: datetime) -> str:
    return f"{t:%H:%M:%S},{t.microsecond // 1000:03d}"


def _export(kind: str, start: datetime, first_s: float, layout: str, form: str) -> tuple[bytes, list[float]]:
    """A DOMINO export whose first row is ``first_s`` from Start Time; returns it and the true
    onsets (s from Start Time) of its rows: 240 profile epochs (2 h) or 30 events 250 s apart."""
    lines = ["Signal ID: " + ("SchlafProfil\\profil" if kind == "domino_sleep_profile" else "FlowD\\flow"),
             _start_line(start, form), "Patient: Jane Example", "Unit: s", "Signal Type: Impuls"]
    if kind == "domino_sleep_profile":
        lines.append("Rate: 30 s")
    lines.append("")
    first = start + timedelta(seconds=first_s)
    onsets = []
    n, step = (240, 30.0) if kind == "domino_sleep_profile" else (30, 250.0)
    for i in range(n):
        t = first + timedelta(seconds=i * step + (0.0 if kind == "domino_sleep_profile" else 0.123))
        onsets.append((t - start).total_seconds())
        day = f"{_date(t, form)} " if layout == "dated" else ""
        stage = _PROFILE_NAMES[i % len(_PROFILE_NAMES)]
        if kind == "domino_sleep_profile":
            lines.append(f"{day}{_clock(t)}; {stage}")
        else:
            end = t + timedelta(seconds=17.5)
            lines.append(f"{day}{_clock(t)}-{_clock(end)}; 18;Hypopnea; {stage}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252"), onsets


STARTS = {
    "evening": datetime(2024, 5, 30, 23, 0, 0),
    "just_before_midnight": datetime(2024, 5, 30, 23, 59, 30),
    "just_after_midnight": datetime(2024, 5, 31, 0, 5, 0),
    "new_year": datetime(2023, 12, 31, 23, 0, 0),
    "afternoon": datetime(2024, 5, 30, 13, 0, 0),
}


@pytest.mark.parametrize("kind", ["domino_sleep_profile", "domino_flow_events"])
@pytest.mark.parametrize("layout", ["dated", "time_only"])
@pytest.mark.parametrize("form", ["dmy", "us"])
@pytest.mark.parametrize("first_s", [-600.0, -120.0, 0.0, 1800.0])
@pytest.mark.parametrize("when", sorted(STARTS))
def test_anonymisation_keeps_every_row_time_relative_to_start(kind, layout, form, first_s, when):
    start = STARTS[when]
    data, truth = _export(kind, start, first_s, layout, form)
    anon = anonymise_label_file(kind, data)
    original, anonymised = parse_labels(kind, data), parse_labels(kind, anon.data)
    _same(original, anonymised)
    if kind == "domino_sleep_profile":
        onsets = [anonymised.hypnogram.onset_s + 30.0 * i for i in range(len(anonymised.hypnogram.stages))]
        assert anonymised.hypnogram.stages == [_CANONICAL[_PROFILE_NAMES[i % 7]] for i in range(240)]
    else:
        onsets = [e.onset_s for e in anonymised.events]
        assert [e.stage for e in anonymised.events] == [_CANONICAL[_PROFILE_NAMES[i % 7]] for i in range(30)]
    # Time-only rows place the first row within ±12 h of Start Time; dated rows can say anything.
    if layout == "dated" or first_s > -12 * 3600:
        assert onsets == pytest.approx(truth, abs=1e-6)
    text = anon.data.decode("cp1252")
    real_days = {start.date(), *((start + timedelta(seconds=t)).date() for t in truth)}
    for day in real_days:
        for written in (f"{day:%d.%m.%Y}", f"{day.month}/{day.day}/{day.year}", f"{day:%d-%m-%Y}"):
            assert written not in text, written
    assert "Jane" not in text
    assert f"Start Time: 01.01.{start.year} {start:%H:%M:%S}\r\n" in text


def test_a_profile_starting_ten_minutes_before_start_time_stays_there():
    """The issue's case: first row 22:50, Start Time 23:00, dates on every row."""
    data, _ = _export("domino_sleep_profile", datetime(2024, 5, 30, 23, 0, 0), -600.0, "dated", "dmy")
    anon = parse_labels("domino_sleep_profile", anonymise_label_file("domino_sleep_profile", data).data)
    assert anon.hypnogram.onset_s == -600.0
    assert len(anon.hypnogram.stages) == 240


def test_an_impossible_row_date_is_refused_with_a_reason():
    data, _ = _export("domino_flow_events", datetime(2024, 5, 30, 23, 0, 0), 0.0, "dated", "dmy")
    with pytest.raises(LabelError) as info:
        anonymise_label_file("domino_flow_events", data.replace(b"31.05.2024", b"32.05.2024", 1))
    assert info.value.reason == "bad_time"


def test_a_sub_second_start_time_keeps_its_fraction():
    data, _ = _export("domino_flow_events", datetime(2024, 5, 30, 23, 0, 0), 0.0, "dated", "dmy")
    data = data.replace(b"Start Time: 30.05.2024 23:00:00", b"Start Time: 30.05.2024 23:00:00,250")
    anon = anonymise_label_file("domino_flow_events", data)
    _same(parse_labels("domino_flow_events", data), parse_labels("domino_flow_events", anon.data))
