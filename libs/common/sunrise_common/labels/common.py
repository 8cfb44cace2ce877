"""Pieces every text format shares: decoding, clock times, the midnight rule, run expansion.

Why by hand: these exports are tab/semicolon tables with vendor preambles that no CSV dialect
sniffer reads reliably, and their clock-time rules (time-only rows, 12-hour clocks, midnight)
are format facts, not library features (see docs/label-formats.md).
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np

from .canonical import UNSCORED, Hypnogram, map_event, map_stage
from .errors import LabelError
from .limits import local

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

# A label file spanning longer than this is corrupt, not a night (Sleep-EDF hypnograms run to 24 h).
MAX_SPAN_S = 72 * 3600.0
# Stage runs may together cover at most this many times the epochs of MAX_SPAN_S (overlaps
# included): a rescored stretch overlaps a little, a hostile file covers the span over and over.
MAX_FILL_FACTOR = 2
# Time-only rows: a row whose clock is more than this before the start is on the next day.
MIDNIGHT_RULE_S = 12 * 3600.0

BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def decode(data: bytes) -> tuple[str, str, bytes]:
    """Decode a text export -> (text, codec, bom). BOMs (UTF-8/16) honoured; else UTF-8, cp1252,
    ISO-8859-1 (which never fails)."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), codec, bom
            except UnicodeDecodeError:
                raise LabelError("bad_encoding", f"text with a {codec} byte-order mark does not decode as {codec}") from None
    for codec in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(codec), codec, b""
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def encode(text: str, codec: str, bom: bytes) -> bytes:
    """Encode like the original (same codec, same BOM); characters the codec lacks become ``?``."""
    return bom + text.encode(codec, errors="replace")


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def lines(text: str) -> list[str]:
    """Lines without their endings (CRLF, LF or CR)."""
    return text.splitlines()


def number(raw: str, what: str, where: str) -> float:
    """A decimal number, decimal comma accepted (``12,5``); reason names ``what`` and ``where``."""
    s = raw.strip().replace(",", ".")
    try:
        v = float(s)
    except ValueError:
        raise LabelError("bad_number", f"{where}: {what} is not a number") from None
    if not math.isfinite(v):
        raise LabelError("bad_number", f"{where}: {what} is not finite")
    return v


def optional_number(raw: str | None, what: str, where: str, fmt: str) -> float | None:
    """An optional decimal number of an XML format: None when missing or blank; a ``bad_xml``
    reason naming ``what`` and ``where`` when not a number."""
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw.strip())
    except ValueError:
        raise LabelError("bad_xml", f"{fmt}: {where}: {what} is not a number") from None


_CLOCK = re.compile(
    r"^\s*(\d{1,2})[:.](\d{2})(?:[:.](\d{2})(?:[.,](\d+))?)?\s*(?:([AaPp])\.?\s*[Mm]\.?)?\s*$"
)


def parse_clock(raw: str, where: str) -> time:
    """``hh:mm[:ss[.fff...]]``, dots or colons, decimal comma or point, optional ``AM``/``PM``;
    fractions beyond microseconds are truncated. A caller whose format writes dotted dates
    (``05.03.24``) must tell dates from times before calling this (DOMINO's row grammar does:
    its times need colons)."""
    m = _CLOCK.match(raw)
    if m is None:
        raise LabelError("bad_time", f"{where}: time is not hh:mm:ss")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    frac = m.group(4) or ""
    us = int((frac + "000000")[:6]) if frac else 0
    ampm = (m.group(5) or "").upper()
    if ampm:
        if not 1 <= h <= 12:
            raise LabelError("bad_time", f"{where}: hour {h} with {ampm}M")
        h = h % 12 + (12 if ampm == "P" else 0)
    if h > 23 or mi > 59 or s > 59:
        raise LabelError("bad_time", f"{where}: time out of range ({h}:{mi}:{s})")
    return time(h, mi, s, us)


def parse_date(raw: str, where: str, order: str = "DMY") -> date:
    """``dd/mm/yyyy``, ``dd.mm.yyyy``, ``yyyy-mm-dd``, ``yyyy/mm/dd``; ``order`` for the ambiguous
    day/month forms (``DMY`` or ``MDY``). Two-digit years: < 85 -> 20xx."""
    s = raw.strip()
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", s)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})", s)
        if m is None:
            raise LabelError("bad_date", f"{where}: date is not dd/mm/yyyy or yyyy-mm-dd")
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if y < 100:
            y += 2000 if y < 85 else 1900
        d, mo = (b, a) if order == "MDY" else (a, b)
    try:
        return date(y, mo, d)
    except ValueError:
        raise LabelError("bad_date", f"{where}: impossible date (year {y}, month {mo}, day {d})") from None


def format_date_like(original: str, new: date, order: str = "DMY") -> str:
    """Write ``new`` in the layout of ``original`` (separator, field order, year width)."""
    s = original.strip()
    m = re.fullmatch(r"(\d{4})([-/.])(\d{1,2})[-/.](\d{1,2})", s)
    if m:
        sep = m.group(2)
        return f"{new.year:04d}{sep}{new.month:02d}{sep}{new.day:02d}"
    m = re.fullmatch(r"(\d{1,2})([-/.])(\d{1,2})[-/.](\d{2,4})", s)
    if m is None:
        raise LabelError("bad_date", "date layout not recognised")
    sep = m.group(2)
    year = f"{new.year % 100:02d}" if len(m.group(4)) == 2 else f"{new.year:04d}"
    a, b = (new.month, new.day) if order == "MDY" else (new.day, new.month)
    wa = 2 if len(m.group(1)) == 2 else 1
    wb = 2 if len(m.group(3)) == 2 else 1
    return f"{a:0{wa}d}{sep}{b:0{wb}d}{sep}{year}"


def anon_shift(start: date) -> timedelta:
    """The whole-day shift that moves ``start`` to 1 January of its year (as DOMINO's): every
    relative time is kept exactly, no real date element but the year is left."""
    return date(start.year, 1, 1) - start


def seconds_of_day(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def offset_from_start(t: time, start: time) -> float:
    """Seconds from ``start`` to the clock time ``t`` on a time-only row (midnight rule).

    A row up to 12 h before the start is before it (negative offset: a lights-off marker or an
    event scored just before the recording); more than 12 h before means the next day.
    """
    d = seconds_of_day(t) - seconds_of_day(start)
    if d < -MIDNIGHT_RULE_S:
        d += 86400.0
    elif d >= MIDNIGHT_RULE_S:
        d -= 86400.0
    return d


def expand_spans(
    spans: list[tuple[float, float, str, str]], epoch_s: float, warnings: list[str], origin: float | None = None
) -> Hypnogram:
    """Expand runs ``(onset_s, duration_s, stage, native)`` into consecutive epochs.

    Epoch 0 starts at ``origin`` (default: the earliest run); a run covers
    ``round(duration / epoch_s)`` epochs; uncovered epochs are ``UNS`` (native ``""``); where runs
    overlap the later one wins (reported); runs off the epoch grid are snapped (reported).

    Runs may overlap a little (a rescored stretch), not cover the span again and again: the
    epochs all runs cover together are bounded by ``MAX_FILL_FACTOR`` times the epochs of
    ``MAX_SPAN_S`` (issue 23: a 40-kB file of 300 overlapping 72-h runs at 1-s epochs cost
    seconds of CPU, a 64-MiB one hours). Runs are filled as numpy slices of stage codes.
    """
    spans = sorted(spans, key=lambda s: s[0])
    t0 = spans[0][0] if origin is None else origin
    end = max(onset + duration for onset, duration, _, _ in spans)
    if not math.isfinite(end) or end - t0 > MAX_SPAN_S or any(d < 0 or not math.isfinite(d) for _, d, _, _ in spans):
        raise LabelError(
            "absurd_value", f"stage runs cover {t0:g}..{end:g} s (limit {MAX_SPAN_S / 3600:g} h, durations >= 0)"
        )
    ranges: list[tuple[int, int, str, str]] = []  # [first epoch, end epoch) of each run, clipped at 0
    off_grid = filled = 0
    for onset, duration, stage, native in spans:
        first = (onset - t0) / epoch_s
        n = duration / epoch_s
        if abs(first - round(first)) > 1e-3 or abs(n - round(n)) > 1e-3:
            off_grid += 1
        i0 = round(first)
        lo, hi = max(i0, 0), i0 + max(int(round(n)), 0)
        if hi > lo:
            ranges.append((lo, hi, stage, native))
            filled += hi - lo
    span_epochs = math.ceil(MAX_SPAN_S / epoch_s)
    if filled > MAX_FILL_FACTOR * span_epochs:
        raise LabelError(
            "absurd_value",
            f"stage runs overlap: {len(spans)} stage runs cover {filled} epochs of {epoch_s:g} s together, over "
            f"{MAX_FILL_FACTOR} x the {span_epochs} epochs of the {MAX_SPAN_S / 3600:g}-h limit",
        )
    n_epochs = max((hi for _, hi, _, _ in ranges), default=0)
    kinds: dict[tuple[str, str], int] = {}
    codes = np.full(n_epochs, -1, dtype=np.int32)  # -1: no run covers the epoch
    overlaps = 0
    for lo, hi, stage, native in ranges:
        cell = codes[lo:hi]
        overlaps += int(np.count_nonzero(cell >= 0))
        cell[:] = kinds.setdefault((stage, native), len(kinds))
    if off_grid:
        warnings.append(f"{off_grid} stage run(s) off the {epoch_s:g}-s grid: snapped")
    if overlaps:
        warnings.append(f"{overlaps} epoch(s) covered by more than one stage run: last kept")
    missing = int(np.count_nonzero(codes < 0))
    if missing:
        warnings.append(f"{missing} epoch(s) not covered by any stage run: {UNSCORED}")
    table = [*kinds, (UNSCORED, "")]  # code -1 indexes the last entry: UNS
    cells = [table[c] for c in codes.tolist()]
    return Hypnogram(epoch_s=epoch_s, onset_s=t0, stages=[c[0] for c in cells], native=[c[1] for c in cells])


def transitions_to_spans(
    changes: list[tuple[float, str, str]], end_s: float
) -> list[tuple[float, float, str, str]]:
    """Transition-only staging ``(start_s, stage, native)`` -> runs; the last run ends at ``end_s``
    (the recording end)."""
    changes = sorted(changes, key=lambda c: c[0])
    out = []
    for i, (t, stage, native) in enumerate(changes):
        nxt = changes[i + 1][0] if i + 1 < len(changes) else end_s
        out.append((t, max(nxt - t, 0.0), stage, native))
    return out


def per_epoch(codes: list[tuple[str, str]], epoch_s: float, onset_s: float = 0.0) -> Hypnogram:
    """One ``(stage, native)`` per epoch -> ``Hypnogram``."""
    if len(codes) * epoch_s > MAX_SPAN_S:
        raise LabelError("absurd_value", f"{len(codes)} epochs of {epoch_s:g} s exceed {MAX_SPAN_S / 3600:g} h")
    return Hypnogram(epoch_s=epoch_s, onset_s=onset_s, stages=[c[0] for c in codes], native=[c[1] for c in codes])


def clock_dt(d: date, t: time) -> datetime:
    return datetime.combine(d, t)


# An XML whitelist: local tag -> (attributes kept, children spec or None for a text leaf).
XmlSpec = dict[str, tuple[frozenset[str], "XmlSpec | None"]]


def prune(el: Element, spec: XmlSpec) -> None:
    """Remove from ``el`` every child, attribute and text the whitelist ``spec`` does not name
    (tags matched without their namespace). Anonymisation keeps only what a parser reads."""
    for child in list(el):
        rule = spec.get(local(child.tag))
        if rule is None:
            el.remove(child)
            continue
        attrs, sub = rule
        for a in list(child.attrib):
            if local(a) not in attrs:
                del child.attrib[a]
        child.tail = "\n"
        if sub is None:
            for grandchild in list(child):
                child.remove(grandchild)
        else:
            child.text = "\n"
            prune(child, sub)


def fold(text: str) -> str:
    """Lower case without accents or brackets' spacing: ``Événement`` -> ``evenement``."""
    s = unicodedata.normalize("NFKD", text)
    return "".join(c for c in s if not unicodedata.combining(c)).lower().strip()


def find_columns(cells: list[str], aliases: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Map column roles to indices: a cell belongs to the first role one of whose aliases it
    starts with (accent- and case-insensitive). Columns are found by name, never by position."""
    out: dict[str, int] = {}
    for i, cell in enumerate(cells):
        f = fold(cell)
        for role, names in aliases.items():
            if role not in out and any(f.startswith(n) for n in names):
                out[role] = i
                break
    return out


def event_type(code: str) -> str:
    """Canonical event type of a vendor code such as ``APNEA-OBSTRUCTIVE`` or ``Resp Arousal``
    (dash-separated vendor codes name the family first, so try the parts reversed too)."""
    code = code.replace("_", " ")
    t = map_event(code)
    if t in ("apnea", "other"):
        parts = re.split(r"[-_:\s]+", code.strip())
        t2 = map_event(" ".join(reversed(parts)))
        if t2 != "other":
            return t2
    return t


def safe_label(label: str) -> str:
    """The label itself when it names a known stage, event type or lights marker, else ``other``:
    free text (``Lights out - tech Jane Doe``, comments) never survives anonymisation."""

    text = label.split("@@")[0]
    if stage_of_text(text) is not None or lights_word(text.replace("-", " ")) is not None:
        return label
    if map_stage(text)[1] or event_type(text) != "other":
        return label
    return "other"


def csv_rows(text: str, delimiter: str = ",") -> list[list[str]]:
    """Comma-separated rows, one per line (CR, LF or CRLF; a quoted field cannot span lines)."""
    try:
        return list(csv.reader(text.splitlines(), delimiter=delimiter))
    except csv.Error as exc:
        line = getattr(exc, "line_num", 0)
        raise LabelError("bad_row", f"CSV row does not parse (line {line})") from None


# Stage and lights vocabulary of annotation texts (EDF+ hypnograms, MNE/BIDS descriptions).
_STAGE_TEXT = re.compile(r"^\s*(?:sleep\s*stage|stage)\s*(.+?)\s*$", re.IGNORECASE)


def stage_of_text(text: str) -> str | None:
    """The canonical stage of an annotation text (``Sleep stage N2``, ``Movement time``), or None."""
    m = _STAGE_TEXT.match(text)
    if m:
        stage, _ = map_stage(m.group(1))
        return stage
    stage, known = map_stage(text)
    if known and len(text.strip()) > 1:  # "W"/"R"/"A" alone are too ambiguous as free text
        return stage
    return None


_LIGHTS = re.compile(r"^\s*lights?[\s_\-]*(off|out|on)\s*$", re.IGNORECASE)


def lights_word(text: str) -> str | None:
    """``off``/``on`` for a lights marker (``Lights off``, ``LIGHTS-OUT``, ``lights_on``...), else None."""
    m = _LIGHTS.match(text)
    if m is None:
        return None
    return "on" if m.group(1).lower() == "on" else "off"
