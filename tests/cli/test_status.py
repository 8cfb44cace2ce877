"""`sunrise status` as an operator reads it: real ingest (its FastAPI app) on the embedded backend,
real EDF files, the CLI through typer's runner."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sunrise_devstack import status as status_lib
from sunrise_common.events import storage_event
from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_cli import views
from sunrise_cli.main import app
from tests.conftest import CORPUS, TEST_KEY, app_client

PSG = CORPUS / "edf" / "edfio__short_psg.edf"
EPOCH_TIME = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")  # a Unix time printed as a number
runner = CliRunner()


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SUNRISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SUNRISE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("SUNRISE_PREFIX", "sunrise-cli")
    return DevStackSettings()


@pytest.fixture
def ctx(settings):
    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))
    return ctx


@pytest.fixture
def ingest(settings):
    with app_client("ingest", settings) as client:
        yield client


def deliver(ingest, info):
    headers, body = storage_event(info.bucket, info.name, info.generation, info.size)
    resp = ingest.post("/", headers=headers, content=json.dumps(body))
    if resp.status_code >= 300:
        raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text}")
    return resp.json()


def put(ctx, name, data):
    bucket = ctx.settings.bucket("raw")
    if isinstance(data, bytes):
        return ctx.storage.write_bytes(bucket, name, data, if_generation_match=None)
    return ctx.storage.upload_file(bucket, name, data, if_generation_match=None)


def status(*args):
    result = runner.invoke(app, ["status", *args])
    return result


def test_a_stale_event_for_an_old_generation_does_not_mark_the_current_upload_failed(ctx, ingest):
    first = put(ctx, "psg/namur/P1/night.edf", PSG)
    second = put(ctx, "psg/namur/P1/night.edf", PSG)  # replaced before its first event arrived
    assert second.generation > first.generation
    assert deliver(ingest, second)["status"] == "done"
    # The first generation's event arrives late (delivery is unordered): its bytes are gone.
    stale = deliver(ingest, first)
    assert stale["status"] == "rejected" and "object_gone" in json.dumps(stale)
    summary = status_lib.summarize(ctx.state)
    assert summary["uploads"] == {"done": 1}
    assert summary["rejected_uploads"] == []
    result = status("--upload", "psg/namur/P1/night.edf")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert f"generation {second.generation} (newest, in the bucket now): ingested" in lines[0]
    assert "object_gone" in result.output  # the old generation's story is still told, below


def test_a_failed_upload_is_named_from_the_raw_bucket_and_the_name_is_not_stored(ctx, ingest, settings):
    bad = put(ctx, "psg/namur/P7/bad-night.edf", b"this is not an EDF file")
    assert deliver(ingest, bad)["status"] == "rejected"
    result = status()
    assert result.exit_code == 0, result.output
    assert "raw/psg/namur/P7/bad-night.edf" in result.output
    assert "not_edf" in result.output
    stored = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*")
                      if p.is_file() and "buckets" not in p.parts)
    assert b"bad-night" not in stored and b"P7" not in stored


def test_the_ingest_row_counts_uploads_like_the_header(ctx, ingest):
    deliver(ingest, put(ctx, "psg/namur/P1/night.edf", PSG))
    deliver(ingest, put(ctx, "psg/namur/P2/bad.edf", b"nope"))
    summary = status_lib.summarize(ctx.state)
    assert summary["stages"]["ingest"] == summary["uploads"] == {"done": 1, "failed": 1}
    out = status().output
    assert "uploads: 1 done, 1 failed" in out
    assert re.search(r"ingest \(files\)\s.*\b1\b.*\b1\b", out)


def test_a_night_without_its_sunrise_half_is_waiting_for_partner_with_its_age(ctx, ingest):
    night = deliver(ingest, put(ctx, "psg/namur/P1/night.edf", PSG))["night_id"]
    summary = status_lib.summarize(ctx.state)
    assert summary["stages"]["sunalgo"] == {"waiting": 1}
    assert summary["stages"]["sunrise_prep"] == {"waiting": 1}
    out = status().output
    assert re.search(rf"night {night}: has psg, waiting for partner \(its Sunrise recording\) for \d+ s", out)
    assert re.search(r"sunalgo\s+│\s+0\s+│\s+1\s+│", out), out  # pending 0, waiting 1


def test_one_night_prints_times_and_states_not_dicts_epochs_or_none(ctx, ingest):
    night = deliver(ingest, put(ctx, "psg/namur/P1/night.edf", PSG))["night_id"]
    ctx.runs.claim("nights", night, "psg_prep", "k1")  # started, never finished: no duration yet
    result = status(night)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "UTC" in out and "waiting for partner (its Sunrise recording)" in out
    assert not EPOCH_TIME.search(out), out
    assert "None" not in out and "{'" not in out and "duration=" not in out
    rows = [line.split()[0] for line in out.splitlines() if "│" in line]
    assert rows == ["ingest", "sunrise_prep", "psg_prep", "sunalgo"]  # pipeline order


def test_reruns_with_another_model_get_their_own_row_and_stage_names_are_never_cut(ctx, ingest):
    night = deliver(ingest, put(ctx, "psg/namur/P1/night.edf", PSG))["night_id"]
    claim = ctx.runs.claim("nights", night, "sunalgo:mine-long-version-name-1", "k1")
    ctx.runs.complete("nights", night, "sunalgo:mine-long-version-name-1", "k1", attempt=claim.run["attempts"])
    summary = status_lib.summarize(ctx.state)
    assert summary["stages"]["sunalgo:mine-long-version-name-1"] == {"done": 1}
    buf = io.StringIO()
    views.print_summary(Console(file=buf, width=60), summary)
    assert "sunalgo:mine-long-version-name-1" in buf.getvalue()
    assert "…" not in buf.getvalue()


def test_json_status_keeps_every_field_for_scripts(ctx, ingest):
    deliver(ingest, put(ctx, "psg/namur/P1/night.edf", PSG))
    summary = json.loads(status("--json").output)
    assert summary["nights"] == 1 and summary["waiting_for_partner"][0]["waiting_for"] == "sunrise"


def test_all_done_waits_for_nights_just_uploaded_not_only_for_the_nights_that_exist(tmp_path):
    # `sunrise run --exit-when-done` seeds nights and waits: right after the upload only the
    # example night has a document, and it is settled; that is not "done" for three nights.
    from sunrise_common.state.sqlite import SqliteState

    state = SqliteState(tmp_path / "state.db")
    settled = {"stages": {"sunrise_prep": {"state": "done", "input_key": "a"},
                          "sunalgo": {"state": "done", "outputs": {"sunrise_input": "a"}}}}
    assert not status_lib.all_done(state)  # no night at all is not done
    state.set("nights", "n1", settled)
    assert status_lib.all_done(state)
    assert not status_lib.all_done(state, min_nights=3)
    state.set("nights", "n2", settled)
    state.set("nights", "n3", {"stages": {"sunrise_prep": {"state": "running"}}})
    assert not status_lib.all_done(state, min_nights=3)
    state.set("nights", "n3", settled)
    assert status_lib.all_done(state, min_nights=3)
