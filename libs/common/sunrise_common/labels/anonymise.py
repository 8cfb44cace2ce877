"""Anonymise label files and parse them by kind, through the format registry.

EDF+/BDF+ label files are anonymised by the EDF anonymiser (``sunrise_common.edf``), not here.
The original start is returned to the caller for pairing and is never written into the output.
Original file names never travel: the caller renames the object (DOMINO puts the patient's name,
e.g. ``Unbekannt``, in file names only).
"""

from __future__ import annotations

from . import registry
from .canonical import LabelSet
from .registry import AnonymisedLabel


def anonymise_label_file(kind: str, data: bytes) -> AnonymisedLabel:
    """Anonymise one label file of a known kind (see ``registry.detect``).

    Raises
    ------
    LabelError
        ``not_text_label`` for ``edf_hypnogram`` (use the EDF anonymiser), ``no_labels`` for a
        file with no stage and no event, or the parser's reason (``bad_start_time``,
        ``unsafe_xml``, ``label_too_large`` ...).
    """
    return registry.by_kind(kind).anonymise(data)


def parse_labels(kind: str, data: bytes) -> LabelSet:
    """Parse a label file of a known kind into a ``LabelSet`` (original or anonymised bytes)."""
    return registry.by_kind(kind).parse(data)


__all__ = ["AnonymisedLabel", "anonymise_label_file", "parse_labels"]
