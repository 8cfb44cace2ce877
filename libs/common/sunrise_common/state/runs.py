"""Idempotency and leases for every stage, once (docs/architecture.md "Delivery semantics").

A stage run is identified by (document, stage, input_key), where ``input_key`` is derived from
the inputs and their generations. Claiming a run happens in one transaction:

- the run is ``done``                      -> ``DONE``  (answer 2xx, do nothing)
- the run failed permanently               -> ``FAILED`` (answer 2xx, reason already recorded)
- the run is ``running`` with a live lease -> ``BUSY``  (answer 429: retry later)
- the caller's ``current(doc)`` says the inputs were replaced meanwhile -> ``SUPERSEDED`` (answer
  2xx, do nothing: the newer input's own event does the work)
- otherwise (new, retrying, lease expired) -> ``ACQUIRED``: state ``running``, lease set, attempt+1

The claim's attempt number is its fencing token. While the work runs, :class:`Heartbeat` renews the
lease (every third of it), so a slow run on a loaded machine is never taken over; only a run whose
worker died (no heartbeat) expires. ``renew``, ``complete`` and ``fail`` change the run only if it
is still ``running`` under that same attempt: an attempt that was taken over cannot complete, so a
stage run completing twice for one input is impossible, not just unlikely.

Runs live in ``doc["runs"][stage][input_key]``; ``doc["stages"][stage]`` mirrors the latest run so
status queries (and Firestore indexes) see flat fields.
"""

from __future__ import annotations

import copy
import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sunrise_common.contracts import StageRun
from sunrise_common.state import Doc, StateStore

HISTORY_LIMIT = 20

logger = logging.getLogger(__name__)


class Outcome(str, enum.Enum):
    ACQUIRED = "acquired"
    DONE = "done"
    BUSY = "busy"
    FAILED = "failed"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Claim:
    outcome: Outcome
    run: dict[str, Any]


class StageRuns:
    """Claim, complete and fail stage runs in a :class:`StateStore`."""

    def __init__(self, store: StateStore, *, lease_s: float = 120.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lease_s = lease_s
        self.clock = clock

    def claim(
        self, collection: str, doc_id: str, stage: str, input_key: str, *, base: Doc | None = None,
        current: Callable[[Doc | None], bool] | None = None,
    ) -> Claim:
        """Claim the run (see the module docstring). ``current``, evaluated on the document inside
        the claim's transaction, says whether ``input_key`` still describes the document's inputs:
        a stage that read the document, then lost the race to a newer upload, finds out here, in
        the same transaction order as ingest's (issue 22: a superseded run never starts, so it can
        never become the stage's latest)."""
        now = self.clock()
        result: dict[str, Any] = {}

        def fn(doc: Doc | None) -> Doc | None:
            if current is not None and not current(doc):
                result.update(outcome=Outcome.SUPERSEDED, run={})
                return None
            # The outcomes that change nothing (a redelivery of finished or refused work, a run
            # under lease) are read from the stored document as it is; only a claim copies it.
            run = ((doc or {}).get("runs", {}).get(stage) or {}).get(input_key)
            if run is not None:
                if run["state"] == "done":
                    result.update(outcome=Outcome.DONE, run=run)
                    return None
                if run["state"] == "failed" and run.get("permanent"):
                    result.update(outcome=Outcome.FAILED, run=run)
                    return None
                if run["state"] == "running" and (run.get("lease_expires") or 0) > now:
                    result.update(outcome=Outcome.BUSY, run=run)
                    return None
            doc = copy.deepcopy(doc) if doc is not None else {**(base or {}), "created_at": now}
            doc.setdefault("runs", {}).setdefault(stage, {})
            previous = run or {"attempts": 0, "created_at": now}
            run = _run_record(
                previous,
                state="running",
                input_key=input_key,
                attempts=(previous.get("attempts") or 0) + 1,
                lease_expires=now + self.lease_s,
                started_at=now,
                error=None,
                permanent=False,
            )
            doc["runs"][stage][input_key] = run
            _mirror(doc, stage, input_key, run, now)
            result.update(outcome=Outcome.ACQUIRED, run=run)
            return doc

        self.store.transact(collection, doc_id, fn)
        return Claim(result["outcome"], result["run"])

    def renew(self, collection: str, doc_id: str, stage: str, input_key: str, *, attempt: int) -> bool:
        """Extend the lease of ``attempt`` by ``lease_s`` from now.

        Returns False (and changes nothing) if the run is no longer ``running`` under that attempt:
        it was taken over (or finished) meanwhile."""
        now = self.clock()
        held: list[bool] = []

        def fn(doc: Doc | None) -> Doc | None:
            held.clear()
            run = ((doc or {}).get("runs", {}).get(stage, {}) or {}).get(input_key)
            if not _holds(run, attempt):
                held.append(False)
                return None
            doc = copy.deepcopy(doc)
            doc["runs"][stage][input_key]["lease_expires"] = now + self.lease_s
            mirror = doc.get("stages", {}).get(stage)
            if mirror is not None and mirror.get("input_key") == input_key:
                mirror["lease_expires"] = now + self.lease_s
            held.append(True)
            return doc

        self.store.transact(collection, doc_id, fn)
        return bool(held and held[0])

    def _finish(
        self, collection: str, doc_id: str, stage: str, input_key: str, attempt: int, **fields: Any
    ) -> bool:
        now = self.clock()
        recorded: list[bool] = []

        def fn(doc: Doc | None) -> Doc | None:
            recorded.clear()
            run = ((doc or {}).get("runs", {}).get(stage, {}) or {}).get(input_key)
            if not _holds(run, attempt):
                # This attempt's lease expired and another attempt took the run over (and may have
                # finished it): the late finish of the old attempt must not overwrite it.
                recorded.append(False)
                return None
            doc = copy.deepcopy(doc)
            runs = doc["runs"][stage]
            run = _run_record(
                run, **fields, finished_at=now, lease_expires=0,
                duration_s=round(now - (run.get("started_at") or now), 4),
            )
            runs[input_key] = run
            latest = doc.get("stages", {}).get(stage)
            if latest is None or latest.get("input_key") == input_key or (run.get("started_at") or 0) >= (latest.get("started_at") or 0):
                # The mirror follows the newest input: an older run finishing late does not replace it.
                _mirror(doc, stage, input_key, run, now)
            history = doc.setdefault("history", [])
            history.append(
                {
                    "stage": stage,
                    "input_key": input_key,
                    "state": run["state"],
                    "at": now,
                    "duration_s": run["duration_s"],
                    "error": run.get("error"),
                }
            )
            del history[:-HISTORY_LIMIT]
            recorded.append(True)
            return doc

        self.store.transact(collection, doc_id, fn)
        return bool(recorded and recorded[0])

    def complete(
        self, collection: str, doc_id: str, stage: str, input_key: str, *, attempt: int,
        outputs: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
    ) -> bool:
        """Mark the run done, fenced on ``attempt`` (the claim's ``run["attempts"]``).

        Returns False, changing nothing, if that attempt no longer holds the run (taken over)."""
        return self._finish(
            collection, doc_id, stage, input_key, attempt, state="done", outputs=outputs or {},
            metrics=metrics or {}, error=None, permanent=False,
        )

    def fail(
        self, collection: str, doc_id: str, stage: str, input_key: str, *, attempt: int, reason: str, permanent: bool,
    ) -> bool:
        """Mark the run failed (``permanent``) or retrying, fenced on ``attempt`` like :meth:`complete`."""
        return self._finish(
            collection, doc_id, stage, input_key, attempt, state="failed" if permanent else "retrying",
            error=reason, permanent=permanent,
        )


class Heartbeat:
    """Renews one attempt's lease every ``lease_s / 3`` seconds while the work runs (a thread).

    Use as a context manager around the work. ``lost`` becomes True once a renewal finds the run
    taken over; the completion is refused then anyway (fenced), this only lets the caller log it.
    A renewal that fails transiently (state unavailable) is retried at the next beat: one missed
    beat still leaves a third of the lease, two leave almost none.

    Renewals stop ``max_s`` seconds after the start (``expired`` becomes True): a worker that is
    alive but hung (a call without a timeout, a thread left behind by a request timeout) must not
    hold the run forever. Its lease then runs out, a retry takes the run over, and the fence keeps
    the hung attempt from completing if it ever wakes up.
    """

    def __init__(self, runs: StageRuns, collection: str, doc_id: str, stage: str, input_key: str, attempt: int,
                 *, interval_s: float | None = None, max_s: float | None = None) -> None:
        self.runs = runs
        self.key = (collection, doc_id, stage, input_key)
        self.attempt = attempt
        self.interval_s = interval_s if interval_s is not None else max(runs.lease_s / 3.0, 0.01)
        self.max_s = max_s
        self.beats = 0
        self.lost = False
        self.expired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{stage}", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval_s):
            if self.max_s is not None and time.monotonic() - started >= self.max_s:
                self.expired = True
                logger.warning("%s has run %.0f s, longer than its %.0f s limit: its lease is no longer renewed",
                               self.key[2], time.monotonic() - started, self.max_s)
                return
            try:
                if not self.runs.renew(*self.key, attempt=self.attempt):
                    self.lost = True
                    return
                self.beats += 1
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the fence protects the rest
                logger.warning("lease renewal of %s failed: %s", self.key[2], exc)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # A renewal still in flight after this cannot extend a finished run (it is fenced too).
        self._thread.join(timeout=self.interval_s)


def _holds(run: dict[str, Any] | None, attempt: int) -> bool:
    """The run is still working under ``attempt`` (nobody took it over, nobody finished it)."""
    return run is not None and run.get("state") == "running" and run.get("attempts") == attempt


def _run_record(run: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``runs[stage][input_key]`` after ``changes``, written through the one model of a stage run
    (``contracts.StageRun``): a field of the wrong type fails here, in the writer, not in a reader.
    Fields the model does not name (``created_at``) are kept as they are."""
    return StageRun.model_validate({**run, **changes}).to_doc()


def _mirror(doc: Doc, stage: str, input_key: str, run: dict[str, Any], now: float) -> None:
    """``doc["stages"][stage]``: the run's flat fields, written through the one model of a stage
    run (``contracts.StageRun``, which readers parse it with)."""
    doc.setdefault("stages", {})[stage] = StageRun(
        state=run["state"],
        input_key=input_key,
        attempts=run.get("attempts") or 0,
        lease_expires=run.get("lease_expires") or 0,
        started_at=run.get("started_at"),
        finished_at=run.get("finished_at"),
        duration_s=run.get("duration_s"),
        error=run.get("error"),
        outputs=run.get("outputs", {}),
    ).to_doc()
    doc["updated_at"] = now
