"""The shared service app (sunrise_common.service): hostile requests get a 4xx (or a recorded 2xx)
that says what is wrong, never a 5xx; the body limit holds while reading; no API browser;
an unknown night is a permanent rejection; stale scratch folders are swept."""

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
from sunrise_common.service import clean_stale_scratch, create_app, scratch_dir
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
    # Bad Pub/Sub data is acknowledged with its reason (DESIGN.md: redelivery cannot help, and
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
