"""State adapter on one SQLite file (WAL mode, shared safely by several processes)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator

from sunrise_common.errors import TransientError
from sunrise_common.sqlite import ThreadConnections
from sunrise_common.state import Doc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (collection, id)
);
"""


class SqliteState:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = ThreadConnections(self.path, _SCHEMA)

    def get(self, collection: str, doc_id: str) -> Doc | None:
        try:
            row = self._conn().execute(
                "SELECT data FROM docs WHERE collection=? AND id=?", (collection, doc_id)
            ).fetchone()
        except sqlite3.OperationalError as exc:
            raise TransientError("state_unavailable", str(exc)) from exc
        return json.loads(row[0]) if row else None

    def transact(self, collection: str, doc_id: str, fn: Callable[[Doc | None], Doc | None]) -> Doc | None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT data FROM docs WHERE collection=? AND id=?", (collection, doc_id)
                ).fetchone()
                before = json.loads(row[0]) if row else None
                after = fn(json.loads(row[0]) if row else None)
                if after is not None:
                    conn.execute(
                        "INSERT INTO docs(collection, id, data, updated_at) VALUES (?,?,?,?) "
                        "ON CONFLICT(collection, id) DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
                        (collection, doc_id, json.dumps(after, sort_keys=True), time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise TransientError("state_unavailable", str(exc)) from exc
        return after if after is not None else before

    def set(self, collection: str, doc_id: str, doc: Doc) -> None:
        self.transact(collection, doc_id, lambda _old: doc)

    def list(self, collection: str) -> Iterator[tuple[str, Doc]]:
        try:
            rows = self._conn().execute(
                "SELECT id, data FROM docs WHERE collection=? ORDER BY id", (collection,)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise TransientError("state_unavailable", str(exc)) from exc
        for doc_id, data in rows:
            yield doc_id, json.loads(data)

    def delete(self, collection: str, doc_id: str) -> None:
        self._conn().execute("DELETE FROM docs WHERE collection=? AND id=?", (collection, doc_id))
