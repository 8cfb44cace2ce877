"""Operating at scale on the embedded stack: backfill with interruption, dead letters, rerun."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL
from sunrise_devstack import status
from sunrise_devstack.router.queue import Queue
from sunrise_common.service import Context
from sunrise_cli import ops
from sunrise_cli.stack import Stack
from sunrise_cli.synth import synth_night
from tests.e2e.conftest import stack_settings, wait_until

pytestmark = pytest.mark.slow


def upload_nights(ctx: Context, folder: Path, n: int, *, hours: float = 0.5, labels: int = 1) -> None:
    for i in range(n):
        night = synth_night(folder / str(i), seed=1000 + i, hours=hours)
        subject = f"S{i:03d}"
        ops.upload(ctx, Path(night.sunrise), kind="sunrise", site="ops", subject=subject)
        ops.upload(ctx, Path(night.psg), kind="psg", site="ops", subject=subject)
        for label in night.labels[:labels]:
            ops.upload(ctx, Path(label), kind="labels", site="ops", subject=subject)


def start(tmp_path: Path, **overrides):
    settings = stack_settings(tmp_path, **{"router_watch_raw": False, **overrides})
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    return settings, ctx, Stack(settings, tmp_path / "logs")


def settled(ctx: Context, n: int) -> bool:
    """Every event delivered and n nights fully done (a stable state, not a passing one)."""
    queue = Queue(ctx.settings.data_dir / "router.db")
    return queue.idle() and len(list(ctx.state.list("nights"))) == n and status.all_done(ctx.state) and queue.idle()


def every_run_once(ctx: Context) -> list[str]:
    """Stage runs that were attempted more than once for the same input."""
    twice = []
    for collection in ("nights", "uploads"):
        for doc_id, doc in ctx.state.list(collection):
            for stage, runs in doc.get("runs", {}).items():
                for key, run in runs.items():
                    if run.get("attempts") != 1 or run.get("state") != "done":
                        twice.append(f"{collection}/{doc_id} {stage} {key}: {run.get('state')} x{run.get('attempts')}")
    return twice


def test_backfill_of_100_nights_survives_an_interruption_and_runs_each_stage_once(tmp_path):
    settings, ctx, stack = start(tmp_path)
    upload_nights(ctx, tmp_path / "nights", 100)
    checkpoint = tmp_path / "backfill.checkpoint"
    with stack:
        stop = threading.Event()
        sent = []

        def progress(label, outcome):
            sent.append(outcome)
            if len(sent) >= 150:
                stop.set()  # the operator presses Ctrl-C halfway

        first = ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=checkpoint),
                             rate=200, max_in_flight=4, stop=stop, on_progress=progress)
        assert 150 <= first.sent < 300 and first.failed == 0
        second = ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=checkpoint),
                              rate=200, max_in_flight=4)
        assert second.failed == 0
        assert second.skipped == first.sent  # nothing sent twice
        assert first.sent + second.sent == 300
        wait_until(lambda: settled(ctx, 100), 600, "100 nights done", interval=1.0)
    assert every_run_once(ctx) == []
    summary = status.summarize(ctx.state)
    assert summary["stages"]["sunalgo"] == {"done": 100}
    assert summary["stage_times"]["sunalgo"]["p50_s"] is not None


def test_a_killed_service_dead_letters_and_replaying_loses_nothing(tmp_path):
    settings, ctx, stack = start(tmp_path, router_max_attempts=3, router_backoff_initial_s=0.1, router_backoff_max_s=0.5)
    upload_nights(ctx, tmp_path / "nights", 8)
    queue = Queue(settings.data_dir / "router.db")
    with stack:
        stack.kill("sunrise_prep")
        summary = ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=None),
                               rate=None, max_in_flight=4)
        assert summary.sent == 24
        dead = wait_until(lambda: [d for d in queue.deliveries("dead") if d.service == "sunrise_prep"]
                          if len([d for d in queue.deliveries("dead") if d.service == "sunrise_prep"]) == 8 else None,
                          120, "8 sunrise_prep events to dead-letter")
        assert all(d.last_status is None and "ConnectError" in d.last_error for d in dead)
        stack.start_service("sunrise_prep")
        stack.wait_healthy(services=["sunrise_prep"])
        assert queue.replay_dead() == 8
        wait_until(lambda: settled(ctx, 8), 300, "8 nights done")
    assert list(queue.deliveries("dead")) == []
    assert every_run_once(ctx) == []


def test_train_activate_rerun_report_loop_names_the_new_model_and_shows_both(tmp_path, monkeypatch):
    """The README's training loop, typed as a person would (the CLI through typer's runner)
    against a real embedded stack: the report names the new model and puts both versions' figures
    side by side; the old results stay beside the new ones."""
    import json

    from typer.testing import CliRunner

    from sunrise_cli.main import app
    from sunrise_cli.stack import settings_env

    settings, ctx, stack = start(tmp_path)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)  # the CLI reads the same settings as the stack
    cli = CliRunner()

    def sunrise(*args: str) -> str:
        result = cli.invoke(app, list(args))
        if result.exit_code != 0:
            raise AssertionError(f"sunrise {' '.join(args)} exited {result.exit_code}: {result.output}")
        return result.output

    upload_nights(ctx, tmp_path / "nights", 3, hours=1.0)
    with stack:
        ops.send_all(ops.backfill_jobs(ctx, "", force=False, url=settings.ingest_url, token=None, checkpoint=None),
                     rate=None, max_in_flight=4)
        wait_until(lambda: settled(ctx, 3), 180, "3 nights")
        before = {i.name for i in ctx.storage.list(settings.bucket("results"))}
        trained = sunrise("train", "--version", "mine-1")
        assert "held-out accuracy" in trained and "sunrise activate mine-1" in trained
        sunrise("activate", "mine-1")
        sunrise("rerun", "sunalgo", "--all", "--algo-version", "mine-1")
        wait_until(lambda: sum(1 for _, d in ctx.state.list("nights")
                               if d.get("stages", {}).get("sunalgo:mine-1", {}).get("state") == "done") == 3,
                   120, "the 3 nights rescored with mine-1")
        after = {i.name for i in ctx.storage.list(settings.bucket("results"))}
        status_out = sunrise("status")
    assert before < after  # nothing overwritten or removed
    assert any("/sunalgo-1.0+mine-1/" in name and name.endswith("scores.json") for name in after - before)
    assert not any(f"+{DEFAULT_MODEL}/" in name for name in after - before)
    assert "sunalgo:mine-1" in status_out  # the rerun has its own row in the summary

    out = tmp_path / "report"
    printed = sunrise("report", "--out", str(out))
    assert f"{DEFAULT_MODEL}: 3 nights" in printed and "mine-1: 3 nights" in printed
    page = (out / "report.html").read_text()
    summary = json.loads((out / "report.json").read_text())
    assert summary["versions"] == [f"sunalgo-1.0+{DEFAULT_MODEL}", "sunalgo-1.0+mine-1"]
    assert f"<title>sunalgo vs PSG: {DEFAULT_MODEL}, mine-1</title>" in page
    assert "model store (mine-1.json)" in page and "trained on 2 nights" in page
    for version in summary["versions"]:
        figures = summary["summaries"][version]
        assert figures["n_nights"] == 3 and figures["accuracy_sw"] is not None
        assert [s["threshold"] for s in figures["severity"]] == [5.0, 15.0, 30.0]
        # each version's TST bias is printed in the side-by-side row
        assert f"<td>{figures['tst']['bias']:+.1f}</td>" in page.split("TST bias")[1].split("</tr>")[0]
    assert "Δ accuracy" in page and len(list(out.glob("*.png"))) == 2

    only = sunrise("report", "--out", str(tmp_path / "only"), "--algo-version", "mine-1")
    assert "mine-1: 3 nights" in only and DEFAULT_MODEL not in only

    # Bring your own sunalgo (issue 27): the second plug-in of the repository, scored on the same
    # nights by the same stage, compared in the same report, its rows beside the built-in's.
    with stack:
        sunrise("rerun", "sunalgo", "--all", "--algo-version", "activity-rule")
        wait_until(lambda: sum(1 for _, d in ctx.state.list("nights")
                               if d.get("stages", {}).get("sunalgo:activity-rule.default", {}).get("state") == "done")
                   == 3, 120, "the 3 nights scored with the activity-rule plug-in")
    both = sunrise("report", "--out", str(tmp_path / "both"), "--algo-version", "mine-1",
                   "--algo-version", "activity-rule-1.0+default")
    assert "mine-1: 3 nights" in both and "activity-rule:default: 3 nights" in both
    summary = json.loads((tmp_path / "both" / "report.json").read_text())
    assert summary["summaries"]["activity-rule-1.0+default"]["accuracy_sw"] is not None
    from sunrise_common import dataset as ds

    from sunrise_cli.dataset import open_dataset

    parts = open_dataset(ctx, tmp_path / "mirror").latest(ds.TRAINING_ROWS)
    assert {p.algo_version.rsplit("+", 1)[0] for p in parts} == {"sunalgo-1.0", "activity-rule-1.0"}


def test_backfill_by_rewriting_objects_replays_uploads_without_redoing_the_stages(tmp_path):
    settings, ctx, stack = start(tmp_path, router_watch_raw=True)
    upload_nights(ctx, tmp_path / "nights", 2, hours=1.0)
    with stack:
        wait_until(lambda: settled(ctx, 2), 120, "2 nights")
        before = {n: d["runs"] for n, d in ctx.state.list("nights")}
        summary = ops.send_all(ops.backfill_jobs(ctx, "", force=True, url=settings.ingest_url, token=None,
                                                 checkpoint=None, via="rewrite"), rate=None, max_in_flight=2)
        assert summary.sent == 6 and summary.failed == 0
        wait_until(lambda: all(len(d["runs"]["ingest"]) == 2 and all(r["state"] == "done" for r in d["runs"]["ingest"].values())
                               for _, d in ctx.state.list("uploads")) and settled(ctx, 2), 120, "the rewritten uploads ingested")
        after = {n: d["runs"] for n, d in ctx.state.list("nights")}
    assert after == before  # same bytes: no stage after ingest ran again


def test_sunrise_run_shows_progress_seeds_training_nights_and_announces_later_files(tmp_path):
    """`make run` as a subprocess: start-up and generation progress, the example night scored,
    extra nights with PSG labels seeded, then a file copied in later is announced with its
    outcome; Ctrl-C stops everything."""
    import os
    import signal
    import subprocess
    import sys

    from sunrise_cli.stack import settings_env

    settings = stack_settings(tmp_path, router_watch_raw=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNRISE_")} | settings_env(settings)
    env["COLUMNS"] = "80"  # what a pipe or a small terminal gets: long paths must still be whole
    proc = subprocess.Popen([sys.executable, "-m", "sunrise_cli.main", "run", "--hours", "1", "--seed-nights", "2",
                             "--seed-hours", "0.5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def said(pattern: str) -> bool:
        return any(pattern in line for line in lines)

    try:
        wait_until(lambda: said("watching ") or proc.poll() is not None, 300, "sunrise run to start watching")
        assert proc.poll() is None, "".join(lines)
        for service in ("ingest", "sunrise_prep", "psg_prep", "sunalgo", "router"):
            assert said(f"  {service} up after "), "".join(lines)
        assert said("generated in ") and said("uploaded raw/psg/demo-site/demo-001/")
        assert said("uploaded 2 more example nights with PSG labels")
        ctx = Context.from_settings(settings)
        wait_until(lambda: settled(ctx, 3), 120, "the example night and the 2 extra nights")
        wait_until(lambda: sum(said(f"file raw/labels/demo-site/demo-00{i}/") for i in (2, 3)) == 2, 30,
                   "the extra nights' files announced")
        raw = settings.data_dir / "buckets" / settings.bucket("raw") / "psg" / "late-site" / "S1"
        raw.mkdir(parents=True)
        (raw / "a-rather-long-file-name-that-would-be-wrapped-at-eighty-columns.edf").write_bytes(b"not an EDF")
        wait_until(lambda: said("file raw/psg/late-site/S1/a-rather-long-file-name-that-would-be-wrapped-at-eighty"
                                "-columns.edf (generation "), 60, "the late file announced")
        late = next(line for line in lines if "late-site" in line and line.startswith("file "))
        assert "rejected: not_edf" in late
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert said("stopping ..."), "".join(lines)
