"""End to end on the embedded default: real service processes, the router, a night pair."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from sunrise_devstack import status
from sunrise_cli.runner import upload_example
from tests.conftest import CORPUS
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.slow

PERSONAL = [b"Jane_Synthetic", b"12-MAR-1961", b"05-MAR-2024", b"05.03.24", b"05.03.2024", b"Tech_Smith", b"LAB-7",
            b"demo-001", b"demo-site", b"SunriseSim"]


def night_done(ctx):
    nights = list(ctx.state.list("nights"))
    return nights if nights and status.all_done(ctx.state) else None


def bucket_bytes(ctx, logical):
    bucket = ctx.settings.bucket(logical)
    for info in ctx.storage.list(bucket):
        yield info.name, ctx.storage.read_bytes(bucket, info.name)


def test_a_night_pair_flows_through_every_stage_and_leaves_no_personal_data(embedded_stack, tmp_path):
    stack, ctx = embedded_stack
    upload_example(ctx, tmp_path / "example", hours=1.0, seed=3)
    ((night_id, doc),) = wait_until(lambda: night_done(ctx), 120, "the night to be scored")
    for stage in ("ingest", "sunrise_prep", "psg_prep", "sunalgo"):
        assert doc["stages"][stage]["state"] == "done", (stage, doc["stages"][stage])
    assert doc["pairing"]["state"] == "paired" and doc["pairing"]["overlap_s"] > 0
    results = {name for name, _ in bucket_bytes(ctx, "results")}
    prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
    for required in ("features.csv", "predictions.csv", "scores.json", "training_rows.csv", "agreement.json", "_MANIFEST.json"):
        assert prefix + required in results, required
    scores = json.loads(ctx.storage.read_bytes(ctx.settings.bucket("results"), prefix + "scores.json"))
    assert scores["scores"]["TST"] > 0 and scores["psg_scores"]["TST"] > 0
    for logical in ("anonymised", "prepped", "results"):
        for name, data in bucket_bytes(ctx, logical):
            for needle in PERSONAL:
                assert needle not in data and needle.decode() not in name, (logical, name, needle)


def test_a_file_copied_into_the_raw_folder_is_processed(embedded_stack):
    stack, ctx = embedded_stack
    raw = ctx.settings.data_dir / "buckets" / ctx.settings.bucket("raw") / "psg" / "liege" / "P9"
    raw.mkdir(parents=True)
    shutil.copy(CORPUS / "edf" / "edfio__short_psg.edf", raw / "copied.edf")
    nights = wait_until(
        lambda: [d for _, d in ctx.state.list("nights") if d.get("stages", {}).get("psg_prep", {}).get("state") == "done"],
        60, "psg_prep of the copied file",
    )
    assert re.search(r"/psg-g[a-z2-7]{12}\.edf\Z", nights[0]["recordings"]["psg"]["object"])  # named by raw generation


def test_a_service_that_is_down_gets_its_events_later(embedded_stack, tmp_path):
    stack, ctx = embedded_stack
    stack.kill("sunalgo")
    upload_example(ctx, tmp_path / "example", hours=1.0, seed=4)
    wait_until(lambda: [d for _, d in ctx.state.list("nights")
                        if d.get("stages", {}).get("sunrise_prep", {}).get("state") == "done"], 60, "sunrise_prep")
    stack.start_service("sunalgo")
    stack.wait_healthy(services=["sunalgo"])
    ((night_id, doc),) = wait_until(lambda: night_done(ctx), 120, "the night to be scored after sunalgo came back")
    assert doc["stages"]["sunalgo"]["state"] == "done"


# -- the launcher: busy ports, another process's /healthz, slow clients (issue 13)


def test_a_busy_port_is_refused_before_any_process_starts(tmp_path):
    import socket

    from sunrise_cli.stack import PortBusy, Stack
    from tests.e2e.conftest import stack_settings

    settings = stack_settings(tmp_path)
    port = int(settings.ingest_url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as other:  # something else already listens on ingest's port
        other.bind(("127.0.0.1", port))
        other.listen()
        stack = Stack(settings, tmp_path / "logs")
        with pytest.raises(PortBusy, match=f"port {port}"):
            stack.start()
        assert stack.procs == {}  # nothing half-started, nothing left running


def test_a_healthz_answer_from_another_process_is_not_taken_for_ours(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sunrise_cli.stack import PortBusy, Stack
    from tests.e2e.conftest import stack_settings

    class OtherStack(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = json.dumps({"status": "ok", "service": "ingest", "instance": "someone-else"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OtherStack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = stack_settings(tmp_path, ingest_url=f"http://127.0.0.1:{server.server_address[1]}/")
        with pytest.raises(PortBusy, match="did not start"):
            Stack(settings, tmp_path / "logs").wait_healthy(timeout=30, services=["ingest"])
    finally:
        server.shutdown()
        server.server_close()


def test_each_service_answers_healthz_with_the_launchers_token(embedded_stack):
    import httpx

    stack, ctx = embedded_stack
    for service in ("ingest", "sunrise_prep", "psg_prep", "sunalgo"):
        body = httpx.get(ctx.settings.service_url(service) + "healthz", timeout=30).json()
        assert body == {"status": "ok", "service": service, "instance": stack.token}
        for path in ("docs", "openapi.json", "redoc"):
            assert httpx.get(ctx.settings.service_url(service) + path, timeout=30).status_code == 404


def test_a_client_that_never_finishes_its_headers_is_dropped(embedded_stack):
    """Slow-loris: the server closes the connection itself (recv returns b""), well before the
    generous limit this test waits; an honest request on another connection is answered meanwhile."""
    import socket
    from urllib.parse import urlparse

    import httpx

    stack, ctx = embedded_stack
    url = urlparse(ctx.settings.ingest_url)
    slow_header = socket.create_connection((url.hostname, url.port), timeout=120)
    slow_body = socket.create_connection((url.hostname, url.port), timeout=120)
    try:
        slow_header.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nce-specversion: 1.0\r\n")  # ... never the blank line
        slow_body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: 1000\r\n\r\n{\"a\":")  # ... never the rest of the body
        assert httpx.get(ctx.settings.ingest_url + "healthz", timeout=30).status_code == 200
        assert slow_header.recv(1024) == b""  # closed by the server (our own 120 s timeout would raise)
        assert slow_body.recv(1024) == b""
    finally:
        slow_header.close()
        slow_body.close()
