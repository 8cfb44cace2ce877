"""Pseudonyms, nights and upload ids: keyed, deterministic, free of dates and names.

- ``subject_pseudonym = base32(HMAC-SHA256(key, site + "/" + subject))[:12]`` (60 bits).
- A night is the noon-to-noon window containing the recording start (local header time).
- ``night_id = pseudonym + "-n" + night_index`` where the index counts days since 1970 plus a
  per-subject offset derived from the key: nights of one subject keep their order and spacing,
  but the calendar date cannot be read back without the key (DESIGN.md: the date is personal data).
- ``start_offset_s``: seconds from the night's noon anchor to the recording start. It depends only
  on the time of day, which the anonymised headers keep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, datetime, timedelta

NOON_S = 12 * 3600
_SHIFT_RANGE_DAYS = 3650


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _b32(digest: bytes, n: int) -> str:
    return base64.b32encode(digest).decode("ascii").lower()[:n]


def subject_pseudonym(key: bytes, site: str, subject: str) -> str:
    return "s" + _b32(_hmac(key, f"{site}/{subject}"), 12)


def night_date(start: datetime) -> date:
    """The date of the noon that opens the night containing ``start``."""
    return (start - timedelta(hours=12)).date()


def start_offset_s(start: datetime) -> float:
    """Seconds from the night's noon anchor to ``start`` (0 <= offset < 86400)."""
    anchor = datetime.combine(night_date(start), datetime.min.time()) + timedelta(hours=12)
    return (start.replace(tzinfo=None) - anchor).total_seconds()


def time_of_day_offset_s(hours: int, minutes: int, seconds: float) -> float:
    """``start_offset_s`` from a time of day alone (what an anonymised header keeps)."""
    return ((hours * 3600 + minutes * 60 + seconds) - NOON_S) % 86400


def night_index(key: bytes, site: str, subject: str, start: datetime) -> int:
    shift = int.from_bytes(_hmac(key, f"shift/{site}/{subject}")[:4], "big") % _SHIFT_RANGE_DAYS
    return (night_date(start) - date(1970, 1, 1)).days + shift


def night_id(key: bytes, site: str, subject: str, start: datetime) -> str:
    return f"{subject_pseudonym(key, site, subject)}-n{night_index(key, site, subject, start)}"


def upload_id(key: bytes, bucket: str, name: str) -> str:
    """Id of the uploads/ document of a raw object (keyed: the name holds the subject id)."""
    return "u" + _b32(_hmac(key, f"upload/{bucket}/{name}"), 24)


def label_key(key: bytes, name: str, label_kind: str) -> str:
    return f"{label_kind}-{_b32(_hmac(key, f'label/{name}'), 8)}"


def digest(*parts: object) -> str:
    """A short stable key for a set of inputs (e.g. object generations)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]
