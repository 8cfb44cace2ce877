"""The local router's durable queue (sunrise_devstack.router.queue), as the router drives it:
publish -> route -> claim (take_due) -> deliver (mark_delivered) or fail (mark_failed: backoff,
then a dead letter) -> replay or purge. What it keeps of personal data is
tests/devstack/test_router_queue.py's subject.

There is no lease timer in the queue: a claimed delivery is ``in_flight`` until the router marks
it, and only :meth:`Queue.reset_in_flight` (the router's start after a crash) makes it due again.
"""

from __future__ import annotations

import base64

import pytest

from sunrise_common import names
from sunrise_common.publisher.local import LocalPublisher
from sunrise_common.publisher.queue import QueueFile
from sunrise_common.settings import Settings
from sunrise_devstack.router.queue import Queue

NO_BACKOFF = {"backoff_initial": 0.0, "backoff_max": 0.0}


def triggers_of(logical_topic: str) -> list[names.Trigger]:
    return [t for t in names.TRIGGERS if t.event_type == names.PUBSUB_PUBLISHED and t.source == logical_topic]


def published_delivery(queue: Queue, settings: Settings, logical_topic: str = names.TOPIC_PSG_PREPPED):
    queue.publish(settings.topic(logical_topic), b'{"night_id": "n1"}', {"k": "v"})
    assert queue.route_messages(settings) == 1
    (delivery,) = queue.take_due(10)
    return delivery


def test_a_message_published_by_a_service_is_routed_by_the_router(settings, queue):
    """The services' local publisher (sunrise_common) and the router (devstack) share one file and
    one schema: what one appends, the other routes, to every trigger of the topic."""
    topic = settings.topic(names.TOPIC_PSG_PREPPED)
    message_id = LocalPublisher(queue.path).publish(topic, b'{"night_id": "n1"}', {"origin": "psg_prep"})
    assert queue.counts() == {"unrouted_messages": 1}
    assert not queue.idle()
    assert queue.route_messages(settings) == 1
    assert queue.route_messages(settings) == 0  # routed once
    deliveries = list(queue.deliveries())
    assert [(d.trigger, d.service) for d in deliveries] == [(t.name, t.service) for t in triggers_of(names.TOPIC_PSG_PREPPED)]
    (d,) = deliveries
    assert d.state == "pending" and d.attempts == 0 and d.subject == topic
    assert d.headers["ce-type"] == names.PUBSUB_PUBLISHED and d.headers["ce-id"] == message_id
    assert d.headers["ce-source"] == f"//pubsub.googleapis.com/projects/sunrise-q/topics/{topic}"
    message = d.body["message"]
    assert base64.b64decode(message["data"]) == b'{"night_id": "n1"}'
    assert message["attributes"] == {"origin": "psg_prep"} and message["messageId"] == message_id
    assert d.body["subscription"] == "projects/sunrise-q/subscriptions/eventarc-local-sunalgo-psg-prepped-sub-000"


def test_the_queue_file_is_created_by_either_side_with_the_same_tables(tmp_path):
    QueueFile(tmp_path / "a.db")
    Queue(tmp_path / "b.db")

    def tables(path):
        return QueueFile(path)._conn().execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()

    assert tables(tmp_path / "a.db") == tables(tmp_path / "b.db")
    assert {name for _, name, _ in tables(tmp_path / "a.db")} == {"messages", "deliveries", "deliveries_due", "seen_digests"}


def test_a_message_nobody_subscribes_to_is_routed_to_no_one(settings, queue):
    queue.publish(settings.topic(names.TOPIC_DEAD_LETTER), b"{}")
    assert queue.route_messages(settings) == 1
    assert list(queue.deliveries()) == [] and queue.idle()


def test_router_duplicates_queue_each_event_n_times(settings, tmp_path):
    chaos = settings.model_copy(update={"router_duplicates": 3})
    queue = Queue(tmp_path / "chaos.db")
    queue.publish(chaos.topic(names.TOPIC_SUNRISE_ANONYMISED), b"{}")
    queue.route_messages(chaos)
    assert [d.trigger for d in queue.deliveries()] == ["sunrise-prep-anonymised"] * 3
    assert queue.enqueue_storage(chaos, chaos.bucket("raw"), "sunrise/s/p/a.edf", 5, 10) == 1  # one trigger
    assert len(list(queue.deliveries())) == 6


def test_storage_events_are_queued_once_per_generation_unless_forced(settings, queue):
    raw = settings.bucket("raw")
    assert queue.enqueue_storage(settings, raw, "sunrise/s/p/a.edf", 5, 10) == 1
    assert queue.enqueue_storage(settings, raw, "sunrise/s/p/a.edf", 5, 10) == 0
    assert queue.enqueue_storage(settings, raw, "sunrise/s/p/a.edf", 5, 10, force=True) == 1
    assert queue.enqueue_storage(settings, settings.bucket("prepped"), "x", 1, 1) == 0  # no trigger there
    first, second = queue.deliveries()
    assert first.service == second.service == "ingest" and first.body["name"] == "sunrise/s/p/a.edf"
    assert first.body["generation"] == "5" and first.subject == "sunrise/s/p/a.edf"


def test_a_claimed_delivery_is_in_flight_until_marked_or_the_router_restarts(settings, queue):
    delivery = published_delivery(queue, settings)
    assert delivery.state == "in_flight"
    assert queue.take_due(10) == []  # claimed: nobody else takes it
    assert queue.counts()["in_flight"] == 1 and not queue.idle()
    queue.reset_in_flight()  # the router's start after a crash: in-flight work is due again
    (again,) = queue.take_due(10)
    assert again.id == delivery.id and again.attempts == 0  # a crash is not a failed attempt


def test_take_due_claims_at_most_limit_oldest_first(settings, queue):
    for _ in range(3):
        queue.publish(settings.topic(names.TOPIC_PSG_PREPPED), b"{}")
    queue.route_messages(settings)
    ids = [d.id for d in queue.deliveries()]
    assert [d.id for d in queue.take_due(2)] == ids[:2]
    assert [d.id for d in queue.take_due(2)] == ids[2:]


def test_an_acknowledged_delivery_is_done(settings, queue):
    delivery = published_delivery(queue, settings)
    queue.mark_delivered(delivery.id, 204)
    done = queue.get(delivery.id)
    assert (done.state, done.attempts, done.last_status, done.last_error) == ("delivered", 1, 204, None)
    queue.reset_in_flight()
    assert queue.take_due(10) == []  # never sent again
    assert queue.idle() and queue.counts() == {"delivered": 1, "unrouted_messages": 0}


def test_a_delivered_row_is_redacted_to_its_event_identity(settings, queue):
    delivery = published_delivery(queue, settings)
    assert delivery.body["message"]["data"] and delivery.subject
    queue.mark_delivered(delivery.id, 200)
    done = queue.get(delivery.id)
    assert done.headers == {k: delivery.headers[k] for k in ("ce-id", "ce-type", "ce-source")}
    assert done.body == {} and done.subject is None
    # The routed message keeps its id and topic only (the delivery held its data).
    row = queue._conn().execute("SELECT routed, data, attributes FROM messages").fetchone()
    assert row == (1, b"", "{}")


def test_a_failed_delivery_is_retried_after_an_exponential_backoff(settings, queue):
    delivery = published_delivery(queue, settings)
    state = queue.mark_failed(delivery, 503, "busy", max_attempts=5, backoff_initial=10.0, backoff_max=25.0)
    assert state == "pending"
    assert queue.take_due(10) == []  # not due before its backoff
    failed = queue.get(delivery.id)
    assert (failed.attempts, failed.last_status, failed.last_error) == (1, 503, "busy")
    # The request is kept whole for the retry.
    assert failed.headers == delivery.headers and failed.body == delivery.body

    def wait_s() -> float:
        next_at, updated_at = queue._conn().execute(
            "SELECT next_at, updated_at FROM deliveries WHERE id=?", (delivery.id,)
        ).fetchone()
        return next_at - updated_at

    assert wait_s() == pytest.approx(10.0)
    for attempts, expected in ((2, 20.0), (3, 25.0)):  # doubled, then capped at backoff_max
        current = queue.get(delivery.id)
        queue.mark_failed(current, 500, "again", max_attempts=5, backoff_initial=10.0, backoff_max=25.0)
        assert queue.get(delivery.id).attempts == attempts and wait_s() == pytest.approx(expected)


def test_a_delivery_is_redelivered_once_its_backoff_has_passed(settings, queue):
    delivery = published_delivery(queue, settings)
    queue.mark_failed(delivery, None, "ConnectError: refused", max_attempts=3, **NO_BACKOFF)
    (again,) = queue.take_due(10)
    assert again.id == delivery.id and again.attempts == 1 and again.last_status is None
    assert again.body == delivery.body


def test_a_delivery_is_dead_lettered_after_max_attempts_and_can_be_replayed(settings, queue):
    delivery = published_delivery(queue, settings)
    states = []
    for _ in range(3):
        states.append(queue.mark_failed(delivery, 500, "boom", max_attempts=3, **NO_BACKOFF))
        taken = queue.take_due(10)
        if taken:
            (delivery,) = taken
    assert states == ["pending", "pending", "dead"]
    assert queue.take_due(10) == []  # a dead letter is not delivered again by itself
    (dead,) = queue.deliveries("dead")
    assert dead.attempts == 3 and dead.last_status == 500 and dead.body == delivery.body  # kept for replay
    assert queue.idle() and queue.counts()["dead"] == 1

    assert queue.replay_dead([dead.id + 1]) == 0  # another id: nothing
    assert queue.replay_dead([dead.id]) == 1
    (replayed,) = queue.take_due(10)
    assert replayed.id == dead.id and replayed.attempts == 0  # a fresh set of attempts


def test_dead_letters_can_be_purged(settings, queue):
    for _ in range(2):
        queue.publish(settings.topic(names.TOPIC_PSG_PREPPED), b"{}")
    queue.route_messages(settings)
    first, second = queue.take_due(10)
    for d in (first, second):
        queue.mark_failed(d, 400, "bad", max_attempts=1, **NO_BACKOFF)
    assert queue.purge_dead([first.id]) == 1
    assert [d.id for d in queue.deliveries("dead")] == [second.id]
    assert queue.purge_dead() == 1
    assert list(queue.deliveries()) == []
