"""CloudEvents in and out: parsing what Eventarc sends, building what the router and CLI send.

Eventarc delivers in binary mode (``ce-*`` headers, JSON body); people replaying with curl may use
structured mode (``application/cloudevents+json``). Both parse here, once, for every service.
Wire caveats encoded below (see tests/data/cloudevents/README.md): int64 fields such as
``size`` and ``generation`` arrive as strings; Pub/Sub ``message.data`` is base64 and may be
absent; camelCase and snake_case copies of the same field may both be present.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Mapping

from cloudevents.v1 import exceptions as ce_exceptions
from cloudevents.v1.http import from_http
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from sunrise_common.errors import BadEvent, BadPayload
from sunrise_common.names import PUBSUB_PUBLISHED, STORAGE_FINALIZED

MAX_BODY_BYTES = 1 << 20


def int64(value: Any) -> Any:
    """A non-negative int64 (a generation, a size) as proto3 JSON sends it (a decimal string of
    ASCII digits, no sign, no whitespace, at most 20 characters) or as a number; never a boolean.
    The one coercer for such fields, in events and in the contracts (a negative number is left
    to the field's ``ge=0``)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 20:
            raise ValueError("expected a non-negative integer (or its string form)")
        return int(value)
    return value


class StorageObjectData(BaseModel):
    """The body of ``google.cloud.storage.object.v1.finalized`` (GCS JSON API object resource)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    bucket: str = Field(min_length=1, max_length=222)
    name: str = Field(min_length=1, max_length=1024)
    generation: int = Field(ge=0)
    metageneration: int | None = None
    size: int | None = Field(default=None, ge=0)
    content_type: str | None = Field(default=None, alias="contentType")
    md5_hash: str | None = Field(default=None, alias="md5Hash")
    time_created: str | None = Field(default=None, alias="timeCreated")

    @field_validator("generation", "metageneration", "size", mode="before")
    @classmethod
    def _int64_as_string(cls, value: Any) -> Any:
        return int64(value)


class PubsubMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    data: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str | None = Field(default=None, validation_alias=AliasChoices("messageId", "message_id"))
    publish_time: str | None = Field(default=None, validation_alias=AliasChoices("publishTime", "publish_time"))
    delivery_attempt: int | None = Field(
        default=None, validation_alias=AliasChoices("deliveryAttempt", "delivery_attempt")
    )

    @field_validator("attributes", mode="before")
    @classmethod
    def _none_attributes(cls, value: Any) -> Any:
        return {} if value is None else value

    def decoded(self) -> bytes:
        if not self.data:
            return b""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadPayload("bad_pubsub_data", f"message.data is not valid base64: {exc}") from exc

    def json(self) -> dict[str, Any]:
        raw = self.decoded()
        try:
            value = json.loads(raw or b"{}")
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad JSON, bad UTF-8 and integers beyond int_max_str_digits (a
            # 5,000-digit number); RecursionError JSON nested ~1,000 levels deep.
            raise BadPayload("bad_pubsub_data", f"message.data is not usable JSON: {_short(exc)}") from exc
        if not isinstance(value, dict):
            raise BadPayload("bad_pubsub_data", f"message.data must be a JSON object, got {type(value).__name__}")
        return value


class MessagePublishedData(BaseModel):
    """The body of ``google.cloud.pubsub.topic.v1.messagePublished``."""

    model_config = ConfigDict(extra="ignore")

    message: PubsubMessage
    subscription: str | None = None


class Event(BaseModel):
    """A parsed CloudEvent with its typed data."""

    id: str
    source: str
    type: str
    subject: str | None = None
    time: str | None = None
    storage: StorageObjectData | None = None
    pubsub: MessagePublishedData | None = None

    @property
    def topic(self) -> str | None:
        """Topic name from ``ce-source`` (``//pubsub.googleapis.com/projects/P/topics/T``)."""
        if "/topics/" in self.source:
            return self.source.rsplit("/topics/", 1)[1]
        return None

    def payload(self) -> dict[str, Any]:
        """The JSON object a pipeline service published (Pub/Sub events only)."""
        if self.pubsub is None:
            raise BadPayload("wrong_event_type", f"expected {PUBSUB_PUBLISHED}, got {self.type}")
        return self.pubsub.message.json()


def parse_event(headers: Mapping[str, str], body: bytes) -> Event:
    """Parse an HTTP request (binary or structured mode) into an :class:`Event`.

    Raises
    ------
    BadEvent
        With a message that says what is wrong; the service answers 400.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BadEvent("body_too_large", f"{len(body)} bytes > {MAX_BODY_BYTES}")
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    if "ce-specversion" not in lowered and "cloudevents" not in content_type:
        raise BadEvent(
            "not_a_cloudevent",
            "expected binary mode (ce-specversion, ce-id, ce-source, ce-type headers) or structured "
            "mode (Content-Type: application/cloudevents+json)",
        )
    structured = "cloudevents" in content_type
    if not structured:
        # The SDK reports any missing binary-mode header as "Failed to find specversion": name it.
        missing = [h for h in ("ce-id", "ce-source", "ce-type") if not str(lowered.get(h) or "").strip()]
        if missing:
            raise BadEvent(
                "invalid_cloudevent",
                f"missing header {', '.join(missing)}: binary mode needs ce-specversion, ce-id, ce-source and "
                "ce-type (or send Content-Type: application/cloudevents+json with those attributes in the body)",
            )
    try:
        ce = from_http(dict(lowered), body)
    except ce_exceptions.MissingRequiredFields as exc:
        raise BadEvent(
            "invalid_cloudevent",
            f"{_short(exc)}: a structured event needs the attributes specversion, id, source and type",
        ) from exc
    except ce_exceptions.GenericException as exc:
        raise BadEvent("invalid_cloudevent", _short(exc)) from exc
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadEvent("invalid_cloudevent", f"cannot read the request: {_short(exc)}") from exc
    except RecursionError as exc:
        raise BadEvent("invalid_json", "the request's JSON is nested too deeply") from exc
    attrs = ce.get_attributes()
    for required in ("id", "source", "type"):
        if not isinstance(attrs.get(required), str) or not attrs.get(required):
            raise BadEvent("invalid_cloudevent", f"missing or empty attribute {required!r}")
    for optional in ("subject", "time"):
        # Structured mode lets a sender put any JSON value there ("time": 12345, "subject": ["x"]).
        if attrs.get(optional) is not None and not isinstance(attrs[optional], str):
            raise BadEvent("invalid_cloudevent",
                           f"attribute {optional!r} must be a string, got {type(attrs[optional]).__name__}")
    data = ce.data
    if isinstance(data, (bytes, bytearray, str)):
        try:
            data = json.loads(data or "null")
        except (ValueError, RecursionError) as exc:
            # ValueError: not JSON, not UTF-8, or an integer beyond int_max_str_digits.
            raise BadEvent("invalid_json", f"the event data is not usable JSON: {_short(exc)}") from exc
    if not isinstance(data, dict):
        raise BadEvent("invalid_data", f"the event data must be a JSON object, got {type(data).__name__}")
    try:
        event = Event(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs.get("subject"),
            time=attrs.get("time"),
        )
    except ValidationError as exc:
        raise BadEvent("invalid_cloudevent", _problems(exc)) from exc
    try:
        if event.type == STORAGE_FINALIZED:
            event.storage = StorageObjectData.model_validate(data)
        elif event.type == PUBSUB_PUBLISHED:
            event.pubsub = MessagePublishedData.model_validate(data)
        else:
            raise BadEvent(
                "unsupported_event_type",
                f"type {event.type!r} is not one of {STORAGE_FINALIZED}, {PUBSUB_PUBLISHED}",
            )
    except ValidationError as exc:
        raise BadEvent("invalid_data", f"{event.type} data: {_problems(exc)}") from exc
    except RecursionError as exc:
        raise BadEvent("invalid_data", f"{event.type} data is nested too deeply") from exc
    return event


def _problems(exc: ValidationError) -> str:
    """What pydantic found wrong, without echoing the (possibly huge) input values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'data'}: {err['msg']}"[:200] for err in exc.errors(include_input=False)[:5]
    )


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception's message cut to ``limit`` characters: never echo a hostile body back whole."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def percent_encode(value: str) -> str:
    """A ``ce-*`` header value per the CloudEvents HTTP binding (§3.1.3.2): space, ``"``, ``%`` and
    every character outside printable ASCII percent-encoded as UTF-8. Object names may hold any
    of them (GCS allows unicode); unencoded they cannot travel in an HTTP header at all."""
    return "".join(
        ch if "!" <= ch <= "~" and ch not in '"%' else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in value
    )


def storage_event(
    bucket: str, name: str, generation: int, size: int, *, content_type: str | None = None, event_id: str | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of the binary-mode request Eventarc sends for an object finalize."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": STORAGE_FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": "objects/" + percent_encode(name),
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-time": _now(),
        "ce-bucket": bucket,
    }
    body = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "name": name,
        "bucket": bucket,
        "generation": str(generation),
        "metageneration": "1",
        "contentType": content_type or "application/octet-stream",
        "size": str(size),
        "timeCreated": headers["ce-time"],
        "updated": headers["ce-time"],
    }
    return headers, body


def pubsub_event(
    project: str,
    topic: str,
    data: bytes,
    *,
    attributes: Mapping[str, str] | None = None,
    message_id: str | None = None,
    publish_time: str | None = None,
    subscription: str | None = None,
    delivery_attempt: int | None = None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of the binary-mode request Eventarc sends for a Pub/Sub message."""
    message_id = message_id or str(uuid.uuid4().int)[:16]
    publish_time = publish_time or _now()
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_PUBLISHED,
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-id": message_id,
        "ce-time": publish_time,
    }
    message: dict[str, Any] = {
        "data": base64.b64encode(data).decode(),
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": publish_time,
        "publish_time": publish_time,
    }
    if attributes:
        message["attributes"] = dict(attributes)
    if delivery_attempt:
        message["deliveryAttempt"] = delivery_attempt
    body = {
        "message": message,
        "subscription": subscription or f"projects/{project}/subscriptions/eventarc-local-{topic}-sub-000",
    }
    return headers, body


def to_structured(headers: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
    """The structured-mode envelope of a binary-mode request (for files and curl replays)."""
    envelope: dict[str, Any] = {
        k[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")
    }
    envelope["datacontenttype"] = "application/json"
    envelope["data"] = dict(body)
    return envelope
