"""NSRR XML annotations (``PSGAnnotation``), as written by the NSRR EDF/annotation translators.

Structure::

    <PSGAnnotation>
      <SoftwareVersion/> <EpochLength>30</EpochLength>
      <ScoredEvents>
        <ScoredEvent>
          <EventType/> <EventConcept>Recording Start Time</EventConcept>
          <Start>0</Start> <Duration>32400.0</Duration> <ClockTime>00.00.00 23.00.00</ClockTime>
        </ScoredEvent>
        <ScoredEvent>
          <EventType>Stages|Stages</EventType> <EventConcept>Stage 2 sleep|2</EventConcept>
          <Start>30.0</Start> <Duration>60.0</Duration>
        </ScoredEvent>
        <ScoredEvent>
          <EventType>Respiratory|Respiratory</EventType>
          <EventConcept>SpO2 desaturation|SpO2 desaturation</EventConcept>
          <Start>..</Start> <Duration>..</Duration> <SignalLocation>SaO2</SignalLocation>
          <SpO2Nadir>88</SpO2Nadir> <SpO2Baseline>95</SpO2Baseline> <Input>SaO2</Input>
        </ScoredEvent>
      ...

``Start``/``Duration`` are seconds from the recording start. Stage codes after ``|``: 0 W,
1 N1, 2 N2, 3 and 4 N3 (R&K), 5 REM, anything else (``Unsure``, 6 movement, 9 unscored) UNS.
The date in ``ClockTime`` is de-identified to ``00.00.00`` by NSRR; only the time of day is used
then. A ``ScoredEvent`` carries no sleep stage, so ``LabelEvent.stage`` is None (the stage at an event
comes from the hypnogram). Entity expansion is refused: any ``<!DOCTYPE`` or ``<!ENTITY`` is rejected (``unsafe_xml``).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, time

from .canonical import EPOCH_S, UNSCORED, LabelEvent, Hypnogram, LabelSet, map_event, map_stage
from .errors import LabelError

# A label file longer than this is corrupt, not a night (Sleep-EDF hypnograms run to 24 h).
MAX_SPAN_S = 72 * 3600.0

_STAGE_CODES = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM"}


def parse_xml_safely(data: bytes) -> ET.Element:
    """Parse XML with DTDs refused (no entity expansion: billion laughs, external entities)."""
    probe = data.upper()  # the whole file: a declaration after a long comment is still one
    if b"<!DOCTYPE" in probe or b"<!ENTITY" in probe:
        raise LabelError("unsafe_xml", "XML with a DOCTYPE or ENTITY declaration is refused")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise LabelError("bad_xml", f"XML does not parse: {exc}") from None


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _float(el: ET.Element, tag: str, where: str) -> float | None:
    raw = _text(el, tag)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise LabelError("bad_xml", f"{where}: {tag} {raw!r} is not a number") from None


def parse_clock_time(raw: str) -> tuple[datetime | None, time]:
    """``dd.mm.yy HH.MM.SS`` (or the time alone) -> (full start or None, time of day)."""
    parts = raw.split()
    if not parts:
        raise LabelError("bad_start_time", f"empty ClockTime {raw!r}")
    m = re.fullmatch(r"(\d{1,2})[.:](\d{2})[.:](\d{2})(?:\.(\d+))?", parts[-1])
    if m is None:
        raise LabelError("bad_start_time", f"unrecognised ClockTime {raw!r}")
    tod = time(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    start = None
    if len(parts) >= 2:
        d = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{2,4})", parts[0])
        if d and d.group(1) != "00" and d.group(2) != "00":
            y = int(d.group(3))
            y += (2000 if y < 85 else 1900) if y < 100 else 0
            try:
                start = datetime(y, int(d.group(2)), int(d.group(1)), tod.hour, tod.minute, tod.second)
            except ValueError:
                start = None
    return start, tod


def parse(data: bytes) -> LabelSet:
    """Parse NSRR XML into a hypnogram (expanded to ``EpochLength`` epochs) and events."""
    root = parse_xml_safely(data)
    if root.tag != "PSGAnnotation":
        raise LabelError("unknown_label_format", f"XML root is {root.tag!r}, not PSGAnnotation")
    epoch_s = _float(root, "EpochLength", "PSGAnnotation") or EPOCH_S
    warnings: list[str] = []
    start: datetime | None = None
    tod: time | None = None
    stage_spans: list[tuple[float, float, str]] = []
    events: list[LabelEvent] = []
    unknown: dict[str, int] = {}
    for i, ev in enumerate(root.iter("ScoredEvent")):
        concept = _text(ev, "EventConcept") or ""
        etype = _text(ev, "EventType") or ""
        where = f"ScoredEvent {i} ({concept})"
        onset = _float(ev, "Start", where)
        duration = _float(ev, "Duration", where) or 0.0
        if concept.lower().startswith("recording start time"):
            clock = _text(ev, "ClockTime")
            if clock:
                start, tod = parse_clock_time(clock)
            continue
        if onset is None:
            warnings.append(f"{where}: no Start, skipped")
            continue
        if etype.lower().startswith("stages"):
            name, _, code = concept.partition("|")
            stage = _STAGE_CODES.get(code.strip())
            if stage is None:
                stage, known = map_stage(name)
                if not known and code.strip().lower() not in ("unsure", "6", "9", "unscored"):
                    unknown[concept] = unknown.get(concept, 0) + 1
            stage_spans.append((onset, duration, stage))
            continue
        name = concept.split("|")[0].strip()
        label = concept.split("|")[-1].strip() or name
        events.append(
            LabelEvent(
                type=map_event(name),
                onset_s=onset,
                duration_s=duration,
                channel=_text(ev, "Input") or _text(ev, "SignalLocation") or "",
                nadir=_float(ev, "SpO2Nadir", where),
                label=label,
            )
        )
    for concept, n in sorted(unknown.items()):
        warnings.append(f"unknown stage concept {concept!r} on {n} span(s): mapped to {UNSCORED}")
    hyp = expand_spans(stage_spans, epoch_s, warnings) if stage_spans else None
    if tod is None:
        warnings.append("no Recording Start Time ClockTime: start unknown")
    return LabelSet(
        start=start, hypnogram=hyp, events=events, source_kind="nsrr_xml", warnings=warnings,
        start_time=tod,
    )


def expand_spans(spans: list[tuple[float, float, str]], epoch_s: float, warnings: list[str]) -> Hypnogram:
    """Expand (onset_s, duration_s, stage) spans into consecutive epochs.

    Epoch 0 starts at the earliest span; a span covers ``round(duration / epoch_s)`` epochs;
    uncovered epochs are ``UNS``; where spans overlap the later one in the file wins (reported).
    Spans not on the epoch grid are snapped to the nearest epoch and reported.
    """
    spans = sorted(spans, key=lambda s: s[0])
    t0 = spans[0][0]
    end = max(onset + duration for onset, duration, _ in spans)
    if not math.isfinite(end) or end - t0 > MAX_SPAN_S or any(d < 0 for _, d, _ in spans):
        raise LabelError(
            "absurd_value", f"stage spans cover {t0:g}..{end:g} s (limit {MAX_SPAN_S / 3600:g} h, durations >= 0)"
        )
    grid: dict[int, str] = {}
    off_grid = 0
    overlaps = 0
    for onset, duration, stage in spans:
        first = (onset - t0) / epoch_s
        n = duration / epoch_s
        if abs(first - round(first)) > 1e-3 or abs(n - round(n)) > 1e-3:
            off_grid += 1
        i0 = round(first)
        for i in range(i0, i0 + max(int(round(n)), 0)):
            if i in grid:
                overlaps += 1
            grid[i] = stage
    if off_grid:
        warnings.append(f"{off_grid} stage span(s) off the {epoch_s:g}-s grid: snapped")
    if overlaps:
        warnings.append(f"{overlaps} epoch(s) covered by more than one stage span: last kept")
    n_epochs = max(grid) + 1 if grid else 0
    missing = n_epochs - len(grid)
    if missing:
        warnings.append(f"{missing} epoch(s) not covered by any stage span: {UNSCORED}")
    return Hypnogram(epoch_s=epoch_s, onset_s=t0, stages=[grid.get(i, UNSCORED) for i in range(n_epochs)])


_PATIENT_TAG = re.compile(r"patient|^name$|firstname|lastname|^dob$|birth|^age$|^sex$|gender|mrn", re.IGNORECASE)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Drop patient elements and the ClockTime date; return new bytes and the original start.

    Removed: any element whose tag matches ``PatientInfo``, ``Name``, ``DOB``, ``Birth*``, ``Age``,
    ``Sex``/``Gender``, ``MRN`` (case-insensitive). ``ClockTime`` keeps only its time part.
    ``ScoredEvents`` are kept as they are.
    """
    root = parse_xml_safely(data)
    start: datetime | None = None
    for parent in list(root.iter()):
        for child in list(parent):
            if _PATIENT_TAG.search(child.tag):
                parent.remove(child)
    for clock in root.iter("ClockTime"):
        if clock.text:
            s, tod = parse_clock_time(clock.text)
            start = start or s
            clock.text = tod.strftime("%H.%M.%S")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), start
