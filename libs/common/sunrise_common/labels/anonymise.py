"""Anonymise text/XML label files and dispatch parsing by kind.

EDF+/BDF+ label files are anonymised by the EDF anonymiser (``sunrise_common.edf``), not here.
The original start is returned to the caller for pairing and is never written into the output.
Original file names never travel: the caller renames the object (DOMINO puts the patient's name,
e.g. ``Unbekannt``, in file names only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import domino, edf_hypnogram, nsrr_xml
from .canonical import LabelSet
from .detect import DOMINO_KINDS, LABEL_KINDS
from .errors import LabelError


@dataclass
class AnonymisedLabel:
    """The anonymised bytes and what the caller needs for pairing.

    Attributes
    ----------
    data : bytes
        The anonymised file (same format; ``parse_labels`` reads it).
    start : datetime | None
        The ORIGINAL naive start, for pairing only; never written anywhere.
    kind : str
    extension : str
        Suggested file extension for the renamed object (``txt`` or ``xml``).
    """

    data: bytes
    start: datetime | None
    kind: str
    extension: str
    warnings: list[str] = field(default_factory=list)


def anonymise_label_file(kind: str, data: bytes) -> AnonymisedLabel:
    """Anonymise one label file of a known kind (see ``detect_label_kind``).

    DOMINO: ``Start Time`` reduced to ``01.01.<year> HH:MM:SS``, row dates shifted by the same
    number of days (so every row keeps its time relative to ``Start Time``), unknown header lines
    dropped. NSRR XML: patient elements removed, ``ClockTime`` date dropped.

    Raises
    ------
    LabelError
        ``not_text_label`` for ``edf_hypnogram`` (use the EDF anonymiser), or the parser's reason
        when the file cannot be read (``bad_start_time``, ``unsafe_xml`` ...).
    """
    if kind in DOMINO_KINDS:
        out, start = domino.anonymise(data)
        return AnonymisedLabel(out, start, kind, "txt")
    if kind == "nsrr_xml":
        out, start = nsrr_xml.anonymise(data)
        return AnonymisedLabel(out, start, kind, "xml")
    if kind == "edf_hypnogram":
        raise LabelError("not_text_label", "EDF+/BDF+ label files go through the EDF anonymiser")
    raise LabelError("unknown_label_format", f"unknown label kind {kind!r}; expected one of {LABEL_KINDS}")


def parse_labels(kind: str, data: bytes) -> LabelSet:
    """Parse a label file of a known kind into a ``LabelSet`` (original or anonymised bytes)."""
    if kind == "domino_sleep_profile":
        return domino.parse_sleep_profile(data, kind)
    if kind in DOMINO_KINDS:
        return domino.parse_events(data, kind)
    if kind == "nsrr_xml":
        return nsrr_xml.parse(data)
    if kind == "edf_hypnogram":
        return edf_hypnogram.parse(data)
    raise LabelError("unknown_label_format", f"unknown label kind {kind!r}; expected one of {LABEL_KINDS}")
