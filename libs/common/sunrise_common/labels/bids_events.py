"""BIDS ``*_events.tsv`` with sleep labels, and the proposed BIDS sleep ``*_hypnogram.tsv``.

``onset`` and ``duration`` are the first two columns (seconds from the first data sample;
``duration`` may be ``n/a``); tab-separated; ``n/a`` is missing. The label is read from the first
of ``stage``, ``sleep_stage``, ``trial_type``, ``label``, ``value`` present (``label`` is
wonambi's non-standard column; ``stage`` is the hypnogram extension's, bids-specification PR
2208 [U: the PR was not merged when this was written]). Optional ``channel``, ``spo2_baseline``
and ``spo2_nadir`` columns are read.

Labels: stages ``sleep_wake``, ``sleep_N1`` ... ``sleep_REM``, ``sleep_unscored`` (wonambi),
``W``, ``N1``, ``N2``, ``N3``, ``R``/``REM``, R&K ``S1``-``S4`` (3/4 -> N3), ``MT``, ``?``;
lights ``lights_off``/``lights_on``; everything else is an event (type from its words). Stage
rows are runs (onset, duration; one epoch when duration is ``n/a``) on the 30-s grid from 0.

The absolute start is not in the file (it is ``acq_time`` in ``*_scans.tsv``): epoch 0 is the
PSG's start.

Sources: reference/label-formats.md §14 (BIDS via mne-bids #1254, wonambi ``to_bids``).
"""

from __future__ import annotations

import re
from datetime import datetime

from .canonical import LabelEvent, LabelSet, map_stage
from .common import decode, encode, event_type, expand_spans, newline_of, number, safe_label
from .common import lights_word
from .errors import LabelError
from .registry import Format

TITLE = "BIDS events/hypnogram TSV"
LABEL_COLUMNS = ("stage", "sleep_stage", "trial_type", "label", "value", "description")
_SHORT = {"w": "W", "r": "REM", "?": "UNS"}


def _table(text: str) -> tuple[list[str], list[tuple[int, list[str]]], int]:
    lines = text.splitlines()
    if not lines:
        raise LabelError("no_labels", f"{TITLE}: empty")
    head = [c.strip().lower() for c in lines[0].split("\t")]
    if head[:2] != ["onset", "duration"]:
        raise LabelError("bad_table", f"{TITLE}: the first two columns are not onset and duration")
    col = next((head.index(c) for c in LABEL_COLUMNS if c in head), None)
    if col is None:
        raise LabelError("bad_table", f"{TITLE}: no stage, trial_type, label or value column")
    rows = [(n, ln.split("\t")) for n, ln in enumerate(lines[1:], 2) if ln.strip()]
    return head, rows, col


def stage_of(label: str) -> str | None:
    s = label.strip()
    if s.lower() in _SHORT:
        return _SHORT[s.lower()]
    stage, known = map_stage(s)
    return stage if known else None


def _opt(cells: list[str], head: list[str], name: str, where: str) -> float | None:
    if name not in head:
        return None
    i = head.index(name)
    v = cells[i].strip() if i < len(cells) else ""
    return None if v in ("", "n/a") else number(v, name, where)


def parse(data: bytes) -> LabelSet:
    text, _, _ = decode(data)
    head, rows, col = _table(text)
    spans = []
    events = []
    lights: dict[str, float] = {}
    warnings = ["BIDS events carry no absolute start (scans.tsv acq_time): epoch 0 is the PSG start"]
    ch = head.index("channel") if "channel" in head else None
    for n, cells in rows:
        where = f"{TITLE}: line {n}"
        onset = number(cells[0], "onset", where)
        d = cells[1].strip() if len(cells) > 1 else "n/a"
        duration = None if d == "n/a" else number(d, "duration", where)
        label = cells[col].strip() if col < len(cells) else ""
        stage = stage_of(label)
        if stage is not None:
            spans.append((onset, duration if duration else 30.0, stage, label))
            continue
        which = lights_word(label.replace("_", " "))
        if which is not None:
            lights.setdefault(which, onset)
            continue
        channel = cells[ch].strip() if ch is not None and ch < len(cells) else ""
        events.append(LabelEvent(
            type=event_type(label), onset_s=onset, duration_s=duration or 0.0,
            channel="" if channel == "n/a" else channel, label=label,
            baseline=_opt(cells, head, "spo2_baseline", where), nadir=_opt(cells, head, "spo2_nadir", where),
        ))
    hyp = expand_spans(spans, 30.0, warnings, origin=0.0) if spans else None
    return LabelSet(start=None, hypnogram=hyp, events=events, source_kind="bids_events", warnings=warnings,
                    lights_off_s=lights.get("off"), lights_on_s=lights.get("on"))


_KEEP = ("onset", "duration", "channel", "spo2_baseline", "spo2_nadir")


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Keep onset, duration, the label column, channel and SpO2 columns (others, e.g. free-text
    notes, dropped); a label that names no stage, event or lights marker becomes ``other``."""
    text, codec, bom = decode(data)
    nl = newline_of(text)
    head, rows, col = _table(text)
    keep = [i for i, h in enumerate(head) if h in _KEEP or i == col]
    out = ["\t".join(head[i] for i in keep)]
    for _, cells in rows:
        vals = []
        for i in keep:
            v = cells[i].strip() if i < len(cells) else "n/a"
            if i == col and stage_of(v) is None:
                v = safe_label(v)
            vals.append(v)
        out.append("\t".join(vals))
    return encode(nl.join(out) + nl, codec, bom), None


def sniff(head: bytes, name: str) -> int:
    first = decode(head)[0].splitlines()[:1]
    if first and re.match(r"^onset\tduration(\t|$)", first[0].strip("\ufeff"), re.IGNORECASE):
        return 2
    return 0


FORMAT = Format(
    kind="bids_events",
    title=TITLE,
    producer="BIDS datasets (events.tsv), the proposed BIDS sleep extension (_hypnogram.tsv), wonambi to_bids",
    extensions=("_events.tsv", "_hypnogram.tsv", ".tsv"),
    out_extension="tsv",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    reads="onset/duration rows; stage runs, events with channel and spo2_baseline/spo2_nadir, lights_off/on",
    anonymised="only onset, duration, label, channel, SpO2 columns kept; free-text labels -> other",
    assumptions="no absolute start in the file: epoch 0 = PSG start; _hypnogram.tsv column 'stage' (PR 2208, unmerged)",
)
