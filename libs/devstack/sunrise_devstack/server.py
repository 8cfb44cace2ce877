"""Run a service's ASGI app under uvicorn with timeouts that drop slow or idle clients.

uvicorn's keep-alive timeout only starts once a response has been sent, so a connection that
opens and never finishes its request headers (or its body) is held as long as the client likes
(slow-loris). :class:`BoundedH11Protocol` arms a timer when the connection opens and again after
every response: if the client has not finished sending its request by then, the connection is
closed. A request that arrived whole is never cut, however long the handler works (psg_prep on
an 8-hour night). In the cloud the Google front end buffers requests before Cloud Run sees them;
this is for the local stack and any deployment without such a proxy.

Run with ``python -m sunrise_devstack.server ingest.main:app --host 127.0.0.1 --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds a client has to send one whole request (headers and body, at most 1 MiB on loopback or
# a LAN: milliseconds when the client is honest).
REQUEST_TIMEOUT_S = 5.0
# Seconds an idle kept-alive connection stays open between requests.
KEEP_ALIVE_S = 5
# Largest request head (request line + headers) h11 buffers before answering 400.
MAX_HEAD_BYTES = 64 * 1024
# Connections served at once before uvicorn answers 503 (a flood cannot exhaust file descriptors).
MAX_CONNECTIONS = 256


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request."""

    request_timeout_s = REQUEST_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_request_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_request_timer()
        super().connection_lost(exc)

    def _arm_request_timer(self) -> None:
        self._disarm_request_timer()
        self._request_timer = self.loop.call_later(self.request_timeout_s, self._request_timed_out)

    def _disarm_request_timer(self) -> None:
        timer = getattr(self, "_request_timer", None)
        if timer is not None:
            timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        # IDLE: the request head has not arrived whole; SEND_BODY: its body has not. DONE means
        # the request is in and the app is working on it: never cut that.
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.logger.info("closing a connection that did not send its request within %.0f s", self.request_timeout_s)
            self.transport.close()


def config(app: str, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration every service runs with (access log off: one JSON line per
    event comes from the app)."""
    return uvicorn.Config(
        app, host=host, port=port, http=BoundedH11Protocol, timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES, limit_concurrency=MAX_CONNECTIONS,
        access_log=False, log_level="warning", server_header=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one Sunrise service with bounded client timeouts.")
    parser.add_argument("app", help="the ASGI app as module:attribute, e.g. ingest.main:app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port to bind (default 8080)")
    args = parser.parse_args(argv)
    from sunrise_devstack.faults import install
    from sunrise_devstack.settings import get_devstack_settings

    install(get_devstack_settings())  # the reliability suite's faults, when SUNRISE_FAULT_RATE > 0
    uvicorn.Server(config(args.app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
