"""The header and TAL field grammars: what a number, a date and a time may look like."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from sunrise_common.edf import EdfError, parse_header, parse_tals
from sunrise_common.edf.header import parse_patient_field

from tests.edf.malformed import build_edf, set_field, set_signal_field


def _header(data: bytes):
    return parse_header(io.BytesIO(data), len(data))


@pytest.mark.parametrize(("field", "accepted"), [
    ("+2", True), ("-0", False), ("0002", True), ("2 ", True),  # -0: parses, but no record count is negative
    ("", False), ("+", False), ("1 2", False), ("2a", False), ("++2", False), ("\xb2", False),
])
def test_the_number_of_data_records_is_an_integer_of_ascii_digits(field, accepted):
    data = set_field(build_edf(n_records=2), "n_records", field)
    if accepted:
        assert _header(data).n_records == 2
    else:
        with pytest.raises(EdfError):
            _header(data)


@pytest.mark.parametrize(("field", "value"), [
    ("200", 200.0), ("+200.", 200.0), (".5e3", 500.0), ("2E+02", 200.0), ("2000e-1", 200.0),
    ("", None), (".", None), ("2e", None), ("1e5.0", None), ("1.2.3", None), ("e5", None), ("inf", None),
    ("nan", None), ("1_0", None), ("+-1", None), ("2\xb2", None),
])
def test_a_physical_maximum_is_a_decimal_number_with_an_optional_exponent(field, value):
    data = set_signal_field(build_edf(n_records=1), "physical_max", 0, field, 3)
    if value is None:
        with pytest.raises(EdfError) as info:
            _header(data)
        assert info.value.reason in ("bad_header_field", "absurd_value")
    else:
        assert _header(data).signals[0].physical_max == value


@pytest.mark.parametrize(("startdate", "starttime", "start"), [
    ("04.03.21", "22.15.00", dt.datetime(2021, 3, 4, 22, 15)),
    ("04.03.99", "22.15.00", dt.datetime(1999, 3, 4, 22, 15)),
    ("4.3.2021", "22.15.00", None), ("04.03.2\xb9", "22.15.00", None), ("04-03-21", "22.15.00", None),
    ("04.03.21", "22:15:00", None), ("31.02.21", "22.15.00", None),
    ("04.03.21", "25.00.00", None), ("00.00.00", "00.00.00", None),
])
def test_the_start_is_dd_mm_yy_and_hh_mm_ss_in_ascii_digits_or_unknown(startdate, starttime, start):
    data = set_field(set_field(build_edf(n_records=1), "startdate", startdate), "starttime", starttime)
    header = _header(data)
    assert header.start == start
    assert (header.start_problem is None) == (start is not None)


@pytest.mark.parametrize(("birthdate", "expected"), [
    ("04-MAR-1951", dt.date(1951, 3, 4)), ("X", None), ("4-MAR-1951", "not EDF+"), ("04-Mar-1951", "not EDF+"),
    ("04-XXX-1951", "not EDF+"), ("04-MAR-19511", "not EDF+"), ("30-FEB-1951", "not EDF+"), ("0\xb2-MAR-1951", "not EDF+"),
])
def test_an_edfplus_birthdate_is_dd_mmm_yyyy_with_an_english_month(birthdate, expected):
    fields = parse_patient_field(f"MCH-0234567 F {birthdate} Haagse_Harry")
    if expected == "not EDF+":
        assert fields is None
    else:
        assert fields is not None and fields.birthdate == expected


@pytest.mark.parametrize(("tal", "ok"), [
    (b"+0\x14\x14\x00", True), (b"-.5\x1530\x14Apnea\x14\x00", True), (b"+1.\x15.5\x14x\x14\x00", True),
    (b"0\x14\x14\x00", False), (b"+\x14\x14\x00", False), (b"+.\x14\x14\x00", False), (b"+1\x15-2\x14x\x14\x00", False),
    (b"+1e3\x14\x14\x00", False), (b"+1\x15\x14x\x14\x00", False),
])
def test_a_tal_onset_is_signed_and_its_duration_unsigned_decimal(tal, ok):
    if ok:
        assert len(parse_tals(tal)) == 1
    else:
        with pytest.raises(EdfError) as info:
            parse_tals(tal)
        assert info.value.reason == "bad_annotations"
