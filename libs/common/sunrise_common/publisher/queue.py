"""The publishing side of the local router's durable queue (SQLite): the file's schema and
:meth:`QueueFile.publish`.

A service on the embedded backend publishes by appending a row to ``messages``
(:class:`~sunrise_common.publisher.local.LocalPublisher`); the router of the dev stack
(``sunrise_devstack.router.queue.Queue``, a subclass of :class:`QueueFile` on the same file and
this one schema) routes, delivers, retries and dead-letters. Only this half ships in the service
images. What the tables keep and for how long is described there (docs/privacy.md).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Mapping

from sunrise_common.sqlite import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    publish_time TEXT NOT NULL,
    routed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    service TEXT NOT NULL,
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    subject TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_at);
-- Object events already queued, by keyed digest of bucket/name/generation (never the name).
CREATE TABLE IF NOT EXISTS seen_digests (
    digest TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
-- The old guard kept raw object names: gone (its objects may be announced once more; ingest
-- answers those as duplicates).
DROP TABLE IF EXISTS seen;
"""


class QueueFile:
    """The queue file at ``path`` (created with :data:`SCHEMA` where missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = ThreadConnections(self.path, SCHEMA)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        """Append a message for the router to route; returns its message id."""
        message_id = str(uuid.uuid4().int)[:16]
        publish_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        self._conn().execute(
            "INSERT INTO messages(message_id, topic, data, attributes, publish_time) VALUES (?,?,?,?,?)",
            (message_id, topic, data, json.dumps(dict(attributes or {})), publish_time),
        )
        return message_id
