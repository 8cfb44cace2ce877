"""The raw-bucket contract's messages: which part is wrong and what is allowed, after redaction."""

from __future__ import annotations

import pytest

from ingest.handler import redact
from ingest.layout import parse_raw_name
from sunrise_common.errors import PermanentError


def recorded(name: str) -> PermanentError:
    """The error as ingest records it (redacted: no part of the raw name survives)."""
    with pytest.raises(PermanentError) as info:
        parse_raw_name(name)
    return PermanentError(info.value.reason, redact(info.value.detail, name))


def test_a_parent_segment_is_named_by_its_position_even_after_redaction():
    err = recorded("psg/namur/../../etc/passwd")
    assert err.reason == "unsafe_name"
    assert "part 3 is a dot-dot (parent folder); part 4 is a dot-dot" in err.detail
    assert "<value>" not in err.detail and "<name>" not in err.detail


def test_a_bad_subject_names_the_folder_the_characters_and_what_is_allowed():
    err = recorded("psg/namur/P1;rm -rf/x.edf")
    assert err.reason == "bad_subject"
    assert err.detail.startswith("the subject folder (part 3 of {kind}/{site}/{subject}/{file})")
    assert "U+003B SEMICOLON, U+0020 SPACE" in err.detail
    assert "allowed: 1-64 characters of A-Z a-z 0-9 and . _ -" in err.detail
    assert "P1" not in err.detail and "rm" not in err.detail  # the subject code is personal


def test_a_too_long_site_says_how_long_it_is():
    err = recorded("psg/" + "s" * 70 + "/P1/x.edf")
    assert err.reason == "bad_site"
    assert "the site folder (part 2 of" in err.detail and "is 70 characters long" in err.detail


def test_a_missing_part_says_which_is_empty():
    err = recorded("psg//P1/x.edf")
    assert err.reason == "bad_layout" and "part(s) 2 empty" in err.detail
