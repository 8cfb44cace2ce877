"""The shared service app (sunrise_common.service): hostile requests get a 4xx (or a recorded 2xx)
that says what is wrong, never a 5xx; the body limit holds while reading; no API browser;
an unknown night is a permanent rejection; stale scratch folders are swept; every error class is
answered with its own status code; the stage runner (run_stage) on the SQLite state: done runs,
duplicates, permanent and transient failures, held and lost leases, new inputs; MemoryError and
RecursionError from an input (bombs) are permanent failures with a reason, never retried."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
from fastapi.testclient import TestClient

from sunrise_common import service as service_mod
from sunrise_common.events import MAX_BODY_BYTES, pubsub_event, storage_event
from sunrise_common.names import PUBSUB_PUBLISHED, STORAGE_FINALIZED
from sunrise_common.errors import Busy, LeaseLost, PermanentError, PreconditionFailed, TransientError
from sunrise_common.service import Context, clean_stale_scratch, create_app, run_stage, scratch_dir
from sunrise_common.settings import Settings
from tests.conftest import TEST_KEY


@pytest.fixture
def settings(tmp_path):
    return Settings(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY, prefix="sunrise-svc",
                    project="sunrise-svc", instance_token="tok-123")


@pytest.fixture
def sunalgo_client(settings):
    from sunalgo.handler import handle

    with TestClient(create_app("sunalgo", handle, settings=settings)) as client:
        yield client


def structured(envelope: dict) -> tuple[dict, bytes]:
    return {"content-type": "application/cloudevents+json"}, json.dumps(envelope).encode()


def storage_envelope(**attrs) -> dict:
    return {"specversion": "1.0", "id": "e1", "source": "//storage.googleapis.com/projects/_/buckets/b",
            "type": STORAGE_FINALIZED, "data": {"bucket": "b", "name": "psg/s/x/f.edf", "generation": "1"}, **attrs}


def test_json_nested_a_thousand_levels_deep_is_a_400(sunalgo_client):
    deep = "[" * 5000 + "]" * 5000
    body = ('{"specversion": "1.0", "id": "e", "source": "s", "type": "%s", "data": %s}' % (STORAGE_FINALIZED, deep)).encode()
    resp = sunalgo_client.post("/", headers={"content-type": "application/cloudevents+json"}, content=body)
    assert resp.status_code == 400, resp.text
    assert "nested too deeply" in resp.json()["detail"]
    # the same depth in binary mode's body
    headers, _ = storage_event("b", "psg/s/x/f.edf", 1, 1)
    resp = sunalgo_client.post("/", headers=headers, content=deep.encode())
    assert resp.status_code == 400, resp.text


@pytest.mark.parametrize("attrs, named", [({"time": 12345}, "time"), ({"subject": ["x"]}, "subject"),
                                          ({"subject": {"a": 1}}, "subject")])
def test_non_string_attributes_in_structured_mode_are_a_400_naming_them(sunalgo_client, attrs, named):
    headers, body = structured(storage_envelope(**attrs))
    resp = sunalgo_client.post("/", headers=headers, content=body)
    assert resp.status_code == 400, resp.text
    assert named in resp.json()["detail"]


def test_a_huge_integer_in_the_event_data_is_a_400(sunalgo_client):
    headers, _ = storage_event("b", "psg/s/x/f.edf", 1, 1)
    body = b'{"bucket": "b", "name": "psg/s/x/f.edf", "generation": ' + b"7" * 5000 + b"}"
    resp = sunalgo_client.post("/", headers=headers, content=body)
    assert resp.status_code == 400, resp.text
    assert len(resp.text) < 1000  # says what is wrong without echoing the number back


@pytest.mark.parametrize("service", ["sunrise_prep", "psg_prep", "sunalgo"])
def test_a_huge_integer_in_pubsub_data_is_rejected_with_its_reason_not_a_5xx(settings, service):
    from importlib import import_module

    handle = import_module(f"{service}.handler").handle
    data = b'{"night_id": "s' + b"a" * 12 + b'-n' + b"b" * 8 + b'", "generation": ' + b"9" * 5000 + b"}"
    headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), data)
    with TestClient(create_app(service, handle, settings=settings)) as client:
        resp = client.post("/", headers=headers, content=json.dumps(body).encode())
    # Bad Pub/Sub data is acknowledged with its reason (docs/architecture.md: redelivery cannot help, and
    # Eventarc retries every non-2xx for 24 h).
    assert resp.status_code == 200, resp.text
    assert resp.json()["reason"] == "bad_pubsub_data"


def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(sunalgo_client):
    headers, _ = storage_event("b", "psg/s/x/f.edf", 1, 1)
    chunks_sent = {"n": 0}

    def twenty_megabytes():  # no Content-Length: chunked, so only counting while reading can refuse it
        for _ in range(20 * 16):
            chunks_sent["n"] += 1
            yield b" " * 65536

    resp = sunalgo_client.post("/", headers=headers, content=twenty_megabytes())
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "body_too_large"
    declared = dict(headers, **{"content-length": str(20 << 20)})
    resp = sunalgo_client.post("/", headers=declared, content=b"{}")
    assert resp.status_code == 400 and resp.json()["error"] == "body_too_large"
    resp = sunalgo_client.post("/", headers=headers, content=b" " * (MAX_BODY_BYTES + 1))
    assert resp.status_code == 400 and resp.json()["error"] == "body_too_large"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_api_browser_or_schema_is_served(sunalgo_client, path):
    assert sunalgo_client.get(path).status_code == 404


def test_healthz_echoes_the_launchers_token(sunalgo_client):
    assert sunalgo_client.get("/healthz").json() == {"status": "ok", "service": "sunalgo", "instance": "tok-123"}


@pytest.mark.parametrize("service", ["sunrise_prep", "psg_prep", "sunalgo"])
def test_an_event_for_a_night_that_does_not_exist_is_recorded_and_answered_2xx(settings, service, capfd):
    from importlib import import_module

    handle = import_module(f"{service}.handler").handle
    night = "s" + "a" * 12 + "-n" + "b" * 8
    payload = {"night_id": night, "kind": "sunrise", "prefix": f"nights/{night}/sunrise/k/", "input_key": "k"}
    headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), json.dumps(payload).encode())
    with TestClient(create_app(service, handle, settings=settings)) as client:
        resp = client.post("/", headers=headers, content=json.dumps(body).encode())
    assert resp.status_code == 200, resp.text
    assert resp.json()["reason"] == "night_not_found"
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(e["severity"] == "WARNING" and "night_not_found" in e["message"] and night in e["message"]
               for e in logged)  # the rejection is recorded in the service's log
    assert headers["ce-type"] == PUBSUB_PUBLISHED


def test_stale_scratch_folders_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    orphan = tmp_path / f"sunrise-{dead_pid}-abcdefgh"
    live = tmp_path / f"sunrise-{os.getpid()}-ijklmnop"
    old_live = tmp_path / f"sunrise-{os.getpid()}-qrstuvwx"
    legacy_young = tmp_path / "sunrise-yz012345"
    not_ours = tmp_path / "sunrise-benchmarks"
    for folder in (orphan, live, old_live, legacy_young, not_ours):
        folder.mkdir()
        (folder / "psg.edf").write_bytes(b"anonymised signals")
    hour_ago = time.time() - 2 * service_mod.SCRATCH_MAX_AGE_S
    os.utime(old_live, (hour_ago, hour_ago))
    os.utime(not_ours, (hour_ago, hour_ago))
    removed = clean_stale_scratch(tmp_path)
    assert sorted(p.name for p in removed) == sorted([orphan.name, old_live.name])
    assert not orphan.exists() and not old_live.exists()
    assert live.exists() and legacy_young.exists() and not_ours.exists()


def test_scratch_folders_carry_their_process_id():
    with scratch_dir() as tmp:
        assert os.path.basename(tmp).startswith(f"sunrise-{os.getpid()}-")
        assert os.path.dirname(tmp) == tempfile.gettempdir()


def test_a_service_start_sweeps_scratch_left_by_a_killed_process(settings):
    """A process makes a scratch folder and is SIGKILLed; the next service start removes it."""
    from sunalgo.handler import handle

    code = ("import os, sys; from sunrise_common.service import scratch_dir; d = scratch_dir(); "
            "open(os.path.join(d.name, 'psg.edf'), 'wb').write(b'x'); print(d.name, flush=True); "
            "os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    left = proc.stdout.strip()
    assert left and os.path.isdir(left), proc.stderr
    with TestClient(create_app("sunalgo", handle, settings=settings)):
        assert not os.path.exists(left)


def test_a_service_start_removes_stale_half_written_objects(settings):
    from sunalgo.handler import handle
    from sunrise_common.storage.local import LocalStorage

    staging = LocalStorage(settings.data_dir / "buckets").tmp
    staging.mkdir(parents=True)
    stale, fresh = staging / "stale", staging / "fresh"
    stale.write_bytes(b"half an anonymised PSG")
    fresh.write_bytes(b"a write in progress")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    with TestClient(create_app("sunalgo", handle, settings=settings)):
        assert not stale.exists() and fresh.exists()


def test_pubsub_data_that_is_not_base64_or_json_is_rejected_with_its_reason(sunalgo_client, settings):
    for data in (b"\xff\xfe", b"[" * 3000, b"1" * 5000):
        headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), data)
        resp = sunalgo_client.post("/", headers=headers, content=json.dumps(body).encode())
        assert resp.status_code == 200 and resp.json()["reason"] == "bad_pubsub_data", (data[:10], resp.text)
    headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), b"{}")
    body["message"]["data"] = base64.b64encode(b"x").decode() + "!!"
    resp = sunalgo_client.post("/", headers=headers, content=json.dumps(body).encode())
    assert resp.status_code == 200 and resp.json()["reason"] == "bad_pubsub_data"


# --------------------------------------------------------------------------- errors -> HTTP

def _error_classes():
    from psg_prep.errors import PrepError
    from sunrise_common import errors
    from sunrise_common.edf import EdfError
    from sunrise_common.labels import LabelError

    tree = [errors.PipelineError, errors.PermanentError, errors.TransientError, errors.BadEvent, errors.Busy,
            errors.LeaseLost, errors.BadPayload, errors.NotFound, errors.PreconditionFailed]
    return tree + [EdfError, LabelError, PrepError]


def raising_app(settings, exc: BaseException) -> TestClient:
    def handle(event, ctx):
        raise exc

    return TestClient(create_app("sunalgo", handle, settings=settings))


def post_any_event(client, settings):
    headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), b"{}")
    return client.post("/", headers=headers, content=json.dumps(body).encode())


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_is_answered_with_its_own_status_code_and_reason(settings, cls):
    with raising_app(settings, cls("some_reason", "what was wrong")) as client:
        resp = post_any_event(client, settings)
    assert resp.status_code == cls.status_code, resp.text
    body = resp.json()
    assert body.get("reason", body.get("error")) == "some_reason" and body["detail"] == "what was wrong"


def test_the_status_codes_give_the_retry_behaviour_the_platform_needs():
    """Pub/Sub push (Eventarc) acknowledges only 102/200/201/202/204 and retries everything else."""
    from sunrise_common import errors

    acknowledged = {102, 200, 201, 202, 204}
    assert errors.PermanentError.status_code in acknowledged  # bad input: never retried
    for retried in (errors.TransientError, errors.Busy, errors.LeaseLost, errors.PreconditionFailed,
                    errors.PipelineError):
        assert retried.status_code not in acknowledged, retried
    # A lost conditional write is a conflict (409), not a broken dependency: the 5xx alert ignores it.
    assert errors.PreconditionFailed.status_code == 409
    assert errors.TransientError.status_code >= 500 and errors.Busy.status_code == 429


def test_an_unexpected_exception_is_a_500_that_names_its_type(settings):
    with raising_app(settings, KeyError("x")) as client:
        resp = post_any_event(client, settings)
    assert resp.status_code == 500 and resp.json() == {"status": "error", "detail": "KeyError: 'x'"}


# --------------------------------------------------------------------------- run_stage

@pytest.fixture
def stage_ctx(settings) -> Context:
    """A context on the embedded backend: the SQLite state and local folders."""
    return Context.from_settings(settings)


class Work:
    """A stage's work that counts its calls and does what it is told."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome() if callable(outcome) else outcome


N = "s" + "a" * 12 + "-n" + "b" * 8


def test_run_stage_records_a_done_run_and_answers_its_duplicate_without_working(stage_ctx):
    work = Work({"outputs": {"prefix": "p/"}, "metrics": {"bytes": 3}, "summary": {"n": 1}})
    first = run_stage(stage_ctx, "nights", N, "sunalgo", "k1", work)
    assert first["status"] == "done" and first["outputs"] == {"prefix": "p/"} and first["summary"] == {"n": 1}
    assert first["metrics"]["bytes"] == 3 and "wall_s" in first["metrics"] and "cpu_s" in first["metrics"]
    doc = stage_ctx.state.get("nights", N)
    assert doc["runs"]["sunalgo"]["k1"]["state"] == "done" and doc["stages"]["sunalgo"]["input_key"] == "k1"
    assert doc["history"][-1]["state"] == "done"
    again = run_stage(stage_ctx, "nights", N, "sunalgo", "k1", work)
    assert again == {"status": "duplicate", "input_key": "k1", "outputs": {"prefix": "p/"}} and work.calls == 1


def test_run_stage_records_a_permanent_failure_once_and_rejects_its_redelivery(stage_ctx):
    work = Work(PermanentError("bad_file", "truncated"))
    with pytest.raises(PermanentError):
        run_stage(stage_ctx, "nights", N, "psg_prep", "k1", work)
    run = stage_ctx.state.get("nights", N)["runs"]["psg_prep"]["k1"]
    assert run["state"] == "failed" and run["permanent"] and run["error"] == "bad_file: truncated"
    again = run_stage(stage_ctx, "nights", N, "psg_prep", "k1", work)
    assert again["status"] == "rejected" and again["duplicate"] and work.calls == 1


@pytest.mark.parametrize("transient", [TransientError("storage_down", "503 from storage"),
                                       PreconditionFailed("object_exists", "b/x"), OSError("disk")],
                         ids=["TransientError", "PreconditionFailed", "unexpected"])
def test_run_stage_records_a_transient_failure_as_retrying_and_the_retry_works_again(stage_ctx, transient):
    work = Work(transient, {"outputs": {"ok": True}})
    with pytest.raises(type(transient)):
        run_stage(stage_ctx, "nights", N, "sunrise_prep", "k1", work)
    run = stage_ctx.state.get("nights", N)["runs"]["sunrise_prep"]["k1"]
    assert run["state"] == "retrying" and not run["permanent"] and run["error"].startswith("transient: ")
    done = run_stage(stage_ctx, "nights", N, "sunrise_prep", "k1", work)
    assert done["status"] == "done" and work.calls == 2
    assert stage_ctx.state.get("nights", N)["runs"]["sunrise_prep"]["k1"]["attempts"] == 2


def test_run_stage_answers_busy_while_another_delivery_holds_the_lease(stage_ctx):
    stage_ctx.runs.claim("nights", N, "sunalgo", "k1")  # another delivery is working on it
    work = Work({"outputs": {}})
    with pytest.raises(Busy) as raised:
        run_stage(stage_ctx, "nights", N, "sunalgo", "k1", work)
    assert raised.value.status_code == 429 and work.calls == 0


def test_run_stage_drops_the_result_of_an_attempt_that_was_taken_over(stage_ctx):
    def taken_over():
        # This worker stalls; its lease runs out and a redelivery takes the run over.
        stage_ctx.state.transact("nights", N, lambda d: {**d, "runs": {"sunalgo": {"k1": {
            **d["runs"]["sunalgo"]["k1"], "lease_expires": 0}}}})
        assert stage_ctx.runs.claim("nights", N, "sunalgo", "k1").run["attempts"] == 2
        return {"outputs": {"from": "the stalled attempt"}}

    with pytest.raises(LeaseLost):
        run_stage(stage_ctx, "nights", N, "sunalgo", "k1", Work(taken_over))
    run = stage_ctx.state.get("nights", N)["runs"]["sunalgo"]["k1"]
    assert run["state"] == "running" and run["attempts"] == 2 and "outputs" not in run


def test_run_stage_works_again_for_a_new_input_key_and_the_stage_follows_it(stage_ctx):
    """A newer upload (a superseding input) has a new input key: new work, the old run kept."""
    work = Work({"outputs": {"v": 1}}, {"outputs": {"v": 2}})
    run_stage(stage_ctx, "nights", N, "sunrise_prep", "k-old", work)
    assert run_stage(stage_ctx, "nights", N, "sunrise_prep", "k-new", work)["status"] == "done"
    doc = stage_ctx.state.get("nights", N)
    assert set(doc["runs"]["sunrise_prep"]) == {"k-old", "k-new"} and work.calls == 2
    assert doc["stages"]["sunrise_prep"]["input_key"] == "k-new" and doc["stages"]["sunrise_prep"]["outputs"] == {"v": 2}


def test_a_stage_run_failing_permanently_is_answered_2xx_and_transiently_503_through_the_app(settings):
    outcomes = {"permanent": PermanentError("bad_file", "x"), "transient": TransientError("down", "y")}

    def handle(event, ctx):
        which = event.payload()["which"]
        return run_stage(ctx, "nights", N, "sunalgo", which, Work(outcomes[which]))

    with TestClient(create_app("sunalgo", handle, settings=settings)) as client:
        for which, status in (("permanent", 200), ("transient", 503)):
            headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), json.dumps({"which": which}).encode())
            resp = client.post("/", headers=headers, content=json.dumps(body).encode())
            assert resp.status_code == status, resp.text
            assert resp.json()["reason"] == outcomes[which].reason


# --------------------------------------------------------------------------- bombs

def memory_bomb():
    """What a header claiming 10^13 samples does to a reader: numpy cannot allocate the array."""
    import numpy as np

    return np.empty(10**13, dtype=np.int16)


def recursion_bomb():
    """What an input nested 200,000 deep does to a recursive parser (the json module's here)."""
    return json.loads("[" * 200_000 + "]" * 200_000)


@pytest.mark.parametrize("bomb, reason", [(memory_bomb, "input_too_large"), (recursion_bomb, "input_too_deep")],
                         ids=["MemoryError", "RecursionError"])
def test_run_stage_records_a_bomb_as_a_permanent_failure_with_a_reason_and_never_retries_it(stage_ctx, bomb, reason):
    calls = []

    def work():
        calls.append(1)
        bomb()

    with pytest.raises(PermanentError) as raised:
        run_stage(stage_ctx, "nights", N, "psg_prep", "k1", work)
    assert raised.value.reason == reason and raised.value.status_code == 200
    assert "TiB" not in raised.value.detail and "[" not in raised.value.detail  # nothing the input decided
    run = stage_ctx.state.get("nights", N)["runs"]["psg_prep"]["k1"]
    assert run["state"] == "failed" and run["permanent"] and run["error"].startswith(reason + ": ")
    again = run_stage(stage_ctx, "nights", N, "psg_prep", "k1", work)
    assert again["status"] == "rejected" and again["reason"].startswith(reason) and len(calls) == 1


@pytest.mark.parametrize("bomb, reason", [(memory_bomb, "input_too_large"), (recursion_bomb, "input_too_deep")],
                         ids=["MemoryError", "RecursionError"])
def test_a_bomb_is_answered_2xx_with_its_reason_inside_and_outside_the_stage_runner(settings, bomb, reason):
    def handle(event, ctx):
        if event.payload()["where"] == "runner":
            return run_stage(ctx, "nights", N, "sunalgo", "k1", bomb)
        return bomb()  # a handler parsing its input before it claims a run

    with TestClient(create_app("sunalgo", handle, settings=settings)) as client:
        for where in ("runner", "handler"):
            headers, body = pubsub_event("p", settings.topic("sunrise-prepped"), json.dumps({"where": where}).encode())
            resp = client.post("/", headers=headers, content=json.dumps(body).encode())
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "rejected" and resp.json()["reason"] == reason


def test_ingest_lets_a_bomb_reach_the_stage_runner_instead_of_calling_it_transient():
    from ingest.handler import _private

    with pytest.raises(RecursionError):
        _private("psg/site/P001/night.edf", recursion_bomb)
    with pytest.raises(MemoryError):
        _private("psg/site/P001/night.edf", memory_bomb)
