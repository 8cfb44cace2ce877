"""Publisher adapter that appends to the local router's durable queue (SQLite).

Writing straight into the queue file means a publish succeeds even while the router process is
down; the router delivers it when it comes back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Mapping

from sunrise_common.errors import TransientError
from sunrise_common.publisher.queue import QueueFile


class LocalPublisher:
    def __init__(self, path: Path) -> None:
        self.queue = QueueFile(path)

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str] | None = None) -> str:
        try:
            return self.queue.publish(topic, data, attributes)
        except sqlite3.OperationalError as exc:
            raise TransientError("publish_failed", f"local queue: {exc}") from exc
