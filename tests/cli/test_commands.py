"""The sunrise command, as a person types it (typer's runner, embedded backend in a temp folder)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sunrise_cli.main import app
from tests.conftest import CORPUS, TEST_KEY

runner = CliRunner()
PSG = CORPUS / "edf" / "edfio__short_psg.edf"


@pytest.fixture(autouse=True)
def embedded_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SUNRISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SUNRISE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("SUNRISE_PREFIX", "sunrise-cli")
    return tmp_path / "data"


def run(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_upload_puts_the_file_at_its_contract_name(embedded_env):
    result = run("upload", str(PSG), "--kind", "psg", "--site", "namur", "--subject", "P1")
    assert result.exit_code == 0, result.output
    assert (embedded_env / "buckets" / "sunrise-cli-raw" / "psg" / "namur" / "P1" / PSG.name).read_bytes() == PSG.read_bytes()


def test_upload_refuses_an_unknown_kind():
    result = run("upload", str(PSG), "--kind", "video", "--site", "namur", "--subject", "P1")
    assert result.exit_code != 0
    assert "sunrise, psg, labels" in result.output


def test_replay_prints_the_curl_eventarc_would_send():
    run("upload", str(PSG), "--kind", "psg", "--site", "namur", "--subject", "P1")
    result = run("replay", "--object", f"psg/namur/P1/{PSG.name}", "--curl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("curl -sS -X POST http://127.0.0.1:8081/")
    assert "ce-type: google.cloud.storage.object.v1.finalized" in result.output
    assert '\\"bucket\\": \\"sunrise-cli-raw\\"' in result.output or '"bucket": "sunrise-cli-raw"' in result.output


def test_replay_reads_the_reference_event_files():
    from tests.conftest import REFERENCE_EVENTS

    result = run("replay", str(REFERENCE_EVENTS / "pubsub-message-published.binary.json"), "--to", "sunalgo", "--curl")
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8084/" in result.output and "Authorization" not in result.output


def test_status_json_on_an_empty_stack():
    result = run("status", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["nights"] == 0 and summary["stages"]["sunalgo"] == {}


def test_status_of_an_unknown_upload_says_so():
    result = run("status", "--upload", "psg/namur/P1/none.edf", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["found"] is False


def test_backfill_dry_run_lists_what_it_would_send():
    run("upload", str(PSG), "--kind", "psg", "--site", "namur", "--subject", "P1")
    result = run("backfill", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"send psg/namur/P1/{PSG.name}" in result.output
    assert "1 to send, 0 to skip" in result.output


def test_dlq_list_is_empty_without_dead_letters():
    result = run("dlq", "list", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_synth_writes_a_night_pair(tmp_path):
    result = run("synth", str(tmp_path / "synth"), "--nights", "1", "--hours", "1", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "synth").rglob("*.edf"))) == 2


def test_rerun_needs_a_choice_of_nights():
    result = run("rerun", "sunalgo")
    assert result.exit_code != 0
    assert "--nights" in result.output


def test_backfill_accepts_a_bucket_prefix_form():
    run("upload", str(PSG), "--kind", "psg", "--site", "namur", "--subject", "P1")
    result = run("backfill", "gs://sunrise-cli-raw/psg/namur/", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "1 to send" in result.output
    assert run("backfill", "gs://elsewhere/psg/", "--dry-run").exit_code != 0
