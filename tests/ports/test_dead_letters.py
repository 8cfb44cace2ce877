"""Dead letters in the cloud: the dead-letter subscription, on the Pub/Sub emulator."""

from __future__ import annotations

import json

import pytest

from sunrise_common import names
from sunrise_devstack.dead_letters import SOURCE_ATTRIBUTE, PubsubDeadLetters
from sunrise_devstack.router.pubsub_source import emulator_subscriber_client
from tests.ports.conftest import PREFIX, PROJECT, make_settings

pytestmark = pytest.mark.emulators


@pytest.fixture
def dead(emulators, tmp_path):
    settings = make_settings(tmp_path, emulators)
    subscriber = emulator_subscriber_client(settings.pubsub_emulator_host)
    topic = settings.topic(names.TOPIC_DEAD_LETTER)
    subscriber.create_subscription(request={"name": f"projects/{PROJECT}/subscriptions/{topic}",
                                            "topic": f"projects/{PROJECT}/topics/{topic}"})
    letters = PubsubDeadLetters.for_settings(settings)
    source = f"projects/{PROJECT}/subscriptions/eventarc-europe-west1-{PREFIX}-sunrise-prep-anonymised-sub-042"
    for i in range(3):
        letters.publisher.publish(topic, json.dumps({"night_id": f"n{i}"}).encode(), {SOURCE_ATTRIBUTE: source, "kind": "sunrise"})
    return settings, letters, subscriber


def pull_all(subscriber, subscription: str) -> list:
    out = []
    while True:
        resp = subscriber.pull(request={"subscription": subscription, "max_messages": 50}, timeout=5.0)
        if not resp.received_messages:
            return out
        out.extend(resp.received_messages)
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [r.ack_id for r in resp.received_messages]})


def test_listing_names_the_service_and_leaves_the_letters_in_place(dead):
    settings, letters, _ = dead
    first = letters.list()
    assert len(first) == 3 and {d.service for d in first} == {"sunrise_prep"}
    assert len(letters.list()) == 3  # listing consumed nothing


def test_replay_republishes_to_the_source_topic_and_empties_the_subscription(dead):
    settings, letters, subscriber = dead
    target = next(t for t in names.TRIGGERS if t.name == "sunrise-prep-anonymised")
    trigger_sub = f"projects/{PROJECT}/subscriptions/eventarc-local-{target.name}-sub-000"
    assert letters.replay() == 3
    again = pull_all(subscriber, trigger_sub)
    assert sorted(json.loads(r.message.data)["night_id"] for r in again) == ["n0", "n1", "n2"]
    assert all(SOURCE_ATTRIBUTE not in r.message.attributes and r.message.attributes["kind"] == "sunrise" for r in again)
    assert letters.list() == []


def test_purge_of_one_letter_keeps_the_others(dead):
    settings, letters, _ = dead
    victim = letters.list()[0].id
    assert letters.purge([victim]) == 1
    assert victim not in {d.id for d in letters.list()} and len(letters.list()) == 2
