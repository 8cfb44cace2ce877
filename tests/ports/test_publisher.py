"""The Publisher port's contract, end to end into the router's durable queue.

Embedded: LocalPublisher -> Queue.route_messages. Emulators: PubsubPublisher -> Pub/Sub emulator
-> PubsubSource.poll_once. Either way the queue must hold the request Eventarc would send.
Also: a fake-gcs-server finalize notification -> PubsubSource -> a storage delivery for ingest.
"""

from __future__ import annotations

import base64
import json

import pytest

from sunrise_common import names
from sunrise_common.events import parse_event
from sunrise_devstack.router.pubsub_source import PubsubSource
from sunrise_devstack.router.queue import Queue
from sunrise_common.storage.gcs import GcsStorage


def test_published_message_becomes_an_eventarc_pubsub_delivery_per_trigger(publish_path):
    settings = publish_path.settings
    project = settings.project
    topic = settings.topic(names.TOPIC_SUNRISE_ANONYMISED)
    payload = {"night_id": "abc-0", "object": "nights/abc-0/sunrise.edf", "generation": "17"}
    message_id = publish_path.publisher.publish(topic, json.dumps(payload).encode(), {"kind": "sunrise"})
    assert message_id

    assert publish_path.pump(expected=1) == 1
    (delivery,) = publish_path.queue.deliveries()
    assert (delivery.trigger, delivery.service, delivery.state) == (
        "sunrise-prep-anonymised", "sunrise_prep", "pending"
    )
    assert delivery.headers["ce-type"] == names.PUBSUB_PUBLISHED
    assert delivery.headers["ce-source"] == f"//pubsub.googleapis.com/projects/{project}/topics/{topic}"
    assert delivery.headers["ce-id"] == message_id
    message = delivery.body["message"]
    assert base64.b64decode(message["data"]) == json.dumps(payload).encode()
    assert message["attributes"] == {"kind": "sunrise"}
    assert message["messageId"] == message["message_id"] == message_id
    assert message["publishTime"].endswith("Z")
    assert delivery.body["subscription"] == (
        f"projects/{project}/subscriptions/eventarc-local-sunrise-prep-anonymised-sub-000"
    )
    event = parse_event(delivery.headers, json.dumps(delivery.body).encode())
    assert event.topic == topic
    assert event.payload() == payload


def test_a_prepped_message_reaches_only_its_own_trigger(publish_path):
    topic = publish_path.settings.topic(names.TOPIC_PSG_PREPPED)
    publish_path.publisher.publish(topic, b"{}")
    assert publish_path.pump(expected=1) == 1
    assert [d.trigger for d in publish_path.queue.deliveries()] == ["sunalgo-psg-prepped"]


@pytest.mark.emulators
def test_object_finalize_on_fake_gcs_becomes_an_eventarc_storage_delivery(emulator_settings, tmp_path):
    settings = emulator_settings
    queue = Queue(tmp_path / "router.db")
    source = PubsubSource(settings, queue, pull_timeout_s=1.0)
    source.ensure_subscriptions()
    storage = GcsStorage.for_emulator(settings.gcs_endpoint, settings.project)
    raw = settings.bucket("raw")
    info = storage.write_bytes(raw, "psg/site1/subj1/night.edf", b"0" * 256)
    # Objects outside the raw bucket have no trigger (and must not reach ingest).
    storage.write_bytes(settings.bucket("prepped"), "nights/n/x.npz", b"1")

    deliveries = []
    for _ in range(50):
        source.poll_once()
        deliveries = list(queue.deliveries())
        if deliveries:
            break
    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert (delivery.trigger, delivery.service, delivery.subject) == (
        "ingest-raw-finalized", "ingest", "psg/site1/subj1/night.edf"
    )
    assert delivery.headers["ce-type"] == names.STORAGE_FINALIZED
    assert delivery.headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{raw}"
    assert delivery.headers["ce-subject"] == "objects/psg/site1/subj1/night.edf"
    assert delivery.body["generation"] == str(info.generation)
    assert delivery.body["size"] == "256"
    event = parse_event(delivery.headers, json.dumps(delivery.body).encode())
    assert (event.storage.bucket, event.storage.name, event.storage.generation) == (
        raw, "psg/site1/subj1/night.edf", info.generation
    )
    # Acknowledged once queued: nothing comes back.
    assert source.poll_once() == 0


@pytest.mark.emulators
def test_pubsub_publish_to_a_missing_topic_is_transient(emulators):
    from sunrise_common.errors import TransientError
    from sunrise_common.publisher.pubsub import PubsubPublisher

    publisher = PubsubPublisher.for_emulator(emulators.pubsub_emulator_host, emulators.project)
    with pytest.raises(TransientError) as info:
        publisher.publish("no-such-topic", b"{}")
    assert "no-such-topic" in str(info.value)
