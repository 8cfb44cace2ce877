"""What ``sunrise status`` shows: counts per stage and state, failures, stage times, uploads."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict
from typing import Any

from sunrise_common.names import STAGES
from sunrise_common.state import StateStore



def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[k], 4)


def summarize(state: StateStore, *, last_n: int = 200) -> dict[str, Any]:
    """Counts per stage and state, the failed and slowest nights, p50/p95 stage times."""
    counts: dict[str, Counter] = {s: Counter() for s in STAGES}
    failures: list[dict[str, Any]] = []
    durations: dict[str, list[tuple[float, float]]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)
    night_totals: list[tuple[float, str]] = []
    finished_at: list[float] = []
    n_nights = 0
    pairing = Counter()
    for night_id, doc in state.list("nights"):
        n_nights += 1
        pairing[doc.get("pairing", {}).get("state", "unknown")] += 1
        total = 0.0
        for stage in STAGES:
            st = doc.get("stages", {}).get(stage)
            counts[stage][st["state"] if st else "pending"] += 1
            if st and st.get("state") in ("failed", "retrying"):
                failures.append({"night_id": night_id, "stage": stage, "state": st["state"], "error": st.get("error"),
                                 "attempts": st.get("attempts")})
            for run in doc.get("runs", {}).get(stage, {}).values():
                if run.get("state") == "done" and run.get("duration_s") is not None:
                    durations[stage].append((run.get("finished_at", 0), run["duration_s"]))
                    total += run["duration_s"]
                    if "cpu_s" in run.get("metrics", {}):
                        cpu[stage].append(run["metrics"]["cpu_s"])
            if stage == "sunalgo" and st and st.get("state") == "done" and st.get("finished_at"):
                finished_at.append(st["finished_at"])
        night_totals.append((total, night_id))
    uploads = Counter()
    rejected: list[dict[str, Any]] = []
    for upload, doc in state.list("uploads"):
        st = doc.get("stages", {}).get("ingest", {})
        outcome = st.get("state", "pending")
        uploads[outcome] += 1
        if outcome in ("failed", "retrying"):
            rejected.append({"upload_id": upload, "state": outcome, "error": st.get("error")})
    times = {}
    for stage, pairs in durations.items():
        recent = [d for _, d in sorted(pairs)[-last_n:]]
        times[stage] = {"n": len(recent), "p50_s": _percentile(recent, 0.5), "p95_s": _percentile(recent, 0.95),
                        "mean_cpu_s": round(statistics.fmean(cpu[stage]), 4) if cpu[stage] else None}
    throughput = None
    if len(finished_at) >= 2:
        span = max(finished_at) - min(finished_at)
        throughput = round(60 * (len(finished_at) - 1) / span, 2) if span > 0 else None
    return {
        "nights": n_nights,
        "pairing": dict(pairing),
        "stages": {s: dict(c) for s, c in counts.items()},
        "uploads": dict(uploads),
        "rejected_uploads": rejected[:50],
        "failures": failures[:50],
        "slowest": [{"night_id": n, "total_s": round(t, 3)} for t, n in sorted(night_totals, reverse=True)[:5]],
        "stage_times": times,
        "nights_per_minute": throughput,
        "generated_at": time.time(),
    }


def night_detail(state: StateStore, night_id: str) -> dict[str, Any] | None:
    """One night: recordings (no personal data is stored), pairing, each stage and its history."""
    doc = state.get("nights", night_id)
    if doc is None:
        return None
    return {
        "night_id": night_id,
        "pairing": doc.get("pairing"),
        "recordings": doc.get("recordings"),
        "stages": doc.get("stages"),
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


def all_done(state: StateStore, *, with_psg: bool = True) -> bool:
    """True when every night is settled (see :func:`night_settled`) and there is at least one."""
    any_night = False
    for _, doc in state.list("nights"):
        any_night = True
        if not night_settled(doc, with_psg=with_psg):
            return False
    return any_night
