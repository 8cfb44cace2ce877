"""Anonymisation of text/XML label files: no dates left, times kept, parse results unchanged."""

from datetime import datetime
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
        assert a.hypnogram.onset_s == pytest.approx(b.hypnogram.onset_s)
    assert [(e.type, e.label, e.channel) for e in a.events] == [(e.type, e.label, e.channel) for e in b.events]
    assert [e.onset_s for e in a.events] == pytest.approx([e.onset_s for e in b.events])
    assert [e.duration_s for e in a.events] == pytest.approx([e.duration_s for e in b.events])
    assert a.start_time == b.start_time


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


def test_newer_layout_rows_lose_their_dates_and_unknown_headers_go():
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
    assert "23:48:45,119-23:49:01,408; 16;Hypopnea; N1" in anon.data.decode()


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
