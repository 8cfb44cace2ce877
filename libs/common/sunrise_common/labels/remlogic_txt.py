"""Embla / Natus RemLogic event export (``.txt``), English and localised.

Layout: a preamble (``RemLogic Event Export``, ``Patient:``, ``Patient ID:``, ``Recording
Date:`` dd/mm/yyyy, ``Events Included:`` and one code per line), then a tab-separated table
whose header names the columns; they are found by name (English, French, German, Dutch):

==========  ==========================================================================
role        header prefixes (accent- and case-insensitive)
==========  ==========================================================================
time        ``Time``, ``Heure``, ``Zeit``, ``Uhrzeit``, ``Tijd``
event       ``Event``, ``Evenement`` (``Événement``), ``Ereignis``, ``Gebeurtenis``
duration    ``Duration``, ``Duree``, ``Dauer``, ``Duur``
stage       ``Sleep Stage``, ``Stade``, ``Schlafstadium``, ``Slaapstadium``
location    ``Location``, ``Emplacement``, ``Ort``, ``Kanal``, ``Locatie``
==========  ==========================================================================

The German and Dutch words are our assumption [U]; French follows wonambi. Time cells:
``hh:mm:ss[.ffffff]``, ``hh.mm.ss``, 12-hour ``AM``/``PM``, decimal comma, or ISO
``YYYY-MM-DDThh:mm:ss``. Durations accept a decimal comma. Files are ISO-8859-1 or UTF-8
(BOM allowed), CRLF or LF.

Time base: the first table row's clock time on the ``Recording Date`` (the date of that row).
Time-only rows: offset from the start within ±12 h (a row up to 12 h before the start is before
it: lights off before the first epoch); further is the other day.

Stages: ``SLEEP-S0`` W, ``SLEEP-S1`` N1, ``SLEEP-S2`` N2, ``SLEEP-S3``/``SLEEP-S4`` N3,
``SLEEP-REM`` REM, ``SLEEP-MT`` and ``SLEEP-UNSCORED`` UNS (native code kept); the epoch length
is the duration of the SLEEP rows (30 by default); epochs missing between SLEEP rows are UNS
(not the previous stage, as the CAP reader pads). Lights: ``LIGHTS-OFF``, ``LIGHTS-ON``. Every
other row is an event with its channel (``Location``) and the stage column's value as
``Event.stage``. A DESAT row carries no SpO2 values in this export.

Sources: reference/label-formats.md §5a (wonambi, CAP Sleep Database reader, NSRR translator).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from .canonical import UNSCORED, LabelEvent, LabelSet, map_stage
from .common import (
    anon_shift,
    decode,
    encode,
    event_type,
    find_columns,
    fold,
    format_date_like,
    newline_of,
    number,
    offset_from_start,
    parse_clock,
    parse_date,
    per_epoch,
    safe_label,
)
from .common import lights_word
from .errors import LabelError
from .registry import Format, name_has

TITLE = "RemLogic text export"

ALIASES = {
    "time": ("time", "heure", "zeit", "uhrzeit", "tijd"),
    "event": ("event", "evenement", "venement", "ereignis", "gebeurtenis"),
    "duration": ("duration", "duree", "dauer", "duur"),
    "stage": ("sleep stage", "stade", "schlafstadium", "slaapstadium"),
    "location": ("location", "emplacement", "ort", "kanal", "locatie"),
}
_DATE_KEYS = ("recording date", "date d'enregistrement", "date d enregistrement", "aufnahmedatum",
              "aufzeichnungsdatum", "opnamedatum", "date")

SLEEP = {
    "sleep-s0": "W", "sleep-s1": "N1", "sleep-s2": "N2", "sleep-s3": "N3", "sleep-s4": "N3",
    "sleep-rem": "REM", "sleep-mt": UNSCORED, "sleep-unscored": UNSCORED,
}
_ISO = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[T ](\S+)\s*$")
_CANON_HEADER = ("Sleep Stage", "Time [hh:mm:ss]", "Event", "Duration[s]", "Location")


def _split(text: str) -> tuple[list[str], int, dict[str, int]]:
    lines = text.splitlines()
    for i, line in enumerate(lines[:400]):
        cells = line.split("\t")
        if len(cells) < 2:
            continue
        cols = find_columns(cells, ALIASES)
        if "time" in cols and "event" in cols:
            return lines, i, cols
    raise LabelError("bad_table", f"{TITLE}: no column header with a time and an event column in the first 400 lines")


def _recording_date(lines: list[str], header: int) -> tuple[date | None, int | None, str]:
    for i, line in enumerate(lines[:header]):
        key, sep, value = line.partition(":")
        if sep and fold(key) in _DATE_KEYS and value.strip():
            raw = value.strip()
            try:
                return parse_date(raw, f"line {i + 1}"), i, raw
            except LabelError:
                try:
                    return parse_date(raw, f"line {i + 1}", "YMD"), i, raw
                except LabelError:
                    raise LabelError("bad_date", f"{TITLE}: line {i + 1}: recording date is not a date") from None
    return None, None, ""


class _Row:
    __slots__ = ("iso", "tod", "event", "duration", "stage", "location", "cells")

    def __init__(self, cells: list[str], cols: dict[str, int], line_no: int) -> None:
        def cell(role: str) -> str:
            i = cols.get(role)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        self.cells = cells
        raw = cell("time")
        where = f"line {line_no}"
        m = _ISO.match(raw)
        if m:
            try:
                self.iso: datetime | None = datetime.fromisoformat(f"{m.group(1)}T{m.group(2).replace(',', '.')}")
            except ValueError:
                raise LabelError("bad_time", f"{TITLE}: {where}: time is not an ISO date-time") from None
            self.tod: time = self.iso.time()
        else:
            self.iso = None
            self.tod = parse_clock(raw, f"{TITLE}: {where}")
        self.event = cell("event")
        d = cell("duration")
        self.duration = number(d, "duration", f"{TITLE}: {where}") if d else 0.0
        self.stage = cell("stage")
        self.location = cell("location")


def _rows(lines: list[str], header: int, cols: dict[str, int]) -> list[tuple[int, _Row]]:
    out = []
    for i in range(header + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        out.append((i + 1, _Row(line.split("\t"), cols, i + 1)))
    return out


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    lines, header, cols = _split(text)
    rec_date, _, _ = _recording_date(lines, header)
    rows = _rows(lines, header, cols)
    warnings: list[str] = []
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no rows after the column header (line {header + 1})")
    first = rows[0][1]
    start_tod = first.tod
    start: datetime | None = first.iso
    if start is None and rec_date is not None:
        start = datetime.combine(rec_date, start_tod)
    if start is None:
        warnings.append("no recording date: time of day only")

    def offset(r: _Row) -> float:
        if r.iso is not None and start is not None:
            return (r.iso - start).total_seconds()
        return offset_from_start(r.tod, start_tod)

    sleep = [(n, r) for n, r in rows if fold(r.event).startswith("sleep-")]
    epoch_s = 30.0
    if sleep:
        durs = sorted(r.duration for _, r in sleep if r.duration > 0)
        if durs:
            epoch_s = durs[len(durs) // 2]
    by_index: dict[int, tuple[str, str]] = {}
    t0 = None
    unknown = dup = off_grid = 0
    for _n, r in sleep:
        off = offset(r)
        if t0 is None:
            t0 = off
        idx = round((off - t0) / epoch_s)
        if abs(idx * epoch_s - (off - t0)) > 1.0:
            off_grid += 1
        stage = SLEEP.get(fold(r.event))
        if stage is None:
            unknown += 1
            stage = UNSCORED
        if idx in by_index or idx < 0:
            dup += 1
            continue
        by_index[idx] = (stage, r.event)
    hyp = None
    if by_index:
        n = max(by_index) + 1
        missing = n - len(by_index)
        if missing:
            warnings.append(f"{missing} epoch(s) missing between SLEEP rows: {UNSCORED}")
        hyp = per_epoch([by_index.get(i, (UNSCORED, "")) for i in range(n)], epoch_s, onset_s=t0 or 0.0)
    if unknown:
        warnings.append(f"{unknown} SLEEP- code(s) not in the vocabulary: {UNSCORED}")
    if dup:
        warnings.append(f"{dup} SLEEP row(s) repeat an epoch: first kept")
    if off_grid:
        warnings.append(f"{off_grid} SLEEP row(s) off the {epoch_s:g}-s grid: snapped")
    events: list[LabelEvent] = []
    lights: dict[str, float] = {}
    for _n, r in rows:
        if fold(r.event).startswith("sleep-"):
            continue
        which = lights_word(r.event.replace("-", " "))
        if which is not None:
            lights.setdefault(which, offset(r))
            continue
        stage = None
        if r.stage:
            st, known = map_stage(r.stage)
            stage = st if known else None
        events.append(LabelEvent(type=event_type(r.event), onset_s=offset(r), duration_s=r.duration,
                            channel=r.location, label=r.event, stage=stage))
    return LabelSet(start=start, hypnogram=hyp, events=events, source_kind="remlogic_txt", warnings=warnings,
                    start_time=start_tod, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Rewrite the export with only what ``parse`` reads.

    Preamble: only ``RemLogic Event Export`` and ``Recording Date:`` (moved to 1 January of its
    year, same layout) are written; patient name, ID and the event list are dropped. Table: the
    header is written in English (``Sleep Stage``, ``Time [hh:mm:ss]``, ``Event``, ``Duration[s]``,
    ``Location``) and every row keeps only those five cells; ISO time cells are shifted by the
    same days. Encoding, BOM and line endings are kept.
    """
    text, codec, bom = decode(data)
    nl = newline_of(text)
    lines, header, cols = _split(text)
    rec_date, _, raw_date = _recording_date(lines, header)
    rows = _rows(lines, header, cols)
    first = rows[0][1] if rows else None
    start = None
    if first is not None:
        start = first.iso or (datetime.combine(rec_date, first.tod) if rec_date else None)
    shift = anon_shift(start.date()) if start is not None else timedelta(0)
    out = ["RemLogic Event Export"]
    if rec_date is not None:
        out.append("Recording Date:\t" + format_date_like(raw_date, rec_date + shift))
    out.append("")
    out.append("\t".join(_CANON_HEADER))
    roles = ("stage", "time", "event", "duration", "location")
    for _n, r in rows:
        cells = []
        for role in roles:
            i = cols.get(role)
            v = r.cells[i].strip() if i is not None and i < len(r.cells) else ""
            if role == "time" and r.iso is not None:
                v = (r.iso + shift).isoformat()
            if role == "event" and not fold(v).startswith("sleep-"):
                v = safe_label(v)
            cells.append(v)
        out.append("\t".join(cells))
    return encode(nl.join(out) + nl, codec, bom), start


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0]
    if text.lstrip().lower().startswith("remlogic event export"):
        return 2
    if re.search(r"SLEEP-(?:S[0-4]|REM|MT|UNSCORED)\b", text) or re.search(r"\t(?:APNEA|HYPOPNEA|DESAT|AROUSAL)", text):
        try:
            _split(text)
        except LabelError:
            return 0
        return 2 if "\t" in text else 1 if name_has(name, (".txt",)) else 0
    return 0


FORMAT = Format(
    kind="remlogic_txt",
    title=TITLE,
    producer="Embla / Natus RemLogic (event export)",
    extensions=(".txt",),
    out_extension="txt",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="SLEEP-* rows per epoch, events with duration, channel and stage column, LIGHTS-OFF/ON, "
    "Recording Date + first row time",
    anonymised="preamble reduced to the title and the shifted Recording Date; rows keep five columns",
    assumptions="start = first row's clock on Recording Date; ±12 h midnight rule; German/Dutch headers "
    "and decimal commas accepted (unverified); missing epochs UNS",
)
