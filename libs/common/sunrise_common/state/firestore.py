"""State adapter on Firestore (Native mode) or its emulator.

Documents are stored as given: nested dicts become Firestore maps with their keys unchanged
(map keys are not field paths, so dots and dashes are fine). Firestore cannot hold arrays
directly inside arrays; the pipeline's documents do not need them.
SDK errors are translated here: contention and unavailability -> ``TransientError``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Callable, Iterator

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from sunrise_common.errors import TransientError
from sunrise_common.state import Doc

TIMEOUT_S = 30.0
# Attempts of one transaction inside the SDK (commit aborted by contention), and of the whole
# transaction again when the emulator or the service aborts a read under contention.
TX_MAX_ATTEMPTS = 10
TX_OUTER_ATTEMPTS = 5
LOCK_STRIPES = 64

_TRANSIENT = (
    gexc.Aborted,
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,  # RESOURCE_EXHAUSTED
    gexc.RetryError,
)


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as exc:
        raise TransientError("state_unavailable", f"{what}: {exc}") from exc


class FirestoreState:
    """The StateStore port on a ``google.cloud.firestore.Client``.

    Build it with :meth:`for_emulator` or :meth:`for_cloud`.
    """

    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        # Threads of one instance queue up here instead of inside Firestore: two transactions on
        # one document that both read it hold shared locks, and the loser of the upgrade only
        # learns it must retry when its commit aborts (after ~2 s on the emulator). Other
        # processes still rely on Firestore's own isolation.
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]

    @classmethod
    def for_emulator(cls, host: str, project: str) -> FirestoreState:
        """The Firestore emulator at ``host`` (``127.0.0.1:8086``)."""
        client = firestore.Client(project=project, credentials=AnonymousCredentials())
        # The SDK only learns about an emulator from FIRESTORE_EMULATOR_HOST, read once in
        # __init__ into this attribute, which every later call (channel, target, auth metadata)
        # consults. Setting it here keeps the process environment untouched (configuration comes
        # from Settings only) and lets two clients talk to different emulators.
        client._emulator_host = host
        return cls(client)

    @classmethod
    def for_cloud(cls, project: str, database: str | None = None) -> FirestoreState:
        """Firestore with the runtime's default credentials."""
        return cls(firestore.Client(project=project, database=database))

    def _ref(self, collection: str, doc_id: str) -> firestore.DocumentReference:
        if not collection or "/" in collection:
            raise ValueError(f"bad collection name {collection!r}")
        if not doc_id or "/" in doc_id or doc_id in (".", ".."):
            raise ValueError(f"bad document id {doc_id!r}")
        return self.client.collection(collection).document(doc_id)

    def get(self, collection: str, doc_id: str) -> Doc | None:
        with _translated(f"get {collection}/{doc_id}"):
            snap = self._ref(collection, doc_id).get(timeout=TIMEOUT_S)
        return snap.to_dict() if snap.exists else None

    def transact(self, collection: str, doc_id: str, fn: Callable[[Doc | None], Doc | None]) -> Doc | None:
        ref = self._ref(collection, doc_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> Doc | None:
            snap = ref.get(transaction=tx, timeout=TIMEOUT_S)
            before = snap.to_dict() if snap.exists else None
            after = fn(before)
            if after is None:
                return before
            tx.set(ref, after)
            return after

        what = f"transaction on {collection}/{doc_id}"
        with self._locks[hash((collection, doc_id)) % LOCK_STRIPES]:
            return self._run_with_retries(run, what)

    def _run_with_retries(self, run: Callable[[firestore.Transaction], Doc | None], what: str) -> Doc | None:
        last: BaseException | None = None
        for attempt in range(TX_OUTER_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
            try:
                return run(self.client.transaction(max_attempts=TX_MAX_ATTEMPTS))
            except gexc.Aborted as exc:
                last = exc  # a read aborted under contention: the SDK only retries commits
            except ValueError as exc:
                if not isinstance(exc.__cause__, gexc.Aborted):
                    raise
                last = exc  # the SDK's "exceeded max attempts": commits kept aborting
            except _TRANSIENT as exc:
                raise TransientError("state_unavailable", f"{what}: {exc}") from exc
        raise TransientError("state_contention", f"{what}: still aborted after retries") from last

    def set(self, collection: str, doc_id: str, doc: Doc) -> None:
        with _translated(f"set {collection}/{doc_id}"):
            self._ref(collection, doc_id).set(doc, timeout=TIMEOUT_S)

    def list(self, collection: str) -> Iterator[tuple[str, Doc]]:
        # A collection query without ordering returns documents in id order.
        with _translated(f"list {collection}"):
            for snap in self.client.collection(collection).stream(timeout=TIMEOUT_S):
                yield snap.id, snap.to_dict()

    def delete(self, collection: str, doc_id: str) -> None:
        with _translated(f"delete {collection}/{doc_id}"):
            self._ref(collection, doc_id).delete(timeout=TIMEOUT_S)
