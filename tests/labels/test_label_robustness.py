"""Garbage in never crashes the label parsers: it parses or raises LabelError with a reason;
anonymised rows parse exactly like the original ones."""

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sunrise_common.labels import LabelError, anonymise_label_file, detect_label_kind, parse_labels

from .conftest import corpus_file
from .test_label_anonymise import _same

HEADER = "Signal ID: FlowD\\flow\nStart Time: 23.09.2020 01:00:00\nUnit: s\nSignal Type: Impuls\n\n"
ROW = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\d{1,2}:\d{2}:\d{2},\d{3}-\d{1,2}:\d{2}:\d{2},\d{3}; \d{1,3};[A-Za-z ]{0,20}", fullmatch=True),
    st.from_regex(r"\d{1,2}:\d{2}:\d{2},\d{3}; [A-Za-z0-9]{0,8}", fullmatch=True),
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(ROW, max_size=20), kind=st.sampled_from(["domino_flow_events", "domino_sleep_profile", "domino_generic"]))
def test_domino_rows_never_crash(rows, kind):
    data = (HEADER + "\n".join(rows)).encode("utf-8", "surrogatepass")
    try:
        ls = parse_labels(kind, data)
    except LabelError as exc:
        assert exc.reason
        return
    for ev in ls.events:
        assert ev.duration_s >= 0


@settings(max_examples=150, deadline=None)
@given(blob=st.binary(max_size=300))
def test_detect_and_parse_arbitrary_bytes(blob):
    try:
        kind = detect_label_kind("x", blob)
        parse_labels(kind, blob)
    except LabelError as exc:
        assert exc.reason


@settings(max_examples=100, deadline=None)
@given(body=st.text(max_size=200))
def test_nsrr_xml_garbage(body):
    data = f"<PSGAnnotation><EpochLength>30</EpochLength><ScoredEvents>{body}</ScoredEvents></PSGAnnotation>".encode()
    try:
        parse_labels("nsrr_xml", data)
    except LabelError as exc:
        assert exc.reason


HYPNOGRAM = "edf/edfio__SC4001EC-Hypnogram.edf"


def test_a_missing_corpus_file_fails_the_test_instead_of_passing():
    with pytest.raises(FileNotFoundError):
        corpus_file("edf/not-in-the-corpus.edf")


@settings(max_examples=100, deadline=None)
@given(pos=st.integers(min_value=0, max_value=4619), value=st.integers(min_value=0, max_value=255))
def test_corrupted_edf_hypnogram_parses_or_raises_label_error(pos, value):
    data = bytearray(corpus_file(HYPNOGRAM).read_bytes())
    if len(data) != 4620:
        raise ValueError(f"{HYPNOGRAM} is {len(data)} bytes, the positions drawn assume 4620")
    data[pos] = value
    try:
        parse_labels("edf_hypnogram", bytes(data))
    except LabelError as exc:
        assert exc.reason


START = datetime(2024, 5, 30, 23, 0, 0)
ROW_TIME = st.builds(lambda s: START + timedelta(seconds=s), st.integers(min_value=-2 * 86400, max_value=2 * 86400))
DATE_FORM = st.sampled_from(["%d.%m.%Y ", "US", "%d-%m-%y ", ""])  # "" = the time-only layout


def _row(kind: str, t: datetime, form: str, stage: str) -> str:
    day = f"{t.month}/{t.day}/{t.year} " if form == "US" else t.strftime(form)
    if kind == "domino_sleep_profile":
        return f"{day}{t:%H:%M:%S},000; {stage}"
    return f"{day}{t:%H:%M:%S},000-{t + timedelta(seconds=12):%H:%M:%S},500; 12;Hypopnea; {stage}"


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(ROW_TIME, DATE_FORM, st.sampled_from(["N2", "Wake", "REM", "x"])), min_size=1, max_size=15),
       kind=st.sampled_from(["domino_flow_events", "domino_sleep_profile"]))
def test_anonymised_rows_parse_exactly_like_the_original(rows, kind):
    """Any mix of dated and time-only rows, in any order: anonymising never moves a row."""
    head = f"Signal ID: FlowD\\flow\r\nStart Time: {START:%d.%m.%Y %H:%M:%S}\r\nRate: 30 s\r\n\r\n"
    data = (head + "\r\n".join(_row(kind, t, form, stage) for t, form, stage in rows) + "\r\n").encode()
    try:
        original = parse_labels(kind, data)
    except LabelError:
        return  # e.g. a profile spanning more than 72 h: refused, nothing to compare
    anonymised = parse_labels(kind, anonymise_label_file(kind, data).data)
    _same(original, anonymised)


def _format_examples():
    from tests.conftest import CORPUS

    root = CORPUS / "labels" / "formats"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".json", ".py") and "scans" not in p.name)


@pytest.mark.parametrize("path", _format_examples(), ids=lambda p: p.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_mutated_format_examples_parse_or_raise_a_label_error(path, data):
    """Every registered format: an example with lines cut, swapped or overwritten with garbage
    parses (and its anonymisation reads the same) or fails with a LabelError, never a crash."""
    from sunrise_common.labels import detect

    original = path.read_bytes()
    fmt = detect(original, path.name)
    lines = original.splitlines(keepends=True)
    n = len(lines)
    ops = data.draw(st.lists(st.tuples(st.sampled_from(["drop", "dup", "garble", "truncate"]),
                                       st.integers(0, n - 1), st.binary(max_size=12)), min_size=1, max_size=4))
    for op, i, junk in ops:
        i = min(i, len(lines) - 1)
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            cut = len(lines[i]) // 2
            lines[i] = lines[i][:cut] + junk + lines[i][cut:]
        elif op == "truncate":
            lines = lines[: max(i, 1)]
    mutated = b"".join(lines)
    try:
        fmt.parse(mutated)
        fmt.anonymise(mutated)
    except LabelError as exc:
        assert exc.reason and "\x00" not in exc.detail
