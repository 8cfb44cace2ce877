"""Event source of the local router in the emulators backend: Pub/Sub emulator subscriptions.

What Eventarc does in the cloud, done here against the emulators:

- one pull subscription per Pub/Sub trigger of :data:`sunrise_common.names.TRIGGERS`
  (:mod:`.subscriptions`; ``eventarc-local-{trigger}-sub-000`` on ``Settings.topic(trigger.source)``);
- one pull subscription per storage trigger on ``{prefix}-gcs-notifications``, the topic
  fake-gcs-server publishes its object notifications to (attributes ``eventType``,
  ``bucketId``, ``objectId``, ``objectGeneration``; data = the object's JSON resource).

:meth:`PubsubSource.poll_once` turns each message into the binary-mode request Eventarc would
send, stores it in the router's durable queue and only then acknowledges it; from there on
retries, backoff and dead letters are the queue's, exactly as in the embedded backend. The
router's delivery chaos applies too: ``DevStackSettings.router_duplicates`` queues each event N times
(``router_shuffle`` is the queue's delivery order, the same in both backends).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from sunrise_common.errors import TransientError
from sunrise_common.events import pubsub_event, storage_event
from sunrise_common.publisher.pubsub import emulator_publisher_client
from sunrise_devstack.router.queue import Queue
from sunrise_devstack.router.subscriptions import Subscription, subscriptions_for

log = logging.getLogger(__name__)

MAX_MESSAGES = 50
PULL_TIMEOUT_S = 5.0
OBJECT_FINALIZE = "OBJECT_FINALIZE"


def emulator_subscriber_client(host: str) -> pubsub_v1.SubscriberClient:
    """A subscriber client on an insecure channel to the emulator at ``host`` (the publisher's
    twin, :func:`sunrise_common.publisher.pubsub.emulator_publisher_client`; services never pull)."""
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))


def _rfc3339_ms(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class PubsubSource:
    """Pulls the emulator's subscriptions into the router's :class:`Queue`."""

    def __init__(
        self,
        settings: Any,  # Settings
        queue: Queue,
        *,
        subscriber: pubsub_v1.SubscriberClient | None = None,
        publisher: pubsub_v1.PublisherClient | None = None,
        max_messages: int = MAX_MESSAGES,
        pull_timeout_s: float = PULL_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.subscriber = subscriber or emulator_subscriber_client(settings.pubsub_emulator_host)
        self.publisher = publisher or emulator_publisher_client(settings.pubsub_emulator_host)
        self.max_messages = max_messages
        self.pull_timeout_s = pull_timeout_s
        self.subscriptions = subscriptions_for(settings)
        self.duplicates = max(1, int(getattr(settings, "router_duplicates", 1)))
        self._ready = False

    def _sub_path(self, sub: Subscription) -> str:
        return f"projects/{self.settings.project}/subscriptions/{sub.name}"

    def ensure_subscriptions(self) -> None:
        """Create the topics and subscriptions where missing (what Terraform + Eventarc do)."""
        project = self.settings.project
        try:
            for topic in {s.topic for s in self.subscriptions}:
                try:
                    self.publisher.create_topic(name=f"projects/{project}/topics/{topic}")
                except gexc.AlreadyExists:
                    pass
            for sub in self.subscriptions:
                try:
                    self.subscriber.create_subscription(
                        request={
                            "name": self._sub_path(sub),
                            "topic": f"projects/{project}/topics/{sub.topic}",
                            "ack_deadline_seconds": 10,
                        }
                    )
                except gexc.AlreadyExists:
                    pass
        except gexc.GoogleAPIError as exc:
            raise TransientError("pubsub_unavailable", f"creating subscriptions: {exc}") from exc
        self._ready = True

    def poll_once(self) -> int:
        """Pull every subscription once; return how many messages went into the queue."""
        if not self._ready:
            self.ensure_subscriptions()
        # Pulls long-poll until messages arrive or the timeout passes: pull every subscription at
        # once so that one idle subscription never delays another.
        if getattr(self, "_pool", None) is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.subscriptions)), thread_name_prefix="pull")
        return sum(self._pool.map(self._poll, self.subscriptions))

    def _poll(self, sub: Subscription) -> int:
        path = self._sub_path(sub)
        try:
            response = self.subscriber.pull(
                request={"subscription": path, "max_messages": self.max_messages}, timeout=self.pull_timeout_s
            )
        except gexc.DeadlineExceeded:
            return 0
        except gexc.NotFound:
            # The emulator restarted or was reset: create the subscriptions again next time.
            self._ready = False
            return 0
        except gexc.GoogleAPIError as exc:
            raise TransientError("pubsub_unavailable", f"pull {path}: {exc}") from exc
        acks: list[str] = []
        enqueued = 0
        try:
            for received in response.received_messages:
                delivery = self._delivery(sub, received.message)
                if delivery is not None:
                    headers, body, subject = delivery
                    # Delivery chaos of the reliability suite (DevStackSettings.router_duplicates, 1 by
                    # default), as Queue.route_messages and enqueue_storage apply it in embedded.
                    for _ in range(self.duplicates):
                        self.queue.enqueue_event(sub.trigger, headers, body, subject)
                        enqueued += 1
                acks.append(received.ack_id)
        finally:
            # Acknowledge exactly what is safely in the queue; the rest is redelivered.
            if acks:
                try:
                    self.subscriber.acknowledge(request={"subscription": path, "ack_ids": acks})
                except gexc.GoogleAPIError as exc:
                    # Not fatal: the messages come back after the ack deadline and are queued
                    # again (at-least-once, like Eventarc; the services are idempotent).
                    log.warning("ack failed on %s: %s", path, exc)
        return enqueued

    def _delivery(self, sub: Subscription, message: Any) -> tuple[dict[str, str], dict[str, Any], str] | None:
        """The Eventarc request for one message, or None for a message the trigger ignores."""
        if sub.is_storage:
            return self._storage_delivery(sub, message)
        publish_time = _rfc3339_ms(message.publish_time) if message.publish_time else None
        headers, body = pubsub_event(
            self.settings.project,
            sub.topic,
            bytes(message.data),
            attributes=dict(message.attributes),
            message_id=message.message_id,
            publish_time=publish_time,
            subscription=self._sub_path(sub),
        )
        return headers, body, sub.topic

    def _storage_delivery(self, sub: Subscription, message: Any) -> tuple[dict[str, str], dict[str, Any], str] | None:
        attrs = dict(message.attributes)
        if attrs.get("eventType") != OBJECT_FINALIZE:
            return None
        bucket = attrs.get("bucketId", "")
        if bucket != self.settings.bucket(sub.trigger.source):
            return None
        try:
            name = attrs["objectId"]
            generation = int(attrs["objectGeneration"])
            resource = json.loads(bytes(message.data) or b"{}")
            size = int(resource.get("size", 0))
        except (KeyError, ValueError, TypeError) as exc:
            # A malformed notification would come back forever: log it and drop it.
            log.warning("dropping malformed storage notification %s: %s (%s)", message.message_id, exc, attrs)
            return None
        # One object version, one event id: a redelivered notification is a recognisable duplicate.
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"gs://{bucket}/{name}#{generation}"))
        headers, body = storage_event(
            bucket, name, generation, size, content_type=resource.get("contentType"), event_id=event_id
        )
        return headers, body, name
