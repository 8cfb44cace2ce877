"""Embla / Natus RemLogic XML event export (the NSRR translator's Embla input).

``<Event>`` elements, each with ``<Type>`` (the RemLogic codes: ``SLEEP-S0`` ... ``SLEEP-REM``,
``SLEEP-MT``, ``SLEEP-UNSCORED``, ``APNEA-OBSTRUCTIVE``, ``DESAT``, ``LIGHTS-OFF``...),
``<Location>`` (channel, e.g. ``SpO2.Averaged-Probe``), ``<StartTime>`` and ``<StopTime>`` as ISO
date-times (``2010-01-26T22:43:30.123000``), and nested ``<Parameters><Parameter><Key>`` /
``<Value>`` pairs; a desaturation's ``Begin of desat`` is the SpO2 baseline and ``End of desat``
the nadir (the NSRR translator's reading). The root element's name is not documented: any XML
whose ``Event`` elements carry ``Type`` and ``StartTime`` is read.

Onsets are absolute: the start is the earliest ``StartTime`` (of the first ``SLEEP-`` epoch when
there are any), and every onset is measured from it, so event times are exact. Each ``SLEEP-``
event is one epoch (its length from ``StopTime - StartTime``, 30 s by default).

Sources: reference/label-formats.md §5b (NSRR translator ``EmblaTranslatorFactory``) and §5a for
the codes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from .canonical import UNSCORED, LabelEvent, LabelSet
from .common import anon_shift, event_type, per_epoch, safe_label
from .common import lights_word
from .errors import LabelError
from .limits import local, parse_xml
from .registry import Format
from .remlogic_txt import SLEEP

TITLE = "Embla XML event export"
_KEEP_KEYS = {"uservariables", "begin of desat", "end of desat"}


def _events(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter() if local(el.tag) == "Event"]


def _child(el: ET.Element, tag: str) -> str | None:
    c = next((c for c in el if local(c.tag) == tag), None)
    return None if c is None else (c.text or "").strip()


def _iso(raw: str | None, what: str, where: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace(",", ".")).replace(tzinfo=None)
    except ValueError:
        raise LabelError("bad_time", f"{TITLE}: {where}: {what} is not an ISO date-time") from None


def _params(ev: ET.Element) -> dict[str, str]:
    out = {}
    for p in ev.iter():
        if local(p.tag) == "Parameter":
            k, v = _child(p, "Key"), _child(p, "Value")
            if k and v is not None:
                out[k.strip().lower()] = v
    return out


def _num(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return None


def parse(data: bytes) -> LabelSet:
    root = parse_xml(data, TITLE)
    rows = []
    for i, ev in enumerate(_events(root)):
        where = f"Event {i}"
        t = _child(ev, "Type") or ""
        a = _iso(_child(ev, "StartTime"), "StartTime", where)
        if a is None:
            continue
        b = _iso(_child(ev, "StopTime"), "StopTime", where) or a
        rows.append((t, a, b, ev))
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no Event with a Type and a StartTime")
    sleep = [r for r in rows if r[0].lower().startswith("sleep-")]
    start = min(r[1] for r in (sleep or rows))
    warnings: list[str] = []
    hyp = None
    if sleep:
        lens = sorted((b - a).total_seconds() for _, a, b, _ in sleep if b > a)
        epoch_s = lens[len(lens) // 2] if lens else 30.0
        by_index: dict[int, tuple[str, str]] = {}
        for t, a, _, _ in sleep:
            idx = round((a - start).total_seconds() / epoch_s)
            by_index.setdefault(idx, (SLEEP.get(t.lower(), UNSCORED), t))
        n = max(by_index) + 1
        if n - len(by_index):
            warnings.append(f"{n - len(by_index)} epoch(s) missing between SLEEP events: {UNSCORED}")
        hyp = per_epoch([by_index.get(i, (UNSCORED, "")) for i in range(n)], epoch_s)
    events = []
    lights: dict[str, float] = {}
    for t, a, b, ev in rows:
        if t.lower().startswith("sleep-"):
            continue
        onset = (a - start).total_seconds()
        which = lights_word(t.replace("-", " "))
        if which is not None:
            lights.setdefault(which, onset)
            continue
        p = _params(ev)
        events.append(LabelEvent(type=event_type(t), onset_s=onset, duration_s=max((b - a).total_seconds(), 0.0),
                            channel=_child(ev, "Location") or "", label=t,
                            baseline=_num(p.get("begin of desat")), nadir=_num(p.get("end of desat"))))
    return LabelSet(start=start, hypnogram=hyp, events=events, source_kind="embla_xml", warnings=warnings,
                    lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """A new document with one ``Event`` per event read: ``Type`` (free text -> ``other``),
    ``Location``, ``StartTime``/``StopTime`` moved by the days that take the start to 1 January,
    and only the desaturation parameters."""
    root = parse_xml(data, TITLE)
    start = parse(data).start
    shift = timedelta(days=anon_shift(start.date()).days) if start is not None else timedelta(0)
    out = ET.Element("EventExport")
    out.text = "\n"
    for i, ev in enumerate(_events(root)):
        where = f"Event {i}"
        a = _iso(_child(ev, "StartTime"), "StartTime", where)
        if a is None:
            continue
        new = ET.SubElement(out, "Event")
        new.tail = "\n"
        t = _child(ev, "Type") or ""
        ET.SubElement(new, "Type").text = t if t.lower().startswith("sleep-") else safe_label(t)
        loc = _child(ev, "Location")
        if loc:
            ET.SubElement(new, "Location").text = loc
        ET.SubElement(new, "StartTime").text = (a + shift).isoformat(timespec="microseconds")
        b = _iso(_child(ev, "StopTime"), "StopTime", where)
        if b is not None:
            ET.SubElement(new, "StopTime").text = (b + shift).isoformat(timespec="microseconds")
        p = {k: v for k, v in _params(ev).items() if k in _KEEP_KEYS and _num(v) is not None}
        if p:
            ps = ET.SubElement(new, "Parameters")
            for k, v in p.items():
                par = ET.SubElement(ps, "Parameter")
                ET.SubElement(par, "Key").text = {"begin of desat": "Begin of desat", "end of desat": "End of desat"}[k]
                ET.SubElement(par, "Value").text = v
    return ET.tostring(out, encoding="utf-8", xml_declaration=True), start


def sniff(head: bytes, name: str) -> int:
    h = head[:16384]
    if b"<Event" in h and re.search(rb"<Type>\s*[A-Z]+-", h) and re.search(rb"<StartTime>\s*\d{4}-\d{2}-\d{2}T", h):
        return 2
    return 0


FORMAT = Format(
    kind="embla_xml",
    title=TITLE,
    producer="Embla / Natus RemLogic (XML export; NSRR translator input)",
    extensions=(".xml",),
    out_extension="xml",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    is_text=False,
    reads="SLEEP-* events per epoch, events with Location and Begin/End of desat (baseline/nadir), "
    "LIGHTS-OFF/ON, absolute ISO times",
    anonymised="rebuilt with Type, Location, shifted Start/StopTime and desat parameters only",
    assumptions="root element name undocumented (any XML of Event/Type/StartTime); start = first SLEEP epoch",
)
