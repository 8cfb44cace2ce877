"""Durable queue of the local router (SQLite): published messages, deliveries, dead letters.

The file's schema and the publishing side live in :mod:`sunrise_common.publisher.queue` (the
services' local publisher appends there); this is the router's side.

Publishers (services, the CLI) append messages; the router fans each message out to one delivery
per subscribed trigger, delivers it as an Eventarc-format CloudEvent, retries non-2xx answers with
exponential backoff and, past the attempt limit, keeps it as a dead letter (``state = 'dead'``).

Raw object names are personal data (``psg/clinic/MRN4471902/Mueller Zofia PSG 2021-03-12.edf``),
so this file keeps them only while it needs them (docs/privacy.md):

- ``seen_digests`` (the once-per-generation guard of object events) holds a keyed digest
  (HMAC-SHA256 with a key derived from the pseudonym key) of bucket, name and generation, not the name;
- a delivered delivery is redacted at once: its headers shrink to ``ce-id``/``ce-type``/
  ``ce-source``, its body and subject are dropped; a routed message's data is dropped;
- a pending delivery keeps its request (it must be sent again); a dead letter keeps it for
  replay for at most ``dead_letter_retention_s`` (7 days, like the cloud dead-letter
  subscription's ``message_retention_duration``), then :meth:`Queue.purge_expired` deletes it;
- deleted and overwritten content is zeroed (``secure_delete``) and the write-ahead log is
  truncated by :meth:`Queue.compact`, so redacted names do not linger in free pages or the WAL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from sunrise_common import names
from sunrise_common.events import pubsub_event, storage_event
from sunrise_common.publisher.queue import QueueFile

if TYPE_CHECKING:
    from sunrise_common.settings import Settings

    from sunrise_devstack.settings import DevStackSettings

# The header fields a redacted delivery keeps: enough to match it with a service's log line.
_KEPT_HEADERS = ("ce-id", "ce-type", "ce-source")
DEAD_LETTER_RETENTION_S = 7 * 24 * 3600.0


def seen_digest(key: bytes, bucket: str, name: str, generation: int) -> str:
    """Keyed digest of an object generation (hex HMAC-SHA256). ``key`` is the pseudonym key; a
    derived key keeps these digests unrelated to the pseudonyms made with it."""
    derived = hmac.new(key, b"sunrise/router-seen/v1", hashlib.sha256).digest()
    return hmac.new(derived, f"{bucket}\n{name}\n{generation}".encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()


def _redacted_headers(headers: str) -> str:
    kept = {k: v for k, v in json.loads(headers).items() if k.lower() in _KEPT_HEADERS}
    return json.dumps(kept)


@dataclass(frozen=True)
class Delivery:
    id: int
    trigger: str
    service: str
    headers: dict[str, str]
    body: dict[str, Any]
    subject: str | None
    attempts: int
    state: str
    last_status: int | None
    last_error: str | None
    created_at: float
    updated_at: float


class Queue(QueueFile):
    """The router's view of the queue file: :meth:`QueueFile.publish` (shared with the services'
    local publisher) plus routing, claiming, delivering and dead letters."""

    # -- routing
    def route_messages(self, settings: DevStackSettings) -> int:
        """Fan new messages out to the triggers subscribed to their topic."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT id, message_id, topic, data, attributes, publish_time FROM messages WHERE routed=0 ORDER BY id LIMIT 500"
        ).fetchall()
        now = time.time()
        for row_id, message_id, topic, data, attributes, publish_time in rows:
            logical = settings.logical_topic(topic)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for trig in names.TRIGGERS:
                    if trig.event_type == names.PUBSUB_PUBLISHED and trig.source == logical:
                        headers, body = pubsub_event(
                            settings.project,
                            topic,
                            bytes(data),
                            attributes=json.loads(attributes),
                            message_id=message_id,
                            publish_time=publish_time,
                            subscription=f"projects/{settings.project}/subscriptions/eventarc-local-{trig.name}-sub-000",
                        )
                        for _ in range(settings.router_duplicates):
                            self._insert(conn, trig, headers, body, topic, now)
                # The deliveries hold the message now: its data need not be kept twice.
                conn.execute("UPDATE messages SET routed=1, data=X'', attributes='{}' WHERE id=?", (row_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(rows)

    def enqueue_storage(self, settings: Settings, bucket: str, name: str, generation: int, size: int, *,
                        force: bool = False) -> int:
        """Deliveries for an object finalize on ``bucket``; once per generation unless forced."""
        conn = self._conn()
        logical = settings.logical_bucket(bucket)
        now = time.time()
        digest = seen_digest(settings.key_bytes(), bucket, name, generation)
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute("INSERT OR IGNORE INTO seen_digests(digest, created_at) VALUES (?,?)", (digest, now))
            if cur.rowcount == 0 and not force:
                conn.execute("COMMIT")
                return 0
            count = 0
            for trig in names.TRIGGERS:
                if trig.event_type == names.STORAGE_FINALIZED and trig.source == logical:
                    headers, body = storage_event(bucket, name, generation, size)
                    for _ in range(settings.router_duplicates):
                        self._insert(conn, trig, headers, body, name, now)
                    count += 1
            conn.execute("COMMIT")
            return count
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def enqueue_event(self, trigger: names.Trigger, headers: dict[str, str], body: dict[str, Any], subject: str | None) -> None:
        """A delivery built elsewhere (the emulators' Pub/Sub source)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert(conn, trigger, headers, body, subject, time.time())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _insert(conn: sqlite3.Connection, trig: names.Trigger, headers: dict, body: dict, subject: str | None, now: float) -> None:
        conn.execute(
            "INSERT INTO deliveries(trigger, service, headers, body, subject, next_at, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (trig.name, trig.service, json.dumps(headers), json.dumps(body), subject, now, now, now),
        )

    # -- delivering side
    def reset_in_flight(self) -> None:
        """After a router crash, deliveries that were in flight are due again."""
        self._conn().execute("UPDATE deliveries SET state='pending' WHERE state='in_flight'")

    def requeue_stale(self, deadline_s: float, held: set[int] | frozenset[int] = frozenset(), now: float | None = None) -> int:
        """Make due again the deliveries in flight for more than ``deadline_s`` seconds that no
        live delivery thread holds (``held``): their outcome was never written (a full disk, a
        killed thread). They are sent again (at least once, as Eventarc redelivers an unacked
        message). Returns how many."""
        cutoff = (time.time() if now is None else now) - deadline_s
        rows = self._conn().execute(
            "SELECT id FROM deliveries WHERE state='in_flight' AND updated_at < ?", (cutoff,)
        ).fetchall()
        stale = [r[0] for r in rows if r[0] not in held]
        if not stale:
            return 0
        marks = ",".join("?" * len(stale))
        return self._conn().execute(
            f"UPDATE deliveries SET state='pending', next_at=? WHERE state='in_flight' AND id IN ({marks})",
            (time.time(), *stale),
        ).rowcount

    def take_due(self, limit: int, *, shuffle: bool = False) -> list[Delivery]:
        """Mark up to ``limit`` due deliveries in flight (oldest first, or in random order)."""
        now = time.time()
        order = "RANDOM()" if shuffle else "next_at, id"
        rows = self._conn().execute(
            "UPDATE deliveries SET state='in_flight', updated_at=? WHERE id IN ("
            f" SELECT id FROM deliveries WHERE state='pending' AND next_at<=? ORDER BY {order} LIMIT ?"
            ") RETURNING *",
            (now, now, limit),
        ).fetchall()
        return [self._row(r) for r in rows]

    def mark_delivered(self, delivery_id: int, status: int) -> None:
        """Done with: the request (object name, message data) is redacted in the same update."""
        conn = self._conn()
        row = conn.execute("SELECT headers FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
        headers = _redacted_headers(row[0]) if row else "{}"
        conn.execute(
            "UPDATE deliveries SET state='delivered', attempts=attempts+1, last_status=?, last_error=NULL, updated_at=?, "
            "headers=?, body='{}', subject=NULL WHERE id=?",
            (status, time.time(), headers, delivery_id),
        )

    def mark_superseded(self, delivery_id: int) -> None:
        """Dropped unsent: the object it announces has a newer generation (that one has, or will
        get, its own delivery). Redacted like a delivered one."""
        conn = self._conn()
        row = conn.execute("SELECT headers FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
        headers = _redacted_headers(row[0]) if row else "{}"
        conn.execute(
            "UPDATE deliveries SET state='superseded', last_status=NULL, last_error='superseded by a newer generation', "
            "updated_at=?, headers=?, body='{}', subject=NULL WHERE id=?",
            (time.time(), headers, delivery_id),
        )

    def mark_failed(self, delivery: Delivery, status: int | None, error: str, *, max_attempts: int, backoff_initial: float, backoff_max: float) -> str:
        attempts = delivery.attempts + 1
        now = time.time()
        if attempts >= max_attempts:
            state, next_at = "dead", now
        else:
            state, next_at = "pending", now + min(backoff_initial * 2 ** (attempts - 1), backoff_max)
        self._conn().execute(
            "UPDATE deliveries SET state=?, attempts=?, next_at=?, last_status=?, last_error=?, updated_at=? WHERE id=?",
            (state, attempts, next_at, status, error[:2000], now, delivery.id),
        )
        return state

    # -- inspection and dead letters
    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall()
        unrouted = self._conn().execute("SELECT COUNT(*) FROM messages WHERE routed=0").fetchone()[0]
        return {**{state: n for state, n in rows}, "unrouted_messages": unrouted}

    def idle(self) -> bool:
        c = self.counts()
        return not c.get("pending") and not c.get("in_flight") and not c.get("unrouted_messages")

    def deliveries(self, state: str | None = None, limit: int = 1000) -> Iterator[Delivery]:
        if state:
            rows = self._conn().execute(
                "SELECT * FROM deliveries WHERE state=? ORDER BY id LIMIT ?", (state, limit)
            ).fetchall()
        else:
            rows = self._conn().execute("SELECT * FROM deliveries ORDER BY id LIMIT ?", (limit,)).fetchall()
        for r in rows:
            yield self._row(r)

    def get(self, delivery_id: int) -> Delivery | None:
        row = self._conn().execute("SELECT * FROM deliveries WHERE id=?", (delivery_id,)).fetchone()
        return self._row(row) if row else None

    def replay_dead(self, ids: list[int] | None = None) -> int:
        now = time.time()
        if ids:
            marks = ",".join("?" * len(ids))
            cur = self._conn().execute(
                f"UPDATE deliveries SET state='pending', attempts=0, next_at=?, updated_at=? WHERE state='dead' AND id IN ({marks})",
                (now, now, *ids),
            )
        else:
            cur = self._conn().execute(
                "UPDATE deliveries SET state='pending', attempts=0, next_at=?, updated_at=? WHERE state='dead'", (now, now)
            )
        return cur.rowcount

    def purge_dead(self, ids: list[int] | None = None) -> int:
        if ids:
            marks = ",".join("?" * len(ids))
            cur = self._conn().execute(f"DELETE FROM deliveries WHERE state='dead' AND id IN ({marks})", ids)
        else:
            cur = self._conn().execute("DELETE FROM deliveries WHERE state='dead'")
        return cur.rowcount

    def purge_expired(self, retention_s: float = DEAD_LETTER_RETENTION_S, now: float | None = None) -> int:
        """Delete dead letters (with their requests) and delivered rows last touched more than
        ``retention_s`` seconds ago, and routed messages as old. Returns the deliveries deleted."""
        cutoff = (time.time() if now is None else now) - retention_s
        conn = self._conn()
        cur = conn.execute("DELETE FROM deliveries WHERE state IN ('dead', 'delivered', 'superseded') AND updated_at < ?", (cutoff,))
        conn.execute("DELETE FROM seen_digests WHERE created_at < ?", (cutoff - 365 * 24 * 3600.0,))
        return cur.rowcount

    def compact(self) -> bool:
        """Fold the write-ahead log into the database and truncate it, so that rows redacted or
        deleted since are gone from the WAL too. False if a reader kept it busy (try later)."""
        busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    @staticmethod
    def _row(r: tuple) -> Delivery:
        (id_, trigger, service, headers, body, subject, attempts, _next_at, state, last_status, last_error, created, updated) = r
        return Delivery(
            id=id_, trigger=trigger, service=service, headers=json.loads(headers), body=json.loads(body),
            subject=subject, attempts=attempts, state=state, last_status=last_status, last_error=last_error,
            created_at=created, updated_at=updated,
        )
