"""The ``sunrise`` command: run the stack, upload, replay, status, backfill, rerun, dead letters,
and the science commands (synth, train, report)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sunrise_common import names, status as status_lib
from sunrise_common.service import Context
from sunrise_common.settings import Settings

from sunrise_cli import ops

app = typer.Typer(help="Sunrise pipeline: raw sleep recordings to training data and clinical scores.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
dlq_app = typer.Typer(help="Dead-lettered events: the local router's (embedded, emulators) or the dead-letter subscription (cloud).")
app.add_typer(dlq_app, name="dlq")
console = Console()

from sunrise_cli.science_commands import science_app  # noqa: E402 - synth, train, report

app.registered_commands.extend(science_app.registered_commands)


def _ctx() -> Context:
    return Context.from_settings(Settings())


@app.command()
def run(
    example: Annotated[bool, typer.Option(help="Generate and upload an example night pair.")] = True,
    hours: Annotated[float, typer.Option(help="Length of the example night in hours.")] = 8.0,
    emulators: Annotated[bool, typer.Option(help="Run on fake-gcs-server and the Pub/Sub and Firestore emulators.")] = False,
    exit_when_done: Annotated[bool, typer.Option(help="Stop once the example night is scored (for scripts).")] = False,
) -> None:
    """Start the whole stack on 127.0.0.1, process an example night, keep watching the raw bucket."""
    from sunrise_cli.runner import run_stack

    raise typer.Exit(run_stack(Settings(), example=example, hours=hours, emulators=emulators,
                               exit_when_done=exit_when_done, console=console))


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to upload.")],
    kind: Annotated[str, typer.Option(help="sunrise, psg or labels.")],
    site: Annotated[str, typer.Option(help="Recording site code, e.g. namur.")],
    subject: Annotated[str, typer.Option(help="Subject id at the site (pseudonymised by ingest).")],
    name: Annotated[Optional[str], typer.Option(help="Object file name (default: the file's name).")] = None,
) -> None:
    """Upload a file to the raw bucket as {kind}/{site}/{subject}/{file}."""
    try:
        info = ops.upload(_ctx(), file, kind=kind, site=site, subject=subject, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console.print(f"uploaded [bold]{info.bucket}/{info.name}[/] (generation {info.generation}, {info.size} bytes)")


@app.command()
def replay(
    event_file: Annotated[Optional[Path], typer.Argument(help="A CloudEvent file: {method, path, headers, body} or a structured envelope.")] = None,
    object_name: Annotated[Optional[str], typer.Option("--object", help="Build a finalize event for this raw object instead.")] = None,
    to: Annotated[Optional[str], typer.Option(help="Service to send to (default: by the trigger table).")] = None,
    url: Annotated[Optional[str], typer.Option(help="URL to POST to (default: the service's local URL).")] = None,
    curl: Annotated[bool, typer.Option("--curl", help="Print the equivalent curl command instead of sending.")] = False,
    token: Annotated[Optional[str], typer.Option(help="Bearer token (cloud: `gcloud auth print-identity-token`).")] = None,
) -> None:
    """Send a CloudEvent to a service, as Eventarc would (or print it as curl)."""
    settings = Settings()
    if (event_file is None) == (object_name is None):
        raise typer.BadParameter("give an EVENT_FILE or --object NAME (one of them)")
    if event_file is not None:
        headers, body = ops.load_event_file(event_file)
    else:
        info = _ctx().storage.stat(settings.bucket("raw"), object_name)
        if info is None:
            raise typer.BadParameter(f"no object {object_name!r} in {settings.bucket('raw')}")
        headers, body = ops.object_event(settings, object_name, info)
    service = to or ops.service_for(headers, body, settings)
    if service not in names.SERVICES:
        raise typer.BadParameter(f"--to must be one of {', '.join(names.SERVICES)}")
    target = url or settings.service_url(service)
    if curl:
        print(ops.curl_command(target, headers, body))
        return
    resp = ops.post(target, headers, body, token=token)
    console.print(f"{service} answered {resp.status_code}: {resp.text}")
    raise typer.Exit(0 if resp.status_code < 300 else 1)


@app.command()
def status(
    night: Annotated[Optional[str], typer.Argument(help="A night id for its full history.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    watch: Annotated[bool, typer.Option(help="Refresh every few seconds until Ctrl-C.")] = False,
    upload_name: Annotated[Optional[str], typer.Option("--upload", help="What happened to this raw object name?")] = None,
) -> None:
    """Nights by stage and state, failures with reasons, stage times; or one night in detail."""
    ctx = _ctx()
    if upload_name:
        from sunrise_common import identity

        uid = identity.upload_id(ctx.settings.key_bytes(), ctx.settings.bucket("raw"), upload_name)
        doc = ctx.state.get("uploads", uid)
        out = {"upload_id": uid, "found": doc is not None, **({"runs": doc.get("runs", {}).get("ingest", {})} if doc else {})}
        print(json.dumps(out, indent=2, default=str)) if as_json else console.print_json(data=out, default=str)
        raise typer.Exit(0 if doc else 1)
    if night:
        detail = status_lib.night_detail(ctx.state, night)
        if detail is None:
            console.print(f"[red]no night {night}[/]")
            raise typer.Exit(1)
        print(json.dumps(detail, indent=2, default=str)) if as_json else _print_night(detail)
        return
    while True:
        summary = status_lib.summarize(ctx.state)
        if as_json:
            print(json.dumps(summary, default=str))
        else:
            if watch:
                console.clear()
            _print_summary(summary)
        if not watch:
            return
        time.sleep(2)


def _print_summary(summary: dict) -> None:
    table = Table(title=f"{summary['nights']} night(s); uploads {summary['uploads']}")
    states = ["pending", "running", "retrying", "done", "failed"]
    table.add_column("stage")
    for s in states:
        table.add_column(s, justify="right")
    table.add_column("p50 s", justify="right")
    table.add_column("p95 s", justify="right")
    for stage, counts in summary["stages"].items():
        t = summary["stage_times"].get(stage, {})
        table.add_row(stage, *[str(counts.get(s, 0)) for s in states], str(t.get("p50_s", "")), str(t.get("p95_s", "")))
    console.print(table)
    if summary["nights_per_minute"]:
        console.print(f"throughput: {summary['nights_per_minute']} nights/min")
    for f in summary["failures"]:
        console.print(f"[red]{f['night_id']} {f['stage']} {f['state']}[/]: {f['error']}")
    for r in summary["rejected_uploads"]:
        console.print(f"[yellow]upload {r['upload_id']} {r['state']}[/]: {r['error']}")
    if summary["slowest"]:
        console.print("slowest: " + ", ".join(f"{s['night_id']} ({s['total_s']} s)" for s in summary["slowest"]))


def _print_night(detail: dict) -> None:
    console.print(f"[bold]{detail['night_id']}[/] pairing: {detail['pairing']}")
    for stage, st in (detail.get("stages") or {}).items():
        console.print(f"  {stage:13} {st.get('state'):9} attempts={st.get('attempts', '-')} "
                      f"duration={st.get('duration_s')} error={st.get('error')}")
        if st.get("outputs"):
            console.print(f"  {'':13} outputs: {st['outputs']}")
    for h in detail.get("history", []):
        console.print(f"  history: {h}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def _interruptible() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


@app.command()
def backfill(
    prefix: Annotated[str, typer.Argument(
        help="What to replay: a raw object name prefix (sunrise/namur/), or BUCKET/PREFIX, or gs://BUCKET/PREFIX (default: everything).")] = "",
    rate: Annotated[Optional[float], typer.Option(help="At most this many events per second.")] = None,
    max_in_flight: Annotated[int, typer.Option(help="At most this many requests at once.")] = 4,
    force: Annotated[bool, typer.Option(help="Send objects that were already ingested too.")] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would be sent; send nothing.")] = False,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Resume file (default: DATA_DIR/backfill.checkpoint).")] = None,
    url: Annotated[Optional[str], typer.Option(help="ingest URL (default: the local one).")] = None,
    token: Annotated[Optional[str], typer.Option(help="Bearer token for a cloud ingest URL.")] = None,
    via: Annotated[Optional[str], typer.Option(
        help="post: send each finalize event to ingest; rewrite: write each object onto itself so the bucket "
             "notifies again (default: rewrite in the cloud, post elsewhere).")] = None,
) -> None:
    """Replay raw objects as finalize events to ingest: throttled, resumable, with a summary."""
    ctx = _ctx()
    raw = ctx.settings.bucket("raw")
    bare = prefix.removeprefix("gs://")
    if bare == raw or bare.startswith(raw + "/"):
        prefix = bare[len(raw) + 1:]
    elif prefix.startswith("gs://"):
        raise typer.BadParameter(f"backfill replays the raw bucket {raw}, not {bare.split('/')[0]}")
    checkpoint = checkpoint or ctx.settings.data_dir / "backfill.checkpoint"
    via = via or ("rewrite" if ctx.settings.backend == "cloud" else "post")
    try:
        jobs = list(ops.backfill_jobs(ctx, prefix, force=force, url=url or ctx.settings.ingest_url, token=token,
                                      checkpoint=None if dry_run else checkpoint, via=via))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if dry_run:
        for label, job in jobs:
            console.print(f"{'send' if job else 'skip'} {label}")
        console.print(f"dry run: {sum(1 for _, j in jobs if j)} to send, {sum(1 for _, j in jobs if not j)} to skip")
        return
    stop = _interruptible()
    with _progress() as progress:
        task = progress.add_task("backfill", total=len(jobs))
        summary = ops.send_all(jobs, rate=rate, max_in_flight=max_in_flight, stop=stop,
                               on_progress=lambda *_: progress.advance(task))
    console.print_json(data=summary.as_dict())
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def rerun(
    stage: Annotated[str, typer.Argument(help="sunrise_prep, psg_prep or sunalgo.")],
    nights: Annotated[Optional[list[str]], typer.Option("--nights", help="Night ids (repeat the option).")] = None,
    failed: Annotated[bool, typer.Option(help="Every night whose stage failed.")] = False,
    all_nights: Annotated[bool, typer.Option("--all", help="Every night.")] = False,
    algo_version: Annotated[Optional[str], typer.Option(help="sunalgo only: the model version to score with.")] = None,
    rate: Annotated[Optional[float], typer.Option(help="At most this many events per second.")] = None,
    max_in_flight: Annotated[int, typer.Option(help="At most this many publishes at once.")] = 4,
) -> None:
    """Run one stage again for chosen nights (after a fix, or with another model): publishes the
    stage's input event on its topic, so it works the same on every backend."""
    if stage not in ops.RERUN_TOPIC:
        raise typer.BadParameter(f"STAGE must be one of {', '.join(ops.RERUN_TOPIC)}")
    if not (nights or failed or all_nights):
        raise typer.BadParameter("choose nights: --nights ID, --failed or --all")
    ctx = _ctx()
    chosen = ops.select_nights(ctx, stage, nights=nights, failed=failed, all_nights=all_nights)
    jobs = []
    for night in chosen:
        if algo_version is None:
            ops.reset_stage(ctx, night, stage)
        jobs.append((night, ops.rerun_job(ctx, night, stage, model_version=algo_version)))
    stop = _interruptible()
    with _progress() as progress:
        task = progress.add_task(f"rerun {stage}", total=len(jobs))
        summary = ops.send_all(jobs, rate=rate, max_in_flight=max_in_flight, stop=stop,
                               on_progress=lambda *_: progress.advance(task))
    console.print_json(data=summary.as_dict())
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def activate(version: Annotated[str, typer.Argument(help="Model version to score new nights with.")]) -> None:
    """Make a trained model the one sunalgo uses from now on (nothing changes without this)."""
    from sunrise_cli.train import activate_model

    store = Settings().model_store()
    pointer = activate_model(version, store / "ACTIVE.json", model_dir=store)
    console.print(f"active model: {version} ({pointer})")


def _dead_letters():
    from sunrise_common.dead_letters import make_dead_letters

    return make_dead_letters(Settings())


@dlq_app.command("list")
def dlq_list(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Dead-lettered events: id, service, attempts, last answer."""
    rows = [{"id": d.id, "service": d.service, "trigger": d.trigger, "attempts": d.attempts, "status": d.status,
             "error": d.error, "subject": d.subject} for d in _dead_letters().list()]
    if as_json:
        print(json.dumps(rows))
        return
    for r in rows:
        console.print(f"{r['id']:>6} {r['service'] or '?':13} attempts={r['attempts']} status={r['status']} {r['error']}")
    console.print(f"{len(rows)} dead letter(s)")


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[str, typer.Argument(help="Id from `dlq list`.")]) -> None:
    """One dead letter: the request and why it died."""
    for d in _dead_letters().list(limit=1000):
        if d.id == letter_id:
            console.print_json(data={"id": d.id, "service": d.service, "trigger": d.trigger, "attempts": d.attempts,
                                     "last_status": d.status, "last_error": d.error, "request": d.body}, default=str)
            return
    raise typer.BadParameter(f"no dead letter {letter_id}")


@dlq_app.command("replay")
def dlq_replay(ids: Annotated[Optional[list[str]], typer.Argument(help="Ids (default: all).")] = None) -> None:
    """Put dead letters back: the local queue retries them; in the cloud they are republished."""
    console.print(f"replayed {_dead_letters().replay(ids)} dead letter(s)")


@dlq_app.command("purge")
def dlq_purge(
    ids: Annotated[Optional[list[str]], typer.Argument(help="Ids (default: all).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete dead letters for good."""
    if not yes and not typer.confirm("delete these dead letters for good?"):
        raise typer.Exit(1)
    console.print(f"purged {_dead_letters().purge(ids)} dead letter(s)")


if __name__ == "__main__":
    sys.exit(app())
