"""MNE-Python annotation files: ``Annotations.save`` text (``.txt``) and CSV (``.csv``).

``.txt``: ``# MNE-Annotations``, optional ``# orig_time : YYYY-MM-DD hh:mm:ss[.ffffff]`` (UTC in
MNE; for a PSG it is the EDF header's local start), ``# onset, duration, description[,
ch_names]``, then ``onset,duration,description[,ch_names]`` rows in float seconds from
``orig_time``. ``.csv``: header ``onset,duration,description[,ch_names]`` with ISO date-time
onsets; the first row's date-time is the start. Float onsets in a ``.csv`` are read as seconds
(MNE reads them as milliseconds with a warning; a scoring export in ms is not known to us).

Descriptions: ``Sleep stage W/N1/N2/N3/R/?``, R&K ``Sleep stage 1``-``4`` (3/4 -> N3),
``Movement time`` (UNS) are stage runs (onset, duration), expanded on the 30-s grid from second
0; ``Lights off``/``Lights on`` with an optional ``@@channel`` suffix (HMC, MNE) are the lights
markers; everything else is an event, ``@@channel`` giving its channel.

The same rows without any header, tab-separated (``11460.76171875\t30.0\tSleep stage W``,
``Lights Off``, ``Oxygen Desaturation``), are the NSRR NCH Sleep DataBank layout
(``onset_duration_tsv``): onsets in seconds from the PSG start.

Sources: reference/label-formats.md §10, §15 (NSRR harmonisation note for NCH-SDB) (MNE ``read_annotations``; MNE 1.13.2 run on the
examples).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

from .canonical import LabelEvent, LabelSet
from .common import anon_shift, csv_rows, decode, encode, event_type, expand_spans, newline_of, number, safe_label
from .common import lights_word, stage_of_text
from .errors import LabelError
from .registry import Format, name_has

TITLE_TXT = "MNE annotations text"
TITLE_CSV = "MNE annotations CSV"
TITLE_TSV = "Onset-duration-description TSV"
_ORIG = re.compile(r"^#\s*orig_time\s*:\s*(.+?)\s*$", re.IGNORECASE)


def _orig_time(raw: str, title: str) -> datetime | None:
    raw = raw.strip()
    if raw.lower() in ("none", ""):
        return None
    try:
        dt = datetime.fromisoformat(raw.replace(" ", "T", 1))
    except ValueError:
        raise LabelError("bad_start_time", f"{title}: orig_time is not YYYY-MM-DD hh:mm:ss") from None
    return dt.replace(tzinfo=None)


def _build(rows: list[tuple[float, float, str, str]], start: datetime | None, kind: str, warnings: list[str]) -> LabelSet:
    spans = []
    events = []
    lights: dict[str, float] = {}
    for onset, duration, desc, chans in rows:
        text, _, at = desc.partition("@@")
        channel = (at or chans).strip()
        stage = stage_of_text(text)
        if stage is not None:
            spans.append((onset, duration if duration > 0 else 30.0, stage, text.strip()))
            continue
        which = lights_word(text)
        if which is not None:
            lights.setdefault(which, onset)
            continue
        events.append(LabelEvent(type=event_type(text), onset_s=onset, duration_s=duration, channel=channel, label=text.strip()))
    hyp = expand_spans(spans, 30.0, warnings, origin=0.0) if spans else None
    return LabelSet(start=start, hypnogram=hyp, events=events, source_kind=kind, warnings=warnings,
                    lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


def _txt_rows(text: str) -> tuple[datetime | None, list[tuple[int, list[str]]]]:
    start = None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            m = _ORIG.match(line.strip())
            if m:
                start = _orig_time(m.group(1), TITLE_TXT)
            continue
        cells = csv_rows(line)[0]
        if len(cells) < 3:
            raise LabelError("bad_row", f"{TITLE_TXT}: line {n} has {len(cells)} fields, expected 3 or 4")
        rows.append((n, cells))
    return start, rows


def parse_txt(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    start, rows = _txt_rows(text)
    out = []
    for n, cells in rows:
        where = f"{TITLE_TXT}: line {n}"
        out.append((number(cells[0], "onset", where), number(cells[1], "duration", where), cells[2],
                    cells[3] if len(cells) > 3 else ""))
    warnings = [] if start is not None else ["no orig_time: onsets are from the PSG start"]
    return _build(out, start, "mne_annotations_txt", warnings)


def anonymise_txt(data: bytes) -> tuple[bytes, datetime | None]:
    """``orig_time`` moved to 1 January of its year (time kept); other comment lines dropped;
    descriptions that name no known stage, event or lights marker become ``other``."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    start, rows = _txt_rows(text)
    out = ["# MNE-Annotations"]
    if start is not None:
        moved = start + timedelta(days=anon_shift(start.date()).days)
        out.append(f"# orig_time : {moved:%Y-%m-%d %H:%M:%S.%f}")
    out.append("# onset, duration, description")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=nl)
    for _, cells in rows:
        w.writerow([cells[0].strip(), cells[1].strip(), safe_label(cells[2])])
    return encode(nl.join(out) + nl + buf.getvalue(), codec, bom), start


def _csv_rows(text: str) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    rows = csv_rows(text)
    if not rows:
        raise LabelError("no_labels", f"{TITLE_CSV}: empty")
    head = [c.strip().lower() for c in rows[0]]
    if head[:3] != ["onset", "duration", "description"]:
        raise LabelError("bad_table", f"{TITLE_CSV}: header is not onset,duration,description")
    return {h: i for i, h in enumerate(head)}, [(n, r) for n, r in enumerate(rows[1:], 2) if any(c.strip() for c in r)]


def _csv_onset(raw: str, where: str) -> datetime | float:
    s = raw.strip()
    if re.fullmatch(r"-?\d+(?:\.\d*)?", s):
        return float(s)
    try:
        return datetime.fromisoformat(s.replace(" ", "T", 1)).replace(tzinfo=None)
    except ValueError:
        raise LabelError("bad_time", f"{where}: onset is neither seconds nor an ISO date-time") from None


def parse_csv(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    head, rows = _csv_rows(text)
    onsets = [(_csv_onset(r[0], f"{TITLE_CSV}: line {n}"), n, r) for n, r in rows]
    dts = [o for o, _, _ in onsets if isinstance(o, datetime)]
    start = dts[0] if dts else None
    warnings = [] if start is not None else ["float onsets: read as seconds from the PSG start (MNE reads ms)"]
    out = []
    ch = head.get("ch_names")
    for o, n, r in onsets:
        where = f"{TITLE_CSV}: line {n}"
        onset = (o - start).total_seconds() if isinstance(o, datetime) and start is not None else float(o)  # type: ignore[arg-type]
        out.append((onset, number(r[1], "duration", where), r[2], r[ch] if ch is not None and ch < len(r) else ""))
    return _build(out, start, "mne_annotations_csv", warnings)


def anonymise_csv(data: bytes) -> tuple[bytes, datetime | None]:
    """Every date-time onset moved by the days that take the first to 1 January; free-text
    descriptions become ``other``; ``ch_names`` dropped (``@@channel`` suffixes kept)."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    _, rows = _csv_rows(text)
    start = None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=nl)
    w.writerow(["onset", "duration", "description"])
    shift = timedelta(0)
    for n, r in rows:
        o = _csv_onset(r[0], f"{TITLE_CSV}: line {n}")
        if isinstance(o, datetime):
            if start is None:
                start = o
                shift = timedelta(days=anon_shift(o.date()).days)
            cell = f"{o + shift:%Y-%m-%d %H:%M:%S.%f}"
        else:
            cell = r[0].strip()
        w.writerow([cell, r[1].strip(), safe_label(r[2])])
    return encode(buf.getvalue(), codec, bom), start


def _tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 3:
            raise LabelError("bad_row", f"{TITLE_TSV}: line {n} has {len(cells)} fields, expected onset, duration, description")
        rows.append((n, cells))
    return rows


def parse_tsv(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    out = []
    for n, cells in _tsv_rows(text):
        where = f"{TITLE_TSV}: line {n}"
        out.append((number(cells[0], "onset", where), number(cells[1], "duration", where), cells[2], ""))
    return _build(out, None, "onset_duration_tsv", ["no start in the file: onsets are from the PSG start"])


def anonymise_tsv(data: bytes) -> tuple[bytes, datetime | None]:
    """Onset and duration kept; descriptions naming no stage, event or lights marker -> ``other``."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    rows = [f"{c[0].strip()}\t{c[1].strip()}\t{safe_label(c[2].strip())}" for _, c in _tsv_rows(text)]
    return encode(nl.join(rows) + nl, codec, bom), None


def sniff_tsv(head: bytes, name: str) -> int:
    lines = [ln for ln in decode(head)[0].splitlines()[:-1] if ln.strip()][:50]
    if lines and all(re.fullmatch(r"-?\d+(?:\.\d+)?\t\d+(?:\.\d+)?\t[^\t]+", ln.strip("\r")) for ln in lines):
        return 2
    return 0


def sniff_txt(head: bytes, name: str) -> int:
    return 2 if decode(head)[0].lstrip().startswith("# MNE-Annotations") else 0


def sniff_csv(head: bytes, name: str) -> int:
    first = decode(head)[0].lstrip().splitlines()[:1]
    if first and re.match(r"^onset\s*,\s*duration\s*,\s*description\b", first[0], re.IGNORECASE):
        return 2 if name_has(name, (".csv",)) or not name else 1
    return 0


FORMATS = (
    Format(
        kind="onset_duration_tsv",
        title=TITLE_TSV,
        producer="NCH Sleep DataBank annotation .tsv and similar headerless exports",
        extensions=(".tsv", ".txt"),
        out_extension="tsv",
        sniff=sniff_tsv,
        parse_fn=parse_tsv,
        anonymise_fn=anonymise_tsv,
        reads="onset (s), duration (s), description per line: stage runs, events, Lights Off/On",
        anonymised="free-text descriptions -> other",
        assumptions="no header, onsets in seconds from the PSG start (not on the epoch grid: snapped)",
    ),
    Format(
        kind="mne_annotations_txt",
        title=TITLE_TXT,
        producer="MNE-Python Annotations.save (.txt)",
        extensions=(".txt",),
        out_extension="txt",
        sniff=sniff_txt,
        parse_fn=parse_txt,
        anonymise_fn=anonymise_txt,
        reads="stage runs (Sleep stage ...), events with @@channel, Lights off/on, orig_time",
        anonymised="orig_time date -> 1 January of its year; unknown free-text descriptions -> other",
        assumptions="orig_time is the PSG's local start; stage runs on the 30-s grid from second 0",
    ),
    Format(
        kind="mne_annotations_csv",
        title=TITLE_CSV,
        producer="MNE-Python Annotations.save (.csv)",
        extensions=(".csv",),
        out_extension="csv",
        sniff=sniff_csv,
        parse_fn=parse_csv,
        anonymise_fn=anonymise_csv,
        reads="ISO date-time onsets (the first row is the start), stage runs, events, Lights off/on",
        anonymised="dates shifted to 1 January of the year; unknown free-text descriptions -> other",
        assumptions="the first row's time is the recording start; float onsets are seconds (MNE: ms)",
    ),
)
