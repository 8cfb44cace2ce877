"""One error tree for the whole pipeline.

- ``PermanentError``: bad input. The handler records the reason and answers 2xx so the platform
  stops retrying (Eventarc retries every non-2xx for 24 h).
- ``TransientError``: infrastructure trouble. The handler answers 5xx so the platform retries;
  past the attempt limit the event is dead-lettered.
- ``BadEvent``: the request itself is not a CloudEvent we understand (a person's curl): 400.
- ``Busy``: another delivery of the same work holds a live lease: 429 (retry later).

SDK exceptions are translated into these at the adapter boundary.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    status_code = 500

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class PermanentError(PipelineError):
    """Bad input: retrying cannot help. Recorded, acknowledged with 2xx."""

    status_code = 200


class TransientError(PipelineError):
    """Infrastructure trouble: retry later (5xx)."""

    status_code = 503


class BadEvent(PipelineError):
    """The HTTP request is not a CloudEvent this service accepts (400)."""

    status_code = 400


class Busy(PipelineError):
    """The same work is running under a live lease (429: retry later)."""

    status_code = 429


class LeaseLost(Busy):
    """This attempt's lease was taken over by another attempt, which owns the completion (429)."""


class BadPayload(PermanentError):
    """A well-formed CloudEvent whose data this service cannot use (not base64, not a JSON object,
    the wrong event type): acknowledged with its reason, since redelivering it cannot help."""


class NotFound(PermanentError):
    """An object or document that the event names does not exist."""


class PreconditionFailed(PipelineError):
    """A conditional write lost: the object already exists (or changed generation)."""

    status_code = 409
