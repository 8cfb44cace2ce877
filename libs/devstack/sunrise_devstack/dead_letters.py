"""Dead letters, the same four operations wherever they are kept.

- embedded and emulators: the local router's queue (deliveries in state ``dead``);
- cloud: the subscription on the dead-letter topic (``{prefix}-dead-letter``, terraform/pubsub.tf),
  to which the Eventarc subscriptions forward a message after its last attempt. Replaying a
  Pub/Sub-trigger message publishes it again to the topic its source subscription reads (the
  ``CloudPubSubDeadLetterSourceSubscription`` attribute names it); storage-trigger messages are
  replayed with ``sunrise backfill PREFIX --force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sunrise_common import names
from sunrise_common.errors import TransientError

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import SubscriberClient
    from google.cloud.pubsub_v1.types import ReceivedMessage

    from sunrise_common.publisher import Publisher
    from sunrise_common.settings import Settings

SOURCE_ATTRIBUTE = "CloudPubSubDeadLetterSourceSubscription"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    service: str | None
    trigger: str | None
    attempts: int | None
    status: int | None
    error: str | None
    subject: str | None
    body: Any


class DeadLetters(Protocol):
    def list(self, limit: int = 100) -> list[DeadLetter]: ...
    def replay(self, ids: list[str] | None = None) -> int: ...
    def purge(self, ids: list[str] | None = None) -> int: ...


class LocalDeadLetters:
    """The local router's dead deliveries (embedded and emulators backends)."""

    def __init__(self, settings: Settings) -> None:
        from sunrise_devstack.router.queue import Queue

        self.queue = Queue(settings.data_dir / "router.db")

    def list(self, limit: int = 100) -> list[DeadLetter]:
        return [DeadLetter(str(d.id), d.service, d.trigger, d.attempts, d.last_status, d.last_error, d.subject,
                           {"headers": d.headers, "body": d.body})
                for d in self.queue.deliveries("dead", limit=limit)]

    def replay(self, ids: list[str] | None = None) -> int:
        return self.queue.replay_dead([int(i) for i in ids] if ids else None)

    def purge(self, ids: list[str] | None = None) -> int:
        return self.queue.purge_dead([int(i) for i in ids] if ids else None)


class PubsubDeadLetters:
    """The dead-letter subscription in Pub/Sub (cloud; the emulator in tests)."""

    def __init__(self, settings: Settings, subscriber: SubscriberClient, publisher: Publisher) -> None:
        self.settings = settings
        self.subscriber = subscriber
        self.publisher = publisher
        topic = settings.topic(names.TOPIC_DEAD_LETTER)
        self.subscription = f"projects/{settings.project}/subscriptions/{topic}"

    @classmethod
    def for_settings(cls, settings: Settings) -> PubsubDeadLetters:
        from google.cloud import pubsub_v1

        from sunrise_common.publisher.pubsub import PubsubPublisher
        from sunrise_devstack.router.pubsub_source import emulator_subscriber_client

        if settings.backend == "emulators":
            return cls(settings, emulator_subscriber_client(settings.pubsub_emulator_host),
                       PubsubPublisher.for_emulator(settings.pubsub_emulator_host, settings.project))
        return cls(settings, pubsub_v1.SubscriberClient(), PubsubPublisher.for_cloud(settings.project))

    def trigger_of(self, source_subscription: str | None) -> names.Trigger | None:
        """Eventarc names its subscriptions ``eventarc-{region}-{trigger}-sub-{n}``."""
        for trig in names.TRIGGERS:
            if source_subscription and f"-{self.settings.prefix}-{trig.name}-sub-" in source_subscription:
                return trig
        return None

    def _pull(self, limit: int) -> list:
        from google.api_core import exceptions as gexc

        received = []
        try:
            while len(received) < limit:
                resp = self.subscriber.pull(request={"subscription": self.subscription,
                                                     "max_messages": min(100, limit - len(received))}, timeout=5.0)
                if not resp.received_messages:
                    break
                received.extend(resp.received_messages)
        except gexc.DeadlineExceeded:
            pass
        except gexc.GoogleAPIError as exc:
            raise TransientError("pubsub_unavailable", f"pull {self.subscription}: {exc}") from exc
        return received

    def _settle(self, ack: list[str], release: list[str]) -> None:
        if ack:
            self.subscriber.acknowledge(request={"subscription": self.subscription, "ack_ids": ack})
        if release:  # back to the subscription, visible again at once
            self.subscriber.modify_ack_deadline(
                request={"subscription": self.subscription, "ack_ids": release, "ack_deadline_seconds": 0})

    def _letter(self, r: ReceivedMessage) -> DeadLetter:
        attrs = dict(r.message.attributes)
        trig = self.trigger_of(attrs.get(SOURCE_ATTRIBUTE))
        return DeadLetter(r.message.message_id, trig.service if trig else None, trig.name if trig else None,
                          r.delivery_attempt or None, None, attrs.get(SOURCE_ATTRIBUTE), None,
                          {"attributes": attrs, "data": r.message.data.decode("utf-8", "replace")})

    def list(self, limit: int = 100) -> list[DeadLetter]:
        received = self._pull(limit)
        self._settle([], [r.ack_id for r in received])
        return [self._letter(r) for r in received]

    def replay(self, ids: list[str] | None = None) -> int:
        received = self._pull(1000)
        ack, release = [], []
        for r in received:
            attrs = dict(r.message.attributes)
            trig = self.trigger_of(attrs.get(SOURCE_ATTRIBUTE))
            if (ids and r.message.message_id not in ids) or trig is None or trig.event_type != names.PUBSUB_PUBLISHED:
                release.append(r.ack_id)
                continue
            clean = {k: v for k, v in attrs.items() if not k.startswith("CloudPubSubDeadLetter")}
            self.publisher.publish(self.settings.topic(trig.source), r.message.data, clean)
            ack.append(r.ack_id)
        self._settle(ack, release)
        return len(ack)

    def purge(self, ids: list[str] | None = None) -> int:
        received = self._pull(1000)
        ack = [r.ack_id for r in received if not ids or r.message.message_id in ids]
        self._settle(ack, [r.ack_id for r in received if r.ack_id not in ack])
        return len(ack)


def make_dead_letters(settings: Settings) -> DeadLetters:
    if settings.backend == "cloud":
        return PubsubDeadLetters.for_settings(settings)
    return LocalDeadLetters(settings)
