"""The header and TAL field grammars, checked by hand (no ``re`` on the anonymise path), accept
exactly what the regular expressions they replace accepted."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sunrise_common.edf._lazy_re import LazyPattern
from sunrise_common.edf.header import _dotted_triple, _edfplus_date, _is_float, _is_int, _is_unsigned_decimal

INT_RE = re.compile(rb"[+-]?\d+")
FLOAT_RE = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
DECIMAL_RE = re.compile(rb"(?:\d+\.?\d*|\.\d+)")
DATE_RE = re.compile(r"(\d\d)\.(\d\d)\.(\d\d|yy)")
TIME_RE = re.compile(r"(\d\d)\.(\d\d)\.(\d\d)")
EDFPLUS_DATE_RE = re.compile(r"(\d\d)-([A-Z]{3})-(\d{4})")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# numbers: the characters that matter, and some that must not (a superscript two is a digit to
# str.isdigit, not to \d in bytes)
number_bytes = st.binary(max_size=12) | st.text("0123456789+-.eE ", max_size=12).map(str.encode)
latin1 = st.text("0123456789.-yYAJNFEBMRPSOCTVDUGLx\u00b2\u00b9 ", max_size=12) | st.text(
    st.characters(max_codepoint=255), max_size=12)


@pytest.mark.parametrize("b", [b"", b"+", b"-", b"0", b"+12", b"-007", b"1 2", b"\xb2", b"12a", b"++1"])
def test_int_examples(b):
    assert _is_int(b) == bool(INT_RE.fullmatch(b))


@pytest.mark.parametrize("b", [b"", b".", b"1.", b".5", b"+.5", b"-1.5e3", b"1e", b"1E+05", b"1e5.0", b"1.2.3",
                               b"e5", b"1ee5", b"1eE5", b"+-1", b"inf", b"nan", b"1_0"])
def test_float_examples(b):
    assert _is_float(b) == bool(FLOAT_RE.fullmatch(b))


@settings(max_examples=2000, deadline=None)
@given(number_bytes)
def test_numbers_match_their_regular_expressions(b):
    assert _is_int(b) == bool(INT_RE.fullmatch(b))
    assert _is_float(b) == bool(FLOAT_RE.fullmatch(b))
    assert _is_unsigned_decimal(b) == bool(DECIMAL_RE.fullmatch(b))


@settings(max_examples=2000, deadline=None)
@given(latin1)
def test_dates_and_times_match_their_regular_expressions(text):
    m = DATE_RE.fullmatch(text)
    assert _dotted_triple(text, last_may_be_yy=True) == (m.groups() if m else None)
    m = TIME_RE.fullmatch(text)
    assert _dotted_triple(text) == (m.groups() if m else None)


@settings(max_examples=2000, deadline=None)
@given(latin1 | st.sampled_from(["01-JAN-2020", "31-DEC-1999", "1-JAN-2020", "01-Jan-2020", "01-XXX-2020",
                                 "01-JAN-20201", "0\u00b2-JAN-2020", "01-JAN-202\u00b9", "30-FEB-2020"]))
def test_edfplus_date_matches_its_regular_expression(text):
    m = EDFPLUS_DATE_RE.fullmatch(text)
    if m is None or m.group(2) not in MONTHS:
        with pytest.raises(ValueError):
            _edfplus_date(text)
        return
    try:
        expected = ("ok", _edfplus_date_by_regex(m))
    except ValueError:
        expected = ("error", None)
    try:
        got = ("ok", _edfplus_date(text))
    except ValueError:
        got = ("error", None)
    assert got == expected


def _edfplus_date_by_regex(m):
    import datetime as dt

    return dt.date(int(m.group(3)), MONTHS.index(m.group(2)) + 1, int(m.group(1)))


def test_lazy_pattern_compiles_on_first_use():
    p = LazyPattern(rb"a+")
    assert p._compiled is None
    assert p.fullmatch(b"aa") and not p.fullmatch(b"ab") and p.pattern == rb"a+"
    assert isinstance(p._compiled, re.Pattern)
