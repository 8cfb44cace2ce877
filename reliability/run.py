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
from reliability.load import cpu_hogs, running

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

# The fault scenarios run a second time with CPU hogs beside them (``NAME+load``): the delivery
# guarantees must not depend on an idle machine (issue 13).
LOADED = ("duplicates_and_shuffle", "duplicates_and_shuffle@emulators", "sigkill_mid_stage",
          "sigkill_mid_stage@emulators", "transient_faults", "transient_faults@emulators")
LOAD_SUFFIX = "+load"
HOGS = 2

# What the scenarios found in the product code, and the fix (kept with the figures they explain).
FINDINGS = [
    "**A raw object with a non-ASCII name stalled forever in the local router** (found by abuse_files): "
    "`storage_event` put the object name unencoded into the `ce-subject` header; httpx cannot send it, the "
    "router's delivery thread raised outside its `httpx.HTTPError` handler and left the delivery `in_flight` "
    "(never retried, never dead-lettered: silently lost until a router restart, which repeated the crash). "
    "Fixed in `sunrise_common/events.py` (`ce-subject` percent-encoded as the CloudEvents HTTP binding "
    "requires) and `sunrise_devstack/router/main.py` (any failure to send counts as a failed attempt: retried, "
    "then dead-lettered).",
    "**Forged night ids passed validation** (found by abuse_events): `^s[a-z2-7]{12}-n\\d{1,7}$` accepts "
    "Unicode digits (`-n᧒૪`) and a trailing newline, so such events were answered 503 `night_not_found` "
    "(retried for 24 h) instead of 200 `bad_payload`. Fixed in `sunrise_common/nights.py` "
    "(`\\A…[0-9]{1,7}\\Z`).",
    "**A stage run could complete twice on a loaded machine** (issue 13: `psg_prep … x2` in sigkill_mid_stage under "
    "load): a run slower than its lease was taken over while still working, and both attempts logged their completion. "
    "Fixed in `sunrise_common/state/runs.py` and `service.py`: a heartbeat renews the lease while the work runs, and "
    "`complete`/`fail`/`renew` are fenced on the claim's attempt, so an attempt that was taken over answers 429 "
    "`lease_lost` instead of completing (unit tests with a controllable clock and a 1.5 s lease, SQLite and the "
    "Firestore emulator).",
    "**The dead-letter scenario depended on luck** (issue 13: `dead_letters == 0` on the emulators): it waited for an idle "
    "queue, which the emulators show before fake-gcs-server's notifications arrive, and its faults were seeded with the "
    "pid. Now every publish fails in phase B (rate 1 on the publisher port), the wait is for one dead letter per raw "
    "input, and faults are seeded by (seed, port) only.",
    "**Raw object names stayed in `data/router.db` forever** (issue 13): `seen` and every delivered row kept them. Now "
    "`seen` holds a keyed digest, delivered rows and routed messages are redacted at once, dead letters are deleted "
    "after 7 days, and the WAL is truncated (`sunrise_devstack/router/queue.py`).",
    "**Hostile requests got 5xx or held a worker** (issue 13: 67 x 5xx, 3 hangs in 1,226 requests): deep JSON, "
    "non-string attributes and huge integers now answer 400 (or a recorded 2xx for bad Pub/Sub data); the body limit "
    "is enforced while reading; slow clients are dropped after 5 s (`sunrise_devstack/server.py`); no /docs, "
    "/openapi.json, /redoc; an unknown night is a recorded 2xx; model versions are checked against a pattern and the "
    "model store's list.",
    "**Names typed into the per-signal transducer or prefiltering fields reached the anonymised bucket** (found by "
    "no_personal_data's third-party EDF+). Now both fields are kept only when every token is sensor vocabulary or "
    "filter grammar, else blanked and reported (`sunrise_common/edf/anonymise.py`, docs/privacy.md); "
    "`tests/reliability/test_personal_edf.py` checks it.",
    "**An older upload finishing last replaced a newer one** (issue 22, defect 1): ingest overwrote `nights/{id}/psg.edf` unconditionally and the night kept the larger *anonymised* generation, so whichever ingest finished last won. Now the night records each recording's `raw_generation`, the transaction that adds a recording keeps the newest raw generation of that upload (`ingest.handler._verdict`), and anonymised objects are named by a keyed token of the raw generation (`psg-g<token>.edf`, create-if-absent), so no ingest can overwrite another's output; a generation found superseded before writing writes nothing, one superseded at the transaction deletes its own object, and psg_prep/sunrise_prep drop an event whose generation is no longer the night's, checked again inside the claim's transaction (a run of a replaced input never starts, so it can never become the stage's latest); a newer generation with the same anonymised bytes (`backfill --via rewrite`) keeps the existing object, so nothing downstream runs again. `tests/ingest/test_handler_generations.py` holds one generation's ingest at each named step (`opened`, `parsed`, `written`, `recorded`; a `threading.Event` behind `ingest.handler.step_hook`, no timing) while the other is uploaded and ingested to the end, both ways round: the night names the newest raw generation and the object holds its bytes (SHA-256 checked) in 16 of 16 cases (8 embedded, 8 on fake-gcs-server + the Firestore emulator); with the verdict reduced to the old 'last writer wins' 4 of the 8 embedded interleavings (and the duplicate test) fail. The same file also kills an ingest at each step and retries it (one object, the night names it) and holds psg_prep between reading the night and claiming while a newer generation is recorded (`superseded`; `done` without the claim check): 34 tests, all passing on both backends.",
    '**A second PSG file of one night silently replaced the first** (issue 22, defect 7): both uploads ended `done`. Now a recording of a kind the night already holds from *another* upload is refused: that upload ends `failed` with `duplicate_recording`, naming the other by its keyed upload id (no raw name is stored; `sunrise status --upload NAME` prints the reason), the night keeps the first, and nothing of the second is written to the anonymised bucket (test of the same file, embedded and emulators; a newer generation of the *same* object is defect 1: newest wins).',
    '**A label\'s first line leaked through `redact()`** (issue 22, defect 6): the pattern `\'[^\']*\'` ended at the escaped quote of a repr holding both quote characters, so `Patient "Zofia" O\'Neill-Kowalczyk, ward 4` left `Neill-Kowalczyk, ward 4` in state, logs and `status --json`. Every error detail that leaves ingest now goes through `sunrise_common.errors.safe_detail`: quoted literals are removed as a repr writes them (escapes, both delimiters, `b\'\'` prefixes, a repr cut short takes the rest of the detail), a stray quote or backslash cuts the detail there, raw-name segments and dates are replaced, and anything outside printable ASCII goes; a reason keeps the parser\'s own words and numbers. `tests/ingest/test_handler.py::test_a_label_whose_first_line_names_a_patient_leaves_no_fragment_in_state_logs_or_status` finds none of `Zofia`, `Neill`, `Kowalczyk`, `ward 4`, `Patient` in the answer, the captured logs, `state.db` with its WAL, or `sunrise status --json` (it fails on the old `redact`); `tests/common/test_errors.py` covers the repr forms.',
    '**ingest kept two full copies of each upload in `/tmp`** (issue 26; `/tmp` is memory on Cloud Run): it now streams, reading the raw object in 8 MiB range reads pinned to its generation (`Storage.open_read`) and writing the anonymised object as it is produced (`Storage.write_stream`: a resumable upload fed 16 MiB at a time on Cloud Storage, a staging file beside the bucket locally, which the kernel copies into), with SHA-256 by hashlib on the stream (or `hashlib.file_digest` on the local file). `tests/ingest/test_handler_memory.py` ingests a sparse 24-signal 512 Hz EDF of 100 MiB and of 1 GiB (12.1 h) in a fresh process each: peak RSS above the pre-request resident set (`VmHWM` after `clear_refs`) +0.3 / +0.3 MiB embedded and +57.7 / +57.8 MiB on fake-gcs-server (the raw object uploaded by the parent process, so the child process holds only the ingest), `/tmp` 0 bytes at every step; bound asserted 96 MiB, flat within 16 MiB. (1 GiB: 5.7 s wall and 4.0 CPU-s embedded, 123 s wall and 5.1 CPU-s through fake-gcs-server.) psg_prep streams too: its PSG read by range reads, signals.npz written to the bucket in parts and composed, nothing in `/tmp`; `tests/psg_prep/test_handler_memory.py` holds 1-, 8- and 16-h nights to ≤ 128 MiB of growth, flat (docs/limits.md, "Memory per request").',
]

def all_names() -> list[str]:
    """Every scenario, then the loaded runs of the fault scenarios."""
    return list(scenarios.SCENARIOS) + [name + LOAD_SUFFIX for name in LOADED]


COLUMNS = ("scenario", "backend", "events", "files", "lost", "duplicated", "recover_s", "notes")


def machine() -> str:
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.node() or 'host'}: {os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}), "
            f"{mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}")


def row_key(row: dict[str, Any]) -> str:
    """The SCENARIOS / FULL name a row was produced by (``+load`` for a loaded run)."""
    name = row["scenario"] if row.get("backend", "embedded") == "embedded" else f"{row['scenario']}@{row['backend']}"
    return name + (LOAD_SUFFIX if row.get("load", "idle") != "idle" else "")


def merge_rows(earlier: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier rows with the new ones replacing theirs, in the order of ``scenarios.SCENARIOS``."""
    by_key = {row_key(r): r for r in earlier}
    by_key.update({row_key(r): r for r in new})
    order = {name: i for i, name in enumerate(all_names())}
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
        "Pub/Sub). The fault scenarios run twice: on the machine as it is (**no hogs**: other work may run) and",
        f"**loaded**, with {HOGS} CPU-hog processes (busy loops, started and stopped by the harness) beside",
        "them for the whole scenario; the load column gives the 5-minute load average at the end of each row. `tests/reliability/` runs the same functions at CI size",
        "(`uv run pytest tests/reliability -m slow --cpu-hogs 2` for the loaded run).",
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
        "| scenario | backend | load | events | files | lost | duplicated | time to recover (s) | notes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        rec = "–" if row.get("recover_s") is None else f"{row['recover_s']:.2f}"
        notes = str(row.get("notes", "")).replace("|", "\\|").replace("\n", " ")
        load = row.get("load", "idle")
        avg = row.get("details", {}).get("load_average_after")
        if avg:  # the machine is shared: "idle" means no hogs added, not an idle machine
            load = f"{'no hogs' if load == 'idle' else load} (load {avg[1]:.1f})"
        lines.append(f"| {row['scenario']} | {row['backend']} | {load} | {row['events']} | "
                     f"{row['files']} | {row['lost']} | {row['duplicated']} | {rec} | {notes} |")
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
        "make reliability                                   # all scenarios at full size, idle and loaded -> RELIABILITY.md",
        "uv run python -m reliability.run --only sigkill_mid_stage+load   # one fault scenario with 2 CPU hogs",
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
    parser.add_argument("--hogs", type=int, default=HOGS,
                        help=f"CPU-hog processes beside the loaded runs (NAME{LOAD_SUFFIX}; default {HOGS})")
    args = parser.parse_args(argv)
    if args.render is not None:
        rows = json.loads(args.render.read_text())
        meta = json.loads((args.render.parent / "reliability-meta.json").read_text())
        args.out.write_text(render(rows, started=meta["started"], elapsed=meta["elapsed"],
                                   earlier=meta.get("earlier")))
        return 0
    names = args.only or all_names()
    unknown = [n for n in names if n not in all_names()]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(all_names())}")
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
        base = name.removesuffix(LOAD_SUFFIX)
        hogs = args.hogs if name.endswith(LOAD_SUFFIX) else 0
        size, extra = FULL[base]
        t0 = time.monotonic()
        print(f"[{name}] size {size}{f', {hogs} CPU hogs' if hogs else ''} ...", flush=True)
        hogs_ran = True
        try:
            with cpu_hogs(hogs) as procs:
                row = scenarios.SCENARIOS[base](work / name if name != "no_personal_data" else work, size, **extra)
                hogs_ran = running(procs)
        except Exception as exc:  # a scenario that cannot finish is a result too: report it
            failed = True
            scenario, _, backend = base.partition("@")
            row = {"scenario": scenario, "backend": backend or scenarios.BACKEND, "events": 0, "files": 0, "lost": "?",
                   "duplicated": "?", "recover_s": None, "notes": f"FAILED: {type(exc).__name__}: {exc}"[:400],
                   "details": {}}
        row["load"] = f"{hogs} CPU hogs" if hogs else "idle"
        if not hogs_ran:
            failed = True
            row["notes"] = "A CPU HOG DIED DURING THE RUN (not loaded throughout); " + str(row["notes"])
        row["details"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
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
    leaked = any((r.get("details", {}).get("privacy") or {}).get("total") for r in new_rows)
    return 1 if failed or leaked or any(r["lost"] not in (0,) or r["duplicated"] not in (0,) for r in new_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
