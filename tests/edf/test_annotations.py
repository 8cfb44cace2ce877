"""TAL parsing/encoding and the scoring vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sunrise_common.edf import EdfError, encode_tals, is_allowed, parse_tals
from sunrise_common.edf.annotations import Tal, tal_annotations


def test_parse_tals_reads_timekeeping_and_annotations():
    data = b"+0\x14\x14\x00+12.5\x1530\x14Sleep stage W\x14Arousal\x14\x00" + b"\x00" * 10
    tals = parse_tals(data)
    assert tals[0] == Tal(b"+0", None, (b"",))
    assert tals[0].is_timekeeping
    assert tals[1].onset_s == 12.5 and tals[1].duration_s == 30.0
    assert [a.text for a in tal_annotations(tals)] == ["Sleep stage W", "Arousal"]


def test_encode_tals_round_trips_byte_for_byte_and_pads():
    data = b"+0.039453\x14\x14\x00+120\x14\xe4\xb8\xad\xe6\x96\x87\x14\x00"
    tals = parse_tals(data)
    assert encode_tals(tals) == data
    assert encode_tals(tals, 64) == data + b"\x00" * (64 - len(data))


def test_encode_tals_refuses_to_overflow_the_signal():
    with pytest.raises(EdfError) as info:
        encode_tals([Tal(b"+0", None, (b"x" * 50,))], 16)
    assert info.value.reason == "bad_annotations"


def test_utf8_text_is_decoded():
    tals = parse_tals("+2\x150.5\x14仰卧\x14\x00".encode())
    assert tal_annotations(tals)[0].text == "仰卧"


def test_nihon_kohden_tal_without_separator_parses_as_one_tal():
    # Nihon Kohden writes the time-keeping TAL and the next TAL without the \x00 between them.
    tals = parse_tals(b"+0.000000\x14\x14+0.000000\x14Segment: REC START ALLE EEG\x14")
    assert len(tals) == 1 and tals[0].is_timekeeping
    assert tals[0].texts[1:] == (b"+0.000000", b"Segment: REC START ALLE EEG")


@pytest.mark.parametrize(
    "data",
    [b"0\x14\x14\x00", b"+a\x14\x14\x00", b"+1\x15\x14x\x14\x00", b"+1\x15-2\x14x\x14\x00", b"+1\x14text", b"junk"],
)
def test_malformed_tals_are_rejected(data):
    with pytest.raises(EdfError) as info:
        parse_tals(data)
    assert info.value.reason == "bad_annotations"


@pytest.mark.parametrize(
    "text",
    [
        "Sleep stage W",
        "Sleep stage 1",
        "Sleep stage 4",
        "Sleep stage R",
        "Sleep stage ?",
        "Sleep stage N3",
        "sleep  STAGE n2",
        " W ",
        "N1",
        "REM",
        "Wake",
        "Movement time",
        "Obstructive Apnea",
        "central apnoea",
        "Mixed apnea",
        "Hypopnea",
        "RERA",
        "Oxygen desaturation",
        "SpO2 desaturation",
        "Desaturation",
        "Arousal",
        "EEG arousal",
        "Arousal (EEG)",
        "Respiratory Arousal (EEG)",
        "Limb movement",
        "Leg Movement (left)",
        "Periodic limb movement",
        "Lights off",
        "LIGHTS ON",
        "Lights out",
        "Recording starts",
        "Recording ends",
    ],
)
def test_scoring_vocabulary_is_kept(text):
    assert is_allowed(text)
    assert is_allowed(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        "中文测试八个字",
        "仰卧",
        "T0",
        "TestStim#1",
        "Ligths-Off#1",  # a typo plus a counter: not guessed at
        "Lights off - tech Jane Doe",
        "Segment: REC START ALLE EEG",
        "+0.000000",
        "signal_start",
        "XLSpike",
        "",
        "Obstructive apnea by Dr. Smith",
    ],
)
def test_everything_else_is_dropped(text):
    assert not is_allowed(text)


def test_invalid_utf8_is_not_allowed():
    assert not is_allowed(b"Arousal\xff")


@given(st.binary(max_size=200))
def test_parse_tals_raises_nothing_but_edf_error(data):
    try:
        tals = parse_tals(data)
    except EdfError:
        return
    encoded = encode_tals(tals)
    assert parse_tals(encoded) == tals
