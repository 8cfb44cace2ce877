"""What ``sunrise status`` shows: counts per stage and state, failures, stage times, uploads.

Everything here reads the state store only: no raw object names are stored there (they hold
site and subject codes), so views that name a failed upload look its name up in the raw bucket at
display time (see ``sunrise_cli.views``).

States of a stage: ``pending`` (not started), ``running``, ``retrying`` (transient failure, the
platform retries), ``done``, ``failed`` (permanent, with a reason) and ``waiting`` (the stage
needs the night's other recording, which has not arrived: a PSG-only night has no Sunrise half to
prepare or score, a Sunrise-only night no PSG half to prepare) and ``blocked`` (the stage cannot
run because the stage it reads failed permanently: sunalgo after a failed sunrise_prep).

Label files without a date wait for their subject's PSG outside any night (``pairing/{subject}``,
see ``ingest.pairing``); they are listed with the nights waiting for a partner.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sunrise_common.names import STAGES
from sunrise_common.state import StateStore

STATES = ("pending", "waiting", "blocked", "running", "retrying", "done", "failed")

#: Which recording each stage after ingest needs (``recordings`` keys of the night document).
NEEDS = {"sunrise_prep": "sunrise", "psg_prep": "psg", "sunalgo": "sunrise"}

#: The stage whose permanent failure keeps each stage from running (sunalgo reads sunrise_prep's output).
BLOCKED_BY = {"sunalgo": "sunrise_prep"}

#: ``ingest.pairing.PAIRING``: per-subject documents listing date-less label files still waiting.
PAIRING = "pairing"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[k], 4)


def latest_generation_run(doc: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """(generation, ingest run) of an upload document's newest object generation.

    Runs are keyed by generation; the ``stages.ingest`` mirror follows the run that *started*
    last, so a stale redelivery for an older generation (e.g. ``object_gone`` after the object was
    replaced) would otherwise hide the outcome of the current one.
    """
    runs = doc.get("runs", {}).get("ingest", {})
    best: tuple[int, dict[str, Any]] | None = None
    for key, run in runs.items():
        try:
            generation = int(key)
        except ValueError:
            continue
        if best is None or generation > best[0]:
            best = (generation, run)
    if best is None:
        return None, doc.get("stages", {}).get("ingest", {})
    return best


def stage_state(doc: dict[str, Any], stage: str) -> str:
    """One night's state of ``stage`` (one of :data:`STATES`)."""
    st = doc.get("stages", {}).get(stage)
    if st:
        return st.get("state", "pending")
    need = NEEDS.get(stage)
    if need and need not in doc.get("recordings", {}):
        return "waiting"
    if blocker(doc, stage) is not None:
        return "blocked"
    return "pending"


def blocker(doc: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """``{"stage", "error"}`` of the permanent failure that keeps ``stage`` from running, or None."""
    before = BLOCKED_BY.get(stage)
    st = doc.get("stages", {}).get(before) if before else None
    if st and st.get("state") == "failed" and st.get("permanent", True):
        return {"stage": before, "error": st.get("error")}
    return None


def _split_reason(error: str | None) -> tuple[str | None, str | None]:
    """``"reason: detail"`` (how runs record errors) -> (reason, detail)."""
    if not error:
        return None, None
    reason, sep, detail = error.partition(": ")
    if sep and reason.replace("_", "").isalnum():
        return reason, detail
    return None, error


@dataclass
class _Tally:
    """What ``summarize`` gathers from the nights, before the uploads are counted."""

    now: float  # Unix time (UTC)
    counts: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in STAGES})
    failures: list[dict[str, Any]] = field(default_factory=list)
    durations: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    night_totals: list[tuple[float, str]] = field(default_factory=list)  # (s of done runs, night)
    finished_at: list[float] = field(default_factory=list)  # sunalgo done, Unix times
    waiting: list[dict[str, Any]] = field(default_factory=list)
    n_nights: int = 0
    pairing: Counter = field(default_factory=Counter)


def _tally_night(t: _Tally, night_id: str, doc: dict[str, Any]) -> None:
    """Count one night: its pairing, whether it waits for its Sunrise half, each stage's state,
    failure and done runs' times (reruns ``sunalgo:VERSION`` as their own stages)."""
    t.n_nights += 1
    t.pairing[doc.get("pairing", {}).get("state", "unknown")] += 1
    recordings = doc.get("recordings", {})
    if "sunrise" not in recordings:
        since = doc.get("created_at")
        t.waiting.append({"night_id": night_id, "has": sorted(k for k in recordings if recordings[k]),
                          "waiting_for": "sunrise", "since": since,
                          "age_s": round(t.now - since, 1) if since else None})
    total = 0.0
    extra = sorted(s for s in doc.get("stages", {}) if s.startswith("sunalgo:"))
    for stage in [*STAGES, *extra]:
        st = doc.get("stages", {}).get(stage)
        state_name = stage_state(doc, stage)
        if stage != "ingest":
            t.counts.setdefault(stage, Counter())[state_name] += 1
        if st and st.get("state") in ("failed", "retrying"):
            reason, detail = _split_reason(st.get("error"))
            t.failures.append({"night_id": night_id, "stage": stage, "state": st["state"], "error": st.get("error"),
                               "reason": reason, "detail": detail, "attempts": st.get("attempts"),
                               "at": st.get("finished_at")})
        for run in doc.get("runs", {}).get(stage, {}).values():
            if run.get("state") == "done" and run.get("duration_s") is not None:
                t.durations[stage].append((run.get("finished_at", 0), run["duration_s"]))
                total += run["duration_s"]
                if "cpu_s" in run.get("metrics", {}):
                    t.cpu[stage].append(run["metrics"]["cpu_s"])
        if stage == "sunalgo" and st and st.get("state") == "done" and st.get("finished_at"):
            t.finished_at.append(st["finished_at"])
    t.night_totals.append((total, night_id))


def _tally_unpaired_labels(t: _Tally, state: StateStore) -> None:
    """Label files without a date that no PSG has claimed yet wait for their PSG."""
    for _subject, doc in state.list(PAIRING):
        for entry in (doc.get("waiting_labels") or {}).values():
            if entry.get("paired_night") is None:
                since = entry.get("since")
                t.waiting.append({"night_id": None, "upload_id": entry.get("upload_id"),
                                  "has": ["labels without a date"], "waiting_for": "psg", "since": since,
                                  "age_s": round(t.now - since, 1) if since else None})


def _tally_uploads(t: _Tally, state: StateStore) -> tuple[Counter, list[dict[str, Any]]]:
    """Uploads by the outcome of their newest generation, and the rejected or retrying ones
    (ingest's done runs join ``t.durations``)."""
    uploads = Counter()
    rejected: list[dict[str, Any]] = []
    for upload, doc in state.list("uploads"):
        generation, run = latest_generation_run(doc)
        outcome = run.get("state", "pending")
        uploads[outcome] += 1
        for r in doc.get("runs", {}).get("ingest", {}).values():
            if r.get("state") == "done" and r.get("duration_s") is not None:
                t.durations["ingest"].append((r.get("finished_at", 0), r["duration_s"]))
        if outcome in ("failed", "retrying"):
            reason, detail = _split_reason(run.get("error"))
            rejected.append({"upload_id": upload, "generation": generation, "state": outcome, "error": run.get("error"),
                             "reason": reason, "detail": detail, "attempts": run.get("attempts"),
                             "at": run.get("finished_at")})
    return uploads, rejected


def _stage_times(t: _Tally, last_n: int) -> dict[str, dict[str, Any]]:
    """p50/p95 wall seconds of each stage's ``last_n`` most recent done runs and their mean CPU s."""
    times = {}
    for stage, pairs in t.durations.items():
        recent = [d for _, d in sorted(pairs)[-last_n:]]
        times[stage] = {"n": len(recent), "p50_s": _percentile(recent, 0.5), "p95_s": _percentile(recent, 0.95),
                        "mean_cpu_s": round(statistics.fmean(t.cpu[stage]), 4) if t.cpu[stage] else None}
    return times


def _nights_per_minute(finished_at: list[float]) -> float | None:
    """Nights scored per minute between the first and the last sunalgo finish (None below two)."""
    if len(finished_at) >= 2:
        span = max(finished_at) - min(finished_at)
        return round(60 * (len(finished_at) - 1) / span, 2) if span > 0 else None
    return None


def summarize(state: StateStore, *, last_n: int = 200, now: float | None = None) -> dict[str, Any]:
    """Counts per stage and state, the failed, waiting and slowest nights, p50/p95 stage times.

    The ``ingest`` row counts uploads (ingest works per raw object, and a rejected upload never
    becomes a night), by the outcome of each upload's newest generation. Reruns with another
    model (stage ``sunalgo:VERSION``) get their own row. Times are seconds; ``*_at`` fields are
    Unix times (UTC).
    """
    now = time.time() if now is None else now
    t = _Tally(now)
    for night_id, doc in state.list("nights"):
        _tally_night(t, night_id, doc)
    _tally_unpaired_labels(t, state)
    uploads, rejected = _tally_uploads(t, state)
    t.counts["ingest"] = uploads
    times = _stage_times(t, last_n)
    t.waiting.sort(key=lambda w: w["since"] or now)
    return {
        "nights": t.n_nights,
        "pairing": dict(t.pairing),
        "stages": {s: dict(c) for s, c in t.counts.items()},
        "uploads": dict(uploads),
        "rejected_uploads": rejected[:50],
        "failures": t.failures[:50],
        "waiting_for_partner": t.waiting[:50],
        "slowest": [{"night_id": n, "total_s": round(x, 3)} for x, n in sorted(t.night_totals, reverse=True)[:5]],
        "stage_times": times,
        "nights_per_minute": _nights_per_minute(t.finished_at),
        "generated_at": now,
    }


def night_detail(state: StateStore, night_id: str) -> dict[str, Any] | None:
    """One night: recordings (no personal data is stored), pairing, each stage and its history."""
    doc = state.get("nights", night_id)
    if doc is None:
        return None
    recorded = doc.get("stages") or {}
    stages: dict[str, Any] = {}
    # Pipeline order, then reruns with other models: the order a night goes through them.
    for stage in [*STAGES, *sorted(set(recorded) - set(STAGES))]:
        if stage in recorded:
            stages[stage] = recorded[stage]
        elif stage_state(doc, stage) == "waiting":
            stages[stage] = {"state": "waiting", "waiting_for": NEEDS[stage]}
        elif stage_state(doc, stage) == "blocked":
            stages[stage] = {"state": "blocked", "blocked_by": blocker(doc, stage)}
    return {
        "night_id": night_id,
        "created_at": doc.get("created_at"),
        "pairing": doc.get("pairing"),
        "recordings": doc.get("recordings"),
        "stages": stages,
        "history": doc.get("history", []),
    }


def night_settled(doc: dict[str, Any], *, with_psg: bool = True) -> bool:
    """True when the night's results are up to date: sunalgo is done on the latest finished
    preparations (and psg_prep is done where a PSG exists)."""
    stages = doc.get("stages", {})
    sunalgo, sunrise, psg = stages.get("sunalgo", {}), stages.get("sunrise_prep", {}), stages.get("psg_prep", {})
    if sunalgo.get("state") != "done" or sunrise.get("state") != "done":
        return False
    outputs = sunalgo.get("outputs", {})
    if outputs.get("sunrise_input", sunrise.get("input_key")) != sunrise.get("input_key"):
        return False
    if with_psg and "psg" in doc.get("recordings", {}):
        return psg.get("state") == "done" and outputs.get("psg_input", psg.get("input_key")) == psg.get("input_key")
    return True


def all_done(state: StateStore, *, with_psg: bool = True, min_nights: int = 1) -> bool:
    """True when every night is settled (see :func:`night_settled`) and there are at least
    ``min_nights``: a caller that has just uploaded nights waits for their documents too, not
    only for the nights that already exist to settle."""
    n = 0
    for _, doc in state.list("nights"):
        n += 1
        if not night_settled(doc, with_psg=with_psg):
            return False
    return n >= max(min_nights, 1)
