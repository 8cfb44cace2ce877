"""Publisher adapter on Pub/Sub (or the Pub/Sub emulator).

``publish`` blocks until the broker has the message (or the timeout passes), so a handler that
returns 2xx after publishing never loses the next hop's event. Every failure is transient.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import Iterable, Mapping

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

from sunrise_common.errors import TransientError

PUBLISH_TIMEOUT_S = 30.0


def emulator_publisher_client(host: str) -> pubsub_v1.PublisherClient:
    """A publisher client on an insecure channel to the emulator at ``host`` (``127.0.0.1:8085``).

    Passing the channel explicitly avoids the SDK's PUBSUB_EMULATOR_HOST variable: configuration
    comes from Settings only.
    """
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))


class PubsubPublisher:
    """The Publisher port on a ``PublisherClient``; topics are physical names (``Settings.topic``)."""

    def __init__(
        self, client: pubsub_v1.PublisherClient, project: str, *, timeout_s: float = PUBLISH_TIMEOUT_S
    ) -> None:
        self.client = client
        self.project = project
        self.timeout_s = timeout_s

    @classmethod
    def for_emulator(cls, host: str, project: str) -> PubsubPublisher:
        return cls(emulator_publisher_client(host), project)

    @classmethod
    def for_cloud(cls, project: str) -> PubsubPublisher:
        return cls(pubsub_v1.PublisherClient(), project)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        path = self.topic_path(topic)
        try:
            future = self.client.publish(path, data, timeout=self.timeout_s, **dict(attributes or {}))
            return future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            raise TransientError("publish_timeout", f"{path}: no ack within {self.timeout_s:.0f} s") from exc
        except (gexc.GoogleAPIError, grpc.RpcError, RuntimeError) as exc:
            # NotFound (missing topic) is transient too: it is a deployment gap, not bad input,
            # and the message must not be acknowledged upstream.
            raise TransientError("publish_failed", f"{path}: {exc}") from exc

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create topics (physical names) where missing: emulators only, Terraform owns cloud topics."""
        for topic in topics:
            try:
                self.client.create_topic(name=self.topic_path(topic), timeout=self.timeout_s)
            except gexc.AlreadyExists:
                pass
            except gexc.GoogleAPIError as exc:
                raise TransientError("create_topic_failed", f"{topic}: {exc}") from exc
