"""One SQLite connection per thread to a file shared by several processes (WAL mode).

Used by the embedded state store and the local router's queue file (:mod:`sunrise_common.publisher.queue`,
which the dev stack's router opens too).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    """Opens ``path`` once per thread, in autocommit mode with WAL journaling."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self().executescript(schema)

    def __call__(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Deleted or overwritten content is zeroed, not left in free pages (redacted object
            # names in the router's queue: docs/privacy.md).
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
        return conn
