"""Idempotency and leases for every stage, once (DESIGN.md "Delivery semantics").

A stage run is identified by (document, stage, input_key), where ``input_key`` is derived from
the inputs and their generations. Claiming a run happens in one transaction:

- the run is ``done``                      -> ``DONE``  (answer 2xx, do nothing)
- the run failed permanently               -> ``FAILED`` (answer 2xx, reason already recorded)
- the run is ``running`` with a live lease -> ``BUSY``  (answer 429: retry later)
- otherwise (new, retrying, lease expired) -> ``ACQUIRED``: state ``running``, lease set, attempt+1

Runs live in ``doc["runs"][stage][input_key]``; ``doc["stages"][stage]`` mirrors the latest run so
status queries (and Firestore indexes) see flat fields.
"""

from __future__ import annotations

import copy
import enum
import time
from dataclasses import dataclass
from typing import Any, Callable

from sunrise_common.state import Doc, StateStore

HISTORY_LIMIT = 20


class Outcome(str, enum.Enum):
    ACQUIRED = "acquired"
    DONE = "done"
    BUSY = "busy"
    FAILED = "failed"


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
        self, collection: str, doc_id: str, stage: str, input_key: str, *, base: Doc | None = None
    ) -> Claim:
        now = self.clock()
        result: dict[str, Any] = {}

        def fn(doc: Doc | None) -> Doc | None:
            doc = copy.deepcopy(doc) if doc is not None else {**(base or {}), "created_at": now}
            run = doc.setdefault("runs", {}).setdefault(stage, {}).get(input_key)
            if run is not None:
                if run["state"] == "done":
                    result.update(outcome=Outcome.DONE, run=run)
                    return None
                if run["state"] == "failed" and run.get("permanent"):
                    result.update(outcome=Outcome.FAILED, run=run)
                    return None
                if run["state"] == "running" and run.get("lease_expires", 0) > now:
                    result.update(outcome=Outcome.BUSY, run=run)
                    return None
            run = dict(run or {"attempts": 0, "created_at": now})
            run.update(
                state="running",
                attempts=run["attempts"] + 1,
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

    def _finish(
        self, collection: str, doc_id: str, stage: str, input_key: str, attempt: int | None, **fields: Any
    ) -> Doc | None:
        now = self.clock()

        def fn(doc: Doc | None) -> Doc | None:
            doc = copy.deepcopy(doc) if doc is not None else {"created_at": now}
            runs = doc.setdefault("runs", {}).setdefault(stage, {})
            run = dict(runs.get(input_key) or {"attempts": 1, "created_at": now, "started_at": now})
            if attempt is not None and (run.get("state") != "running" or run.get("attempts") != attempt):
                # This worker's lease expired and another attempt took the run over (and may have
                # finished it): the late finish of the old attempt must not overwrite it.
                return None
            run.update(fields, finished_at=now, lease_expires=0)
            run["duration_s"] = round(now - run.get("started_at", now), 4)
            runs[input_key] = run
            latest = doc.get("stages", {}).get(stage)
            if latest is None or latest.get("input_key") == input_key or run.get("started_at", 0) >= (latest.get("started_at") or 0):
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
            return doc

        return self.store.transact(collection, doc_id, fn)

    def complete(
        self, collection: str, doc_id: str, stage: str, input_key: str, *, outputs: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None, attempt: int | None = None,
    ) -> Doc | None:
        """Mark a run done. ``attempt`` (the claim's ``run["attempts"]``) ties the finish to that
        claim: if the run was taken over meanwhile, nothing changes."""
        return self._finish(
            collection, doc_id, stage, input_key, attempt, state="done", outputs=outputs or {},
            metrics=metrics or {}, error=None, permanent=False,
        )

    def fail(
        self, collection: str, doc_id: str, stage: str, input_key: str, *, reason: str, permanent: bool,
        attempt: int | None = None,
    ) -> Doc | None:
        return self._finish(
            collection, doc_id, stage, input_key, attempt, state="failed" if permanent else "retrying",
            error=reason, permanent=permanent,
        )


def _mirror(doc: Doc, stage: str, input_key: str, run: dict[str, Any], now: float) -> None:
    doc.setdefault("stages", {})[stage] = {
        "state": run["state"],
        "input_key": input_key,
        "attempts": run.get("attempts", 0),
        "lease_expires": run.get("lease_expires", 0),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "duration_s": run.get("duration_s"),
        "error": run.get("error"),
        "outputs": run.get("outputs", {}),
    }
    doc["updated_at"] = now
