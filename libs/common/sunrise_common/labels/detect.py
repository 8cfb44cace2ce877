"""Recognise what kind of label file some bytes are, from content first and the name second.

The formats and their order come from ``registry.FORMATS``; this module keeps the historical
name ``detect_label_kind`` for callers (``LABEL_KINDS`` is ``sunrise_common.labels.LABEL_KINDS``).
"""

from __future__ import annotations

from . import registry
from .domino import DOMINO_KINDS
from .registry import HEAD_BYTES


def detect_label_kind(name: str, head: bytes) -> str:
    """Return the label kind of a file from its name and first bytes (``HEAD_BYTES``).

    Raises
    ------
    LabelError
        ``empty_label_file``, ``unknown_label_format`` (an EDF recording with signals, an XML or
        text file no registered format recognises); reasons never quote the file.
    """
    return registry.detect(head, name).kind


__all__ = ["DOMINO_KINDS", "HEAD_BYTES", "detect_label_kind"]
