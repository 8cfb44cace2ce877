"""The local router's deliverer (sunrise_devstack.router.main) against a real HTTP server on
127.0.0.1 (a stand-in for a service that answers with a chosen status). The raw-folder watcher:
test_watcher.py."""

from __future__ import annotations

import base64
import json

import pytest

from sunrise_common import names
from sunrise_devstack.emulators import free_port
from sunrise_devstack.router.main import Deliverer


def deliver_all(deliverer: Deliverer) -> int:
    """Hand every due delivery to the pool and wait until the pool has sent them all."""
    count = deliverer.deliver_due()
    deliverer.pool.shutdown(wait=True)
    deliverer.client.close()
    return count


def psg_prepped(queue, settings) -> None:
    queue.publish(settings.topic(names.TOPIC_PSG_PREPPED), b'{"night_id": "n1"}', {"a": "b"})
    assert queue.route_messages(settings) == 1


def test_the_deliverer_posts_the_eventarc_request_and_marks_it_delivered(settings, queue, service):
    server, handler = service
    settings = settings.model_copy(update={"sunalgo_url": f"http://127.0.0.1:{server.server_port}/"})
    psg_prepped(queue, settings)
    (pending,) = queue.deliveries()
    assert deliver_all(Deliverer(settings, queue)) == 1
    ((headers, body),) = handler.received
    assert headers["ce-type"] == names.PUBSUB_PUBLISHED and headers["ce-id"] == pending.headers["ce-id"]
    assert base64.b64decode(json.loads(body)["message"]["data"]) == b'{"night_id": "n1"}'
    done = queue.get(pending.id)
    assert (done.state, done.attempts, done.last_status, done.body) == ("delivered", 1, 204, {})


def test_a_non_2xx_answer_is_a_failed_attempt_retried_then_dead_lettered(settings, queue, service):
    server, handler = service
    handler.status = 503
    settings = settings.model_copy(update={
        "sunalgo_url": f"http://127.0.0.1:{server.server_port}/",
        "router_max_attempts": 2, "router_backoff_initial_s": 0.0, "router_backoff_max_s": 0.0,
    })  # fmt: skip
    psg_prepped(queue, settings)
    deliver_all(Deliverer(settings, queue))
    (first,) = queue.deliveries()
    assert (first.state, first.attempts, first.last_status) == ("pending", 1, 503)
    deliver_all(Deliverer(settings, queue))
    (dead,) = queue.deliveries()
    assert (dead.state, dead.attempts, dead.last_status) == ("dead", 2, 503)
    assert len(handler.received) == 2


def test_a_service_that_is_down_is_a_failed_attempt_too(settings, queue):
    settings = settings.model_copy(update={"sunalgo_url": f"http://127.0.0.1:{free_port()}/"})
    psg_prepped(queue, settings)
    deliver_all(Deliverer(settings, queue))
    (failed,) = queue.deliveries()
    assert failed.state == "pending" and failed.attempts == 1 and failed.last_status is None
    assert failed.last_error.startswith("ConnectError")


def test_the_deliverer_claims_no_more_than_its_free_slots(settings, queue):
    settings = settings.model_copy(update={"router_max_in_flight": 2, "sunalgo_url": f"http://127.0.0.1:{free_port()}/"})
    for _ in range(3):
        psg_prepped(queue, settings)
    deliverer = Deliverer(settings, queue)
    deliverer.in_flight = 2  # both slots busy: nothing is claimed
    assert deliverer.deliver_due() == 0
    assert queue.counts() == {"pending": 3, "unrouted_messages": 0}
    deliverer.in_flight = 1  # one slot free: one delivery is claimed and sent
    assert deliver_all(deliverer) == 1
    assert sorted(d.attempts for d in queue.deliveries()) == [0, 0, 1]
