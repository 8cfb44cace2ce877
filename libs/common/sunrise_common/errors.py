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
(shared/reference/eventarc.md, "Delivery semantics"). So 400, 409, 429 and 5xx are all retried;
they differ in what they tell a reader, and the 5xx alert (terraform/monitoring.tf) counts only
5xx: a lost race (409) or a held lease (429) is expected under concurrency, not a broken
dependency.

SDK exceptions are translated into these at the adapter boundary.
"""

from __future__ import annotations

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
