"""How ``sunrise status`` prints: tables and sentences, never raw dicts or Unix times.

Imports stay light (rich, the state and storage ports): ``sunrise status`` must answer in well
under a second of CPU, so nothing here pulls in FastAPI, numpy or the science stack.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from sunrise_devstack import status as status_lib

if TYPE_CHECKING:
    from sunrise_common.settings import Settings
    from sunrise_common.storage import Storage

#: Colour of each stage state in the tables.
STATE_STYLE = {"done": "green", "failed": "red", "retrying": "yellow", "running": "cyan", "waiting": "magenta",
               "blocked": "red",
               "pending": "dim"}

#: What a night lacking a half is waiting for, in words.
PARTNER = {"sunrise": "its Sunrise recording", "psg": "its PSG recording"}


def fmt_age(seconds: float | None) -> str:
    """A duration for people: ``42 s``, ``5 min``, ``3 h 12 min``, ``2 d 4 h``."""
    if seconds is None:
        return "-"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def fmt_time(ts: float | None) -> str:
    """A Unix time (s) as ``YYYY-MM-DD HH:MM:SS UTC`` (``-`` when unknown)."""
    if not ts:
        return "-"
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_seconds(value: float | None) -> str:
    """A stage time in seconds, ``-`` when there is none (a run that never finished)."""
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 100 else fmt_age(value)


def fmt_counts(counts: dict[str, int]) -> str:
    """``{"done": 10, "failed": 1}`` -> ``10 done, 1 failed`` (in the order of the states)."""
    order = [s for s in status_lib.STATES if counts.get(s)] + sorted(set(counts) - set(status_lib.STATES))
    return ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order) or "none"


def raw_names(settings: Settings, storage: Storage, upload_ids: Iterable[str]) -> dict[str, str]:
    """Raw object names of some upload ids, looked up now in the raw bucket.

    The state store keeps only a keyed hash of each raw name (the name holds site and subject
    codes), so the name is recomputed from the bucket listing; an object that is gone has no
    name any more.
    """
    wanted = set(upload_ids)
    if not wanted:
        return {}
    from sunrise_common import identity

    key, bucket = settings.key_bytes(), settings.bucket("raw")
    found: dict[str, str] = {}
    for info in storage.list(bucket):
        uid = identity.upload_id(key, bucket, info.name)
        if uid in wanted:
            found[uid] = info.name
            if len(found) == len(wanted):
                break
    return found


def print_summary(console: Console, summary: dict[str, Any], names: dict[str, str] | None = None) -> None:
    """The overview: one row per stage (and per rerun model), then failures and waiting nights."""
    names = names or {}
    pairing = summary.get("pairing", {})
    console.print(f"[bold]{summary['nights']} night(s)[/] ({fmt_counts(pairing) if pairing else 'none yet'}); "
                  f"uploads: {fmt_counts(summary['uploads'])}", soft_wrap=True)
    # Only the states that occur get a column, so the table fits 80 columns without cutting a
    # header; stage names (sunalgo:mine-1 included) are what people grep for: never cut them.
    shown = [s for s in status_lib.STATES if any(c.get(s) for c in summary["stages"].values())] or ["done"]
    table = Table(show_edge=False)
    table.add_column("stage", no_wrap=True, min_width=12)
    for s in shown:
        table.add_column(s, justify="right", no_wrap=True, min_width=len(s),
                         style=STATE_STYLE[s] if s != "pending" else None)
    table.add_column("p50 s", justify="right", no_wrap=True)
    table.add_column("p95 s", justify="right", no_wrap=True)
    for stage, counts in summary["stages"].items():
        t = summary["stage_times"].get(stage, {})
        label = stage + (" (files)" if stage == "ingest" else "")
        table.add_row(label, *[str(counts.get(s, 0)) for s in shown],
                      *[f"{t[q]:.2f}" if t.get(q) is not None else "-" for q in ("p50_s", "p95_s")])
    if Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width:
        console.print(table)
    else:  # too narrow for the table: one line per stage rather than cut names or counts
        for stage, counts in summary["stages"].items():
            t = summary["stage_times"].get(stage, {})
            console.print(f"{stage}: {fmt_counts(counts)}; p50 {fmt_seconds(t.get('p50_s'))}, "
                          f"p95 {fmt_seconds(t.get('p95_s'))}", soft_wrap=True)
    if summary.get("nights_per_minute"):
        console.print(f"throughput: {summary['nights_per_minute']} nights/min")
    for f in summary["failures"]:
        console.print(f"[red]night {f['night_id']}: {f['stage']} {f['state']}[/] after {f.get('attempts') or 1} "
                      f"attempt(s), {fmt_time(f.get('at'))}: {f['error']}", soft_wrap=True)
    for r in summary["rejected_uploads"]:
        name = names.get(r["upload_id"])
        what = f"raw/{name}" if name else f"upload {r['upload_id']} (no longer in the raw bucket)"
        console.print(f"[yellow]{what}[/] generation {r.get('generation') or '?'}: {r['state']}, "
                      f"{fmt_time(r.get('at'))}: {r['error']}", soft_wrap=True)
    now = summary.get("generated_at") or time.time()
    for w in summary.get("waiting_for_partner", []):
        has = " + ".join(w["has"]) or "nothing"
        what = f"night {w['night_id']}" if w.get("night_id") else f"upload {w.get('upload_id')} (no night yet)"
        console.print(f"[magenta]{what}[/]: has {has}, waiting for partner "
                      f"({PARTNER.get(w['waiting_for'], w['waiting_for'])}) for "
                      f"{fmt_age(now - w['since']) if w.get('since') else 'an unknown time'}; no scores until it arrives",
                      soft_wrap=True)
    if summary["slowest"] and any(s["total_s"] for s in summary["slowest"]):
        console.print("slowest nights (all stages): " + ", ".join(
            f"{s['night_id']} {fmt_seconds(s['total_s'])}" for s in summary["slowest"] if s["total_s"]), soft_wrap=True)


def print_night(console: Console, detail: dict[str, Any], *, now: float | None = None) -> None:
    """One night: its recordings, a row per stage, then its history (newest last)."""
    now = time.time() if now is None else now
    pairing = detail.get("pairing") or {}
    console.print(f"[bold]night {detail['night_id']}[/]: {pairing.get('state', 'unknown').replace('_', ' ')}"
                  + (f", {pairing['overlap_s'] / 3600:.1f} h overlap" if pairing.get("overlap_s") else "")
                  + (f"; first file {fmt_age(now - detail['created_at'])} ago" if detail.get("created_at") else ""),
                  soft_wrap=True)
    for kind, rec in sorted((detail.get("recordings") or {}).items()):
        recs = rec.items() if kind == "labels" else [(kind, rec)]
        for label, r in recs:
            length = f", {r['duration_s'] / 3600:.1f} h" if r.get("duration_s") else ""
            console.print(f"  {label}: {r.get('format', '?')}{length}, {r.get('size', 0) / 1e6:.1f} MB, "
                          f"anonymised/{r.get('object')}", soft_wrap=True)
            if r.get("start_assumed"):
                console.print(f"    assumed: {r['start_assumed']}", soft_wrap=True)
    table = Table(show_edge=False)
    table.add_column("stage", no_wrap=True, min_width=12)
    table.add_column("state", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("finished", no_wrap=True)
    notes = []
    for stage, st in (detail.get("stages") or {}).items():
        state = st.get("state", "pending")
        outputs = st.get("outputs") or {}
        if state == "waiting":
            notes.append(f"{stage}: waiting for partner ({PARTNER.get(st.get('waiting_for'), st.get('waiting_for'))})")
        elif state == "blocked":
            by = st.get("blocked_by") or {}
            notes.append(f"{stage}: [red]blocked: {by.get('stage')} failed permanently ({by.get('error')}); "
                         f"fix the upload or `sunrise rerun` {by.get('stage')}[/]")
        elif st.get("error"):
            notes.append(f"{stage}: [red]{st['error']}[/]")
        elif outputs.get("prefix") or outputs.get("object"):
            notes.append(f"{stage} wrote {outputs.get('prefix') or outputs.get('object')}")
        if outputs.get("label_misaligned"):
            mis = outputs["label_misaligned"]
            notes.append(f"{stage}: [red]label_misaligned[/]: {mis.get('scored_in_recording')} of "
                         f"{mis.get('scored_epochs')} scored epochs in the recording (labels start "
                         f"{mis.get('offset_s'):+.0f} s from it): no training rows")
        for warning in outputs.get("label_warnings") or []:
            if not str(warning).startswith("label_misaligned"):
                notes.append(f"{stage}: [yellow]warning[/]: {warning}")
        style = STATE_STYLE.get(state)
        table.add_row(stage, f"[{style}]{state}[/]" if style else state, str(st.get("attempts") if st.get("attempts") is not None else "-"),
                      fmt_seconds(st.get("duration_s")), fmt_time(st.get("finished_at")))
    console.print(table)
    for note in notes:
        console.print("  " + note, soft_wrap=True)
    for h in detail.get("history", []):
        console.print(f"  {fmt_time(h.get('at'))}  {h.get('stage')} {h.get('state')}"
                      + (f" in {fmt_seconds(h['duration_s'])}" if h.get("duration_s") is not None else "")
                      + (f": {h['error']}" if h.get("error") else ""), soft_wrap=True)


def print_upload(console: Console, name: str, doc: dict[str, Any] | None, current_generation: int | None) -> None:
    """What became of a raw object, newest generation first."""
    if doc is None:
        where = "is in the raw bucket" if current_generation is not None else "is not in the raw bucket either"
        console.print(f"raw/{name}: no record of it (never delivered to ingest); the object {where}", soft_wrap=True)
        return
    runs = doc.get("runs", {}).get("ingest", {})
    newest, _ = status_lib.latest_generation_run(doc)
    for key in sorted(runs, key=lambda k: int(k) if k.isdigit() else -1, reverse=True):
        run = runs[key]
        tags = [t for t, on in (("newest", key == str(newest)), ("in the bucket now", key == str(current_generation))) if on]
        head = f"raw/{name} generation {key}" + (f" ({', '.join(tags)})" if tags else "")
        outcome = run.get("state", "pending")
        if outcome == "done" and (run.get("outputs") or {}).get("superseded"):
            text = "superseded: a newer generation of this file is the night's recording (nothing recorded or published)"
        elif outcome == "done":
            night = (run.get("outputs") or {}).get("night_id")
            text = f"ingested {fmt_time(run.get('finished_at'))} in {fmt_seconds(run.get('duration_s'))}" + (
                f" -> night {night} (`sunrise status {night}`)" if night else
                " -> no date in the file: waiting for partner (a PSG of its subject overlapping it by time of day)"
                if (run.get("outputs") or {}).get("waiting_for") else "")
        else:
            text = (f"{outcome} after {run.get('attempts') or 1} attempt(s), {fmt_time(run.get('finished_at'))}"
                    + (f": {run['error']}" if run.get("error") else ""))
        console.print(f"{head}: [{STATE_STYLE.get(outcome, '')}]{text}[/]", soft_wrap=True)
