"""Fixtures of the dev-stack tests: embedded settings in a temporary folder, the router's
queue file there, and a real HTTP server on 127.0.0.1 standing in for a service that answers
with a chosen status."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sunrise_devstack.settings import DevStackSettings
from sunrise_devstack.router.queue import Queue
from tests.conftest import TEST_KEY


@pytest.fixture
def settings(tmp_path):
    return DevStackSettings(backend="embedded", data_dir=tmp_path, pseudonym_key=TEST_KEY, prefix="sunrise-q",
                    project="sunrise-q")


@pytest.fixture
def queue(settings):
    return Queue(settings.data_dir / "router.db")


class _Service(BaseHTTPRequestHandler):
    status = 204
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


@pytest.fixture
def service():
    handler = type("Service", (_Service,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
