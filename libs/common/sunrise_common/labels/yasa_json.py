"""YASA ``Hypnogram.to_json`` files.

A JSON object with ``values`` (one stage per epoch: ``WAKE``/``W``, ``N1``, ``N2``, ``N3``,
``REM``/``R``, ``ART``, ``UNS``; 2-, 3- and 4-stage schemes' ``SLEEP``, ``NREM``, ``LIGHT``,
``DEEP`` are refused as not AASM stages), ``n_stages``, ``freq`` (epoch length, e.g. ``"30s"``),
``start`` (ISO, possibly with a time zone: the local wall-clock time is kept) or null, ``scorer``
and ``proba``. Art and Uns are UNS with the code kept.

Sources: reference/label-formats.md §11 (YASA ``hypno.py``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from .canonical import UNSCORED, LabelSet
from .common import anon_shift, decode, per_epoch
from .errors import LabelError
from .registry import Format

TITLE = "YASA hypnogram JSON"
STAGES = {"wake": "W", "w": "W", "n1": "N1", "n2": "N2", "n3": "N3", "rem": "REM", "r": "REM",
          "art": UNSCORED, "uns": UNSCORED}


def _load(data: bytes) -> dict:
    text = decode(data)[0]
    try:
        obj = json.loads(text)
    except RecursionError:
        raise LabelError("json_too_deep", f"{TITLE}: nesting too deep") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", 0)
        col = getattr(exc, "colno", 0)
        raise LabelError("bad_json", f"{TITLE}: JSON does not parse (line {line}, column {col})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("values"), list):
        raise LabelError("bad_json", f"{TITLE}: no 'values' list")
    return obj


def _epoch_s(freq: object) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min)?\s*", str(freq or "30s"))
    if m is None:
        raise LabelError("bad_json", f"{TITLE}: freq is not a number of seconds")
    v = float(m.group(1)) * (60 if m.group(2) == "min" else 1)
    if not 1 <= v <= 120:
        raise LabelError("absurd_value", f"{TITLE}: epoch length {v:g} s outside 1..120")
    return v


def _start(raw: object) -> datetime | None:
    if raw in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        raise LabelError("bad_start_time", f"{TITLE}: start is not an ISO date-time") from None


def parse(data: bytes) -> LabelSet:
    obj = _load(data)
    codes = []
    for i, v in enumerate(obj["values"]):
        stage = STAGES.get(str(v).strip().lower())
        if stage is None:
            raise LabelError("bad_json", f"{TITLE}: value {i + 1} is not an AASM stage (5-stage hypnograms only)")
        codes.append((stage, str(v)))
    start = _start(obj.get("start"))
    warnings = [] if start is not None else ["no start: epoch 0 is the PSG start"]
    return LabelSet(start=start, hypnogram=per_epoch(codes, _epoch_s(obj.get("freq"))) if codes else None,
                    events=[], source_kind="yasa_json", warnings=warnings)


def anonymise(data: bytes) -> tuple[bytes, datetime | None]:
    """Only ``values``, ``n_stages``, ``freq`` and ``start`` (date moved to 1 January of its
    year) are kept; ``scorer`` and ``proba`` are dropped."""
    obj = _load(data)
    start = _start(obj.get("start"))
    out: dict = {"values": [str(v) for v in obj["values"]], "n_stages": 5, "freq": str(obj.get("freq") or "30s")}
    out["start"] = (start + timedelta(days=anon_shift(start.date()).days)).isoformat() if start else None
    return json.dumps(out).encode(), start


def sniff(head: bytes, name: str) -> int:
    text = decode(head)[0].lstrip()
    if text.startswith("{") and '"values"' in text and ('"freq"' in text or '"n_stages"' in text):
        return 2
    return 0


FORMAT = Format(
    kind="yasa_json",
    title=TITLE,
    producer="YASA (Hypnogram.to_json)",
    extensions=(".json",),
    out_extension="json",
    sniff=sniff,
    parse_fn=parse,
    anonymise_fn=anonymise,
    is_text=False,
    reads="values per epoch (5-stage), freq, start",
    anonymised="scorer and proba dropped; start date shifted to 1 January of its year",
    assumptions="start's time zone dropped (local wall-clock kept); 2/3/4-stage hypnograms refused",
)
