"""SOMNOmedics DOMINO text exports: sleep profile, flow events, arousals, generic events.

A DOMINO export is a few ``Key: value`` header lines, a blank line, then one row per epoch or
event. Two row layouts exist:

- older, time only: ``01:00:00,000; N2`` (sleep profile), ``01:02:03,123-01:02:20,456; 17;Hypopnea``
  (events with a duration column), ``01:18:00,197-01:18:29,872; ChinArtifact`` (generic events,
  no duration column);
- newer, a date on every row: ``30.05.2024 20:59:00,000; Wake`` and
  ``30.05.2024 23:48:45,119-23:49:01,408; 16;Hypopnea; N1``; the field after the label is the
  sleep stage at the event (DOMINO's sleep-profile names: ``Wake``, ``N1`` ... ``REM``), kept as
  ``LabelEvent.stage`` (a canonical code, None when the row has no such field). Row dates come as
  ``dd.mm.yyyy`` or ``m/d/yyyy``.

``Start Time`` comes as ``dd.mm.yyyy HH:MM:SS``, ``m/d/yyyy h:mm:ss AM/PM`` or
``dd-mm-yyyy HH:MM:SS``. Files are read as UTF-8, falling back to cp1252; CRLF is accepted.

Midnight rollover for time-only rows: a row whose time of day is more than 12 h earlier than
the previous row's is on the next day (rows are sorted, so a smaller backward step is an
out-of-order row, not a new day). The first row is placed within ±12 h of ``Start Time``: up to
12 h before the start it stays before it (rows with dates use their dates as they are). The event
duration is computed from the start and end times (ms resolution);
the rounded duration column is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .canonical import EPOCH_S, UNSCORED, LabelEvent, Hypnogram, LabelSet, map_event, map_stage
from .common import parse_clock
from .errors import LabelError
from .registry import Format

KNOWN_HEADER_KEYS = (
    "Signal ID",
    "Start Time",
    "Unit",
    "Signal Type",
    "Events list",
    "Rate",
    "Sample Rate",
    "Length",
    "Data",
)

DATE_RE = r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"
TIME_RE = r"\d{1,2}:\d{2}(?::\d{2})?(?:[,.]\d+)?(?:\s*[AaPp][Mm])?"
_ROW = re.compile(
    rf"^\s*(?:(?P<d1>{DATE_RE})\s+)?(?P<t1>{TIME_RE})"
    rf"(?:\s*-\s*(?:(?P<d2>{DATE_RE})\s+)?(?P<t2>{TIME_RE}))?\s*(?:;(?P<rest>.*))?$"
)
_HEADER = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _]*?)\s*:\s*(.*?)\s*$")

_ROLLOVER_S = 12 * 3600.0
MAX_PROFILE_S = 72 * 3600.0  # a longer profile is a corrupt date, not a night
# The first time-only row is placed within ±12 h of Start Time (the midnight rule every text
# format shares, labels.common.MIDNIGHT_RULE_S): a row before the start stays before it.
_FIRST_ROW_SLACK_S = _ROLLOVER_S


def decode_text(data: bytes) -> str:
    """Decode a text export: UTF-8 (BOM allowed), else cp1252, else Latin-1 (never fails)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for codec in ("utf-8", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def detect_encoding(data: bytes) -> str:
    """The codec ``decode_text`` would use (so a rewrite can keep the file's own encoding)."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    for codec in ("utf-8", "cp1252"):
        try:
            body.decode(codec)
            return codec
        except UnicodeDecodeError:
            continue
    return "latin-1"


def parse_date(text: str) -> date:
    """``dd.mm.yyyy``, ``m/d/yyyy`` (US order with slashes) or ``dd-mm-yyyy``; 2-digit years ok."""
    m = re.fullmatch(r"(\d{1,2})([./-])(\d{1,2})\2(\d{2,4})", text.strip())
    if m is None:
        raise LabelError("bad_start_time", "DOMINO: date is not dd.mm.yyyy, m/d/yyyy or dd-mm-yyyy")
    a, sep, b, y = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    if y < 100:
        y += 2000 if y < 85 else 1900
    day, month = (b, a) if sep == "/" else (a, b)
    try:
        return date(y, month, day)
    except ValueError:
        raise LabelError("bad_start_time", f"DOMINO: impossible date (day {day}, month {month}, year {y})") from None


def parse_start_time(text: str) -> datetime:
    """Parse a DOMINO ``Start Time`` value (any of the three known forms)."""
    m = re.fullmatch(rf"\s*({DATE_RE})\s+({TIME_RE})\s*", text)
    if m is None:
        raise LabelError("bad_start_time", "DOMINO: Start Time: is not a date and a time")
    try:
        return datetime.combine(parse_date(m.group(1)), parse_clock(m.group(2), "DOMINO: Start Time"))
    except LabelError as exc:
        raise LabelError("bad_start_time", f"Start Time: {exc.detail}") from None


@dataclass
class DominoFile:
    """The raw structure of a DOMINO export: header (ordered) and data lines."""

    header: list[tuple[str, str]]
    rows: list[str]
    is_signal_export: bool

    def get(self, key: str) -> str | None:
        for k, v in self.header:
            if k.lower() == key.lower():
                return v
        return None


def split_file(text: str) -> DominoFile:
    """Split a decoded export into header key/values and data rows (blank lines dropped)."""
    header: list[tuple[str, str]] = []
    rows: list[str] = []
    in_header = True
    signal_export = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if in_header and not _ROW.match(line):
            m = _HEADER.match(line)
            if m:
                header.append((m.group(1), m.group(2)))
                if m.group(1).lower() == "data":
                    signal_export = True
                continue
        in_header = False
        rows.append(line)
    return DominoFile(header=header, rows=rows, is_signal_export=signal_export)


def _rate_s(value: str | None) -> float:
    if not value:
        return EPOCH_S
    m = re.match(r"\s*([0-9]+(?:[.,][0-9]+)?)", value)
    if m is None:
        raise LabelError("bad_rate", "DOMINO: Rate: does not start with a number")
    rate = float(m.group(1).replace(",", "."))
    if rate <= 0:
        raise LabelError("bad_rate", "DOMINO: Rate: is not positive")
    return rate


def _row_date(text: str) -> date:
    try:
        return parse_date(text)
    except LabelError as exc:
        raise LabelError("bad_time", f"row date: {exc.detail}") from None


class _Clock:
    """Turns row times into datetimes, applying the midnight-rollover rule."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.prev: datetime | None = None

    def resolve(self, d: str | None, t: str) -> datetime:
        tod = parse_clock(t, "DOMINO: row time")
        if d is not None:
            dt = datetime.combine(_row_date(d), tod)
        else:
            ref = self.prev or self.start
            dt = datetime.combine(ref.date(), tod)
            slack = _ROLLOVER_S if self.prev is not None else _FIRST_ROW_SLACK_S
            if (ref - dt).total_seconds() > slack:
                dt += timedelta(days=1)
            elif self.prev is None and (dt - ref).total_seconds() >= _ROLLOVER_S:
                dt -= timedelta(days=1)  # 23:55 before a 00:05 start: the evening before
        self.prev = dt
        return dt

    @staticmethod
    def end(start: datetime, d: str | None, t: str) -> datetime:
        tod = parse_clock(t, "DOMINO: row time")
        if d is not None:
            return datetime.combine(_row_date(d), tod)
        dt = datetime.combine(start.date(), tod)
        if dt < start:
            dt += timedelta(days=1)
        return dt


def _start(df: DominoFile) -> datetime:
    raw = df.get("Start Time")
    if raw is None:
        raise LabelError("bad_start_time", "DOMINO export without a 'Start Time:' header line")
    return parse_start_time(raw)


def parse_sleep_profile(data: bytes, kind: str = "domino_sleep_profile") -> LabelSet:
    """Parse a DOMINO sleep profile into a hypnogram on ``Rate`` epochs (30 s).

    Unknown stage labels (e.g. ``SNORE``) become ``UNS`` with one warning per label; epochs
    missing between rows are filled with ``UNS`` and reported.
    """
    df = split_file(decode_text(data))
    start = _start(df)
    epoch_s = _rate_s(df.get("Rate"))
    clock = _Clock(start)
    warnings: list[str] = []
    unknown: dict[str, int] = {}
    t0: datetime | None = None
    by_index: dict[int, str] = {}
    bad_rows = 0
    for row_no, line in enumerate(df.rows, 1):
        m = _ROW.match(line)
        if m is None or m.group("rest") is None:
            bad_rows += 1
            continue
        label = m.group("rest").split(";")[0].strip()
        dt = clock.resolve(m.group("d1"), m.group("t1"))
        if t0 is None:
            t0 = dt
        offset = (dt - t0).total_seconds()
        idx = round(offset / epoch_s)
        if abs(idx * epoch_s - offset) > 1.0:
            warnings.append(f"row {row_no} is {offset:.3f} s after the first, off the {epoch_s:g}-s grid")
        stage, known = map_stage(label)
        if not known:
            unknown[label] = unknown.get(label, 0) + 1
        if idx in by_index:
            warnings.append(f"duplicate epoch {idx} at row {row_no}: first row kept")
            continue
        if idx < 0:
            warnings.append(f"row {row_no} precedes the first row: dropped")
            continue
        by_index[idx] = stage
    if bad_rows:
        warnings.append(f"{bad_rows} unparseable row(s) skipped")
    for label, n in sorted(unknown.items()):
        warnings.append(f"unknown stage label ({len(label)} characters) on {n} epoch(s): mapped to {UNSCORED}")
    if t0 is None:
        return LabelSet(start, Hypnogram(epoch_s, 0.0, []), [], kind, warnings + ["no epochs"])
    n = max(by_index) + 1
    if n * epoch_s > MAX_PROFILE_S:
        raise LabelError("absurd_value", f"sleep profile rows span {n * epoch_s / 3600:.1f} h (limit {MAX_PROFILE_S / 3600:g} h)")
    missing = n - len(by_index)
    if missing:
        warnings.append(f"{missing} epoch(s) missing between rows: filled with {UNSCORED}")
    stages = [by_index.get(i, UNSCORED) for i in range(n)]
    hyp = Hypnogram(epoch_s=epoch_s, onset_s=(t0 - start).total_seconds(), stages=stages)
    _warn_late_first_row(warnings, t0, start)
    return LabelSet(start=start, hypnogram=hyp, events=[], source_kind=kind, warnings=warnings)


def _warn_late_first_row(warnings: list[str], first: datetime, start: datetime) -> None:
    gap = (first - start).total_seconds()
    if abs(gap) > 6 * 3600:
        warnings.append(
            f"first row is {abs(gap) / 3600:.2f} h {'after' if gap > 0 else 'before'} Start Time "
            "(check the Start Time's AM/PM or locale)"
        )


def _event_stage(text: str, unknown: dict[str, int]) -> str | None:
    """The canonical stage of an event row's stage field; None when empty or not a stage.

    An unrecognised value is counted in ``unknown`` (reported once per value) and left None
    rather than ``UNS``: ``UNS`` says the scorer marked the epoch unscored, None says we do not
    know, and only the latter lets a score fall back on the hypnogram.
    """
    if not text:
        return None
    stage, known = map_stage(text)
    if not known:
        unknown[text] = unknown.get(text, 0) + 1
        return None
    return stage


def parse_events(data: bytes, kind: str) -> LabelSet:
    """Parse a DOMINO event export (flow events, arousals, generic, other).

    Each ``start-end; [duration;] label[; stage]`` row becomes a ``LabelEvent`` whose type comes from
    ``map_event`` (``Flow Limitation`` and ``Body event`` are ``other``; any label with
    ``Arousal`` is ``arousal``) and whose ``stage`` is the canonical code of the stage field
    (``Wake`` -> ``W``, ``N4`` -> ``N3``, ``Movement`` -> ``UNS``; None when the row has none or
    it is not a stage name, the latter reported). The channel is the export's ``Signal ID``. Signal exports
    (``Data:`` section) and rows without an end time carry no events: they are reported.
    """
    df = split_file(decode_text(data))
    start = _start(df)
    channel = df.get("Signal ID") or ""
    warnings: list[str] = []
    if df.is_signal_export:
        return LabelSet(start, None, [], kind, ["DOMINO signal export (Data: section): no events"])
    clock = _Clock(start)
    events: list[LabelEvent] = []
    unknown_stages: dict[str, int] = {}
    bad_rows = 0
    point_rows = 0
    first: datetime | None = None
    for line in df.rows:
        m = _ROW.match(line)
        if m is None:
            bad_rows += 1
            continue
        if m.group("t2") is None:
            point_rows += 1
            continue
        t_start = clock.resolve(m.group("d1"), m.group("t1"))
        first = first or t_start
        t_end = _Clock.end(t_start, m.group("d2"), m.group("t2"))
        fields = [f.strip() for f in (m.group("rest") or "").split(";")]
        # The duration column is optional (generic exports have none); the stage, when DOMINO
        # exports it, is the field right after the label.
        at = 1 if len(fields) >= 2 and re.fullmatch(r"\d+(?:[.,]\d+)?", fields[0]) else 0
        label = fields[at]
        stage = _event_stage(fields[at + 1] if len(fields) > at + 1 else "", unknown_stages)
        events.append(
            LabelEvent(
                type=map_event(label),
                onset_s=(t_start - start).total_seconds(),
                duration_s=(t_end - t_start).total_seconds(),
                channel=channel,
                nadir=None,
                label=label,
                stage=stage,
            )
        )
    if bad_rows:
        warnings.append(f"{bad_rows} unparseable row(s) skipped")
    for text, n in sorted(unknown_stages.items()):
        warnings.append(f"unknown stage ({len(text)} characters) after the label on {n} event(s): stage left unknown")
    if point_rows:
        warnings.append(f"{point_rows} row(s) without an end time: not events, skipped")
    if first is not None:
        _warn_late_first_row(warnings, first, start)
    return LabelSet(start=start, hypnogram=None, events=events, source_kind=kind, warnings=warnings,
                    empty_export=not events and not df.rows)


def _shifted_date(text: str, shift: timedelta, cache: dict[str, str]) -> str:
    """``text`` (a row date) moved by ``shift``, written in the same form (``/`` -> ``m/d/yyyy``,
    else ``dd<sep>mm<sep>yyyy`` with the original separator)."""
    out = cache.get(text)
    if out is None:
        try:
            moved = parse_date(text) + shift
        except LabelError as exc:
            raise LabelError("bad_time", f"row date: {exc.detail}") from None
        sep = next(c for c in "./-" if c in text)  # DATE_RE matched: one of them is there
        if sep == "/":
            out = f"{moved.month}/{moved.day}/{moved.year:04d}"
        else:
            out = f"{moved.day:02d}{sep}{moved.month:02d}{sep}{moved.year:04d}"
        cache[text] = out
    return out


def anonymise(data: bytes) -> tuple[bytes, datetime]:
    """Anonymise a DOMINO export; return the new bytes and the ORIGINAL start (for pairing).

    - ``Start Time`` keeps only the year (HIPAA Safe Harbor keeps no date element but the year)
      and the time of day: ``Start Time: 01.01.<year> HH:MM:SS`` (24 h);
    - row dates (newer layout) are shifted by the same whole number of days, the one that moves
      the start's date to 1 January of its year, and keep their form (``dd.mm.yyyy`` or
      ``m/d/yyyy``): every row keeps its exact time relative to ``Start Time``, including rows
      before it and across midnight, while no real date is left. (Removing the dates instead
      would let the time-only rollover rule move a first row that precedes ``Start Time`` by
      24 h.) Time-only rows are kept as they are;
    - header lines other than the known keys (``Patient:``, ``Name:`` ...) are dropped.

    The file's encoding and line endings are kept; ``parse_sleep_profile``/``parse_events``
    give the same onsets, durations and stages on the output as on the input.

    Raises
    ------
    LabelError
        ``bad_start_time`` (no or unreadable ``Start Time``), ``bad_time`` (an impossible row
        date: the parser would refuse the original too).
    """
    codec = detect_encoding(data)
    text = decode_text(data)
    newline = "\r\n" if "\r\n" in text else "\n"
    df = split_file(text)
    start = _start(df)
    shift = date(start.year, 1, 1) - start.date()
    dates: dict[str, str] = {}
    known = {k.lower() for k in KNOWN_HEADER_KEYS}
    out: list[str] = []
    in_header = True
    for line in text.splitlines():
        if in_header and line.strip() and not _ROW.match(line):
            m = _HEADER.match(line)
            if m:
                key = m.group(1)
                if key.lower() not in known:
                    continue
                if key.lower() == "start time":
                    # Sub-second starts keep their fraction: row onsets are relative to it.
                    frac = f",{start.microsecond:06d}" if start.microsecond else ""
                    line = f"Start Time: 01.01.{start.year:04d} {start:%H:%M:%S}{frac}"
                out.append(line)
                continue
        row = _ROW.match(line) if line.strip() else None
        if row is not None:
            in_header = False
            # Replace the matched date spans, last first so the earlier span stays valid.
            for group in ("d2", "d1"):
                a, b = row.span(group)
                if a >= 0:
                    line = line[:a] + _shifted_date(row.group(group), shift, dates) + line[b:]
        elif line.strip() and not in_header:
            # A non-row line after the data started: could be free text; keep only if it is
            # not a header-like line with an unknown key.
            m = _HEADER.match(line)
            if m and m.group(1).lower() not in known:
                continue
        out.append(line)
    body = newline.join(out)
    if text.endswith(("\n", "\r")):
        body += newline
    return body.encode(codec), start


_STAGE_WORDS = re.compile(r"\b(N1|N2|N3|REM|Wake|W|S1|S2)\b", re.IGNORECASE)

DOMINO_KINDS = (
    "domino_sleep_profile",
    "domino_flow_events",
    "domino_arousals",
    "domino_generic",
    "domino_other",
)


def classify(head: bytes, name: str) -> str | None:
    """The DOMINO kind of a file (from its ``Signal ID``, then its name), None when the header
    lacks ``Signal ID:`` or ``Start Time:``."""
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"<", b"0       ", b"\xffBIOSEMI")):
        return None
    df = split_file(decode_text(head))
    signal_id = df.get("Signal ID")
    if signal_id is not None and df.get("Start Time") is None:
        # DOMINO's own header key without its start: say so in DOMINO's words ("Start Time:"
        # alone is not DOMINO's: Sandman writes it too).
        raise LabelError("bad_start_time", "SOMNOmedics DOMINO: the header has no Start Time: line")
    if signal_id is None:
        return None
    sid = signal_id.lower()
    lname = name.lower()
    events_list = df.get("Events list") or ""
    if (
        "profil" in sid
        or "hypno" in sid
        or "sleep profile" in lname
        or "schlafprofil" in lname
        or (df.get("Rate") is not None and len(_STAGE_WORDS.findall(events_list)) >= 2)
    ):
        return "domino_sleep_profile"
    if "flow" in sid or "flow events" in lname or "fluss" in sid:
        return "domino_flow_events"
    if "arousal" in sid or "korrelationma" in sid or "arousal" in lname:
        return "domino_arousals"
    if sid.startswith("generic") or "generic" in lname:
        return "domino_generic"
    return "domino_other"


def _format(kind: str, what: str) -> Format:
    def sniff(head: bytes, name: str) -> int:
        return 2 if classify(head, name) == kind else 0

    def parse(data: bytes) -> LabelSet:
        return parse_sleep_profile(data, kind) if kind == "domino_sleep_profile" else parse_events(data, kind)

    return Format(
        kind=kind,
        title=f"SOMNOmedics DOMINO {what}",
        producer="SOMNOmedics DOMINO",
        extensions=(".txt",),
        out_extension="txt",
        sniff=sniff,
        parse_fn=parse,
        anonymise_fn=anonymise,
        reads="one stage per epoch (Rate)" if kind == "domino_sleep_profile"
        else "events (start-end; [duration;] label[; stage])",
        anonymised="Start Time -> 01.01.YYYY (year kept), row dates shifted by the same days, unknown header "
        "lines dropped",
        assumptions="time-only rows: the first within ±12 h of Start Time, each next one > 12 h back "
        "from the previous row is the next day",
    )


FORMATS = (
    _format("domino_sleep_profile", "sleep profile"),
    _format("domino_flow_events", "flow events"),
    _format("domino_arousals", "arousals"),
    _format("domino_generic", "generic events"),
    _format("domino_other", "other events"),
)
