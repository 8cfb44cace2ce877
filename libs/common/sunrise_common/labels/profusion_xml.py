"""Compumedics Profusion XML (``CMPStudyConfig``), as NSRR distributes it next to the NSRR XML.

Layout: ``<CMPStudyConfig>`` with ``EpochLength``, ``StepChannels``, ``ScoredEventSettings``,
``ScoredEvents`` (``ScoredEvent``: ``Name``, ``Start`` s, ``Duration`` s, ``Input`` channel,
desaturations add ``LowestSpO2`` (nadir) and ``Desaturation`` (drop, %)) and ``SleepStages``
(one ``SleepStage`` integer per epoch from recording second 0). Children are looked up by name,
not position. Codes: 0 W, 1 N1, 2 N2, 3 and 4 N3 (R&K), 5 REM; 6 movement, 9 unscored (the
NSRR translator's reading; the Compumedics wiki says "Active", YASA reads wake), 10 artefact:
all ``UNS`` with the code kept in ``Hypnogram.native``. The first ``ScoredEvent`` (``Recording
Start Time``) is skipped. Baseline = ``LowestSpO2 + Desaturation`` (NSRR translator).

The file has no clock time: its epoch 0 is the PSG's start (``LabelSet.start`` None). Lights are
not read (how the ``LIGHT`` step channel stores transitions is not documented).

Sources: reference/label-formats.md §4 (NSRR translator wiki and mapping, Luna, YASA).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from .canonical import EPOCH_S, UNSCORED, LabelEvent, LabelSet, map_event
from .common import XmlSpec, optional_number, per_epoch, prune, safe_label
from .errors import LabelError
from .limits import local, xml_root
from .registry import Format

TITLE = "Compumedics Profusion XML"

CODES = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM", "6": UNSCORED, "9": UNSCORED, "10": UNSCORED}

_LEAF = (frozenset(), None)
SPEC: XmlSpec = {
    "EpochLength": _LEAF,
    "ScoredEvents": (frozenset(), {
        "ScoredEvent": (frozenset(), {
            t: _LEAF for t in ("Name", "Start", "Duration", "Input", "LowestSpO2", "Desaturation")
        }),
    }),
    "SleepStages": (frozenset(), {"SleepStage": _LEAF}),
}


def _child(el: ET.Element, tag: str) -> ET.Element | None:
    return next((c for c in el if local(c.tag) == tag), None)


def _text(el: ET.Element, tag: str) -> str | None:
    c = _child(el, tag)
    return None if c is None else (c.text or "").strip()


def _num(el: ET.Element, tag: str, where: str) -> float | None:
    return optional_number(_text(el, tag), f"<{tag}>", where, TITLE)


def _root(data: bytes) -> ET.Element:
    return xml_root(data, TITLE, "CMPStudyConfig")


def parse(data: bytes) -> LabelSet:
    root = _root(data)
    epoch_s = _num(root, "EpochLength", "CMPStudyConfig") or EPOCH_S
    if not 1 <= epoch_s <= 120:
        raise LabelError("absurd_value", f"{TITLE}: EpochLength {epoch_s:g} s outside 1..120")
    warnings: list[str] = []
    codes: list[tuple[str, str]] = []
    unknown = 0
    stages_el = _child(root, "SleepStages")
    for st in stages_el if stages_el is not None else []:
        if local(st.tag) != "SleepStage":
            continue
        raw = (st.text or "").strip()
        if not re.fullmatch(r"-?\d{1,3}", raw):
            raise LabelError("bad_xml", f"{TITLE}: SleepStage {len(codes) + 1} is not an integer code")
        stage = CODES.get(raw)
        if stage is None:
            unknown += 1
            stage = UNSCORED
        codes.append((stage, raw))
    if unknown:
        warnings.append(f"{unknown} SleepStage value(s) outside 0-6, 9, 10: mapped to {UNSCORED}")
    events: list[LabelEvent] = []
    evs = _child(root, "ScoredEvents")
    for i, ev in enumerate(evs if evs is not None else []):
        name = _text(ev, "Name") or ""
        if name.lower().startswith("recording start time"):
            continue
        where = f"ScoredEvent {i}"
        onset = _num(ev, "Start", where)
        if onset is None:
            warnings.append(f"{where}: no <Start>, skipped")
            continue
        nadir = _num(ev, "LowestSpO2", where)
        drop = _num(ev, "Desaturation", where)
        events.append(LabelEvent(
            type=map_event(name), onset_s=onset, duration_s=_num(ev, "Duration", where) or 0.0,
            channel=_text(ev, "Input") or "", nadir=nadir,
            baseline=nadir + drop if nadir is not None and drop is not None else None, label=name,
        ))
    hyp = per_epoch(codes, epoch_s) if codes else None
    warnings.append("Profusion XML has no clock time: epoch 0 is the PSG start")
    return LabelSet(start=None, hypnogram=hyp, events=events, source_kind="profusion_xml", warnings=warnings)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep only ``EpochLength``, the scored events' read fields and the stage list."""
    root = _root(data)
    root.attrib.clear()
    root.text = "\n"
    prune(root, SPEC)
    for ev in root.iter():
        if local(ev.tag) == "ScoredEvent":
            name = next((c for c in ev if local(c.tag) == "Name"), None)
            if name is not None and name.text and not name.text.strip().lower().startswith("recording start time"):
                name.text = safe_label(name.text)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), None


def sniff(head: bytes, name: str) -> int:
    return 2 if re.search(rb"<\s*(?:\w+:)?CMPStudyConfig\b", head[:4096]) else 0


FORMAT = Format(
    kind="profusion_xml",
    title=TITLE,
    producer="Compumedics Profusion (NSRR annotations-events-profusion)",
    extensions=(".xml", "-profusion.xml"),
    out_extension="xml",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    is_text=False,
    reads="SleepStage per epoch (0-5, 6/9/10 UNS with code kept), ScoredEvents with Input, LowestSpO2 "
    "and Desaturation (baseline = nadir + drop)",
    anonymised="everything not read is dropped (StepChannels, ScoredEventSettings, any patient element)",
    assumptions="no clock time: epoch 0 = PSG start; code 9 = unscored (not wake); lights not read",
)
