"""Recognise what kind of label file some bytes are, from content first and the name second.

The formats and their order come from ``registry.FORMATS``; this module keeps the historical
names (``detect_label_kind``, ``LABEL_KINDS``) for callers.
"""

from __future__ import annotations

from . import registry
from .domino import DOMINO_KINDS
from .registry import HEAD_BYTES


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "LABEL_KINDS":  # the registry is filled after this module is imported
        return registry.KINDS
    raise AttributeError(name)


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
