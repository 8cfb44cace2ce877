"""Luna XML annotations (``<Annotations>``, Luna's ``WRITE-ANNOTS`` XML).

Layout (luna-doc): ``<Annotations>`` with ``SoftwareVersion``, ``StartTime``, ``Duration``,
``DurationSeconds``, ``EpochLength``, ``Classes/Class`` (``Name``, ``Description``, ``Variable``)
and ``Instances/Instance`` (``Class``, ``Name``, ``Start``, ``Duration``, ``Channel``,
``Value var=...``). Instance ``Start`` and ``Duration`` are read as seconds from the EDF start
(``hh:mm:ss`` clock values are placed against ``StartTime`` with the ±12 h rule) [U: the doc
gives no example values]. ``StartTime`` is a time of day (``hh.mm.ss`` or ``hh:mm:ss``); the date
is not in the file.

Classes are read as in ``luna_annot`` (stages and their remap aliases, ``lights_off``/``lights_on``,
events typed from the instance name when it names a type, else from the class); ``Value``
elements named ``baseline`` and ``nadir`` give the SpO2 values.

Sources: reference/label-formats.md §13 (luna-doc annotations).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, time

from .canonical import LabelEvent, LabelSet
from .common import event_type, expand_spans, offset_from_start, parse_clock, safe_label
from .common import lights_word
from .errors import LabelError
from .limits import local, xml_root
from .luna_annot import place_class, stage_of
from .registry import Format

TITLE = "Luna XML"


def _child(el: ET.Element, tag: str) -> ET.Element | None:
    return next((c for c in el if local(c.tag) == tag), None)


def _text(el: ET.Element, tag: str) -> str:
    c = _child(el, tag)
    return "" if c is None else (c.text or "").strip()


def _root(data: bytes) -> ET.Element:
    return xml_root(data, TITLE, "Annotations")


def _instances(root: ET.Element) -> list[ET.Element]:
    box = _child(root, "Instances")
    return [i for i in (box if box is not None else []) if local(i.tag) == "Instance"]


def parse(data: bytes) -> LabelSet:
    root = _root(data)
    raw_start = _text(root, "StartTime")
    start_tod: time | None = parse_clock(raw_start.split()[-1], f"{TITLE}: StartTime") if raw_start else None

    def secs(raw: str, what: str, where: str) -> float:
        if re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
            return float(raw)
        if start_tod is not None and re.fullmatch(r"\d{1,2}[:.]\d{2}[:.]\d{2}(?:\.\d+)?", raw):
            return offset_from_start(parse_clock(raw, where), start_tod)
        raise LabelError("bad_time", f"{where}: {what} is not seconds or hh:mm:ss")

    spans, events = [], []
    lights: dict[str, float] = {}
    for i, inst in enumerate(_instances(root)):
        where = f"{TITLE}: Instance {i}"
        cls, name = _text(inst, "Class"), _text(inst, "Name")
        onset = secs(_text(inst, "Start"), "Start", where)
        d = _text(inst, "Duration")
        duration = secs(d, "Duration", where) if re.fullmatch(r"-?\d+(?:\.\d+)?", d or "x") else 0.0
        if place_class(cls, onset, duration, spans, lights):
            continue
        values: dict[str, float] = {}
        for v in inst:
            if local(v.tag) == "Value":
                try:
                    values[(v.get("var") or v.get("name") or "").lower()] = float((v.text or "").strip())
                except ValueError:
                    continue
        etype = event_type(name) if name and name != "." else "other"
        if etype == "other":
            etype = event_type(cls)
        ch = _text(inst, "Channel")
        events.append(LabelEvent(type=etype, onset_s=onset, duration_s=max(duration, 0.0),
                            channel="" if ch == "." else ch, label=cls,
                            baseline=values.get("baseline"), nadir=values.get("nadir")))
    warnings = [] if start_tod is not None else ["no StartTime: onsets are from the PSG start"]
    hyp = expand_spans(spans, 30.0, warnings, origin=0.0) if spans else None
    return LabelSet(start=None, hypnogram=hyp, events=events, source_kind="luna_xml", warnings=warnings,
                    start_time=start_tod, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Rebuilt with ``StartTime`` (time of day), ``EpochLength`` and each instance's class,
    name (free text -> ``other``), start, duration, channel and numeric baseline/nadir values."""
    root = _root(data)
    out = ET.Element("Annotations")
    out.text = "\n"
    for tag in ("StartTime", "EpochLength"):
        v = _text(root, tag)
        if v:
            ET.SubElement(out, tag).text = v.split()[-1] if tag == "StartTime" else v
    box = ET.SubElement(out, "Instances")
    for inst in _instances(root):
        new = ET.SubElement(box, "Instance")
        new.tail = "\n"
        cls = _text(inst, "Class")
        keep_cls = stage_of(cls) is not None or lights_word(cls.replace("_", " ")) is not None
        ET.SubElement(new, "Class").text = cls if keep_cls else safe_label(cls)
        name = _text(inst, "Name")
        ET.SubElement(new, "Name").text = "." if name in ("", ".") else safe_label(name)
        for tag in ("Start", "Duration", "Channel"):
            ET.SubElement(new, tag).text = _text(inst, tag)
        for v in inst:
            var = (v.get("var") or v.get("name") or "").lower()
            if local(v.tag) == "Value" and var in ("baseline", "nadir") and re.fullmatch(r"-?\d+(?:\.\d+)?", (v.text or "").strip()):
                ET.SubElement(new, "Value", {"var": var}).text = (v.text or "").strip()
    return ET.tostring(out, encoding="utf-8", xml_declaration=True), None


def sniff(head: bytes, name: str) -> int:
    return 2 if re.search(rb"<\s*Annotations\b", head[:4096]) and b"<Instance" in head else 0


FORMAT = Format(
    kind="luna_xml",
    title=TITLE,
    producer="Luna (WRITE-ANNOTS xml)",
    extensions=(".xml",),
    out_extension="xml",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    is_text=False,
    reads="Instances (class, name, start, duration, channel, baseline/nadir values), StartTime",
    anonymised="rebuilt from the read fields; descriptions dropped, free-text names -> other",
    assumptions="Start/Duration in seconds (undocumented; hh:mm:ss placed against StartTime)",
)
