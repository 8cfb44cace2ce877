"""Natus/Embla Sandman Elite event listing (``.txt``) — low-confidence layout [U].

Layout pieced together from the NSRR translator and wonambi (no vendor sample was available):
a preamble with ``Start Time: dd/mm/yyyy hh:mm:ss AM|PM`` (also 24-hour), then a tab-separated
table whose header line holds ``Epoch``, an event column (``Event``) and a clock column
(``Start Time`` or ``Time``), optionally ``Duration``. Rows are time-only 12-hour clock times
(``11:59:30 PM``); their offset from the header start follows the ±12 h midnight rule. Without a
``Start Time:`` line, the first row's time is the start (date unknown).

Stage rows are rows with a duration whose event is a stage name (``Wake``, ``Stage 1``-``Stage
4`` (R&K, 3/4 -> N3), ``REM``/``Rem``, ``N1``-``N3``, ``Movement``/``MT`` and ``Unscored`` ->
UNS with the name kept); each is one epoch. ``Lights Out``/``Lights Off``/``Lights On`` rows are
the lights markers; everything else is an event. Files are ISO-8859-1 (UTF-8 accepted).

Sources: reference/label-formats.md §7 (NSRR translator ``convertSandman``, wonambi).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import LabelEvent, LabelSet, map_stage
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
from .registry import Format

TITLE = "Sandman event listing"

ALIASES = {
    "epoch": ("epoch",),
    "event": ("event",),
    "time": ("start time", "time", "clock"),
    "duration": ("duration",),
}
_START = re.compile(r"^\s*start\s*time\s*:\s*(\S+)\s+(.+?)\s*$", re.IGNORECASE)
_STAGE_WORD = re.compile(r"^(wake|stage\s*[1-4]|rem|n[1-3]|movement|mt|unscored)$", re.IGNORECASE)


def _table(text: str) -> tuple[list[str], int, dict[str, int]]:
    lines = text.splitlines()
    for i, line in enumerate(lines[:200]):
        cells = line.split("\t")
        cols = find_columns(cells, ALIASES)
        if {"epoch", "event", "time"} <= set(cols) and fold(cells[cols["epoch"]]) == "epoch":
            return lines, i, cols
    raise LabelError("bad_table", f"{TITLE}: no Epoch / Event / Start Time header in the first 200 lines")


def _header_start(lines: list[str], header: int) -> tuple[datetime | None, int | None, str]:
    for i, line in enumerate(lines[:header]):
        m = _START.match(line)
        if m:
            where = f"{TITLE}: line {i + 1}"
            d = parse_date(m.group(1), where)
            return datetime.combine(d, parse_clock(m.group(2), where)), i, m.group(1)
    return None, None, ""


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    lines, header, cols = _table(text)
    start, _, _ = _header_start(lines, header)
    warnings: list[str] = []
    rows = []
    for i in range(header + 1, len(lines)):
        cells = lines[i].split("\t")
        if not lines[i].strip():
            continue

        def cell(role: str, cells: list[str] = cells) -> str:
            j = cols.get(role)
            return cells[j].strip() if j is not None and j < len(cells) else ""

        where = f"{TITLE}: line {i + 1}"
        tod = parse_clock(cell("time"), where)
        dur = cell("duration")
        rows.append((cell("event"), tod, number(dur, "duration", where) if dur else None))
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no rows after the column header (line {header + 1})")
    start_tod = start.time() if start is not None else rows[0][1]
    if start is None:
        warnings.append("no 'Start Time:' line: the first row's time is the start, date unknown")
    codes: dict[int, tuple[str, str]] = {}
    events: list[LabelEvent] = []
    lights: dict[str, float] = {}
    t0: float | None = None
    for label, tod, dur in rows:
        off = offset_from_start(tod, start_tod)
        if dur is not None and _STAGE_WORD.match(label.strip()):
            stage, _ = map_stage(label)
            if t0 is None:
                t0 = off
            codes.setdefault(round((off - t0) / 30.0), (stage, label.strip()))
            continue
        which = lights_word(label)
        if which is not None:
            lights.setdefault(which, off)
            continue
        events.append(LabelEvent(type=event_type(label), onset_s=off, duration_s=dur or 0.0, label=label))
    hyp = None
    if codes:
        n = max(codes) + 1
        if n - len(codes):
            warnings.append(f"{n - len(codes)} epoch(s) missing between stage rows: UNS")
        hyp = per_epoch([codes.get(i, ("UNS", "")) for i in range(n)], 30.0, onset_s=t0 or 0.0)
    return LabelSet(start=start, hypnogram=hyp, events=events, source_kind="sandman_txt", warnings=warnings,
                    start_time=start_tod, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep the title, ``Start Time:`` (date moved to 1 January of its year, time kept) and the
    table's ``Epoch``/``Event``/``Start Time``/``Duration`` cells; drop patient lines."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    lines, header, cols = _table(text)
    start, _, raw_date = _header_start(lines, header)
    out = ["Sandman Elite - Event Listing", ""]
    if start is not None:
        moved = start.date() + anon_shift(start.date())
        out += [f"Start Time: {format_date_like(raw_date, moved)} {start:%I:%M:%S %p}", ""]
    out.append("Epoch\tEvent\tStart Time\tDuration")
    for i in range(header + 1, len(lines)):
        if not lines[i].strip():
            continue
        cells = lines[i].split("\t")
        keep = [cells[cols[r]].strip() if r in cols and cols[r] < len(cells) else "" for r in ("epoch", "event", "time", "duration")]
        if not _STAGE_WORD.match(keep[1]):
            keep[1] = safe_label(keep[1])
        while keep and keep[-1] == "":
            keep.pop()
        out.append("\t".join(keep))
    return encode(nl.join(out) + nl, codec, bom), start


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0]
    if text.lstrip().lower().startswith("sandman"):
        return 2
    try:
        _table(text)
    except LabelError:
        return 0
    return 2


FORMAT = Format(
    kind="sandman_txt",
    title=TITLE,
    producer="Natus / Embla Sandman Elite",
    extensions=(".txt",),
    out_extension="txt",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="stage rows (one epoch each), events with duration, Lights Out/On, Start Time header",
    anonymised="preamble reduced to the title and Start Time (date shifted to 1 January); patient lines dropped",
    assumptions="LOW CONFIDENCE layout (no vendor sample); 12-hour time-only rows with a ±12 h midnight "
    "rule; header date dd/mm/yyyy",
)
