"""Philips Respironics (Alice / Sleepware) CSV exports: the event list and the stage list.

Event CSV (NSRR translator wiki): a quoted header ``"Event type","Stage","Time","Epoch","Date",
"Duration","HR bef.","HR extr.","HR delta","O2 bef.","O2 min.","O2 delta","Body Position",
"Validation",""``; ``Time`` is ``h:mm:ss AM/PM``, ``Date`` ``M/D/YYYY`` (so every row has an
absolute date-time, and the date changes at midnight), ``-`` is missing, ``O2 bef.`` is the
SpO2 baseline and ``O2 min.`` the nadir, ``Stage`` (``W``, ``N1``-``N3``, ``R``, ``NS``) is the
stage at the event. Columns are found by name. The file has no recording start: ``LabelSet.start``
is estimated from the ``Epoch`` column (1-based 30-s epochs: the latest start consistent with
every row); event times stay exact whatever the estimate, because onsets are measured from it.

Stage CSV: one ``code,10,`` line per epoch, 255 W, 11-14 stages 1-4 (3 and 4 -> N3), 15 REM; the
code for unscored epochs is not documented and ``0`` is assumed [U], as is the meaning of the
second column. Rows are read as 30-s epochs (the wiki mentions 6-s rows [U]); no time base: epoch
0 is the PSG start.

Sources: reference/label-formats.md §6b (NSRR edf-editor-translator wiki, wonambi).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

from .canonical import UNSCORED, LabelEvent, LabelSet, map_stage
from .common import (
    csv_rows,
    anon_shift,
    decode,
    encode,
    event_type,
    find_columns,
    format_date_like,
    newline_of,
    number,
    parse_clock,
    parse_date,
    per_epoch,
    safe_label,
)
from .errors import LabelError
from .registry import Format, name_has

TITLE_EVENTS = "Respironics event CSV"
TITLE_STAGES = "Respironics stage CSV"

ALIASES = {
    "event": ("event type",),
    "stage": ("stage",),
    "time": ("time",),
    "epoch": ("epoch",),
    "date": ("date",),
    "duration": ("duration",),
    "baseline": ("o2 bef",),
    "nadir": ("o2 min",),
}
_KEEP = ("event", "stage", "time", "epoch", "date", "duration", "baseline", "nadir")
_HEADER_OUT = ("Event type", "Stage", "Time", "Epoch", "Date", "Duration", "O2 bef.", "O2 min.")
STAGE_CODES = {"255": "W", "11": "N1", "12": "N2", "13": "N3", "14": "N3", "15": "REM", "0": UNSCORED}
_STAGE_LINE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,?\s*$")


def _table(data: bytes) -> tuple[list[list[str]], dict[str, int], str, str, bytes]:
    text, codec, bom = decode(data)
    rows = csv_rows(text)
    if not rows:
        raise LabelError("no_labels", f"{TITLE_EVENTS}: empty")
    cols = find_columns(rows[0], ALIASES)
    if not {"event", "time", "date"} <= set(cols):
        raise LabelError("bad_table", f"{TITLE_EVENTS}: header lacks Event type, Time or Date")
    return rows, cols, text, codec, bom


def _cell(row: list[str], cols: dict[str, int], role: str) -> str:
    i = cols.get(role)
    v = row[i].strip() if i is not None and i < len(row) else ""
    return "" if v == "-" else v


def parse_events(data: bytes) -> LabelSet:
    rows, cols, _, _, _ = _table(data)
    warnings: list[str] = []
    items = []
    lo = hi = None
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        where = f"{TITLE_EVENTS}: line {n}"
        dt = datetime.combine(parse_date(_cell(row, cols, "date"), where, "MDY"), parse_clock(_cell(row, cols, "time"), where))
        ep = _cell(row, cols, "epoch")
        if ep:
            k = int(number(ep, "Epoch", where))
            a = dt - timedelta(seconds=30 * k)
            b = dt - timedelta(seconds=30 * (k - 1))
            lo = a if lo is None or a > lo else lo
            hi = b if hi is None or b < hi else hi
        items.append((row, dt, where))
    if not items:
        raise LabelError("no_labels", f"{TITLE_EVENTS}: no event rows")
    start = hi if hi is not None else items[0][1]
    if lo is not None and hi is not None and lo >= hi:
        warnings.append("Epoch column inconsistent with the times: start taken as the first event")
        start = min(dt for _, dt, _ in items)
    events = []
    for row, dt, where in items:
        label = _cell(row, cols, "event")
        st = _cell(row, cols, "stage")
        stage = None
        if st and st.upper() != "NS":
            s, known = map_stage(st)
            stage = s if known else None
        elif st.upper() == "NS":
            stage = UNSCORED
        b = _cell(row, cols, "baseline")
        m = _cell(row, cols, "nadir")
        d = _cell(row, cols, "duration")
        events.append(LabelEvent(
            type=event_type(label), onset_s=(dt - start).total_seconds(),
            duration_s=number(d, "Duration", where) if d else 0.0, label=label, stage=stage,
            baseline=number(b, "O2 bef.", where) if b else None, nadir=number(m, "O2 min.", where) if m else None,
        ))
    return LabelSet(start=start, hypnogram=None, events=events, source_kind="respironics_events_csv", warnings=warnings)


def anonymise_events(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep the eight read columns; every ``Date`` moves by the days that take the first row's
    date to 1 January of its year (times of day and Epoch numbers unchanged)."""
    rows, cols, text, codec, bom = _table(data)
    start = parse_events(data).start
    shift = anon_shift(start.date()) if start is not None else timedelta(0)
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator=newline_of(text))
    w.writerow(_HEADER_OUT)
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        out = []
        for role in _KEEP:
            v = _cell(row, cols, role)
            if role == "event":
                v = safe_label(v)
            if role == "date" and v:
                v = format_date_like(v, parse_date(v, f"line {n}", "MDY") + shift, "MDY")
            out.append(v or "-")
        w.writerow(out)
    return encode(buf.getvalue(), codec, bom), start


def _stage_lines(data: bytes) -> list[tuple[int, str]]:
    text, _, _ = decode(data)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _STAGE_LINE.match(line)
        if m is None:
            raise LabelError("bad_row", f"{TITLE_STAGES}: line {n} is not 'code,number,'")
        out.append((n, m.group(1)))
    return out


def parse_stages(data: bytes) -> LabelSet:
    codes = []
    unknown = 0
    for _n, code in _stage_lines(data):
        stage = STAGE_CODES.get(code)
        if stage is None:
            unknown += 1
            stage = UNSCORED
        codes.append((stage, code))
    warnings = ["Respironics stage CSV has no time base: epoch 0 is the PSG start; rows read as 30-s epochs"]
    if unknown:
        warnings.append(f"{unknown} stage code(s) outside 0, 11-15, 255: {UNSCORED}")
    return LabelSet(start=None, hypnogram=per_epoch(codes, 30.0) if codes else None, events=[],
                    source_kind="respironics_stages_csv", warnings=warnings)


def anonymise_stages(data: bytes) -> tuple[bytes, datetime | None]:
    """Numbers only: rewritten as ``code,10,`` lines (nothing personal can be in them)."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    return encode("".join(f"{code},10,{nl}" for _, code in _stage_lines(data)), codec, bom), None


def sniff_events(head: bytes, name: str) -> int:
    first = decode(head)[0].lstrip().splitlines()[:1]
    if first and re.match(r'^"?Event type"?\s*,\s*"?Stage"?\s*,\s*"?Time"?', first[0], re.IGNORECASE):
        return 2
    return 0


def sniff_stages(head: bytes, name: str) -> int:
    lines = [ln for ln in decode(head)[0].splitlines()[:-1] if ln.strip()] or decode(head)[0].splitlines()
    if len(lines) >= 2 and all(_STAGE_LINE.match(ln) for ln in lines):
        codes = {_STAGE_LINE.match(ln).group(1) for ln in lines}  # type: ignore[union-attr]
        if codes <= set(STAGE_CODES) and codes != {"0"}:
            return 2 if name_has(name, (".csv", ".txt")) or not name else 1
    return 0


FORMATS = (
    Format(
        kind="respironics_events_csv",
        title=TITLE_EVENTS,
        producer="Philips Respironics Alice / Sleepware",
        extensions=(".csv",),
        out_extension="csv",
        sniff=sniff_events,
        parse_fn=parse_events,
        anonymise_fn=anonymise_events,
        reads="events with absolute Date + 12-h Time, duration, stage, O2 bef./O2 min. (baseline/nadir)",
        anonymised="only the eight read columns kept (Body Position, Validation, HR dropped); dates shifted "
        "to 1 January of the year",
        assumptions="Date is M/D/YYYY; the start is estimated from the Epoch column (event times stay exact)",
    ),
    Format(
        kind="respironics_stages_csv",
        title=TITLE_STAGES,
        producer="Philips Respironics Alice / Sleepware",
        extensions=(".csv",),
        out_extension="csv",
        sniff=sniff_stages,
        parse_fn=parse_stages,
        anonymise_fn=anonymise_stages,
        reads="one stage code per 30-s epoch (255 W, 11-14, 15 REM, 0 unscored)",
        anonymised="rewritten as numbers only",
        assumptions="30-s rows (the wiki's 6-s rows unverified); 0 = unscored (undocumented); no time base",
    ),
)
