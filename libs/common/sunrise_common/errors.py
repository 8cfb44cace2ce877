"""One error tree for the whole pipeline, and the one place that says how each is answered.

- ``PermanentError``: bad input. The handler records the reason and answers 2xx so the platform
  stops retrying (Eventarc retries every non-2xx for 24 h).
- ``TransientError``: infrastructure trouble. The handler answers 5xx so the platform retries;
  past the attempt limit the event is dead-lettered.
- ``BadEvent``: the request itself is not a CloudEvent we understand (a person's curl): 400.
- ``Busy``: another delivery of the same work holds a live lease: 429 (retry later).
- ``PreconditionFailed``: a conditional write lost a race: 409, retried like a 5xx.

Each class's ``status_code`` is the HTTP status the service answers with (``service.create_app``
reads it, nothing else maps errors), ``answer`` the ``status`` field of the response body and
``log_level`` how loudly it is logged. What the platform does with a status (Pub/Sub push, so
Eventarc): 102, 200, 201, 202 and 204 acknowledge; every other code, 4xx included, is a NACK,
redelivered with backoff (10 s to 600 s) until the dead-letter policy's attempts are spent
(docs/reference/eventarc.md, "Delivery semantics"). So 400, 409, 429 and 5xx are all retried;
they differ in what they tell a reader, and the 5xx alert (terraform/monitoring.tf) counts only
5xx: a lost race (409) or a held lease (429) is expected under concurrency, not a broken
dependency.

SDK exceptions are translated into these at the adapter boundary.
"""

from __future__ import annotations

import re
from logging import ERROR, INFO, WARNING
from typing import Any


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose (as such: 500, retried)."""

    status_code = 500
    answer = "retry"
    log_level = ERROR
    summary = "failure"

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer (the reason is a stable code; the detail says more)."""
        return {"status": self.answer, "reason": self.reason, "detail": self.detail}


class PermanentError(PipelineError):
    """Bad input: retrying cannot help. Recorded, acknowledged with 2xx."""

    status_code = 200
    answer = "rejected"
    log_level = WARNING
    summary = "permanent failure, acknowledged"


class TransientError(PipelineError):
    """Infrastructure trouble: retry later (5xx)."""

    status_code = 503
    summary = "transient failure, will be retried"


class BadEvent(PipelineError):
    """The HTTP request is not a CloudEvent this service accepts (400)."""

    status_code = 400
    log_level = WARNING
    summary = "rejected an event"

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "detail": self.detail}


class Busy(PipelineError):
    """The same work is running under a live lease (429: retry later)."""

    status_code = 429
    answer = "busy"
    log_level = INFO
    summary = "duplicate while running"


class LeaseLost(Busy):
    """This attempt's lease was taken over by another attempt, which owns the completion (429)."""


class BadPayload(PermanentError):
    """A well-formed CloudEvent whose data this service cannot use (not base64, not a JSON object,
    the wrong event type): acknowledged with its reason, since redelivering it cannot help."""


class NotFound(PermanentError):
    """An object or document that the event names does not exist."""


class PreconditionFailed(PipelineError):
    """A conditional write lost: the object already exists (or changed generation).

    Where the caller expects the race (create-if-absent outputs) it catches this. One that reaches
    the service answers 409 and is retried (every non-2xx is): the retry reads the winner's
    state, and finds the work done or takes it over."""

    status_code = 409
    log_level = WARNING
    summary = "conflicting write, will be retried"


# -- Details fit to leave the privacy boundary -----------------------------------------------

_QUOTES = "'\""
_PLACEHOLDER_VALUE = "<value>"


def strip_literals(detail: str) -> str:
    """``detail`` with every quoted literal replaced by ``<value>``.

    Readers quote what they found (``{value!r}``): a file's text, a name, a first line. A Python
    repr chooses its delimiter by the text's own quotes and escapes the delimiter inside
    (``'Patient "Zofia" O\\'Neill'``), so a pattern such as ``'[^']*'`` ends at the escaped quote
    and lets the rest of the text through. This scans as the repr was written: a quote opens a
    literal unless it is an apostrophe of the message's own words (``'`` after a letter and
    before an English contraction ending, ``s t re ll ve d m``, that a non-letter follows:
    ``file's``, ``isn't``; ``line'Kowalczyk`` is a literal), a backslash escapes the next character, and the literal ends at the same quote
    character unescaped. A literal that never ends (text cut mid-repr by a length limit) takes the
    whole rest of the detail with it: what follows an open quote is file text. ``b'...'`` and
    ``r'...'`` prefixes go with their literal. If a double quote or a backslash is still left
    (a repr glued to a word, ``x'O\'Neill'``), the detail is cut at the first quote or backslash:
    the message's own words hold neither.
    """
    out: list[str] = []
    i, n = 0, len(detail)
    while i < n:
        ch = detail[i]
        prev = detail[i - 1] if i else " "
        apostrophe = ch == "'" and prev.isalpha() and _contraction_at(detail, i + 1) and not _is_prefix(detail, i - 1)
        if ch in _QUOTES and not apostrophe:
            if out and _is_prefix(detail, i - 1):
                out.pop()  # the b/r/f prefix of this literal
            j = i + 1
            while j < n and detail[j] != ch:
                j += 2 if detail[j] == "\\" else 1
            out.append(_PLACEHOLDER_VALUE)
            i = j + 1  # past the closing quote (or the end: an open literal swallows the rest)
            continue
        out.append(ch)
        i += 1
    result = "".join(out)
    if '"' in result or "\\" in result:
        cut = min(k for k in (result.find("'"), result.find('"'), result.find("\\")) if k >= 0)
        result = result[:cut] + _PLACEHOLDER_VALUE
    return result


#: What follows the apostrophe of an English contraction (``file's``, ``isn't``, ``they're``...).
_CONTRACTIONS = ("s", "t", "re", "ll", "ve", "d", "m")


def _contraction_at(text: str, k: int) -> bool:
    """``text[k:]`` starts with a contraction ending that a non-letter (or the end) follows."""
    for end in _CONTRACTIONS:
        after = k + len(end)
        if text[k:after].lower() == end and (after >= len(text) or not text[after].isalpha()):
            return True
    return False


def _is_prefix(text: str, k: int) -> bool:
    """``text[k]`` is a one-letter string prefix (b, r, f, u) standing alone before a quote."""
    return k >= 0 and text[k] in "brfuBRFU" and (k == 0 or not text[k - 1].isalnum())


def safe_detail(detail: str, names: tuple[str, ...] = ()) -> str:
    """An error detail fit to record outside raw: no quoted literal (:func:`strip_literals`), no
    part of the given raw object ``names`` (each name, its path segments and their stems), no
    date-like token, and nothing but printable ASCII (a character outside it is file text that
    came through unquoted). What stays is the message's own vocabulary and its numbers."""
    parts: set[str] = set()
    for name in names:
        segs = name.split("/")
        parts |= {name, *segs, *(s.rsplit(".", 1)[0] for s in segs)}
    for part in sorted(parts, key=len, reverse=True):
        if len(part) >= 2:
            detail = detail.replace(part, "<name>")
    detail = strip_literals(detail)
    detail = _DATE.sub("<date>", detail)
    return "".join(ch if " " <= ch <= "~" else "?" for ch in detail)


_DATE = re.compile(r"\b\d{1,4}[./-](\d{1,2}|[A-Za-z]{3})[./-]\d{2,4}\b")
