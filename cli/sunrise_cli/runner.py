"""``sunrise run`` (``make run``): the whole stack on one machine with an example night."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from rich.console import Console

from sunrise_common.service import Context
from sunrise_common.settings import Settings

from sunrise_cli import ops
from sunrise_cli.stack import Stack

EXAMPLE_SITE = "demo-site"
EXAMPLE_SUBJECT = "demo-001"


def upload_example(ctx: Context, folder: Path, *, hours: float, seed: int = 7, subject: str = EXAMPLE_SUBJECT) -> list[str]:
    """Synthesise a night pair (Sunrise + PSG + labels) and upload it to the raw bucket."""
    from sunrise_cli.synth import synth_night

    night = synth_night(folder, seed=seed, hours=hours)
    uploaded = [ops.upload(ctx, Path(night.sunrise), kind="sunrise", site=EXAMPLE_SITE, subject=subject).name,
                ops.upload(ctx, Path(night.psg), kind="psg", site=EXAMPLE_SITE, subject=subject).name]
    for label in night.labels:
        uploaded.append(ops.upload(ctx, Path(label), kind="labels", site=EXAMPLE_SITE, subject=subject).name)
    return uploaded


def wait_for_scores(ctx: Context, *, timeout: float, console: Console | None = None, stop: threading.Event | None = None) -> dict | None:
    """Poll the state until a night has sunalgo done with its PSG half; print stage changes."""
    deadline = time.monotonic() + timeout
    seen: dict[tuple[str, str], str] = {}
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        for night_id, doc in ctx.state.list("nights"):
            for stage, st in doc.get("stages", {}).items():
                if seen.get((night_id, stage)) != st.get("state") and console:
                    console.print(f"  {night_id} {stage:13} {st.get('state')}"
                                  + (f" ({st.get('duration_s')} s)" if st.get("duration_s") is not None else "")
                                  + (f" [red]{st.get('error')}[/]" if st.get("error") else ""))
                seen[(night_id, stage)] = st.get("state")
            sunalgo = doc.get("stages", {}).get("sunalgo", {})
            if sunalgo.get("state") == "done" and sunalgo.get("outputs", {}).get("with_psg"):
                return {"night_id": night_id, **sunalgo}
        time.sleep(0.5)
    return None


def run_stack(settings: Settings, *, example: bool, hours: float, emulators: bool, exit_when_done: bool, console: Console) -> int:
    run_dir = Path(settings.data_dir) / "run"
    emu = None
    if emulators:
        from sunrise_common.emulators import Emulators

        emu = Emulators(run_dir / "emulators", project=settings.project, prefix=settings.prefix)
        emu.start()
        emu.provision()
        settings = settings.model_copy(update={
            "backend": "emulators", "gcs_endpoint": emu.gcs_endpoint,
            "pubsub_emulator_host": emu.pubsub_emulator_host, "firestore_emulator_host": emu.firestore_emulator_host,
        })
        console.print(f"emulators up: fake-gcs-server {emu.gcs_endpoint}, Pub/Sub {emu.pubsub_emulator_host}, "
                      f"Firestore {emu.firestore_emulator_host}")
    stack = Stack(settings, run_dir / "logs")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    code = 0
    try:
        ctx = Context.from_settings(settings)
        for logical in ("raw", "anonymised", "prepped", "results"):
            ctx.storage.ensure_bucket(settings.bucket(logical))
        t0 = time.monotonic()
        stack.start()
        console.print(f"[green]stack up[/] in {time.monotonic() - t0:.1f} s on 127.0.0.1 ({settings.backend} backend); "
                      f"logs in {run_dir / 'logs'}")
        if example:
            console.print(f"generating an example {hours:g}-hour night pair and uploading it ...")
            t1 = time.monotonic()
            for name in upload_example(ctx, run_dir / "example", hours=hours):
                console.print(f"  uploaded raw/{name}")
            done = wait_for_scores(ctx, timeout=300, console=console, stop=stop)
            if done:
                console.print(f"[green]night {done['night_id']} scored[/] {time.monotonic() - t1:.1f} s after upload: "
                              f"results in {settings.bucket('results')}/{done['outputs']['prefix']}")
                scores = _scores(ctx, settings, done["outputs"]["prefix"])
                if scores:
                    console.print_json(data=scores)
            elif not stop.is_set():
                console.print("[red]the example night was not scored within 300 s; see `sunrise status`[/]")
                code = 1
        if exit_when_done:
            return code
        if settings.backend == "embedded":
            raw = Path(settings.data_dir) / "buckets" / settings.bucket("raw")
            console.print(f"watching {raw}/ : copy files there as {{kind}}/{{site}}/{{subject}}/{{file}} "
                          "(or `uv run sunrise upload`); `uv run sunrise status` shows progress. Ctrl-C stops.")
        else:
            console.print("watching the raw bucket (fake-gcs-server); `uv run sunrise upload` sends files. Ctrl-C stops.")
        while not stop.is_set():
            stop.wait(1.0)
        return code
    finally:
        console.print("stopping ...")
        stack.stop()
        if emu is not None:
            emu.stop()


def _scores(ctx: Context, settings: Settings, prefix: str) -> dict | None:
    try:
        scores = json.loads(ctx.storage.read_bytes(settings.bucket("results"), prefix + "scores.json"))
    except Exception:
        return None
    keep = ("TRT", "TST", "SE", "SOL", "WASO", "RDI", "ORDI", "ODI", "severity")

    def pick(d: dict | None) -> dict | None:
        return {k: round(v, 1) if isinstance(v, float) else v for k, v in d.items() if k in keep} if d else None

    return {"algo_version": scores.get("algo_version"), "sunalgo": pick(scores.get("scores")),
            "psg_reference": pick(scores.get("psg_scores"))}
