"""NSRR XML annotations (``PSGAnnotation``): the NSRR translator's files and the older
Physio-MIMI / SRO-SDO concept files.

Structure (NSRR as distributed)::

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
          <SpO2Nadir>88</SpO2Nadir> <SpO2Baseline>95</SpO2Baseline>
        </ScoredEvent>

Translator files without ``<EventType>`` name stages by one ontology concept:
``SRO:Wake``, ``SRO:Stage1Sleep`` ... ``SRO:Stage4Sleep``, ``SRO:Stage34Sleep``,
``SRO:RapidEyeMovement``, ``SRO:MovementTime``, ``SRO:UnscoredEpoch``, ``SRO:ArtifactEpoch``;
``SDO:WakeState``, ``SDO:NonRapidEyeMovementSleep-N1`` ... ``-N4``/``-Stage4``,
``SDO:RapidEyeMovementSleep``; Embla codes ``SLEEP-S0`` ... ``SLEEP-S4``, ``SLEEP-REM``,
``SLEEP-MT``, ``SLEEP-UNSCORED``. ``<Starttime>`` is read where ``<Start>`` is missing; concepts
are trimmed. Stage runs (``Start``, ``Duration``) are expanded onto the ``EpochLength`` grid from
second 0. Stage codes after ``|``: 0 W, 1 N1, 2 N2, 3 and 4 N3 (R&K), 5 REM, 6 movement, 9
unscored, 10 artefact (all three ``UNS``, native code kept). The root element is matched by
prefix (the translator's Respironics path writes ``PSGAnnotaion``).

The ``ClockTime`` date is de-identified by NSRR to ``00.00.00``; the time of day is then the only
time base (``LabelSet.start`` None, ``start_time`` set). Lights: concepts ``Lights Off``/``Lights
On`` where present (NSRR rarely writes them). A ``ScoredEvent`` carries no sleep stage.

Sources: reference/label-formats.md §2-3 (NSRR edf-editor-translator, Luna, NSRR edf-viewer).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, time

from .canonical import EPOCH_S, UNSCORED, LabelEvent, LabelSet, map_event, map_stage
from .common import expand_spans, optional_number, safe_label
from .common import lights_word
from .errors import LabelError
from .limits import local, parse_xml
from .registry import Format

TITLE = "NSRR XML"

_STAGE_CODES = {
    "0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM",
    "6": UNSCORED, "9": UNSCORED, "10": UNSCORED, "unsure": UNSCORED,
}

_ONTOLOGY_STAGES = {
    "sro:wake": "W",
    "sro:stage1sleep": "N1",
    "sro:stage2sleep": "N2",
    "sro:stage3sleep": "N3",
    "sro:stage4sleep": "N3",
    "sro:stage34sleep": "N3",
    "sro:rapideyemovement": "REM",
    "sro:movementtime": UNSCORED,
    "sro:unscoredepoch": UNSCORED,
    "sro:artifactepoch": UNSCORED,
    "sdo:wakestate": "W",
    "sdo:nonrapideyemovementsleep-n1": "N1",
    "sdo:nonrapideyemovementsleep-n2": "N2",
    "sdo:nonrapideyemovementsleep-n3": "N3",
    "sdo:nonrapideyemovementsleep-n4": "N3",
    "sdo:nonrapideyemovementsleep-stage4": "N3",
    "sdo:rapideyemovementsleep": "REM",
    "sdo:movementtime": UNSCORED,
    "movementtime": UNSCORED,
    # Embla concepts the translator passes through (RemLogic codes).
    "sleep-s0": "W",
    "sleep-s1": "N1",
    "sleep-s2": "N2",
    "sleep-s3": "N3",
    "sleep-s4": "N3",
    "sleep-rem": "REM",
    "sleep-mt": UNSCORED,
    "sleep-unscored": UNSCORED,
}

# The per-event children read (and kept by anonymisation); everything else is dropped.
_EVENT_KEEP = {
    "EventType", "EventConcept", "Start", "Starttime", "Duration", "ClockTime", "SignalLocation",
    "Input", "SpO2Nadir", "SpO2Baseline",
}
_VENDORS = ("Compumedics", "Embla", "Sandman", "Respironics", "ARES", "Philips", "Natus", "Nihon Kohden")
_ROOT_KEEP = {"SoftwareVersion", "EpochLength", "ScoredEvents"}


def _text(el: ET.Element, tag: str) -> str | None:
    for child in el:
        if local(child.tag) == tag:
            return (child.text or "").strip()
    return None


def _float(el: ET.Element, tag: str, where: str) -> float | None:
    return optional_number(_text(el, tag), f"<{tag}>", where, TITLE)


def parse_clock_time(raw: str) -> tuple[datetime | None, time]:
    """``dd.mm.yy HH.MM.SS`` (or the time alone) -> (full start or None, time of day).

    ``00.00.00`` (NSRR de-identified) and any impossible date give None for the full start.
    """
    parts = raw.split()
    if not parts:
        raise LabelError("bad_start_time", f"{TITLE}: empty <ClockTime>")
    m = re.fullmatch(r"(\d{1,2})[.:](\d{2})[.:](\d{2})(?:\.(\d+))?", parts[-1])
    if m is None:
        raise LabelError("bad_start_time", f"{TITLE}: <ClockTime> time is not hh.mm.ss")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h > 23 or mi > 59 or s > 59:
        raise LabelError("bad_start_time", f"{TITLE}: <ClockTime> time out of range ({h}:{mi}:{s})")
    tod = time(h, mi, s)
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


def stage_of(concept: str, etype: str) -> tuple[str | None, bool]:
    """(canonical stage or None when the concept is not a stage, known)."""
    low = concept.strip().lower()
    if low in _ONTOLOGY_STAGES:
        return _ONTOLOGY_STAGES[low], True
    name, bar, code = concept.partition("|")
    is_stage_type = etype.lower().startswith("stages")
    if bar:
        stage = _STAGE_CODES.get(code.strip().lower())
        if stage is not None and (is_stage_type or map_stage(name)[1] or name.strip().lower() in ("unscored", "movement", "artifact", "unsure")):
            return stage, True
    if is_stage_type:
        stage, known = map_stage(name)
        return stage, known
    return None, False


def _is_root(tag: str) -> bool:
    return local(tag).startswith("PSGAnnota")


def parse(data: bytes) -> LabelSet:
    """Parse NSRR XML into a hypnogram (runs expanded to ``EpochLength`` epochs) and events."""
    root = parse_xml(data, TITLE)
    if not _is_root(root.tag):
        raise LabelError("unknown_label_format", f"{TITLE}: root element is not PSGAnnotation")
    epoch_s = _float(root, "EpochLength", "PSGAnnotation") or EPOCH_S
    if not 1 <= epoch_s <= 120:
        raise LabelError("absurd_value", f"{TITLE}: EpochLength {epoch_s:g} s outside 1..120")
    warnings: list[str] = []
    start: datetime | None = None
    tod: time | None = None
    spans: list[tuple[float, float, str, str]] = []
    events: list[LabelEvent] = []
    lights: dict[str, float] = {}
    unknown = 0
    for i, ev in enumerate(el for el in root.iter() if local(el.tag) == "ScoredEvent"):
        concept = _text(ev, "EventConcept") or ""
        etype = _text(ev, "EventType") or ""
        where = f"ScoredEvent {i}"
        onset = _float(ev, "Start", where)
        if onset is None:
            onset = _float(ev, "Starttime", where)
        duration = _float(ev, "Duration", where) or 0.0
        if concept.lower().startswith("recording start time"):
            clock = _text(ev, "ClockTime")
            if clock:
                start, tod = parse_clock_time(clock)
            continue
        if onset is None:
            warnings.append(f"{where}: no <Start>, skipped")
            continue
        stage, known = stage_of(concept, etype)
        if stage is not None:
            if not known:
                unknown += 1
            spans.append((onset, duration, stage, concept))
            continue
        name = concept.split("|")[0].strip()
        which = lights_word(name)
        if which is not None:
            lights.setdefault(which, onset)
            continue
        label = concept.split("|")[-1].strip() or name
        events.append(
            LabelEvent(
                type=map_event(name),
                onset_s=onset,
                duration_s=duration,
                channel=_text(ev, "SignalLocation") or _text(ev, "Input") or "",
                nadir=_float(ev, "SpO2Nadir", where),
                baseline=_float(ev, "SpO2Baseline", where),
                label=label,
            )
        )
    if unknown:
        warnings.append(f"{unknown} stage run(s) with an unknown concept: mapped to {UNSCORED}")
    hyp = expand_spans(spans, epoch_s, warnings, origin=0.0) if spans else None
    if tod is None:
        warnings.append("no Recording Start Time ClockTime: start unknown")
    return LabelSet(
        start=start, hypnogram=hyp, events=events, source_kind="nsrr_xml", warnings=warnings,
        start_time=tod, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"),
    )


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep only what ``parse`` reads; ``ClockTime`` becomes ``00.00.00 HH.MM.SS`` (NSRR's own
    de-identification). Returns the new bytes and the original start (None when undated).

    Dropped: every root child but ``SoftwareVersion``/``EpochLength``/``ScoredEvents``, every
    ``ScoredEvent`` child but those read (``Notes`` and anything patient-like included).
    """
    root = parse_xml(data, TITLE)
    if not _is_root(root.tag):
        raise LabelError("unknown_label_format", f"{TITLE}: root element is not PSGAnnotation")
    start: datetime | None = None
    root.tag = "PSGAnnotation"
    root.attrib.clear()
    for child in list(root):
        if local(child.tag) not in _ROOT_KEEP:
            root.remove(child)
    sw = next((c for c in root if local(c.tag) == "SoftwareVersion"), None)
    if sw is not None:  # a vendor name, or nothing: the field is free text
        sw.text = next((v for v in _VENDORS if (sw.text or "").strip().lower().startswith(v.lower())), "")
    for events in (c for c in root if local(c.tag) == "ScoredEvents"):
        for ev in list(events):
            if local(ev.tag) != "ScoredEvent":
                events.remove(ev)
                continue
            ev.attrib.clear()
            for child in list(ev):
                if local(child.tag) not in _EVENT_KEEP:
                    ev.remove(child)
                else:
                    for grandchild in list(child):
                        child.remove(grandchild)
                    child.attrib.clear()
                if local(child.tag) == "EventConcept" and child.text:
                    etype = _text(ev, "EventType") or ""
                    if stage_of(child.text, etype)[0] is None and not child.text.lower().startswith("recording start time"):
                        if safe_label(child.text.split("|")[0]) == "other":  # free text, e.g. notes
                            child.text = "other"
                if local(child.tag) == "ClockTime" and child.text:
                    s, tod = parse_clock_time(child.text)
                    start = start or s
                    child.text = "00.00.00 " + tod.strftime("%H.%M.%S")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), start


def sniff(head: bytes, name: str) -> int:
    return 2 if re.search(rb"<\s*(?:\w+:)?PSGAnnota", head[:4096]) else 0


FORMAT = Format(
    kind="nsrr_xml",
    title=TITLE,
    producer="NSRR EDF Editor & Translator (from Compumedics, Embla, Sandman, Respironics, ARES); "
    "older Physio-MIMI SRO/SDO files",
    extensions=(".xml", "-nsrr.xml"),
    out_extension="xml",
    sniff=sniff,
    parse_fn=parse,
    is_text=False,
    anonymise_fn=anonymise,
    reads="stage runs (name|code or SRO/SDO concepts), events with channel and SpO2 nadir/baseline, "
    "ClockTime start, lights concepts",
    anonymised="everything not read is dropped (Notes, patient elements); ClockTime date -> 00.00.00",
    assumptions="stage runs start at second 0 on the EpochLength grid; concepts outside the stage "
    "vocabulary are events; a 00.00.00 date means time of day only",
)
