"""Every label file is bounded: size, line length, row count, XML depth and entities, each a
named limit (``LabelLimits``, ``SUNRISE_LABEL_*``); beyond it a permanent failure whose reason
names the limit and numbers, never the file's text."""

from __future__ import annotations

import io

import pytest

from sunrise_common.labels import LabelError, by_kind
from sunrise_common.labels.limits import LabelLimits, default_limits, read_bounded


class LazyStream(io.RawIOBase):
    """A file of ``size`` bytes made on demand (nothing is held in memory); counts what is read."""

    def __init__(self, size: int, line: bytes = b"W") -> None:
        self.size = size
        self.line = line
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.consumed
        n = left if n is None or n < 0 else min(n, left)
        self.consumed += n
        reps = n // len(self.line) + 1
        return (self.line * reps)[:n]


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch):
    """Set smaller limits through the environment (the settings class), as an operator would."""

    def set_limits(**values: int) -> LabelLimits:
        for k, v in values.items():
            monkeypatch.setenv(f"SUNRISE_LABEL_{k.upper()}", str(v))
        default_limits.cache_clear()
        return default_limits()

    yield set_limits
    default_limits.cache_clear()


def test_a_500_mb_single_line_is_refused_by_the_default_limit_after_reading_one_byte_past_it():
    stream = LazyStream(500 * 1024 * 1024)
    with pytest.raises(LabelError) as info:
        read_bounded(stream)
    assert info.value.reason == "label_too_large"
    assert stream.consumed == LabelLimits().max_bytes + 1  # never the whole 500 MB
    assert "MAX_BYTES" in info.value.detail


def test_a_line_longer_than_the_limit_is_refused_with_its_number_and_length(limits):
    limits(max_line_chars=1000)
    data = b"W\n" + b"N2" * 2000 + b"\n"
    with pytest.raises(LabelError) as info:
        by_kind("stage_per_line").parse(data)
    assert info.value.reason == "label_line_too_long"
    assert "line 2 is 4000 bytes" in info.value.detail
    assert "N2N2" not in info.value.detail


def test_the_default_line_limit_refuses_a_single_line_of_one_megabyte():
    with pytest.raises(LabelError) as info:
        by_kind("stage_per_line").parse(b"W" * (1024 * 1024))
    assert info.value.reason == "label_line_too_long"


def test_a_ten_million_row_domino_profile_is_refused_by_size_before_it_is_read_whole():
    row = b"01:00:00,000; N2\n"
    stream = LazyStream(10_000_000 * len(row), row)
    with pytest.raises(LabelError) as info:
        read_bounded(stream)
    assert info.value.reason == "label_too_large"
    assert stream.consumed < 10_000_000 * len(row) // 2


def test_a_domino_profile_over_the_row_limit_is_refused_with_the_row_count(limits):
    limits(max_rows=1000)
    head = b"Signal ID: SchlafProfil\\profil\nStart Time: 30.05.2024 22:00:00\nUnit: \nSignal Type: Discret\nRate: 30 s\n\n"
    rows = b"".join(b"22:%02d:%02d,000; N2\n" % divmod(i * 30 % 3600, 60) for i in range(1500))
    with pytest.raises(LabelError) as info:
        by_kind("domino_sleep_profile").parse(head + rows)
    assert info.value.reason == "label_too_many_rows"
    assert "MAX_ROWS limit of 1000" in info.value.detail


def test_xml_nested_300000_deep_is_a_permanent_reason_not_a_recursion_error():
    data = b"<PSGAnnotation>" + b"<a>" * 300_000 + b"</a>" * 300_000 + b"</PSGAnnotation>"
    for kind in ("nsrr_xml", "profusion_xml", "alice_rml"):
        with pytest.raises(LabelError) as info:
            by_kind(kind).parse(data)
        assert info.value.reason == "xml_too_deep", kind
        assert "MAX_XML_DEPTH limit of 64" in info.value.detail


def test_entity_expansion_and_external_entities_are_refused():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<PSGAnnotation><SoftwareVersion>&lol2;</SoftwareVersion></PSGAnnotation>"
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<PSGAnnotation><SoftwareVersion>&e;</SoftwareVersion></PSGAnnotation>"
    )
    for data in (laughs, external):
        with pytest.raises(LabelError) as info:
            by_kind("nsrr_xml").parse(data)
        assert info.value.reason == "unsafe_xml"


def test_more_xml_elements_than_the_limit_are_refused(limits):
    limits(max_xml_elements=100)
    data = b"<PSGAnnotation><ScoredEvents>" + b"<ScoredEvent/>" * 200 + b"</ScoredEvents></PSGAnnotation>"
    with pytest.raises(LabelError) as info:
        by_kind("nsrr_xml").parse(data)
    assert info.value.reason == "xml_too_many_elements"


def test_a_file_over_the_size_limit_is_refused_by_every_format(limits):
    limits(max_bytes=1000)
    from sunrise_common.labels import FORMATS

    for fmt in FORMATS:
        with pytest.raises(LabelError) as info:
            fmt.parse(b"x" * 1001)
        assert info.value.reason == "label_too_large", fmt.kind
