"""Channel labels -> canonical channel types and names.

One ordered table of case-insensitive regular expressions; the first match wins. Unknown channels
are kept (type ``UNKNOWN``) and marked in ``meta.json``, never dropped.

Extending the table: pass ``channel_map`` (a path) to :func:`load_table` / ``prepare_psg``:

- JSON: ``[{"pattern": "^Kinn", "type": "EMG_CHIN", "name": "EMG_CHIN"}, ...]`` (``name``
  optional), or an object ``{"^Kinn": "EMG_CHIN", ...}``;
- CSV with a header row ``pattern,type[,name]``.

User rules are tried before the built-in ones, so they can also override them.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

CHANNEL_TYPES = (
    "EEG",
    "EOG",
    "EMG_CHIN",
    "EMG_LEG",
    "ECG",
    "SPO2",
    "PULSE",
    "AIRFLOW_THERMISTOR",
    "NASAL_PRESSURE",
    "EFFORT_THORAX",
    "EFFORT_ABDOMEN",
    "POSITION",
    "SNORE",
    "MARKER",
    "UNKNOWN",
)

# Types that usually occur once: their canonical name is the type itself (with _2, _3 when
# repeated). Multi-electrode types get the derivation appended (EEG_FPZ_CZ).
_SINGLE = {"SPO2", "PULSE", "AIRFLOW_THERMISTOR", "NASAL_PRESSURE", "EFFORT_THORAX", "EFFORT_ABDOMEN",
           "POSITION", "SNORE"}

_ELECTRODE = r"(?:fp|af|f|fc|ft|c|cp|t|tp|p|po|o|a|m)[0-9]{1,2}|(?:fp|af|f|fc|c|cp|p|po|o)z"

# (pattern, type). Order matters: specific before general.
BUILTIN_TABLE: tuple[tuple[str, str], ...] = (
    (r"temp|light|lux|^status$|^dc\d*$", "UNKNOWN"),
    (r"event|marker|trigger|^stim|^annotation", "MARKER"),
    (r"sp\s*o\s*2|sa\s*o\s*2|\bsat\b|oxi|spo2", "SPO2"),
    (r"^h\.?\s*r\.?$|pulse|heart\s*rate|^hr\b|^pr$|^pr\s", "PULSE"),
    (r"\b(?:ecg|ekg)|^ecg|^ekg", "ECG"),
    (r"snor|^mic|sound", "SNORE"),
    (r"posi|^pos$|body\s*pos|^body$", "POSITION"),
    (r"thor|chest|rib\s*cage", "EFFORT_THORAX"),
    (r"abd", "EFFORT_ABDOMEN"),
    (r"nasal\s*press|pressure|cannula|pflow|npress|^press|\bpap\b|cflow|new\s*air", "NASAL_PRESSURE"),
    (r"oro.?nasal|therm|air\s*flow|^flow|^resp|^nasal|^oral", "AIRFLOW_THERMISTOR"),
    (r"\bleg|^l?rat\b|^lat\b|tib|plm|\bemg\s*(?:l|r)\b", "EMG_LEG"),
    (r"emg|chin|submental|ment", "EMG_CHIN"),
    (r"eog|^e[12]\b|^[lr]oc\b|^loc|^roc|^e[12][-_ ]", "EOG"),
    (rf"eeg|^(?:{_ELECTRODE})(?:\b|[-_ .:]|$)", "EEG"),
)


@dataclass(frozen=True)
class ChannelRule:
    pattern: re.Pattern[str]
    type: str
    name: str | None = None


@dataclass(frozen=True)
class ChannelInfo:
    """A classified channel: its original label, canonical type and (unique) canonical name."""

    label: str
    type: str
    name: str


def _rule(pattern: str, ctype: str, name: str | None = None) -> ChannelRule:
    ctype = ctype.strip().upper()
    if ctype not in CHANNEL_TYPES:
        raise ValueError(f"unknown channel type {ctype!r} for pattern {pattern!r}; expected one of {CHANNEL_TYPES}")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad channel pattern {pattern!r}: {exc}") from None
    return ChannelRule(compiled, ctype, name or None)


def load_table(channel_map: Path | str | None = None) -> tuple[ChannelRule, ...]:
    """The channel table: user rules from ``channel_map`` (JSON or CSV) first, then the built-ins."""
    rules: list[ChannelRule] = []
    if channel_map is not None:
        path = Path(channel_map)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".csv":
            for row in csv.DictReader(text.splitlines()):
                rules.append(_rule(row["pattern"], row["type"], (row.get("name") or "").strip() or None))
        else:
            data = json.loads(text)
            if isinstance(data, dict):
                rules.extend(_rule(p, t) for p, t in data.items())
            else:
                rules.extend(_rule(r["pattern"], r["type"], r.get("name")) for r in data)
    rules.extend(_rule(p, t) for p, t in BUILTIN_TABLE)
    return tuple(rules)


def classify(label: str, table: tuple[ChannelRule, ...] | None = None) -> tuple[str, str | None]:
    """Canonical type of one label (and the user-given name, if any)."""
    for rule in table or load_table():
        if rule.pattern.search(label.strip()):
            return rule.type, rule.name
    return "UNKNOWN", None


_TYPE_WORDS = re.compile(r"\b(eeg|eog|emg|ecg|ekg)\b", re.IGNORECASE)


def _derivation(label: str, ctype: str) -> str:
    """The label without words the type already says (``EMG Chin`` -> "", ``Leg L`` -> "L")."""
    text = _TYPE_WORDS.sub(" ", label)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", text.upper()) if t]
    drop = set(ctype.split("_"))
    return "_".join(t for t in tokens if t not in drop)


def map_channels(labels: list[str], table: tuple[ChannelRule, ...] | None = None) -> list[ChannelInfo]:
    """Classify labels and give each a unique canonical name (``EEG_FPZ_CZ``, ``SPO2``, ``SPO2_2``).

    Names are ``[A-Z0-9_]`` only, so they are valid ``.npz`` keys.
    """
    table = table or load_table()
    out: list[ChannelInfo] = []
    used: set[str] = set()
    for label in labels:
        ctype, given = classify(label, table)
        if given:
            base = re.sub(r"[^A-Za-z0-9]+", "_", given).strip("_").upper() or ctype
        elif ctype in _SINGLE:
            base = ctype
        else:
            deriv = _derivation(label, ctype)
            base = f"{ctype}_{deriv}" if deriv and deriv != ctype else ctype
        name = base
        k = 2
        while name in used:
            name = f"{base}_{k}"
            k += 1
        used.add(name)
        out.append(ChannelInfo(label=label, type=ctype, name=name))
    return out
