"""The Pub/Sub subscriptions that stand in for Eventarc's triggers on the emulators backend.

Shared by the emulator launcher (:mod:`sunrise_devstack.emulators` creates them before the
router's first pull, and points fake-gcs-server at :func:`notifications_topic`) and the router's
event source (:mod:`sunrise_devstack.router.pubsub_source` pulls them). Pure names: no clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sunrise_common import names


def notifications_topic(prefix: str) -> str:
    """The Pub/Sub topic fake-gcs-server publishes object events to."""
    return f"{prefix}-gcs-notifications"


@dataclass(frozen=True)
class Subscription:
    """A pull subscription feeding one trigger."""

    trigger: names.Trigger
    topic: str  # physical topic name
    name: str  # subscription id

    @property
    def is_storage(self) -> bool:
        return self.trigger.event_type == names.STORAGE_FINALIZED


def subscriptions_for(settings: Any) -> list[Subscription]:  # Settings
    """The subscriptions Eventarc would create for :data:`names.TRIGGERS`: one per Pub/Sub trigger
    on its topic, one per storage trigger on :func:`notifications_topic`."""
    subs = []
    for trig in names.TRIGGERS:
        if trig.event_type == names.STORAGE_FINALIZED:
            topic = notifications_topic(settings.prefix)
        else:
            topic = settings.topic(trig.source)
        subs.append(Subscription(trig, topic, f"eventarc-local-{trig.name}-sub-000"))
    return subs
