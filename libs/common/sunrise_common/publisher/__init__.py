"""Publisher port: publish a JSON message to a topic (physical name).

Adapters: :mod:`.local` (the local router's durable queue, :mod:`.queue`) and :mod:`.pubsub` (Pub/Sub or its
emulator).
"""

from __future__ import annotations

from typing import Mapping, Protocol

from sunrise_common.settings import Settings


class Publisher(Protocol):
    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Publish and return the message id. Raises TransientError when the broker is unreachable."""


def make_publisher(settings: Settings) -> Publisher:
    """The publisher adapter of ``settings.backend``."""
    if settings.backend == "embedded":
        from sunrise_common.publisher.local import LocalPublisher

        return LocalPublisher(settings.data_dir / "router.db")
    from sunrise_common.publisher.pubsub import PubsubPublisher

    if settings.backend == "emulators":
        return PubsubPublisher.for_emulator(settings.pubsub_emulator_host, settings.project)
    return PubsubPublisher.for_cloud(settings.project)
