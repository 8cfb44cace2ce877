"""EDF+ annotations: TAL parsing and encoding, and the scoring vocabulary kept by anonymisation.

A Time-stamped Annotations List (TAL, EDF+ spec section 2.2.2) is::

    +onset[\\x15duration]\\x14[text\\x14]...\\x00

``onset`` is in seconds relative to the file start (sign mandatory), ``duration`` in seconds
(unsigned), texts are UTF-8. The annotation signal of every data record is a sequence of TALs
padded with ``\\x00``. The first TAL of each record is the *time-keeping* TAL: its first text is
empty and its onset is the start time of that data record (for EDF+D this is the only record
timing; for EDF+C it carries the sub-second start offset).

Free text in annotations is a channel for personal data ("Lights out - tech Jane Doe"), so the
anonymiser keeps only texts that belong to :data:`KEEP_VOCABULARY`: sleep stages, respiratory
events, arousals, limb movements, lights and recording markers. Matching is case-insensitive and
whitespace-normalised only. Near-misses are *not* kept: e.g. ``"Ligths-Off#1"`` (a typo plus a
counter, from an OpenBCI file) is dropped, because guessing at misspellings would let arbitrary
text through. A scoring export that needs such labels should map them before upload.

A vocabulary text may carry a channel after ``@@`` (``Lights off@@EEG F4-A1``: MNE writes an
annotation's channels that way, and the HMC dataset's scorings do): the text is kept whole when
the suffix is plainly a channel label (:func:`is_channel_label`), else it is kept without the
suffix (``kept_text``), so the marker survives and nothing the suffix might hold does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sunrise_common.edf.errors import EdfError
from sunrise_common.edf.header import UNSIGNED_DECIMAL


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotation.

    Attributes
    ----------
    onset : float
        Seconds from the recording start (the header's start date/time).
    duration : float or None
        Seconds; None when the TAL gives no duration.
    text : str
        Annotation text (UTF-8 decoded; undecodable bytes replaced).
    """

    onset: float
    duration: float | None
    text: str


@dataclass(frozen=True, slots=True)
class Tal:
    """One TAL with its fields kept as raw bytes, so that re-encoding is byte-exact.

    Attributes
    ----------
    onset : bytes
        Raw onset, e.g. ``b"+0.039453"``.
    duration : bytes or None
        Raw duration (without ``\\x15``), None when absent.
    texts : tuple of bytes
        Raw texts; ``texts[0] == b""`` marks a time-keeping TAL.
    """

    onset: bytes
    duration: bytes | None
    texts: tuple[bytes, ...]

    @property
    def onset_s(self) -> float:
        """Onset in seconds."""
        return float(self.onset)

    @property
    def duration_s(self) -> float | None:
        """Duration in seconds, or None."""
        return None if self.duration is None else float(self.duration)

    @property
    def is_timekeeping(self) -> bool:
        """True when the first text is empty (the record time-keeping TAL)."""
        return bool(self.texts) and self.texts[0] == b""


def parse_tals(data: bytes | bytearray | memoryview) -> list[Tal]:
    """Parse the annotation bytes of one data record into TALs.

    Parameters
    ----------
    data : bytes-like
        The bytes of one annotation signal in one data record (``samples_per_record * 2`` bytes
        for EDF, ``* 3`` for BDF), TALs followed by ``\\x00`` padding.

    Raises
    ------
    EdfError
        ``bad_annotations`` when a TAL is malformed (bad onset or duration, missing ``\\x14``).
    """
    tals = []
    for piece in bytes(data).split(b"\x00"):
        if not piece:
            continue
        parts = piece.split(b"\x14")
        if len(parts) < 2 or parts[-1] != b"":
            raise EdfError("bad_annotations", f"TAL is not terminated by 0x14 0x00: {piece[:60]!r}")
        head = parts[0]
        onset, sep, duration = head.partition(b"\x15")
        if not (onset[:1] in (b"+", b"-") and UNSIGNED_DECIMAL.fullmatch(onset, 1)):
            raise EdfError("bad_annotations", f"TAL onset is not a signed number: {onset[:40]!r}")
        if sep and not UNSIGNED_DECIMAL.fullmatch(duration):
            raise EdfError("bad_annotations", f"TAL duration is not an unsigned number: {duration[:40]!r}")
        tals.append(Tal(onset, duration if sep else None, tuple(parts[1:-1])))
    return tals


def encode_tal(tal: Tal) -> bytes:
    """Encode one TAL, ending in ``\\x14\\x00``."""
    head = tal.onset if tal.duration is None else tal.onset + b"\x15" + tal.duration
    return head + b"\x14" + b"".join(t + b"\x14" for t in tal.texts) + b"\x00"


def encode_tals(tals: list[Tal], size: int | None = None) -> bytes:
    """Encode TALs, padded with ``\\x00`` to ``size`` bytes when given.

    Raises
    ------
    EdfError
        ``bad_annotations`` when the TALs do not fit in ``size`` bytes.
    """
    out = b"".join(encode_tal(t) for t in tals)
    if size is None:
        return out
    if len(out) > size:
        raise EdfError("bad_annotations", f"{len(out)} bytes of TALs do not fit in {size} bytes")
    return out + b"\x00" * (size - len(out))


def tal_annotations(tals: list[Tal]) -> list[Annotation]:
    """The annotations (non-empty texts) of a list of TALs."""
    out = []
    for tal in tals:
        onset, duration = tal.onset_s, tal.duration_s
        for text in tal.texts:
            if text:
                out.append(Annotation(onset, duration, text.decode("utf-8", errors="replace")))
    return out


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


def _vocabulary() -> frozenset[str]:
    words: list[str] = []
    # Sleep stages: R&K (Sleep-EDF "Sleep stage 1..4/R/W/?"), AASM, DOMINO short labels.
    for stage in ("W", "1", "2", "3", "4", "R", "?", "N1", "N2", "N3", "N4", "REM", "N", "M"):
        words.append(f"Sleep stage {stage}")
    words += ["W", "N1", "N2", "N3", "N4", "R", "REM", "Wake", "Movement time", "Movement", "Unscored"]
    # Respiratory events, American and British spellings.
    for apnea in ("apnea", "apnoea"):
        words.append(apnea)
        for kind in ("obstructive", "central", "mixed"):
            words.append(f"{kind} {apnea}")
    for hypopnea in ("hypopnea", "hypopnoea"):
        words.append(hypopnea)
        for kind in ("obstructive", "central", "mixed"):
            words.append(f"{kind} {hypopnea}")
    words += [
        "RERA",
        "Respiratory effort related arousal",
        "Respiratory effort-related arousal",
        "Desaturation",
        "Oxygen desaturation",
        "SpO2 desaturation",
        "SaO2 desaturation",
    ]
    # Arousals, incl. the DOMINO "Classification Arousals" classes.
    words += ["Arousal", "EEG arousal", "Arousal (EEG)", "Arousal (EMG)", "Spontaneous arousal"]
    for cause in ("Respiratory", "PLM", "LM", "Snore", "Cardiac", "Spontaneous", "Limb movement"):
        words += [f"{cause} arousal", f"{cause} arousal (EEG)"]
    # Limb movements.
    for limb in ("Limb movement", "Leg movement", "Periodic limb movement", "Periodic leg movement"):
        words += [limb, f"{limb} (left)", f"{limb} (right)", f"{limb} left", f"{limb} right"]
    words += ["LM", "PLM", "PLMS"]
    # Markers.
    words += ["Lights off", "Lights on", "Lights out", "Recording starts", "Recording ends"]
    return frozenset(_normalise(w) for w in words)


#: Normalised (casefolded, single-spaced) texts that anonymisation keeps; everything else is dropped.
KEEP_VOCABULARY: frozenset[str] = _vocabulary()


def is_allowed(text: str | bytes) -> bool:
    """Whether anonymisation keeps an annotation text unchanged: a text of
    :data:`KEEP_VOCABULARY`, alone or followed by ``@@`` and a channel label.

    Matching ignores case and collapses runs of whitespace; nothing else is forgiven
    (``"Ligths-Off#1"`` is not ``"Lights off"``). Bytes must be valid UTF-8.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            return False
    head, sep, channel = text.partition(CHANNEL_SEPARATOR)
    return _normalise(head) in KEEP_VOCABULARY and (not sep or is_channel_label(channel))


#: What separates an annotation's description from its channel (MNE's EDF export, HMC scorings).
CHANNEL_SEPARATOR = "@@"

# Electrodes of the 10-20/10-10 systems (Fp1, AF3, F4, C3, Cz, T7, P4, O2, the A1/A2 and M1/M2
# references, E1/E2 for EOG), the EOG names LOC/ROC, and signal names PSG systems give a channel.
_ELECTRODE = r"(?:(?:Fp|AF|FC|FT|CP|TP|PO|F|C|T|P|O|I|A|M|E|N)(?:z|[0-9]{1,2})|LOC|ROC)"
_CHANNEL_RE = re.compile(  # case-insensitive
    rf"(?i:(?:(?:EEG|EOG|EMG|ECG|EKG)[ _]?)?{_ELECTRODE}(?:[-:/]{_ELECTRODE})?"
    r"|(?:ECG|EKG|EMG|EOG|EEG|Chin|SpO2|SaO2|Flow|Airflow|Thor|Abdo|Snore|Pleth|Pulse|Position)"
    r"(?:[ _]?(?:[0-9]|L|R|left|right))?)"
)


def is_channel_label(text: str) -> bool:
    """Whether ``text`` is plainly a channel label: an EEG/EOG/EMG/ECG derivation of 10-20
    electrodes (``EEG F4-A1``, ``C4:M1``, ``E1-M2``) or a PSG signal name (``SpO2``, ``Chin 2``),
    at most 16 characters (an EDF label). Anything else (a name, a comment) is not."""
    text = text.strip()
    return 0 < len(text) <= 16 and _CHANNEL_RE.fullmatch(text) is not None


def kept_text(text: bytes) -> bytes | None:
    """The text anonymisation writes for an annotation text: unchanged when :func:`is_allowed`,
    the part before ``@@`` when only that part is scoring vocabulary (the suffix is not plainly a
    channel label), None (dropped) otherwise."""
    if is_allowed(text):
        return bytes(text)
    head, sep, _ = bytes(text).partition(CHANNEL_SEPARATOR.encode())
    return head if sep and is_allowed(head) else None
