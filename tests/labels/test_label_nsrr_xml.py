"""NSRR XML: the fixture built by fixtures/make_nsrr_xml.py, and hostile XML."""

import importlib.util
from collections import Counter
from datetime import time
from pathlib import Path
from time import process_time

import pytest

from sunrise_common.labels import LabelError, anonymise_label_file, detect_label_kind, parse_labels

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def xml_bytes():
    return (FIXTURES / "nsrr_small.xml").read_bytes()


def test_committed_fixture_matches_its_generator(xml_bytes):
    spec = importlib.util.spec_from_file_location("make_nsrr_xml", FIXTURES / "make_nsrr_xml.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build().encode() == xml_bytes


def test_nsrr_hypnogram_has_exact_epoch_counts(xml_bytes):
    ls = parse_labels(detect_label_kind("night.xml", xml_bytes), xml_bytes)
    assert ls.source_kind == "nsrr_xml"
    assert len(ls.hypnogram.stages) == 40
    assert ls.hypnogram.counts() == {"W": 6, "N1": 4, "N2": 14, "N3": 8, "REM": 6, "UNS": 2}
    assert ls.warnings == []


def test_nsrr_events_types_channels_and_nadirs(xml_bytes):
    ls = parse_labels("nsrr_xml", xml_bytes)
    assert Counter(e.type for e in ls.events) == {
        "obstructive_apnea": 3, "central_apnea": 1, "mixed_apnea": 1, "hypopnea": 4,
        "desaturation": 3, "arousal": 2, "limb_movement": 1,
    }
    desats = [e for e in ls.events if e.type == "desaturation"]
    assert [e.nadir for e in desats] == [88.0, 85.0, 90.0]
    assert desats[0].channel == "SaO2"
    assert all(e.nadir is None for e in ls.events if e.type != "desaturation")


def test_nsrr_deidentified_date_gives_time_of_day_only(xml_bytes):
    ls = parse_labels("nsrr_xml", xml_bytes)
    assert ls.start is None
    assert ls.start_time == time(23, 0, 0)


def test_billion_laughs_is_refused():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><PSGAnnotation>&lol2;</PSGAnnotation>'
    )
    with pytest.raises(LabelError) as info:
        parse_labels("nsrr_xml", bomb)
    assert info.value.reason == "unsafe_xml"
    with pytest.raises(LabelError) as info:
        anonymise_label_file("nsrr_xml", bomb)
    assert info.value.reason == "unsafe_xml"


def test_external_entity_is_refused():
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><PSGAnnotation>&e;</PSGAnnotation>'
    with pytest.raises(LabelError) as info:
        parse_labels("nsrr_xml", xxe)
    assert info.value.reason == "unsafe_xml"


def test_broken_xml_has_a_reason():
    with pytest.raises(LabelError) as info:
        parse_labels("nsrr_xml", b"<PSGAnnotation><ScoredEvents>")
    assert info.value.reason == "bad_xml"


def test_absurd_stage_duration_is_refused_not_expanded(xml_bytes):
    bad = xml_bytes.replace(b"<Duration>120.0</Duration>", b"<Duration>1e12</Duration>", 1)
    with pytest.raises(LabelError) as info:
        parse_labels("nsrr_xml", bad)
    assert info.value.reason == "absurd_value"


def overlapping_72_h_runs(n_runs: int) -> bytes:
    """A small NSRR XML (a few kB per hundred runs) of ``n_runs`` stage runs, each 72 h long from
    second 0, at an EpochLength of 1 s: each run alone is within the span limit."""
    run = ("<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 2 sleep|2</EventConcept>"
           "<Start>0</Start><Duration>259200</Duration></ScoredEvent>\n")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PSGAnnotation><EpochLength>1</EpochLength><ScoredEvents>\n"
            + run * n_runs + "</ScoredEvents></PSGAnnotation>\n").encode()


def test_many_overlapping_72_h_runs_are_refused_within_a_fraction_of_a_second_of_cpu():
    """Overlapping runs were only checked against the 72-h span, and every epoch of every run was
    filled: ~18 ms of CPU per run here, so 300 runs (40 kB) took seconds and a 64-MiB file hours
    (issue 23). The total of epochs filled is now bounded: refused with the parser's numbers."""
    data = overlapping_72_h_runs(300)
    assert len(data) < 50_000
    started = process_time()
    with pytest.raises(LabelError) as err:
        parse_labels("nsrr_xml", data)
    cpu_s = process_time() - started
    assert err.value.reason == "absurd_value"
    assert "overlap" in str(err.value) and "300 stage runs" in str(err.value)
    assert cpu_s < 0.5, f"{cpu_s:.2f} s of CPU to refuse 300 runs"


def test_two_overlapping_72_h_runs_are_still_parsed_the_later_one_winning():
    """Within the bound (twice the epochs of the 72-h limit), overlapping runs parse as before."""
    ls = parse_labels("nsrr_xml", overlapping_72_h_runs(2))
    assert len(ls.hypnogram.stages) == 259_200
    counts = ls.hypnogram.counts()
    assert counts["N2"] == sum(counts.values()) == 259_200
    assert any("259200 epoch(s) covered by more than one stage run" in w for w in ls.warnings)
