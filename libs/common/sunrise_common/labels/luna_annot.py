"""Luna ``.annot`` (tab-separated annotation table).

Rows: ``class instance channel start stop meta`` (6 columns), ``class instance start stop`` (4)
or ``class start stop`` (3); ``.`` is missing; an optional column-header line (``class
instance ...``) and ``# class | description | key[type] ...`` header lines (the keys type the
positional meta values, e.g. ``# desat | SpO2 desaturation | baseline[num] nadir[num]`` with
meta ``95;90``; ``key=value`` pairs separated by ``;`` or ``|`` are read too).

Times: elapsed seconds; ``0+hh:mm:ss`` elapsed clock; ``hh:mm:ss[.fff]``/``hh.mm.ss`` clock
times; ``e:N[:len]`` 1-based epochs. Stop: a time, ``+duration`` or ``...`` (until the next row).
Clock times are placed relative to the file's first clock time, which we take as the EDF start
(Luna uses the EDF header, which a label upload does not have) [assumption, reported as a
warning], with the ±12 h midnight rule. Dated times (``dd-mm-yy-hh:mm:ss``) and day offsets are
refused with a reason (not needed by any export we know).

Classes: stages ``W``, ``N1``-``N3``, ``R``, ``?`` and the Luna remap aliases (``NREM2``,
``Stage 2 sleep|2``, ``SRO:Stage2Sleep``...), ``U``/``M``/``L`` -> UNS; ``lights_off`` and
``lights_on`` are the lights markers; every other class is an event, typed from its instance
when that names a type (``arousal:respiratory`` with instance ``RERA`` is a RERA), else from the
class (``apnea:obstructive``, ``desat``, ``LM:left``...).

Sources: reference/label-formats.md §13 (luna-base ``annot.cpp``, luna-doc annotations).
"""

from __future__ import annotations

import re
from datetime import datetime, time

from .canonical import UNSCORED, LabelEvent, LabelSet, map_stage
from .common import decode, encode, event_type, expand_spans, newline_of, number, offset_from_start, parse_clock, safe_label
from .common import lights_word
from .errors import LabelError
from .nsrr_xml import stage_of as nsrr_stage_of
from .registry import Format, name_has

TITLE = "Luna .annot"
_LUNA_STAGES = {"w": "W", "r": "REM", "?": UNSCORED, "u": UNSCORED, "m": UNSCORED, "l": UNSCORED}
_HEADER = re.compile(r"^\s*#\s*([^|]+?)\s*\|\s*([^|]*?)\s*(?:\|\s*(.*))?$")
_ELAPSED = re.compile(r"^0\+(\d{1,3}):(\d{2}):(\d{2}(?:\.\d+)?)$")
_EPOCH = re.compile(r"^e:(\d+)(?::(\d+(?:\.\d+)?))?(?::\d+)?$")


def stage_of(cls: str) -> str | None:
    c = cls.strip()
    if c.lower() in _LUNA_STAGES:
        return _LUNA_STAGES[c.lower()]
    stage, known = nsrr_stage_of(c, "")
    if stage is not None:
        return stage
    stage, known = map_stage(c)
    return stage if known and len(c) > 1 else None


def place_class(cls: str, onset: float, duration: float, spans: list, lights: dict[str, float]) -> bool:
    """Record a Luna class (.annot or XML) that is a stage (a span of ``duration`` s from ``onset``
    s, 30 s when it has none) or a lights marker; True when it was one (not an event)."""
    stage = stage_of(cls)
    if stage is not None:
        spans.append((onset, duration if duration > 0 else 30.0, stage, cls))
        return True
    which = lights_word(cls.replace("_", " "))
    if which is not None:
        lights.setdefault(which, onset)
        return True
    return False


class _Rows:
    def __init__(self, text: str) -> None:
        self.keys: dict[str, list[str]] = {}
        self.rows: list[tuple[int, list[str]]] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                m = _HEADER.match(line)
                if m:
                    self.keys[m.group(1)] = [re.sub(r"\[.*?\]$", "", k) for k in (m.group(3) or "").split()]
                continue
            cells = line.split("\t") if "\t" in line else line.split()
            cells = [c.strip() for c in cells]
            if [c.lower() for c in cells[:2]] in (["class", "instance"], ["class", "start"]):
                continue
            if len(cells) not in (3, 4, 6):
                raise LabelError("bad_row", f"{TITLE}: line {n} has {len(cells)} columns (3, 4 or 6 expected)")
            if len(cells) == 3:
                cells = [cells[0], ".", ".", cells[1], cells[2], "."]
            elif len(cells) == 4:
                cells = [cells[0], cells[1], ".", cells[2], cells[3], "."]
            self.rows.append((n, cells))


def _meta(meta: str, names: list[str]) -> dict[str, float]:
    """Numeric meta values by lower-case key: ``key=value`` pairs or positional values named by
    the class's header keys (``baseline[num] nadir[num]`` + ``95;90``)."""
    values: dict[str, float] = {}
    if meta in (".", ""):
        return values
    for j, p in enumerate(re.split(r"[;|]", meta)):
        k, eq, v = p.partition("=")
        key, val = (k.strip(), v) if eq else (names[j] if j < len(names) else f"v{j}", k)
        try:
            values[key.lower()] = float(val.strip().replace(",", "."))
        except ValueError:
            continue
    return values


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    table = _Rows(text)
    warnings: list[str] = []
    anchor: time | None = None
    for _, cells in table.rows:
        if ":" in cells[3] and not cells[3].startswith(("0+", "e:")):
            anchor = parse_clock(cells[3], f"{TITLE}: first clock time")
            break
    if anchor is not None:
        warnings.append("clock times placed from the file's first clock time, taken as the EDF start")

    def when(raw: str, where: str) -> float:
        m = _ELAPSED.match(raw)
        if m:
            return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        m = _EPOCH.match(raw)
        if m:
            return (int(m.group(1)) - 1) * float(m.group(2) or 30)
        if re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
            return float(raw)
        if re.fullmatch(r"\d{1,2}[:.]\d{2}[:.]\d{2}(?:\.\d+)?", raw) and anchor is not None:
            return offset_from_start(parse_clock(raw, where), anchor)
        raise LabelError("bad_time", f"{where}: time is not seconds, hh:mm:ss, 0+hh:mm:ss or e:N (dated times unsupported)")

    spans = []
    events = []
    lights: dict[str, float] = {}
    parsed = []
    for n, cells in table.rows:
        where = f"{TITLE}: line {n}"
        parsed.append((n, cells, when(cells[3], where)))
    for i, (n, cells, onset) in enumerate(parsed):
        where = f"{TITLE}: line {n}"
        stop = cells[4]
        if stop.startswith("+"):
            duration = number(stop[1:], "duration", where)
        elif stop == "...":
            duration = (parsed[i + 1][2] - onset) if i + 1 < len(parsed) else 30.0
        elif stop == ".":
            duration = 0.0
        else:
            m = _EPOCH.match(stop)
            duration = (int(m.group(1)) * float(m.group(2) or 30) - onset) if m else when(stop, where) - onset
        cls, inst, chan, meta = cells[0], cells[1], cells[2], cells[5]
        if place_class(cls, onset, duration, spans, lights):
            continue
        values = _meta(meta, table.keys.get(cls, []))
        etype = event_type(inst) if inst not in (".", "") else "other"
        if etype == "other":
            etype = event_type(cls)
        events.append(LabelEvent(type=etype, onset_s=onset, duration_s=max(duration, 0.0),
                            channel="" if chan == "." else chan, label=cls,
                            baseline=values.get("baseline"), nadir=values.get("nadir")))
    hyp = expand_spans(spans, 30.0, warnings, origin=0.0) if spans else None
    return LabelSet(start=None, hypnogram=hyp, events=events, source_kind="luna_annot", warnings=warnings,
                    start_time=anchor, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Header lines keep only the class (descriptions and keys dropped); free-text classes and
    instances that name no stage, event or lights marker become ``other``; meta keeps only the
    ``baseline=``/``nadir=`` values (header keys and other meta dropped). Times carry no date here,
    so none is shifted."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    table = _Rows(text)
    out = []
    for cls in table.keys:
        name = cls if stage_of(cls) is not None or lights_word(cls.replace("_", " ")) else safe_label(cls)
        out.append(f"# {name} | {name}")
    out.append("class\tinstance\tchannel\tstart\tstop\tmeta")
    for _, cells in table.rows:
        cls = cells[0] if stage_of(cells[0]) is not None or lights_word(cells[0].replace("_", " ")) else safe_label(cells[0])
        inst = cells[1] if cells[1] == "." else safe_label(cells[1])
        values = _meta(cells[5], table.keys.get(cells[0], []))
        meta = ";".join(f"{k}={values[k]:g}" for k in ("baseline", "nadir") if k in values) or "."
        out.append("\t".join([cls, inst, cells[2], cells[3], cells[4], meta]))
    return encode(nl.join(out) + nl, codec, bom), None


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if any(re.match(r"^class\tinstance\t", ln) for ln in lines[:50]):
        return 2
    if name_has(name, (".annot",)) and lines:
        return 1
    return 0


FORMAT = Format(
    kind="luna_annot",
    title=TITLE,
    producer="Luna (remnrem/luna-base)",
    extensions=(".annot",),
    out_extension="annot",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="stage rows (Luna classes and remap aliases), events with channel, instance and typed meta "
    "(baseline, nadir), lights_off/lights_on; seconds, clock, 0+ elapsed and e:N times; +dur and ...",
    anonymised="descriptions dropped; free-text classes/instances -> other; non-numeric meta dropped",
    assumptions="the first clock time is the EDF start; ±12 h midnight rule; dated times refused",
)
