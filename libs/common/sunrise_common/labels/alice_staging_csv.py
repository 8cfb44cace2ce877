"""Philips Respironics Alice / Sleepware plain-text staging (wonambi's "phillips" layout) [U].

Comma-separated rows, one per 30-s epoch: an epoch index, the epoch's clock time (``hh:mm:ss``
24-hour or ``hh:mm:ss AM/PM``) and the stage: ``WK``/``W`` W, ``N1``-``N3`` (``S1``-``S3``), ``RE``/
``REM``/``R`` REM, ``NS`` (not scored) UNS, or Alice's numeric codes (255 W, 11-14, 15 REM). A header
line is allowed. No date: the first row's clock time is the start (time of day only); each row's
epoch comes from its time (±12 h midnight rule), so missing epochs become UNS.

Sources: reference/label-formats.md §6b (wonambi ``phillips`` and Alice plain-text readers; the
exact vendor layout is unverified).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import UNSCORED, LabelSet
from .common import csv_rows, decode, encode, newline_of, offset_from_start, parse_clock, per_epoch
from .errors import LabelError
from .registry import Format

TITLE = "Alice staging CSV"
CODES = {
    "wk": "W", "w": "W", "n1": "N1", "n2": "N2", "n3": "N3", "s1": "N1", "s2": "N2", "s3": "N3", "s4": "N3",
    "re": "REM", "rem": "REM", "r": "REM", "ns": UNSCORED,
    "255": "W", "11": "N1", "12": "N2", "13": "N3", "14": "N3", "15": "REM",
}
_TIME = re.compile(r"^\s*\d{1,2}:\d{2}:\d{2}(?:\s*[AaPp][Mm])?\s*$")


def _rows(text: str) -> list[tuple[int, str, str, list[str]]]:
    out = []
    for n, cells in enumerate(csv_rows(text), 1):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < 3 or not _TIME.match(cells[1]):
            if n == 1:
                continue  # a header line
            raise LabelError("bad_row", f"{TITLE}: line {n} is not index, clock time, stage")
        out.append((n, cells[1].strip(), cells[2].strip(), cells))
    return out


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    rows = _rows(text)
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no staging rows")
    start = parse_clock(rows[0][1], f"{TITLE}: line {rows[0][0]}")
    by_index: dict[int, tuple[str, str]] = {}
    unknown = 0
    for n, clock, code, _ in rows:
        off = offset_from_start(parse_clock(clock, f"{TITLE}: line {n}"), start)
        stage = CODES.get(code.lower())
        if stage is None:
            unknown += 1
            stage = UNSCORED
        if off >= 0:
            by_index.setdefault(round(off / 30.0), (stage, code))
    warnings = ["Alice staging has no date: time of day only"]
    if unknown:
        warnings.append(f"{unknown} stage code(s) outside the Alice vocabulary: {UNSCORED}")
    n = max(by_index) + 1
    if n - len(by_index):
        warnings.append(f"{n - len(by_index)} epoch(s) missing between rows: {UNSCORED}")
    hyp = per_epoch([by_index.get(i, (UNSCORED, "")) for i in range(n)], 30.0)
    return LabelSet(start=None, hypnogram=hyp, events=[], source_kind="alice_staging_csv", warnings=warnings,
                    start_time=start)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Rewritten as ``index,time,stage`` rows (stage codes outside the vocabulary -> ``NS``)."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    out = [f"{i},{clock},{code if code.lower() in CODES else 'NS'}" for i, (_, clock, code, _) in enumerate(_rows(text), 1)]
    return encode(nl.join(out) + nl, codec, bom), None


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0]
    lines = [ln for ln in text.splitlines()[:-1] if ln.strip()][:40] or text.splitlines()
    try:
        rows = _rows("\n".join(lines))
    except LabelError:
        return 0
    if len(rows) >= 2 and all(code.lower() in CODES for _, _, code, _ in rows):
        return 2
    return 0


FORMAT = Format(
    kind="alice_staging_csv",
    title=TITLE,
    producer="Philips Respironics Alice / Sleepware (plain-text staging)",
    extensions=(".csv", ".txt"),
    out_extension="csv",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="index, clock time, stage per 30-s epoch (WK/N1-N3/RE/NS or 255/11-15)",
    anonymised="rewritten as index, time, stage",
    assumptions="layout unverified (wonambi's reader); first row = start, time of day only",
)
