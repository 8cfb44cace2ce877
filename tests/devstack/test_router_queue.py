"""The local router's queue keeps raw object names only while it needs them (issue 13):
``seen`` by keyed digest, delivered rows redacted, dead letters bounded by their retention, and
nothing left behind in the database file or its write-ahead log."""

from __future__ import annotations

import json

from sunrise_devstack.router.main import housekeeping
from sunrise_devstack.router.queue import seen_digest

NAME = "psg/clinic/MRN4471902/Mueller Zofia PSG 2021-03-12.edf"
NEEDLES = [b"MRN4471902", b"Mueller", b"Zofia", b"2021-03-12", "MRN4471902".encode("utf-16-le")]


def stored_bytes(settings) -> bytes:
    """The database file and its write-ahead log, as anyone who copies the folder would read them."""
    return b"".join(p.read_bytes() for p in sorted(settings.data_dir.glob("router.db*")) if p.is_file())


def personal(data: bytes) -> list[bytes]:
    return [n for n in NEEDLES if n in data]


def test_seen_is_keyed_by_a_digest_not_the_object_name(queue, settings):
    raw = settings.bucket("raw")
    assert queue.enqueue_storage(settings, raw, NAME, 17, 100) == 1
    assert queue.enqueue_storage(settings, raw, NAME, 17, 100) == 0  # once per generation
    assert queue.enqueue_storage(settings, raw, NAME, 18, 100) == 1  # a new generation is new
    rows = queue._conn().execute("SELECT digest FROM seen_digests ORDER BY digest").fetchall()
    assert sorted(r[0] for r in rows) == sorted(seen_digest(settings.key_bytes(), raw, NAME, g) for g in (17, 18))
    other_key = seen_digest(b"another-key-0123456789abcdef", raw, NAME, 17)
    assert other_key not in {r[0] for r in rows}  # keyed: without the key, a name cannot be checked


def test_a_delivered_delivery_keeps_no_object_name_in_the_file_or_its_wal(queue, settings):
    queue.enqueue_storage(settings, settings.bucket("raw"), NAME, 17, 100)
    (delivery,) = queue.take_due(10)
    assert delivery.body["name"] == NAME  # needed while it is to be delivered
    queue.mark_delivered(delivery.id, 200)
    done = queue.get(delivery.id)
    assert done.state == "delivered" and done.body == {} and done.subject is None
    assert set(done.headers) == {"ce-id", "ce-type", "ce-source"}
    assert queue.compact()
    assert personal(stored_bytes(settings)) == []


def test_a_routed_message_keeps_no_data_twice(queue, settings):
    payload = json.dumps({"night_id": "sabcdefghijkl-nabcdefgh", "note": "MRN4471902"}).encode()
    queue.publish(settings.topic("sunrise-anonymised"), payload)
    assert queue.route_messages(settings) == 1
    for d in queue.take_due(10):
        queue.mark_delivered(d.id, 200)
    assert queue.compact()
    assert personal(stored_bytes(settings)) == []


def test_dead_letters_keep_their_request_for_replay_until_their_retention_ends(queue, settings):
    queue.enqueue_storage(settings, settings.bucket("raw"), NAME, 17, 100)
    (delivery,) = queue.take_due(10)
    assert queue.mark_failed(delivery, 503, "down", max_attempts=1, backoff_initial=1, backoff_max=1) == "dead"
    (dead,) = queue.deliveries("dead")
    assert dead.body["name"] == NAME
    assert queue.purge_expired(retention_s=3600) == 0  # young: kept
    assert queue.purge_expired(retention_s=3600, now=dead.updated_at + 3601) == 1
    assert list(queue.deliveries("dead")) == []
    assert queue.compact()
    assert personal(stored_bytes(settings)) == []


def test_the_routers_housekeeping_applies_the_configured_retention(queue, settings):
    queue.enqueue_storage(settings, settings.bucket("raw"), NAME, 17, 100)
    (delivery,) = queue.take_due(10)
    queue.mark_failed(delivery, 500, "bug", max_attempts=1, backoff_initial=1, backoff_max=1)
    housekeeping(queue, settings)  # 7 days by default: kept
    assert len(list(queue.deliveries("dead"))) == 1
    queue._conn().execute("UPDATE deliveries SET updated_at = updated_at - 8 * 86400")
    housekeeping(queue, settings)
    assert list(queue.deliveries("dead")) == []
    assert personal(stored_bytes(settings)) == []
    assert settings.dead_letter_retention_s == 7 * 24 * 3600
