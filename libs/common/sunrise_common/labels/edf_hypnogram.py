"""EDF+/BDF+ annotation-only label files (Sleep-EDF ``*Hypnogram.edf`` style).

Each stage annotation (``Sleep stage W/1/2/3/4/R/?``, ``Movement time``; AASM spellings such as
``Sleep stage N2`` too) has an onset and a duration in seconds from the file's start; it is
expanded into ``duration / 30`` epochs (R&K 3 and 4 -> N3; ``?`` and movement time -> UNS).
A stage annotation without a duration lasts until the next stage annotation (one epoch for the
last one). Any other annotation becomes a ``LabelEvent`` (type from ``map_event``, usually ``other``).
The annotations are read with :func:`sunrise_common.edf.read_annotations`.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, time

from sunrise_common.edf import EdfError, EdfHeader, parse_header, read_annotations

from .canonical import EPOCH_S, LabelEvent, LabelSet, map_event, map_stage
from .errors import LabelError
from .nsrr_xml import expand_spans

_STAGE_TEXT = re.compile(r"^\s*(?:sleep\s*stage|stage)\s*(.+?)\s*$", re.IGNORECASE)
_TIME_RAW = re.compile(r"(\d{2})[.:](\d{2})[.:](\d{2})")


def header_time_of_day(header: EdfHeader) -> time | None:
    """Local time of day of the recording start, even when the date is invalid (``00.00.00``)."""
    if header.start is not None:
        return header.start.time()
    m = _TIME_RAW.fullmatch(header.starttime_raw.strip())
    if m is None:
        return None
    h, mi, s = (int(g) for g in m.groups())
    if h > 23 or mi > 59 or s > 59:
        return None
    return time(h, mi, s)


def _stage_of(text: str) -> str | None:
    m = _STAGE_TEXT.match(text)
    if m:
        stage, _ = map_stage(m.group(1))
        return stage
    stage, known = map_stage(text)
    if known and len(text.strip()) > 1:  # "W"/"R"/"A" alone are too ambiguous as free text
        return stage
    return None


def parse(data: bytes, epoch_s: float = EPOCH_S) -> LabelSet:
    """Parse the bytes of an EDF+/BDF+ annotation file into a hypnogram and events."""
    try:
        header = parse_header(io.BytesIO(data), len(data))
        annotations = read_annotations(io.BytesIO(data), header)
    except EdfError as exc:
        raise LabelError("bad_edf_annotations", f"{exc.reason}: {exc.detail}") from None
    if not header.annotation_indices:
        raise LabelError("unknown_label_format", "EDF/BDF without an annotation signal")
    warnings: list[str] = []
    stage_anns = [(a, _stage_of(a.text)) for a in annotations]
    stage_only = [(a, s) for a, s in stage_anns if s is not None]
    spans: list[tuple[float, float, str]] = []
    for i, (a, stage) in enumerate(stage_only):
        duration = a.duration
        if duration is None:
            nxt = stage_only[i + 1][0].onset if i + 1 < len(stage_only) else a.onset + epoch_s
            duration = nxt - a.onset
        spans.append((a.onset, duration, stage))
    events = [
        LabelEvent(type=map_event(a.text), onset_s=a.onset, duration_s=a.duration or 0.0, channel="", label=a.text)
        for a, s in stage_anns
        if s is None
    ]
    hyp = expand_spans(spans, epoch_s, warnings) if spans else None
    start: datetime | None = header.start
    tod = header_time_of_day(header)
    if start is None:
        warnings.append(f"EDF start date unusable ({header.start_problem}): time of day only")
    return LabelSet(
        start=start, hypnogram=hyp, events=events, source_kind="edf_hypnogram", warnings=warnings,
        start_time=tod,
    )
