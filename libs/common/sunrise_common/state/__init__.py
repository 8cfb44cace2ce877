"""State port: a small document store with single-document transactions.

Collections: ``nights/{night_id}``, ``uploads/{upload_id}``. Adapters: :mod:`.sqlite` (embedded)
and :mod:`.firestore` (Firestore or its emulator). Leases and idempotency are built once on top of
this port, in :mod:`.runs`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol

from sunrise_common.settings import Settings

Doc = dict[str, Any]


class StateStore(Protocol):
    def get(self, collection: str, doc_id: str) -> Doc | None:
        """One document, or None."""

    def transact(self, collection: str, doc_id: str, fn: Callable[[Doc | None], Doc | None]) -> Doc | None:
        """Read a document, apply ``fn`` and write its result, atomically. ``fn`` may run more
        than once (it must be pure); returning None leaves the document unchanged. Returns what
        is stored afterwards."""

    def set(self, collection: str, doc_id: str, doc: Doc) -> None:
        """Overwrite a document."""

    def list(self, collection: str) -> Iterator[tuple[str, Doc]]:
        """Every document of a collection (id order)."""

    def delete(self, collection: str, doc_id: str) -> None:
        """Remove a document (tests, purges)."""


def make_state(settings: Settings) -> StateStore:
    """The state adapter of ``settings.backend``."""
    if settings.backend == "embedded":
        from sunrise_common.state.sqlite import SqliteState

        return SqliteState(settings.data_dir / "state.db")
    from sunrise_common.state.firestore import FirestoreState

    if settings.backend == "emulators":
        return FirestoreState.for_emulator(settings.firestore_emulator_host, settings.project)
    return FirestoreState.for_cloud(settings.project)
