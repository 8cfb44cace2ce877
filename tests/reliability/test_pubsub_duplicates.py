"""The router's delivery chaos applies on the emulators too: PubsubSource honours
``router_duplicates`` (each pulled event queued N times), as the embedded router does."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from sunrise_devstack.router.pubsub_source import OBJECT_FINALIZE, PubsubSource
from sunrise_devstack.router.queue import Queue
from sunrise_devstack.settings import DevStackSettings


class FakePublisher:
    def create_topic(self, name: str) -> None:
        pass


class FakeSubscriber:
    """Holds messages per subscription path; pull hands them out once; acks are recorded."""

    def __init__(self) -> None:
        self.pending: dict[str, list] = {}
        self.acked: list[str] = []

    def create_subscription(self, request: dict) -> None:
        pass

    def pull(self, request: dict, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(received_messages=self.pending.pop(request["subscription"], []))

    def acknowledge(self, request: dict) -> None:
        self.acked.extend(request["ack_ids"])


def finalize(settings: DevStackSettings, name: str, ack_id: str) -> SimpleNamespace:
    message = SimpleNamespace(
        attributes={"eventType": OBJECT_FINALIZE, "bucketId": settings.bucket("raw"), "objectId": name,
                    "objectGeneration": "1700000000000001"},
        data=json.dumps({"size": "123", "contentType": "application/octet-stream"}).encode(),
        message_id=ack_id, publish_time=None,
    )
    return SimpleNamespace(ack_id=ack_id, message=message)


@pytest.mark.parametrize("duplicates", [1, 3])
def test_each_pulled_event_is_queued_router_duplicates_times_and_acked_once(tmp_path, duplicates):
    settings = DevStackSettings(backend="emulators", prefix="sunrise-dup", project="sunrise-dup", data_dir=tmp_path,
                        router_duplicates=duplicates)
    subscriber = FakeSubscriber()
    queue = Queue(tmp_path / "router.db")
    source = PubsubSource(settings, queue, subscriber=subscriber, publisher=FakePublisher())
    storage_sub = next(s for s in source.subscriptions if s.is_storage)
    path = f"projects/{settings.project}/subscriptions/{storage_sub.name}"
    subscriber.pending[path] = [finalize(settings, "psg/site/subj/a.edf", "ack-1"),
                                finalize(settings, "psg/site/subj/b.edf", "ack-2")]

    assert source.poll_once() == 2 * duplicates
    deliveries = list(queue.deliveries())
    assert len(deliveries) == 2 * duplicates
    by_subject: dict[str, set[str]] = {}
    for d in deliveries:
        assert d.service == "ingest"
        by_subject.setdefault(d.subject, set()).add(d.headers["ce-id"])
    # N copies of the same event (same ce-id), as Eventarc's at-least-once redelivery would be
    assert {k: len(v) for k, v in by_subject.items()} == {"psg/site/subj/a.edf": 1, "psg/site/subj/b.edf": 1}
    assert sorted(subscriber.acked) == ["ack-1", "ack-2"]
    assert source.poll_once() == 0
