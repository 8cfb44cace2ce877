"""The raw-bucket contract: ``{kind}/{site}/{subject}/{file}``.

Everything else is rejected with a specific reason; the raw object is left untouched.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sunrise_common.errors import PermanentError
from sunrise_common.names import UPLOAD_KINDS

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_FILE_NAME = 255


@dataclass(frozen=True)
class RawPath:
    kind: str
    site: str
    subject: str
    file: str

    @property
    def extension(self) -> str:
        return self.file.rsplit(".", 1)[1].lower() if "." in self.file else ""


def parse_raw_name(name: str) -> RawPath:
    """Split and check a raw object name.

    Raises
    ------
    PermanentError
        ``bad_layout`` (wrong number of parts, empty parts), ``unsafe_name`` (``..``, absolute,
        control characters), ``unknown_kind``, ``bad_site`` / ``bad_subject`` (characters outside
        ``[A-Za-z0-9._-]``, at most 64).
    """
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise PermanentError("unsafe_name", "the object name contains control characters")
    if name.startswith("/") or "\\" in name:
        raise PermanentError("unsafe_name", "absolute paths and backslashes are not allowed")
    parts = name.split("/")
    if any(p in ("..", ".") for p in parts):
        raise PermanentError("unsafe_name", "'.' and '..' segments are not allowed")
    if len(parts) != 4 or any(not p for p in parts):
        raise PermanentError(
            "bad_layout", f"expected {{kind}}/{{site}}/{{subject}}/{{file}}, got {len(parts)} part(s)"
        )
    kind, site, subject, file = parts
    if kind not in UPLOAD_KINDS:
        raise PermanentError("unknown_kind", f"kind {kind[:32]!r} is not one of {', '.join(UPLOAD_KINDS)}")
    if not _SEGMENT.match(site):
        raise PermanentError("bad_site", "site must be 1-64 characters of [A-Za-z0-9._-]")
    if not _SEGMENT.match(subject):
        raise PermanentError("bad_subject", "subject must be 1-64 characters of [A-Za-z0-9._-]")
    if len(file.encode("utf-8")) > MAX_FILE_NAME:
        raise PermanentError("bad_file_name", f"file name longer than {MAX_FILE_NAME} bytes")
    return RawPath(kind, site, subject, file)
