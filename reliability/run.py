"""``make reliability``: every scenario at full size -> RELIABILITY.md.

Run with ``python -m reliability.run [--work DIR] [--only NAME ...] [--out RELIABILITY.md]``.
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
    "sigkill_mid_stage": (3, {"hours": 8.0}),
    "transient_faults": (20, {}),
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


def render(rows: list[dict[str, Any]], *, started: float, elapsed: float) -> str:
    date = datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability and security figures",
        "",
        "Produced by `make reliability` (`uv run python -m reliability.run`): every scenario of",
        "`reliability/scenarios.py` at full size on the embedded stack (the four services as real processes,",
        "the local router delivering Eventarc-format CloudEvents with retries and dead letters, SQLite state,",
        "local-folder buckets), on free loopback ports. `tests/reliability/` runs the same functions at CI size.",
        "",
        f"- Date: {date}; total wall time {elapsed / 60:.1f} min",
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
    args = parser.parse_args(argv)
    if args.render is not None:
        rows = json.loads(args.render.read_text())
        meta = json.loads((args.render.parent / "reliability-meta.json").read_text())
        args.out.write_text(render(rows, started=meta["started"], elapsed=meta["elapsed"]))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="sunrise-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(scenarios.SCENARIOS)
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
            row = {"scenario": name, "backend": scenarios.BACKEND, "events": 0, "files": 0, "lost": "?",
                   "duplicated": "?", "recover_s": None, "notes": f"FAILED: {type(exc).__name__}: {exc}"[:400],
                   "details": {}}
        row["details"]["wall_s"] = round(time.monotonic() - t0, 1)
        print(f"[{name}] {row['notes']} ({row['details']['wall_s']} s)", flush=True)
        rows.append(row)
    elapsed = time.time() - started
    (work / "reliability-rows.json").write_text(json.dumps(rows, indent=1, default=str))
    (work / "reliability-meta.json").write_text(json.dumps({"started": started, "elapsed": elapsed}))
    args.out.write_text(render(rows, started=started, elapsed=elapsed))
    print(f"wrote {args.out}; rows in {work / 'reliability-rows.json'}")
    if not args.keep and args.work is None:
        for name in names:
            shutil.rmtree(work / name, ignore_errors=True)
    return 1 if failed or any(r["lost"] not in (0,) or r["duplicated"] not in (0,) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
