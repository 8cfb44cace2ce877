"""``sunrise run`` (``make run``): the whole stack on one machine with example nights.

What it prints, in order: start-up progress (one line per service as it answers), generation and
upload progress of the example night pair, each stage of that night as it finishes and its
scores; then a few short extra example nights (so that ``sunrise train`` has enough nights with
PSG labels right away); then, while it keeps watching the raw bucket, every file that arrives and
what became of it. Paths are never hard-wrapped (``soft_wrap``), so they can be copied.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from sunrise_devstack import status as status_lib
from sunrise_common.service import Context
from sunrise_common.settings import Settings

from sunrise_cli import ops
from sunrise_cli.stack import SERVICE_APPS, Stack

EXAMPLE_SITE = "demo-site"
EXAMPLE_SUBJECT = "demo-001"


def upload_example(ctx: Context, folder: Path, *, hours: float, seed: int = 7, subject: str = EXAMPLE_SUBJECT) -> list[str]:
    """Synthesise a night pair (Sunrise + PSG + labels) and upload it to the raw bucket."""
    from sunrise_cli.synth import synth_night

    night = synth_night(folder, seed=seed, hours=hours)
    return ops.upload_night(ctx, night, site=EXAMPLE_SITE, subject=subject)


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _stage_line(night_id: str, stage: str, st: dict[str, Any]) -> str:
    return (f"  night {night_id} {stage:13} {st.get('state')}"
            + (f" in {st['duration_s']:.2f} s" if st.get("duration_s") is not None else "")
            + (f" [red]{st['error']}[/]" if st.get("error") else ""))


def wait_for_scores(ctx: Context, *, timeout: float, console: Console | None = None, stop: threading.Event | None = None) -> dict | None:
    """Poll the state until a night has sunalgo done with its PSG half; print stage changes."""
    deadline = time.monotonic() + timeout
    seen: dict[tuple[str, str], str] = {}
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        for night_id, doc in ctx.state.list("nights"):
            for stage, st in doc.get("stages", {}).items():
                if seen.get((night_id, stage)) != st.get("state") and console:
                    console.print(_stage_line(night_id, stage, st), soft_wrap=True, highlight=False)
                seen[(night_id, stage)] = st.get("state")
            sunalgo = doc.get("stages", {}).get("sunalgo", {})
            if sunalgo.get("state") == "done" and sunalgo.get("outputs", {}).get("with_psg"):
                return {"night_id": night_id, **sunalgo}
        time.sleep(0.5)
    return None


class Watcher:
    """Announces what happens after start-up: each raw file's outcome (by its newest generation)
    and each night's stage changes. Raw names are looked up in the raw bucket when announced,
    never stored (they hold site and subject codes)."""

    def __init__(self, ctx: Context, console: Console) -> None:
        self.ctx, self.console = ctx, console
        self.uploads: dict[str, tuple[int | None, str]] = {}
        self.stages: dict[tuple[str, str], str] = {}

    def mark_seen(self) -> None:
        """Take the current state as already announced."""
        self.poll(announce=False)

    def poll(self, *, announce: bool = True) -> None:
        from sunrise_cli import views

        fresh: list[tuple[str, int | None, dict]] = []
        for upload_id, doc in self.ctx.state.list("uploads"):
            generation, run = status_lib.latest_generation_run(doc)
            state = run.get("state", "pending")
            if state in ("done", "failed") and self.uploads.get(upload_id) != (generation, state):
                fresh.append((upload_id, generation, run))
            self.uploads[upload_id] = (generation, state)
        if announce and fresh:
            names = views.raw_names(self.ctx.settings, self.ctx.storage, [u for u, _, _ in fresh])
            for upload_id, generation, run in fresh:
                what = f"raw/{names[upload_id]}" if upload_id in names else f"upload {upload_id}"
                if run.get("state") == "done":
                    night = (run.get("outputs") or {}).get("night_id")
                    outcome = f"[green]ingested[/] -> night {night}" if night else "[green]ingested[/]"
                else:
                    outcome = f"[red]rejected[/]: {run.get('error')}"
                self.console.print(f"file {what} (generation {generation}): {outcome}", soft_wrap=True, highlight=False)
        for night_id, doc in self.ctx.state.list("nights"):
            for stage, st in doc.get("stages", {}).items():
                state = st.get("state")
                if self.stages.get((night_id, stage)) != state:
                    self.stages[(night_id, stage)] = state
                    # ingest is announced per file above; a night's ingest row would repeat it.
                    if announce and stage != "ingest" and state in ("done", "failed", "retrying"):
                        self.console.print(_stage_line(night_id, stage, st), soft_wrap=True, highlight=False)
                        if stage == "sunalgo" and state == "done":
                            self._scores_line(night_id, st)

    def _scores_line(self, night_id: str, st: dict[str, Any]) -> None:
        scores = _scores(self.ctx, self.ctx.settings, (st.get("outputs") or {}).get("prefix", ""))
        if not scores or not scores["sunalgo"]:
            return
        s, p = scores["sunalgo"], scores["psg_reference"] or {}
        # AHI on both sides (issue 24): the chin sensor has no RERA detector, so no predicted RDI.
        ref = f" (PSG: TST {p.get('TST')} min, AHI {p.get('AHI')}/h)" if p else ""
        self.console.print(f"  night {night_id} scored with {scores['algo_version']}: TST {s.get('TST')} min, "
                           f"AHI {s.get('AHI')}/h{ref}", soft_wrap=True, highlight=False)


def seed_nights(ctx: Context, folder: Path, *, n: int, hours: float, console: Console) -> list[str]:
    """Upload ``n`` short synthetic night pairs (subjects ``demo-002``...) with PSG labels, so that
    ``sunrise train`` has enough nights with PSG labels; returns the raw object names."""
    from sunrise_cli.synth import synth_night

    uploaded: list[str] = []
    with _progress(console) as progress:
        task = progress.add_task(f"extra example nights ({hours:g} h each)", total=n)
        for i in range(n):
            night = synth_night(folder / f"seed-{i + 2:03d}", seed=100 + i, hours=hours, ahi=[3.0, 12.0, 25.0, 45.0][i % 4])
            uploaded += ops.upload_night(ctx, night, site=EXAMPLE_SITE, subject=f"demo-{i + 2:03d}")
            progress.advance(task)
    return uploaded


@dataclass
class _Session:
    """What the steps of ``run_stack`` share once the stack is up."""

    settings: Settings
    ctx: Context
    console: Console
    stop: threading.Event  # set by SIGINT/SIGTERM
    run_dir: Path
    watcher: Watcher


def _start_emulators(settings: Settings, run_dir: Path, console: Console) -> tuple[Any, Settings]:
    """Start and provision the emulators; the settings pointed at them."""
    from sunrise_devstack.emulators import Emulators

    emu = Emulators(run_dir / "emulators", project=settings.project, prefix=settings.prefix)
    with console.status("starting fake-gcs-server and the Pub/Sub and Firestore emulators"):
        emu.start()
        emu.provision()
    settings = settings.model_copy(update={
        "backend": "emulators", "gcs_endpoint": emu.gcs_endpoint,
        "pubsub_emulator_host": emu.pubsub_emulator_host, "firestore_emulator_host": emu.firestore_emulator_host,
    })
    console.print(f"emulators up: fake-gcs-server {emu.gcs_endpoint}, Pub/Sub {emu.pubsub_emulator_host}, "
                  f"Firestore {emu.firestore_emulator_host}", soft_wrap=True)
    return emu, settings


def _start_stack(stack: Stack, ctx: Context, settings: Settings, run_dir: Path, console: Console) -> None:
    """Create the buckets and start the services and the router, one progress line each."""
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    t0 = time.monotonic()
    with _progress(console) as progress:
        task = progress.add_task("starting the services and the router", total=len(SERVICE_APPS) + 1)

        def ready(name: str) -> None:
            progress.console.print(f"  {name} up after {time.monotonic() - t0:.1f} s"
                                   + (f" on {settings.service_url(name)}" if name in SERVICE_APPS else ""),
                                   soft_wrap=True, highlight=False)
            progress.advance(task)

        stack.start(on_ready=ready)
    console.print(f"[green]stack up[/] in {time.monotonic() - t0:.1f} s on 127.0.0.1 ({settings.backend} backend); "
                  f"logs in {run_dir / 'logs'}", soft_wrap=True)


def _run_example(s: _Session, hours: float) -> int:
    """Generate, upload and wait for the example night (at most 300 s); 0 if it was scored."""
    console = s.console
    t1 = time.monotonic()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console) as progress:
        progress.add_task(f"generating an example {hours:g}-hour night pair (Sunrise EDF+, PSG EDF, labels)",
                          total=None)
        from sunrise_cli.synth import synth_night

        night = synth_night(s.run_dir / "example", seed=7, hours=hours)
    console.print(f"generated in {time.monotonic() - t1:.1f} s; uploading", highlight=False)
    for name in ops.upload_night(s.ctx, night, site=EXAMPLE_SITE, subject=EXAMPLE_SUBJECT):
        console.print(f"  uploaded raw/{name}", soft_wrap=True, highlight=False)
    t2 = time.monotonic()
    done = wait_for_scores(s.ctx, timeout=300, console=console, stop=s.stop)
    code = 0
    if done:
        console.print(f"[green]night {done['night_id']} scored[/] {time.monotonic() - t2:.1f} s after upload: "
                      f"results in {s.settings.bucket('results')}/{done['outputs']['prefix']}", soft_wrap=True)
        scores = _scores(s.ctx, s.settings, done["outputs"]["prefix"])
        if scores:
            console.print_json(data=scores)
    elif not s.stop.is_set():
        console.print("[red]the example night was not scored within 300 s; see `sunrise status`[/]")
        code = 1
    s.watcher.mark_seen()
    return code


def _seed_and_wait(s: _Session, *, seed: int, seed_hours: float, exit_when_done: bool) -> int:
    """Upload ``seed`` extra nights with PSG labels; with ``exit_when_done``, wait (at most 300 s)
    until every night is done. 0 unless that wait ran out."""
    expected = sum(1 for _ in s.ctx.state.list("nights")) + seed
    seed_nights(s.ctx, s.run_dir / "example", n=seed, hours=seed_hours, console=s.console)
    s.console.print(f"uploaded {seed} more example nights with PSG labels, enough for "
                    "`uv run sunrise train --version mine-1` once they are done", soft_wrap=True)
    if not exit_when_done:
        return 0
    deadline = time.monotonic() + 300
    # Until the seeded nights exist too: right after the upload only the example night does.
    while (not s.stop.is_set() and not status_lib.all_done(s.ctx.state, min_nights=expected)
           and time.monotonic() < deadline):
        s.watcher.poll()
        s.stop.wait(0.5)
    s.watcher.poll()
    if not status_lib.all_done(s.ctx.state, min_nights=expected):
        s.console.print("[red]the extra example nights were not all scored within 300 s; "
                        "see `sunrise status`[/]")
        return 1
    return 0


def _watch(s: _Session) -> None:
    """Announce every file that arrives in the raw bucket and its outcome until Ctrl-C."""
    if s.settings.backend == "embedded":
        raw = Path(s.settings.data_dir) / "buckets" / s.settings.bucket("raw")
        s.console.print(f"watching {raw}/ : copy files there as {{kind}}/{{site}}/{{subject}}/{{file}} "
                        "(or `uv run sunrise upload`); each file and its outcome is announced here; "
                        "`uv run sunrise status` shows everything. Ctrl-C stops.", soft_wrap=True)
    else:
        s.console.print("watching the raw bucket (fake-gcs-server); `uv run sunrise upload` sends files; each file "
                        "and its outcome is announced here. Ctrl-C stops.", soft_wrap=True)
    while not s.stop.is_set():
        s.watcher.poll()
        s.stop.wait(1.0)


def run_stack(settings: Settings, *, example: bool, hours: float, emulators: bool, exit_when_done: bool, console: Console,
              seed: int = 3, seed_hours: float = 1.0) -> int:
    """Run the whole stack on this machine (``sunrise run``); the exit code (1: an example night
    was not scored in time)."""
    run_dir = Path(settings.data_dir) / "run"
    emu = None
    if emulators:
        emu, settings = _start_emulators(settings, run_dir, console)
    stack = Stack(settings, run_dir / "logs")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    try:
        ctx = Context.from_settings(settings)
        _start_stack(stack, ctx, settings, run_dir, console)
        s = _Session(settings, ctx, console, stop, run_dir, Watcher(ctx, console))
        if example:
            code = _run_example(s, hours)
            if seed and not stop.is_set() and code == 0:
                code = _seed_and_wait(s, seed=seed, seed_hours=seed_hours, exit_when_done=exit_when_done)
        if exit_when_done:
            return code
        _watch(s)
        return code
    finally:
        console.print("stopping ...")
        stack.stop()
        if emu is not None:
            emu.stop()


def _scores(ctx: Context, settings: Settings, prefix: str) -> dict | None:
    try:
        scores = json.loads(ctx.storage.read_bytes(settings.bucket("results"), prefix + "scores.json"))
    except Exception:  # noqa: BLE001 - the scores are a courtesy print; their absence is not an error here
        return None
    keep = ("TRT", "TST", "SE", "SOL", "WASO", "AHI", "RDI", "ORDI", "ODI", "severity")

    def pick(d: dict | None) -> dict | None:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in d.items() if k in keep} if d else None

    return {"algo_version": scores.get("algo_version"), "sunalgo": pick(scores.get("scores")),
            "psg_reference": pick(scores.get("psg_scores"))}
