"""Wisconsin Sleep Cohort (NSRR WSC) scoring text [U: layout from the NSRR harmonisation note's
examples, no full file seen].

Rows ``hh:mm:ss[.ff]<TAB>TEXT``, the text in `` - ``-separated parts: ``STAGE - N2`` (a stage
change: staging is written as changes only), ``LIGHTS OUT``/``LIGHTS ON``, ``RESPIRATORY EVENT -
DUR: 44.9 SEC. - HYPOPNEA - DESAT 91.6 %``, ``DESATURATION - DUR: 20 SEC. - MIN 91.6 % - DROP 3.1
%`` (nadir 91.6, baseline = nadir + drop), and other events (type from their words, duration from
``DUR: x SEC.``). Times are time of day only: the first row is the start, the rest follow the
±12 h midnight rule. The last stage run ends at the last row of the file (at least one epoch):
the file does not carry the recording end.

Sources: reference/label-formats.md §15 (NSRR "Harmonizing sleep data across the NSRR", WSC).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import LabelEvent, LabelSet, map_stage
from .common import decode, encode, event_type, expand_spans, newline_of, offset_from_start, parse_clock, safe_label, transitions_to_spans
from .common import lights_word
from .errors import LabelError
from .registry import Format

TITLE = "WSC scoring text"
_ROW = re.compile(r"^\s*(\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)\t(.*)$")
_DUR = re.compile(r"^DUR:\s*(\d+(?:\.\d+)?)\s*SEC\.?$", re.IGNORECASE)
_PCT = re.compile(r"^(MIN|DROP|DESAT)\s*(\d+(?:\.\d+)?)\s*%$", re.IGNORECASE)


def _rows(text: str) -> list[tuple[int, str, list[str]]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _ROW.match(line)
        if m is None:
            raise LabelError("bad_row", f"{TITLE}: line {n} is not 'hh:mm:ss<TAB>text'")
        out.append((n, m.group(1), [p.strip() for p in m.group(2).split(" - ")]))
    return out


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    rows = _rows(text)
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no rows")
    start = parse_clock(rows[0][1], f"{TITLE}: line {rows[0][0]}")
    changes = []
    events = []
    lights: dict[str, float] = {}
    last = 0.0
    for n, clock, parts in rows:
        off = offset_from_start(parse_clock(clock, f"{TITLE}: line {n}"), start)
        last = max(last, off)
        head = parts[0].upper()
        if head == "STAGE" and len(parts) > 1:
            stage, known = map_stage(parts[1])
            changes.append((off, stage, parts[1]))
            continue
        which = lights_word(parts[0])
        if which is not None:
            lights.setdefault(which, off)
            continue
        duration = 0.0
        pct: dict[str, float] = {}
        names = []
        for p in parts:
            m = _DUR.match(p)
            if m:
                duration = float(m.group(1))
                continue
            m = _PCT.match(p)
            if m:
                pct[m.group(1).lower()] = float(m.group(2))
                continue
            names.append(p)
        label = " - ".join(names)
        etype = "other"
        for p in reversed(names):  # RESPIRATORY EVENT - ... - HYPOPNEA: the specific word is last
            etype = event_type(p)
            if etype != "other":
                break
        nadir = baseline = None
        if etype == "desaturation":
            nadir = pct.get("min", pct.get("desat"))
            if nadir is not None and "drop" in pct:
                baseline = nadir + pct["drop"]
        events.append(LabelEvent(type=etype, onset_s=off, duration_s=duration, label=label, nadir=nadir, baseline=baseline))
    hyp = None
    warnings = ["WSC text has no date: time of day only"]
    if changes:
        end = max(last, max(c[0] for c in changes) + 30.0)
        hyp = expand_spans(transitions_to_spans(changes, end), 30.0, warnings, origin=0.0)
        warnings.append("the last stage run ends at the file's last row (the recording end is not in the file)")
    return LabelSet(start=None, hypnogram=hyp, events=events, source_kind="wsc_txt", warnings=warnings,
                    start_time=start, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Each row keeps its time, and of its text only stage codes, lights words, ``DUR``/``MIN``/
    ``DROP``/``DESAT`` values and event words that name a known type (others -> ``other``)."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    out = []
    for _, clock, parts in _rows(text):
        head = parts[0].upper()
        if head == "STAGE" and len(parts) > 1:
            code = parts[1] if map_stage(parts[1])[1] else "?"
            out.append(f"{clock}\tSTAGE - {code}")
            continue
        kept = []
        for p in parts:
            if _DUR.match(p) or _PCT.match(p) or lights_word(p) is not None:
                kept.append(p)
            elif p.upper() in ("RESPIRATORY EVENT", "LIMB MOVEMENT", "AROUSAL EVENT"):
                kept.append(p.upper())
            else:
                kept.append(safe_label(p))
        out.append(f"{clock}\t" + " - ".join(kept))
    return encode(nl.join(out) + nl, codec, bom), None


def sniff(head: bytes, name: str) -> int:
    lines = [ln for ln in decode(head)[0].splitlines()[:-1] if ln.strip()][:60]
    if len(lines) >= 2 and all(_ROW.match(ln) for ln in lines) and any("STAGE - " in ln.upper() for ln in lines):
        return 2
    return 0


FORMAT = Format(
    kind="wsc_txt",
    title=TITLE,
    producer="Wisconsin Sleep Cohort scoring text (NSRR WSC)",
    extensions=(".txt",),
    out_extension="txt",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="STAGE changes, LIGHTS OUT/ON, events with DUR, desaturation MIN/DROP (nadir, baseline)",
    anonymised="rows rebuilt from times, stage codes, numbers and known event words (others -> other)",
    assumptions="layout from the NSRR note's examples; first row = start; last stage run ends at the last row",
)
