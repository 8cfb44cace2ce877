"""The ``sunrise`` command: run the stack, upload, replay, status, backfill, rerun, dead letters,
and the science commands (synth, train, report).

Imports are lazy on purpose: ``sunrise --help`` and ``sunrise status`` must answer in well under
a second of CPU, so this module imports only typer and rich at the top, and each command imports
what it needs (httpx, FastAPI, numpy and the science stack cost seconds together).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.console import Console

from sunrise_cli.algo_commands import algo_app
from sunrise_cli.dataset_commands import dataset_app
from sunrise_cli.forget_command import forget
from sunrise_cli.science_commands import science_app

if TYPE_CHECKING:
    from rich.progress import Progress

    from sunrise_common.service import Context
    from sunrise_common.settings import Settings
    from sunrise_common.state import StateStore
    from sunrise_common.storage import Storage
    from sunrise_devstack.dead_letters import DeadLetters

    from sunrise_cli.ops import Summary
    from sunrise_cli.settings import CliSettings

app = typer.Typer(help="Sunrise pipeline: raw sleep recordings to training data and clinical scores.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
dlq_app = typer.Typer(help="Dead-lettered events: the local router's (embedded, emulators) or the dead-letter subscription (cloud).")
app.add_typer(dlq_app, name="dlq")
app.add_typer(dataset_app, name="dataset")
app.add_typer(algo_app, name="algo")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

app.registered_commands.extend(science_app.registered_commands)  # synth, train, report
app.command()(forget)


def _settings() -> CliSettings:
    # The CLI drives the local stack (sunrise run, dead letters) and the model store.
    from sunrise_cli.settings import CliSettings

    return CliSettings()


def _ctx() -> "Context":
    from sunrise_common.service import Context

    return Context.from_settings(_settings())


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a one-line error on stderr (no traceback: the message says what to do)."""
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def run(
    example: Annotated[bool, typer.Option(help="Generate and upload an example night pair.")] = True,
    hours: Annotated[float, typer.Option(help="Length of the example night in hours.")] = 8.0,
    emulators: Annotated[bool, typer.Option(help="Run on fake-gcs-server and the Pub/Sub and Firestore emulators.")] = False,
    exit_when_done: Annotated[bool, typer.Option(help="Stop once the example nights are scored (for scripts).")] = False,
    seed_nights: Annotated[int, typer.Option(
        help="After the example night, upload this many short extra nights with PSG labels (for `sunrise train`).")] = 3,
    seed_hours: Annotated[float, typer.Option(help="Length of each extra night in hours.")] = 1.0,
) -> None:
    """Start the whole stack on 127.0.0.1, process an example night, keep watching the raw bucket."""
    from sunrise_cli.runner import run_stack

    raise typer.Exit(run_stack(_settings(), example=example, hours=hours, emulators=emulators,
                               exit_when_done=exit_when_done, console=Console(soft_wrap=True),
                               seed=seed_nights, seed_hours=seed_hours))


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to upload.")],
    kind: Annotated[str, typer.Option(help="sunrise, psg or labels.")],
    site: Annotated[str, typer.Option(help="Recording site code, e.g. namur.")],
    subject: Annotated[str, typer.Option(help="Subject id at the site (pseudonymised by ingest).")],
    name: Annotated[Optional[str], typer.Option(help="Object file name (default: the file's name).")] = None,
) -> None:
    """Upload a file to the raw bucket as {kind}/{site}/{subject}/{file}."""
    from sunrise_common.errors import PipelineError

    from sunrise_cli import ops

    if not file.is_file():  # a FIFO or a device would be read forever
        fail(f"{file} is not a regular file")
    try:
        info = ops.upload(_ctx(), file, kind=kind, site=site, subject=subject, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except PipelineError as exc:
        # The storage removed what it had staged: nothing of the file is left behind.
        fail(f"the upload did not complete ({exc.reason}: {exc.detail}); nothing was kept, run it again", 1)
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
    from sunrise_common import names

    from sunrise_cli import ops

    settings = _settings()
    if (event_file is None) == (object_name is None):
        fail("give an EVENT_FILE or --object NAME (one of them)")
    if event_file is not None:
        try:
            headers, body = ops.load_event_file(event_file)
        except (OSError, ValueError) as exc:
            fail(str(exc))
    else:
        info = _ctx().storage.stat(settings.bucket("raw"), object_name)
        if info is None:
            fail(f"no object {object_name!r} in the raw bucket {settings.bucket('raw')}")
        headers, body = ops.object_event(settings, object_name, info)
    if to is not None and to not in names.SERVICES:
        fail(f"--to {to!r}: the services are {', '.join(names.SERVICES)}")
    try:
        service = to or ops.service_for(headers, body, settings)
    except ValueError as exc:
        fail(str(exc))
    target = url or settings.service_url(service)
    if curl:
        print(ops.curl_command(target, headers, body))
        return
    try:
        resp = ops.post(target, headers, body, token=token)
    except ops.httpx.HTTPError as exc:
        fail(f"cannot reach {service} at {target}: {type(exc).__name__} {exc} (is the stack running? `make run`)", 1)
    console.print(f"{service} answered {resp.status_code}: {resp.text}", soft_wrap=True)
    raise typer.Exit(0 if resp.status_code < 300 else 1)


@app.command()
def status(
    night: Annotated[Optional[str], typer.Argument(help="A night id for its full history.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    watch: Annotated[bool, typer.Option(help="Refresh every few seconds until Ctrl-C.")] = False,
    upload_name: Annotated[Optional[str], typer.Option("--upload", help="What happened to this raw object name?")] = None,
) -> None:
    """Nights by stage and state, failures with reasons, stage times; or one night in detail."""
    from sunrise_devstack import status as status_lib
    from sunrise_common.state import make_state
    from sunrise_common.storage import make_storage

    from sunrise_cli import views

    settings = _settings()
    state = make_state(settings)
    if upload_name:
        _print_upload(settings, state, make_storage(settings), upload_name, as_json)
        return
    if night:
        detail = status_lib.night_detail(state, night)
        if detail is None:
            fail(f"no night {night!r} (night ids look like s<12 letters/digits>-n<8>; `sunrise status` lists them)", 1)
        print(json.dumps(detail, indent=2, default=str)) if as_json else views.print_night(console, detail)
        return
    storage = None
    while True:
        summary = status_lib.summarize(state)
        if as_json:
            print(json.dumps(summary, default=str))
        else:
            failed_ids = [r["upload_id"] for r in summary["rejected_uploads"]]
            if failed_ids and storage is None:
                storage = make_storage(settings)
            names = views.raw_names(settings, storage, failed_ids) if failed_ids else {}
            if watch:
                console.clear()
            views.print_summary(console, summary, names)
        if not watch:
            return
        time.sleep(2)


def _print_upload(settings: Settings, state: StateStore, storage: Storage, name: str, as_json: bool) -> None:
    from sunrise_common import identity
    from sunrise_devstack import status as status_lib

    from sunrise_cli import views

    uid = identity.upload_id(settings.key_bytes(), settings.bucket("raw"), name)
    doc = state.get("uploads", uid)
    info = storage.stat(settings.bucket("raw"), name)
    current = info.generation if info is not None else None
    if as_json:
        generation, run = status_lib.latest_generation_run(doc) if doc else (None, {})
        out = {"upload_id": uid, "found": doc is not None, "current_generation": current,
               "latest_generation": generation, "state": run.get("state") if doc else None,
               "error": run.get("error") if doc else None,
               **({"runs": doc.get("runs", {}).get("ingest", {})} if doc else {})}
        print(json.dumps(out, indent=2, default=str))
    else:
        views.print_upload(console, name, doc, current)
    if doc is None:
        raise typer.Exit(1)


def _progress() -> "Progress":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    from sunrise_cli import ops

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
    _print_sent(summary, "event(s) sent to ingest" if via == "post" else "object(s) rewritten")
    raise typer.Exit(1 if summary.failed else 0)


def _print_sent(summary: Summary, what: str, skipped: str = "already done") -> None:
    """One sentence for a backfill or rerun, then one line per failure (not a dict)."""
    console.print(f"{summary.sent} {what}, {summary.skipped} skipped ({skipped}), {summary.failed} failed",
                  soft_wrap=True, highlight=False)
    for failure in summary.failures[:20]:
        console.print(f"  [red]failed[/] {failure}", soft_wrap=True, highlight=False)
    if summary.failed > 20:
        console.print(f"  ... and {summary.failed - 20} more", highlight=False)


@app.command()
def rerun(
    stage: Annotated[str, typer.Argument(help="sunrise_prep, psg_prep or sunalgo.")],
    nights: Annotated[Optional[list[str]], typer.Option("--nights", help="Night ids (repeat the option).")] = None,
    failed: Annotated[bool, typer.Option(help="Every night whose stage failed.")] = False,
    all_nights: Annotated[bool, typer.Option("--all", help="Every night.")] = False,
    algo_version: Annotated[Optional[str], typer.Option(help="sunalgo only: the plug-in or model version to score with (`sunrise algo list`).")] = None,
    rate: Annotated[Optional[float], typer.Option(help="At most this many events per second.")] = None,
    max_in_flight: Annotated[int, typer.Option(help="At most this many publishes at once.")] = 4,
) -> None:
    """Run one stage again for chosen nights (after a fix, or with another model).

    Publishes the stage's input event on its topic, so it works the same on every backend.
    """
    from sunrise_cli import ops

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
    _print_sent(summary, f"{stage} input event(s) published" + (f" (model {algo_version})" if algo_version else "")
                + "; `sunrise status` shows their progress", skipped="nothing to rerun")
    raise typer.Exit(1 if summary.failed else 0)


@app.command()
def activate(version: Annotated[str, typer.Argument(help="Model version to score new nights with.")]) -> None:
    """Make a trained model the one sunalgo uses from now on (nothing changes without this)."""
    from sunrise_cli.train import activate_model

    store = _settings().model_store()
    pointer = activate_model(version, store / "ACTIVE.json", model_dir=store)
    console.print(f"active model: {version} ({pointer})")


def _dead_letters() -> DeadLetters:
    from sunrise_devstack.dead_letters import make_dead_letters

    return make_dead_letters(_settings())


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
