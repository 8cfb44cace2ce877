"""``make reliability``: every scenario at full size -> RELIABILITY.md.

Run with ``python -m reliability.run [--work DIR] [--only NAME ...] [--merge ROWS] [--out RELIABILITY.md]``.
``NAME@emulators`` is a fault scenario on the emulators backend (see ``scenarios.EMULATOR_VARIANTS``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reliability import scenarios

# Full sizes: (positional size, keyword overrides)
FULL: dict[str, tuple[int, dict[str, Any]]] = {
    "duplicates_and_shuffle": (10, {}),
    "duplicates_and_shuffle@emulators": (10, {}),
    "sigkill_mid_stage": (3, {"hours": 8.0}),
    "sigkill_mid_stage@emulators": (3, {"hours": 8.0}),
    "transient_faults": (20, {}),
    "transient_faults@emulators": (10, {}),
    "burst": (300, {}),
    "new_generation": (5, {}),
    "abuse_events": (500, {}),
    "abuse_files": (3, {}),
    "loopback_only": (1, {}),
    "no_personal_data": (3, {}),
}

# What the scenarios found in the product code, and the fix (kept with the figures they explain).
FINDINGS = [
    "**A raw object with a non-ASCII name stalled forever in the local router** (found by abuse_files): "
    "`storage_event` put the object name unencoded into the `ce-subject` header; httpx cannot send it, the "
    "router's delivery thread raised outside its `httpx.HTTPError` handler and left the delivery `in_flight` "
    "(never retried, never dead-lettered: silently lost until a router restart, which repeated the crash). "
    "Fixed in `sunrise_common/events.py` (`ce-subject` percent-encoded as the CloudEvents HTTP binding "
    "requires) and `sunrise_common/router/main.py` (any failure to send counts as a failed attempt: retried, "
    "then dead-lettered).",
    "**Forged night ids passed validation** (found by abuse_events): `^s[a-z2-7]{12}-n\\d{1,7}$` accepts "
    "Unicode digits (`-n᧒૪`) and a trailing newline, so such events were answered 503 `night_not_found` "
    "(retried for 24 h) instead of 200 `bad_payload`. Fixed in `sunrise_common/nights.py` "
    "(`\\A…[0-9]{1,7}\\Z`).",
]

COLUMNS = ("scenario", "backend", "events", "files", "lost", "duplicated", "recover_s", "notes")


def machine() -> str:
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), "
            f"{mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}")


def row_key(row: dict[str, Any]) -> str:
    """The SCENARIOS / FULL name a row was produced by."""
    return row["scenario"] if row.get("backend", "embedded") == "embedded" else f"{row['scenario']}@{row['backend']}"


def merge_rows(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier rows with the new ones replacing theirs, in the order of ``scenarios.SCENARIOS``."""
    by_key = {row_key(r): r for r in earlier}
    by_key.update({row_key(r): r for r in new})
    order = {name: i for i, name in enumerate(scenarios.SCENARIOS)}
    return sorted(by_key.values(), key=lambda r: order.get(row_key(r), len(order)))


def render(rows: list[dict[str, Any]], *, started: float, elapsed: float, earlier: float | None = None) -> str:
    date = datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if earlier is not None and abs(earlier - started) > 60:
        date += (f" (rows of scenarios not rerun then: "
                 f"{datetime.fromtimestamp(earlier, timezone.utc).strftime('%Y-%m-%d %H:%M UTC')})")
    lines = [
        "# Reliability and security figures",
        "",
        "Produced by `make reliability` (`uv run python -m reliability.run`): every scenario of",
        "`reliability/scenarios.py` at full size on the embedded stack (the four services as real processes,",
        "the local router delivering Eventarc-format CloudEvents with retries and dead letters, SQLite state,",
        "local-folder buckets), on free loopback ports; the fault scenarios (duplicates and shuffle, SIGKILL,",
        "transient faults) also on the emulators stack (the same processes against fake-gcs-server and the",
        "official Pub/Sub and Firestore emulators, uploads announced by fake-gcs-server's notifications through",
        "Pub/Sub). `tests/reliability/` runs the same functions at CI size.",
        "",
        f"- Date: {date}; total wall time {elapsed / 60:.1f} min (sum over the scenarios)",
        f"- Machine: {machine()}",
        "",
        "Columns: **events** CloudEvent deliveries made (router deliveries incl. duplicates, plus direct POSTs;",
        "retries of one delivery are not counted again); **files** raw objects given to the pipeline;",
        "**lost** inputs that did not end done or rejected with the expected reason; **duplicated** stage runs",
        "completed more than once for the same input (service summary logs and document history);",
        "**time to recover** seconds from the end of the fault (or the start of the burst) to everything done.",
        "",
        "| scenario | backend | events | files | lost | duplicated | time to recover (s) | notes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        rec = "–" if row.get("recover_s") is None else f"{row['recover_s']:.2f}"
        notes = str(row.get("notes", "")).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['scenario']} | {row['backend']} | {row['events']} | {row['files']} | {row['lost']} | "
                     f"{row['duplicated']} | {rec} | {notes} |")
    lines += ["", "## Found and fixed", ""] + [f"- {f}" for f in FINDINGS]
    lines += [
        "",
        "## What each scenario does",
        "",
    ]
    for name, fn in scenarios.SCENARIOS.items():
        doc = " ".join((fn.__doc__ or "").split())
        size, extra = FULL[name]
        lines.append(f"- **{name}** (size {size}{''.join(f', {k}={v}' for k, v in extra.items())}): {doc}")
    lines += [
        "",
        "## Rerun",
        "",
        "```sh",
        "make reliability                                   # all scenarios at full size -> RELIABILITY.md",
        "uv run python -m reliability.run --only burst      # one scenario (the table then holds that row only)",
        "uv run python -m reliability.run --only transient_faults@emulators --merge OLD/reliability-rows.json",
        "                                                   # ... or replaces its row among an earlier run's",
        "uv run pytest tests/reliability -m slow            # the CI-size versions, with their assertions",
        "```",
        "",
        "Raw rows with their details: `reliability-rows.json` in the work folder printed at the end of the run.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the reliability scenarios and write RELIABILITY.md")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a new temporary folder)")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY.md"), help="where to write the report")
    parser.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    parser.add_argument("--render", type=Path, default=None,
                        help="only rewrite the report from a reliability-rows.json of an earlier run")
    parser.add_argument("--merge", type=Path, default=None,
                        help="a reliability-rows.json of an earlier run: the rows written are its rows with "
                             "the scenarios run now replaced")
    args = parser.parse_args(argv)
    if args.render is not None:
        rows = json.loads(args.render.read_text())
        meta = json.loads((args.render.parent / "reliability-meta.json").read_text())
        args.out.write_text(render(rows, started=meta["started"], elapsed=meta["elapsed"],
                                   earlier=meta.get("earlier")))
        return 0
    names = args.only or list(scenarios.SCENARIOS)
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(scenarios.SCENARIOS)}")
    earlier_rows: list[dict[str, Any]] = []
    earlier_started = None
    if args.merge is not None:
        earlier_rows = json.loads(args.merge.read_text())
        meta_path = args.merge.parent / "reliability-meta.json"
        if meta_path.exists():  # the oldest rows' date (a merge of a merge keeps it)
            meta = json.loads(meta_path.read_text())
            earlier_started = min(t for t in (meta.get("earlier"), meta["started"]) if t is not None)
    work = args.work or Path(tempfile.mkdtemp(prefix="sunrise-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.time()
    failed = False
    for name in names:
        size, extra = FULL[name]
        t0 = time.monotonic()
        print(f"[{name}] size {size} ...", flush=True)
        try:
            row = scenarios.SCENARIOS[name](work / name if name != "no_personal_data" else work, size, **extra)
        except Exception as exc:  # a scenario that cannot finish is a result too: report it
            failed = True
            scenario, _, backend = name.partition("@")
            row = {"scenario": scenario, "backend": backend or scenarios.BACKEND, "events": 0, "files": 0, "lost": "?",
                   "duplicated": "?", "recover_s": None, "notes": f"FAILED: {type(exc).__name__}: {exc}"[:400],
                   "details": {}}
        row["details"]["wall_s"] = round(time.monotonic() - t0, 1)
        print(f"[{name}] {row['notes']} ({row['details']['wall_s']} s)", flush=True)
        rows.append(row)
    elapsed = time.time() - started
    new_rows = rows
    if args.merge is not None:
        rows = merge_rows(earlier_rows, rows)
        elapsed = sum(float(r.get("details", {}).get("wall_s") or 0) for r in rows)
    (work / "reliability-rows.json").write_text(json.dumps(rows, indent=1, default=str))
    (work / "reliability-meta.json").write_text(json.dumps({"started": started, "elapsed": elapsed,
                                                            "earlier": earlier_started}))
    args.out.write_text(render(rows, started=started, elapsed=elapsed, earlier=earlier_started))
    print(f"wrote {args.out}; rows in {work / 'reliability-rows.json'}")
    if not args.keep and args.work is None:
        for name in names:
            shutil.rmtree(work / name, ignore_errors=True)
    return 1 if failed or any(r["lost"] not in (0,) or r["duplicated"] not in (0,) for r in new_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
