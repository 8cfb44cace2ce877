"""One stage per line: plain label lists, Luna ``.eannot``, YASA integer hypnograms (text/CSV).

Plain: one label per line (``W``, ``N1``-``N3``, ``R``/``REM``, ``?``, R&K ``S1``-``S4`` and
``1``..``4`` are NOT accepted as bare digits, see below; ``MT``/``M``/``U``/``L`` -> UNS, native
kept), 30-s epochs, no blank lines inside (Luna's rule; blank lines at the end are ignored).
Extensions ``.txt``, ``.csv``, ``.eannot``, ``.stages``.

Integer codes are YASA's (``Hypnogram`` 5-stage mapping): 0 W, 1 N1, 2 N2, 3 N3, 4 REM, -1 Art,
-2 Uns (both UNS, code kept). A ``5`` is refused with a reason: it is REM in ELAN and stage 4
in R&K numbering, never a YASA code, so the file's scheme is not YASA's.

Delimited files (``,``, ``;`` or tab; a header naming the columns, BOM allowed): the stage is
the column named ``stage``/``hypno``/``hypnogram``/``label``/``value``, else the last; an
``onset``/``onset_s``/``time`` column gives epoch 0's offset in seconds and the epoch length
(its step). No clock time: epoch 0 is the PSG start (plus that offset).

Sources: reference/label-formats.md §11 (YASA), §13 (.eannot), §4 (plain staging in wonambi).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import UNSCORED, LabelSet, map_stage
from .common import decode, encode, newline_of, number, per_epoch
from .errors import LabelError
from .registry import Format, name_has

TITLE = "One stage per line"
YASA = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "REM", "-1": UNSCORED, "-2": UNSCORED}
_LETTERS = {"w": "W", "r": "REM", "?": UNSCORED, "m": UNSCORED, "u": UNSCORED, "l": UNSCORED,
            "art": UNSCORED, "uns": UNSCORED}
_STAGE_COLS = ("stage", "stages", "hypno", "hypnogram", "label", "value", "sleep_stage")
_ONSET_COLS = ("onset", "onset_s", "time", "start")


def _stage(tok: str, where: str) -> tuple[str, bool]:
    t = tok.strip()
    if re.fullmatch(r"-?\d+", t):
        if t not in YASA:
            raise LabelError(
                "ambiguous_stage_code",
                f"{TITLE}: {where}: integer code {int(t)} is not a YASA code (0-4, -1, -2); an ELAN "
                "hypnogram needs its .hyp header",
            )
        return YASA[t], True
    if t.lower() in _LETTERS:
        return _LETTERS[t.lower()], True
    stage, known = map_stage(t)
    if known and re.fullmatch(r"\d", t):
        return stage, False
    return stage, known


def _rows(text: str) -> tuple[str | None, list[str] | None, list[tuple[int, list[str]]]]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    sep = None
    for d in ("\t", ";", ","):
        if lines and all(d in ln for ln in lines[:5] if ln.strip()):
            sep = d
            break
    rows = []
    header = None
    for n, ln in enumerate(lines, 1):
        if not ln.strip():
            raise LabelError("bad_row", f"{TITLE}: line {n} is blank (blank lines are not allowed inside)")
        cells = [c.strip() for c in ln.split(sep)] if sep else [ln.strip()]
        if n == 1 and sep is None and cells[0].lower() in _STAGE_COLS:
            header = [cells[0].lower()]  # a one-column file with its column name
            continue
        if n == 1 and sep and not any(re.fullmatch(r"-?\d+(?:[.,]\d+)?", c) for c in cells):
            header = [c.lower() for c in cells]
            continue
        rows.append((n, cells))
    return sep, header, rows


def _cols(header: list[str] | None, width: int) -> tuple[int, int | None]:
    if header is None:
        return width - 1, None
    si = next((header.index(c) for c in _STAGE_COLS if c in header), len(header) - 1)
    oi = next((header.index(c) for c in _ONSET_COLS if c in header), None)
    return si, oi


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    sep, header, rows = _rows(text)
    if not rows:
        raise LabelError("no_labels", f"{TITLE}: no stage lines")
    si, oi = _cols(header, len(rows[0][1]))
    codes = []
    onsets = []
    for n, cells in rows:
        if si >= len(cells):
            raise LabelError("bad_row", f"{TITLE}: line {n} has {len(cells)} fields, the stage is field {si + 1}")
        stage, known = _stage(cells[si], f"line {n}")
        if not known:
            raise LabelError("bad_row", f"{TITLE}: line {n}: not a stage label ({len(cells[si])} characters)")
        codes.append((stage, cells[si]))
        if oi is not None and oi < len(cells):
            onsets.append(number(cells[oi], "onset", f"{TITLE}: line {n}"))
    epoch_s = 30.0
    onset = 0.0
    if len(onsets) >= 2:
        onset = onsets[0]
        epoch_s = onsets[1] - onsets[0]
        if not 1 <= epoch_s <= 120:
            raise LabelError("absurd_value", f"{TITLE}: onset step {epoch_s:g} s outside 1..120")
    warnings = ["one stage per line has no clock time: epoch 0 is the PSG start"]
    return LabelSet(start=None, hypnogram=per_epoch(codes, epoch_s, onset), events=[], source_kind="stage_per_line",
                    warnings=warnings)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Only the stage (and onset) column is written back; every stage token was checked against
    the vocabulary by ``parse``."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    sep, header, rows = _rows(text)
    si, oi = _cols(header, len(rows[0][1]) if rows else 1)
    out = []
    if header is not None:
        out.append((sep or ",").join(["onset_s", "stage"] if oi is not None else ["stage"]))
    for _, cells in rows:
        if oi is not None and header is not None:
            out.append(sep.join([cells[oi], cells[si]]))  # type: ignore[union-attr]
        elif header is not None:
            out.append(cells[si])
        else:
            out.append(cells[si] if sep is None else sep.join(cells[si:si + 1]))
    return encode(nl.join(out) + nl, codec, bom), None


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0]
    try:
        sep, header, rows = _rows("\n".join(text.splitlines()[:-1]) if len(head) >= 4096 else text)
        if not rows:
            return 0
        si, _ = _cols(header, len(rows[0][1]))
        if sep is not None and header is None:
            return 0  # numbers in columns without names: not ours (e.g. Respironics code,10,)
        ok = all(si < len(c) and _stage(c[si], "")[1] for _, c in rows[:500])
    except LabelError:
        return 0
    if not ok:
        return 0
    return 2 if name_has(name, (".eannot", ".stages", ".eannot.txt")) or header is not None else 1


FORMAT = Format(
    kind="stage_per_line",
    title=TITLE,
    producer="Luna .eannot, YASA hypnograms (int codes), hand-made or exported label lists",
    extensions=(".txt", ".csv", ".eannot", ".stages"),
    out_extension="txt",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="one stage per 30-s epoch: labels or YASA integers (0-4, -1, -2); optional onset column",
    anonymised="rewritten: stage (and onset) column only",
    assumptions="30-s epochs from the PSG start unless an onset column says otherwise; integers are YASA "
    "codes (5 refused as ambiguous)",
)
