"""The whole pipeline in one process: real apps (TestClient), the embedded backends and the local
router's own queue (``router.db``), delivered one event at a time until nothing is left.

For tests that need real pipeline outputs (results, the gold layer) without starting processes.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from sunrise_common import names
from sunrise_common.events import pubsub_event
from sunrise_devstack.router.queue import Queue
from sunrise_devstack.settings import DevStackSettings
from sunrise_common.service import Context
from sunrise_cli import ops
from sunrise_cli.synth import SynthNight, synth_night
from tests.conftest import app_client


def post_message(settings, service: str, topic: str, message: dict) -> dict:
    """Push ``message`` to ``service`` as Pub/Sub delivers a message of ``topic``; its 200 answer."""
    headers, body = pubsub_event(settings.project, settings.topic(topic), json.dumps(message).encode())
    with app_client(service, settings) as client:
        resp = client.post("/", headers=headers, content=json.dumps(body))
    assert resp.status_code == 200, resp.text
    return resp.json()


def published(settings, topic: str) -> list[dict]:
    """The data of every message published on ``topic`` in the embedded queue, oldest first."""
    with sqlite3.connect(settings.data_dir / "router.db") as con:
        rows = con.execute("SELECT data FROM messages WHERE topic=? ORDER BY id", (settings.topic(topic),)).fetchall()
    return [json.loads(data) for (data,) in rows]


class Pipeline:
    """The four services in-process on ``ctx``'s embedded backend."""

    def __init__(self, ctx: Context) -> None:
        self.ctx, self.settings = ctx, ctx.settings
        # The services read ctx's settings; the router's queue, the dev stack's (same values).
        self.router_settings = DevStackSettings.model_validate(ctx.settings.model_dump())
        for logical in names.BUCKETS:
            ctx.storage.ensure_bucket(self.settings.bucket(logical))
        self.queue = Queue(self.settings.data_dir / "router.db")
        self.clients = {s: app_client(s, self.settings) for s in names.SERVICES}
        for c in self.clients.values():
            c.__enter__()

    def close(self) -> None:
        for c in self.clients.values():
            c.__exit__(None, None, None)

    def upload(self, path: Path, *, kind: str, site: str, subject: str) -> None:
        """Put a file in the raw bucket and enqueue its finalize event, as the router's watcher does."""
        info = ops.upload(self.ctx, Path(path), kind=kind, site=site, subject=subject)
        self.queue.enqueue_storage(self.router_settings, info.bucket, info.name, info.generation, info.size)

    def upload_night(self, night: SynthNight, *, site: str, subject: str) -> None:
        self.upload(night.sunrise, kind="sunrise", site=site, subject=subject)
        self.upload(night.psg, kind="psg", site=site, subject=subject)
        for label in night.labels:
            self.upload(label, kind="labels", site=site, subject=subject)

    def drain(self, max_deliveries: int = 1000) -> int:
        """Deliver every queued event; a non-2xx answer is a test failure (no silent retry)."""
        delivered = 0
        while True:
            self.queue.route_messages(self.router_settings)
            due = self.queue.take_due(20)
            if not due:
                if self.queue.idle():
                    return delivered
                raise RuntimeError(f"deliveries wait on a backoff: {self.queue.counts()}")
            for d in due:
                resp = self.clients[d.service].post("/", headers=d.headers, content=json.dumps(d.body))
                if resp.status_code >= 300:
                    raise RuntimeError(f"{d.service} answered {resp.status_code}: {resp.text[:500]}")
                self.queue.mark_delivered(d.id, resp.status_code)
                delivered += 1
                if delivered > max_deliveries:
                    raise RuntimeError(f"more than {max_deliveries} deliveries: a loop?")


def synth(folder: Path, seed: int, *, hours: float = 0.5, start: datetime | None = None) -> SynthNight:
    kwargs = {"start": start} if start is not None else {}
    return synth_night(Path(folder), seed=seed, hours=hours, **kwargs)
