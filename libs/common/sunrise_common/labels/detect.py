"""Recognise what kind of label file some bytes are, from content first and the name second."""

from __future__ import annotations

import re

from .domino import decode_text, split_file
from .errors import LabelError

LABEL_KINDS = (
    "domino_sleep_profile",
    "domino_flow_events",
    "domino_arousals",
    "domino_generic",
    "domino_other",
    "edf_hypnogram",
    "nsrr_xml",
)

DOMINO_KINDS = LABEL_KINDS[:5]

# How many leading bytes callers should pass: enough for an EDF header with 15 signals and for
# the header lines of any DOMINO export.
HEAD_BYTES = 4096

_STAGE_WORDS = re.compile(r"\b(N1|N2|N3|REM|Wake|W|S1|S2)\b", re.IGNORECASE)


def _edf_kind(name: str, head: bytes) -> str:
    reserved = head[192:236].decode("ascii", "replace").strip()
    if not reserved.startswith(("EDF+", "BDF+")) and len(head) < 256:
        raise LabelError("unknown_label_format", f"{name!r}: truncated EDF/BDF header")
    try:
        ns = int(head[252:256].decode("ascii").strip())
    except ValueError:
        raise LabelError("unknown_label_format", f"{name!r}: EDF header without a signal count") from None
    if len(head) >= 256 + ns * 16:
        labels = [
            head[256 + i * 16 : 256 + (i + 1) * 16].decode("latin-1").strip() for i in range(ns)
        ]
        ordinary = [lb for lb in labels if lb not in ("EDF Annotations", "BDF Annotations")]
        if len(ordinary) == len(labels):
            raise LabelError(
                "unknown_label_format",
                f"{name!r}: EDF/BDF without an annotation signal: a recording, not a label file",
            )
        if ordinary:
            raise LabelError(
                "unknown_label_format",
                f"{name!r}: EDF/BDF with {len(ordinary)} ordinary signal(s) "
                f"({', '.join(ordinary[:3])}...): upload it as psg",
            )
        return "edf_hypnogram"
    if reserved.startswith(("EDF+", "BDF+")):
        return "edf_hypnogram"
    raise LabelError("unknown_label_format", f"{name!r}: plain EDF/BDF is not a label file")


def detect_label_kind(name: str, head: bytes) -> str:
    """Return the label kind of a file from its name and first bytes.

    Parameters
    ----------
    name : str
        Original file name (used only to break ties between DOMINO exports).
    head : bytes
        The first bytes of the file; ``HEAD_BYTES`` (4096) is enough.

    Returns
    -------
    str
        One of ``LABEL_KINDS``.

    Raises
    ------
    LabelError
        ``unknown_label_format`` for anything else (e.g. RBDtector's ``*_Start-Baseline.txt``
        side file, an EDF recording with signals, an XML that is not NSRR).
    """
    if not head.strip():
        raise LabelError("empty_label_file", f"{name!r} is empty")
    if head.startswith(b"0       ") or head.startswith(b"\xffBIOSEMI"):
        return _edf_kind(name, head)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        if b"PSGAnnotation" in head:
            return "nsrr_xml"
        raise LabelError("unknown_label_format", f"{name!r}: XML without a PSGAnnotation root")
    text = decode_text(head)
    df = split_file(text)
    signal_id = df.get("Signal ID")
    if signal_id is None or df.get("Start Time") is None:
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        raise LabelError(
            "unknown_label_format",
            f"{name!r}: not a DOMINO export (no 'Signal ID:'/'Start Time:' header; starts {first!r})",
        )
    sid = signal_id.lower()
    lname = name.lower()
    events_list = df.get("Events list") or ""
    if (
        "profil" in sid
        or "hypno" in sid
        or "sleep profile" in lname
        or "schlafprofil" in lname
        or (df.get("Rate") is not None and len(_STAGE_WORDS.findall(events_list)) >= 2)
    ):
        return "domino_sleep_profile"
    if "flow" in sid or "flow events" in lname or "fluss" in sid:
        return "domino_flow_events"
    if "arousal" in sid or "korrelationma" in sid or "arousal" in lname:
        return "domino_arousals"
    if sid.startswith("generic") or "generic" in lname:
        return "domino_generic"
    return "domino_other"
