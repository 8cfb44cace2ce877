"""Philips Respironics Alice / Sleepware RML (``PatientStudy`` XML, ``.rml``).

Read (all tags without their namespace, default ``http://www.respironics.com/PatientStudy.xsd``):

- ``Acquisition/Sessions/Session``: ``RecordingStart`` (ISO ``YYYY-MM-DDTHH:MM:SS``, local, no
  zone), ``Duration`` (s), ``LightsOff``/``LightsOn`` (s from the start, either may be missing);
- ``ScoringData/StagingData/UserStaging/NeuroAdultAASMStaging/Stage`` (``Type``, ``Start``):
  transitions only; each run lasts until the next ``Start``, the last one until the session's
  ``Duration`` (the recording end). ``MachineStaging`` (Somnolyzer auto-scoring) is ignored on
  purpose. Types: ``Wake``, ``NonREM1``-``NonREM4`` (4 -> N3), ``REM``, ``NotScored`` (UNS);
- ``ScoringData/Events/Event`` (``Family``, ``Type``, ``Start``, ``Duration``): desaturations
  carry ``O2Before`` (baseline) and ``O2Min`` (nadir); ``LegMovement`` carries
  ``<LegMovement EdfSignal="n"/>``, whose channel label (``ChannelConfig/Channels/Channel``)
  becomes ``Event.channel`` (the leg side). Arousal subtypes are not represented in RML as far as
  we know [U]: every ``Arousal`` is ``arousal``.

Sources: reference/label-formats.md §6a (pyPhasesRecordloader, public RML readers).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from .canonical import UNSCORED, LabelEvent, LabelSet, map_event
from .common import XmlSpec, anon_shift, expand_spans, optional_number, prune, transitions_to_spans
from .errors import LabelError
from .limits import local, xml_root
from .registry import Format

TITLE = "Respironics Alice RML"

STAGES = {
    "wake": "W", "nonrem1": "N1", "nonrem2": "N2", "nonrem3": "N3", "nonrem4": "N3", "rem": "REM",
    "notscored": UNSCORED,
}

_LEAF = (frozenset(), None)
SPEC: XmlSpec = {
    "ChannelConfig": (frozenset(), {
        "Channels": (frozenset(), {"Channel": (frozenset({"EdfSignal"}), {"Label": _LEAF})}),
    }),
    "Acquisition": (frozenset(), {
        "Sessions": (frozenset(), {
            "Session": (frozenset(), {t: _LEAF for t in ("RecordingStart", "Duration", "LightsOff", "LightsOn")}),
        }),
    }),
    "ScoringData": (frozenset(), {
        "Events": (frozenset(), {
            "Event": (frozenset({"Family", "Type", "Start", "Duration", "Machine"}), {
                "O2Before": _LEAF, "O2Min": _LEAF, "LegMovement": (frozenset({"EdfSignal"}), None),
            }),
        }),
        "StagingData": (frozenset(), {
            "UserStaging": (frozenset(), {
                "NeuroAdultAASMStaging": (frozenset(), {"Stage": (frozenset({"Type", "Start"}), None)}),
            }),
        }),
    }),
}


def _find(el: ET.Element, *path: str) -> list[ET.Element]:
    out = [el]
    for tag in path:
        out = [c for e in out for c in e if local(c.tag) == tag]
    return out


def _num(raw: str | None, what: str, where: str) -> float | None:
    return optional_number(raw, what, where, TITLE)


def _root(data: bytes) -> ET.Element:
    return xml_root(data, TITLE, "PatientStudy")


def _start(raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        raise LabelError("bad_start_time", f"{TITLE}: RecordingStart is not YYYY-MM-DDTHH:MM:SS") from None


def parse(data: bytes) -> LabelSet:
    root = _root(data)
    warnings: list[str] = []
    sessions = _find(root, "Acquisition", "Sessions", "Session")
    if len(sessions) > 1:
        warnings.append(f"{len(sessions)} sessions: the first is read")
    session = sessions[0] if sessions else None
    start = None
    duration = lights_off = lights_on = None
    if session is not None:
        rs = _find(session, "RecordingStart")
        start = _start(rs[0].text or "") if rs and (rs[0].text or "").strip() else None
        du = _find(session, "Duration")
        duration = _num(du[0].text if du else None, "Duration", "Session")
        lo = _find(session, "LightsOff")
        lights_off = _num(lo[0].text if lo else None, "LightsOff", "Session")
        ln = _find(session, "LightsOn")
        lights_on = _num(ln[0].text if ln else None, "LightsOn", "Session")
    if start is None:
        warnings.append("no RecordingStart: start unknown")
    channels = {c.get("EdfSignal"): (_find(c, "Label") or [None])[0] for c in _find(root, "ChannelConfig", "Channels", "Channel")}
    changes: list[tuple[float, str, str]] = []
    unknown = 0
    for i, st in enumerate(_find(root, "ScoringData", "StagingData", "UserStaging", "NeuroAdultAASMStaging", "Stage")):
        t = _num(st.get("Start"), "Start", f"Stage {i}")
        if t is None:
            warnings.append(f"Stage {i}: no Start, skipped")
            continue
        native = st.get("Type") or ""
        stage = STAGES.get(native.lower())
        if stage is None:
            unknown += 1
            stage = UNSCORED
        changes.append((t, stage, native))
    if unknown:
        warnings.append(f"{unknown} stage type(s) not in the RML vocabulary: mapped to {UNSCORED}")
    hyp = None
    if changes:
        end = duration
        if end is None:
            end = max(c[0] for c in changes) + 30.0
            warnings.append("no Session Duration: the last stage run is one epoch long")
        hyp = expand_spans(transitions_to_spans(changes, end), 30.0, warnings, origin=0.0)
    events: list[LabelEvent] = []
    for i, ev in enumerate(_find(root, "ScoringData", "Events", "Event")):
        where = f"Event {i}"
        onset = _num(ev.get("Start"), "Start", where)
        if onset is None:
            warnings.append(f"{where}: no Start, skipped")
            continue
        etype = ev.get("Type") or ""
        channel = ""
        leg = _find(ev, "LegMovement")
        if leg:
            label_el = channels.get(leg[0].get("EdfSignal"))
            channel = (label_el.text or "").strip() if label_el is not None else ""
        before = _find(ev, "O2Before")
        low = _find(ev, "O2Min")
        events.append(LabelEvent(
            type=map_event(etype), onset_s=onset, duration_s=_num(ev.get("Duration"), "Duration", where) or 0.0,
            channel=channel, label=etype,
            baseline=_num(before[0].text if before else None, "O2Before", where),
            nadir=_num(low[0].text if low else None, "O2Min", where),
        ))
    return LabelSet(start=start, hypnogram=hyp, events=events, source_kind="alice_rml", warnings=warnings,
                    lights_off_s=lights_off, lights_on_s=lights_on)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep only what ``parse`` reads (channel labels, session timing, user staging, events without
    comments); ``RecordingStart`` moves to 1 January of its year (relative times unchanged)."""
    root = _root(data)
    start = None
    for rs in _find(root, "Acquisition", "Sessions", "Session", "RecordingStart"):
        if (rs.text or "").strip():
            orig = _start(rs.text or "")
            start = start or orig
            moved = orig + timedelta(days=anon_shift(orig.date()).days)
            rs.text = moved.isoformat()
    for a in list(root.attrib):
        del root.attrib[a]
    root.text = "\n"
    prune(root, SPEC)
    ET.register_namespace("", "http://www.respironics.com/PatientStudy.xsd")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True), start


def sniff(head: bytes, name: str) -> int:
    return 2 if re.search(rb"<\s*(?:\w+:)?PatientStudy\b", head[:4096]) else 0


FORMAT = Format(
    kind="alice_rml",
    title=TITLE,
    producer="Philips Respironics Alice / Sleepware G3",
    extensions=(".rml",),
    out_extension="rml",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    is_text=False,
    reads="UserStaging transitions (last run ends at Session Duration), events with O2Before/O2Min and "
    "leg channel, LightsOff/LightsOn, RecordingStart",
    anonymised="everything not read is dropped (patient, comments, machine staging); RecordingStart date "
    "shifted to 1 January of its year",
    assumptions="first session only; arousal subtypes not encoded; MachineStaging ignored",
)
