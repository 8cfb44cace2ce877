"""Error details fit to leave the privacy boundary: quoted file text goes whatever its quotes."""

from __future__ import annotations

from sunrise_common.errors import safe_detail, strip_literals

FIRST_LINE = 'Patient "Zofia" O\'Neill-Kowalczyk, ward 4'
FRAGMENTS = ("Patient", "Zofia", "Neill", "Kowalczyk", "ward 4")


def test_a_repr_holding_both_quote_characters_is_removed_whole():
    detail = f"not a DOMINO export (no 'Signal ID:' header; starts {FIRST_LINE!r})"
    out = strip_literals(detail)
    assert out == "not a DOMINO export (no <value> header; starts <value>)"


def test_a_repr_cut_short_takes_the_rest_of_the_detail_with_it():
    out = strip_literals(f"line 3 starts {FIRST_LINE!r}"[:-9])
    assert out == "line 3 starts <value>"


def test_bytes_reprs_and_reprs_glued_to_a_word_leave_nothing_of_the_text():
    for detail in (f"row {FIRST_LINE.encode()!r} is bad", f"row{FIRST_LINE!r}", f"{FIRST_LINE!r}: unknown"):
        out = safe_detail(detail)
        assert not any(f in out for f in FRAGMENTS), (detail, out)


def test_the_messages_own_apostrophes_numbers_and_field_names_stay():
    out = safe_detail("the file's header: signal 3 samples per record is 0, expected 1..65536")
    assert out == "the file's header: signal 3 samples per record is 0, expected 1..65536"


def test_names_dates_and_characters_outside_printable_ascii_go():
    out = safe_detail("startdate '24.04.89' of psg/site1/SUBJ7/night.edf, 24-APR-1989, Zoé",
                      ("psg/site1/SUBJ7/night.edf",))
    assert out == "startdate <value> of <name>, <date>, Zo?"


def test_a_quote_between_two_letters_that_is_no_english_contraction_opens_a_literal():
    # Issue 22 review: `line'Kowalczyk ward'` was taken for an apostrophe and leaked the name.
    for detail in ("first line'Kowalczyk ward'", "first line'Kowalczyk ward", "row'salt water' is bad",
                   "it's row'Zofia' again"):
        out = safe_detail(detail)
        assert "Kowalczyk" not in out and "ward" not in out and "salt" not in out and "Zofia" not in out, (detail, out)
    assert safe_detail("first line'Kowalczyk ward'") == "first line<value>"


def test_english_contractions_stay_apostrophes():
    detail = "the file's start isn't set, they're late, it'll fail, we've seen, he'd know, I'm sure"
    assert safe_detail(detail) == detail
