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


def _event_file(tmp_path, topic: str):
    from tests.conftest import REFERENCE_EVENTS

    doc = json.loads((REFERENCE_EVENTS / "pubsub-message-published.binary.json").read_text())
    doc["headers"]["ce-source"] = f"//pubsub.googleapis.com/projects/sunrise-local/topics/{topic}"
    path = tmp_path / f"{topic}.json"
    path.write_text(json.dumps(doc))
    return path


def test_replay_of_an_event_from_a_topic_no_trigger_listens_on_is_a_one_line_error():
    from tests.conftest import REFERENCE_EVENTS

    result = run("replay", str(REFERENCE_EVENTS / "pubsub-message-published.binary.json"), "--curl")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "no trigger listens on topic 'gcf-test'" in lines[0] and "--to SERVICE" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("topic, port", [("sunrise-cli-sunrise-prepped", 8084), ("psg-anonymised", 8083)])
def test_replay_routes_a_pubsub_event_by_its_topic(tmp_path, topic, port):
    result = run("replay", str(_event_file(tmp_path, topic)), "--curl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"curl -sS -X POST http://127.0.0.1:{port}/")


def test_replay_of_a_file_that_is_not_an_event_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("[1, 2]")
    result = run("replay", str(path))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "expected a JSON object" in result.output


def test_train_with_too_few_nights_says_how_many_it_needs_and_how_to_make_more():
    result = run("train", "--version", "mine-1")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "at least 2 nights with PSG labels" in result.output and "found 0" in result.output
    assert "sunrise synth data/synth --nights" in result.output and "--upload" in result.output


def test_synth_upload_puts_each_night_in_the_raw_bucket(tmp_path, embedded_env):
    result = run("synth", str(tmp_path / "synth"), "--nights", "2", "--hours", "0.5", "--upload")
    assert result.exit_code == 0, result.output
    raw = embedded_env / "buckets" / "sunrise-cli-raw"
    for i in range(2):
        subject = raw / "sunrise" / "synth" / f"synth-0-{i:03d}"
        assert len(list(subject.glob("*.edf"))) == 1
        assert len(list((raw / "psg" / "synth" / f"synth-0-{i:03d}").glob("*.edf"))) == 1
        assert list((raw / "labels" / "synth" / f"synth-0-{i:03d}").iterdir())


HEAVY = ("fastapi", "numpy", "httpx", "matplotlib", "sklearn", "cloudevents", "scipy", "edfio")


@pytest.mark.parametrize("args", [["--help"], ["status"], ["status", "--json"]])
def test_help_and_status_import_none_of_the_heavy_libraries(args, embedded_env):
    """What makes `sunrise status` cost seconds of CPU: the science and web stacks. (The CPU
    time itself is measured by benchmarks/run.py, not asserted here.)"""
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from sunrise_cli.main import app; "
            f"r = CliRunner().invoke(app, {args!r}); "
            f"print(r.exit_code, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []", out


def test_backfill_prints_a_sentence_not_a_dict():
    run("upload", str(PSG), "--kind", "psg", "--site", "namur", "--subject", "P1")
    # nothing listens on the default ingest URL here: the send fails, and says so per object
    result = run("backfill", "--url", "http://127.0.0.1:9/")
    assert result.exit_code == 1
    assert "0 event(s) sent to ingest, 0 skipped (already done), 1 failed" in result.output
    assert f"failed psg/namur/P1/{PSG.name}: ConnectError" in result.output
    assert '"sent"' not in result.output
