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


#: The contract, spelled once for every message.
CONTRACT = "{kind}/{site}/{subject}/{file}"
_PARTS = ("kind", "site", "subject", "file")


def _characters(chars: str) -> str:
    """Characters named by code point and Unicode name (``U+003B SEMICOLON``): exact, and safe
    to record (ingest redacts quoted values and name segments from recorded errors, so a message
    that quoted the character would lose it)."""
    out = []
    for ch in dict.fromkeys(chars):
        name = "control character" if unicodedata.category(ch) == "Cc" else unicodedata.name(ch, "unnamed character")
        out.append(f"U+{ord(ch):04X} {name}")
    return ", ".join(out[:5]) + (f" and {len(out) - 5} more" if len(out) > 5 else "")


def _segment_problem(part: str, value: str) -> str:
    """Why a site or subject folder name is refused, without repeating the name itself."""
    allowed = "1-64 characters of A-Z a-z 0-9 and . _ - starting with a letter or digit"
    where = f"the {part} folder (part {_PARTS.index(part) + 1} of {CONTRACT})"
    if len(value) > 64:
        return f"{where} is {len(value)} characters long; allowed: {allowed}"
    bad = "".join(ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in "._-")))
    if bad:
        return f"{where} contains {_characters(bad)}; allowed: {allowed}"
    return f"{where} starts with {_characters(value[0])}; allowed: {allowed}"


def parse_raw_name(name: str) -> RawPath:
    """Split and check a raw object name.

    Messages say which part is wrong and what is allowed, and never repeat the site, subject or
    file name (personal data: site and subject codes).

    Raises
    ------
    PermanentError
        ``bad_layout`` (wrong number of parts, empty parts), ``unsafe_name`` (dot segments, absolute,
        control characters), ``unknown_kind``, ``bad_site`` / ``bad_subject`` (the site or subject
        *folder* of the object name: characters outside ``[A-Za-z0-9._-]``, at most 64).
    """
    controls = "".join(ch for ch in name if unicodedata.category(ch) == "Cc")
    if controls:
        raise PermanentError("unsafe_name", f"the object name contains control characters ({_characters(controls)}); "
                                            f"names are {CONTRACT} in printable characters")
    if name.startswith("/") or "\\" in name:
        what = "starts with a slash (an absolute path)" if name.startswith("/") else "contains a backslash"
        raise PermanentError("unsafe_name", f"the object name {what}; names are {CONTRACT} with / between the parts")
    parts = name.split("/")
    dots = [f"part {i + 1} is {'a single dot' if p == '.' else 'a dot-dot (parent folder)'}"
            for i, p in enumerate(parts) if p in ("..", ".")]
    if dots:
        # Spelled in words: ingest redacts name segments from recorded errors, and the literal
        # segment would be redacted too.
        raise PermanentError("unsafe_name", f"{'; '.join(dots)} of the {len(parts)}-part object name: "
                                            f"relative path segments are not allowed; names are {CONTRACT}")
    if len(parts) != 4 or any(not p for p in parts):
        empty = [str(i + 1) for i, p in enumerate(parts) if not p]
        raise PermanentError(
            "bad_layout", f"expected {CONTRACT} (4 parts), got {len(parts)} part(s)"
            + (f", part(s) {', '.join(empty)} empty" if empty else "")
        )
    kind, site, subject, file = parts
    if kind not in UPLOAD_KINDS:
        raise PermanentError("unknown_kind", f"kind {kind[:32]!r} (part 1 of {CONTRACT}) is not one of "
                                             f"{', '.join(UPLOAD_KINDS)}")
    if not _SEGMENT.match(site):
        raise PermanentError("bad_site", _segment_problem("site", site))
    if not _SEGMENT.match(subject):
        raise PermanentError("bad_subject", _segment_problem("subject", subject))
    if len(file.encode("utf-8")) > MAX_FILE_NAME:
        raise PermanentError("bad_file_name", f"the file name (part 4 of {CONTRACT}) is "
                                              f"{len(file.encode('utf-8'))} bytes long; at most {MAX_FILE_NAME}")
    return RawPath(kind, site, subject, file)
