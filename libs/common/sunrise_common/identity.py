"""Pseudonyms, nights and upload ids: keyed, deterministic, free of dates and names.

- ``subject_pseudonym = base32(HMAC-SHA256(key, site + "/" + subject))[:12]`` (60 bits).
- A night is the noon-to-noon window containing the recording start (local header time).
- ``night_id = pseudonym + "-n" + base32(HMAC-SHA256(key, "night/" + site/subject/night date))[:8]``:
  the same night always gets the same id, and nothing of the date can be read back without the key
  (docs/privacy.md: the date is personal data). An earlier linear day index (days since 1970 plus a
  per-subject shift) was dropped: with the recording year kept in the headers, two nights of one
  subject in different years pinned the shift down, and with it every date of that subject.
- ``start_offset_s``: seconds from the night's noon anchor to the recording start. It depends only
  on the time of day, which the anonymised headers keep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

#: Seconds, or an array of seconds: :func:`wrap_offset_s` works on either.
Seconds = TypeVar("Seconds", float, "np.ndarray")

NOON_S = 12 * 3600


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _b32(digest: bytes, n: int) -> str:
    return base64.b32encode(digest).decode("ascii").lower()[:n]


def subject_pseudonym(key: bytes, site: str, subject: str) -> str:
    return "s" + _b32(_hmac(key, f"{site}/{subject}"), 12)


def site_pseudonym(key: bytes, site: str) -> str:
    """Keyed pseudonym of a site (``t`` + 10 base32 characters), for per-site dataset statistics.

    The message ``site:{site}`` cannot equal a subject's ``{site}/{subject}``: site names hold
    no ``/`` (one path segment of the raw layout).
    """
    return "t" + _b32(_hmac(key, f"site:{site}"), 10)


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


def wrap_offset_s(delta_s: Seconds) -> Seconds:
    """A difference of two noon-anchor offsets (or times of day) wrapped into [-12 h, 12 h):
    ``(delta + 43200) % 86400 - 43200``; works on numpy arrays too."""
    return (delta_s + NOON_S) % 86400 - NOON_S


def night_key(key: bytes, site: str, subject: str, start: datetime) -> str:
    return _b32(_hmac(key, f"night/{site}/{subject}/{night_date(start).isoformat()}"), 8)


def night_id(key: bytes, site: str, subject: str, start: datetime) -> str:
    return f"{subject_pseudonym(key, site, subject)}-n{night_key(key, site, subject, start)}"


def upload_id(key: bytes, bucket: str, name: str) -> str:
    """Id of the uploads/ document of a raw object (keyed: the name holds the subject id)."""
    return "u" + _b32(_hmac(key, f"upload/{bucket}/{name}"), 24)


def label_key(key: bytes, name: str, label_kind: str) -> str:
    return f"{label_kind}-{_b32(_hmac(key, f'label/{name}'), 8)}"


def digest(*parts: object) -> str:
    """A short stable key for a set of inputs (e.g. object generations)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def upload_token(key: bytes, name: str, generation: int) -> str:
    """Keyed token of one generation of an anonymised object (``v`` + 16 base32 characters).

    Written by ingest (the one stage holding the key) into the night document; later stages
    digest tokens, not generations, into their input keys (``names.input_key``). A generation is
    a write time in µs: an unkeyed digest of it could be inverted by trying every µs of a day."""
    return "v" + _b32(_hmac(key, f"upload-token/{name}/{generation}"), 16)


def generation_token(key: bytes, upload: str, generation: int) -> str:
    """Keyed token of one raw generation of an upload (``g`` + 12 base32 characters): what names
    the anonymised object that generation produced (``names.anonymised_object``). Keyed for the
    reason :func:`upload_token` is: a generation is a write time."""
    return "g" + _b32(_hmac(key, f"raw-generation/{upload}/{generation}"), 12)
