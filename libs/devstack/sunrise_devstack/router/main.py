"""The local router process: watch the raw folder, route messages, deliver CloudEvents.

Run with ``python -m sunrise_devstack.router.main``. Embedded backend: watches
``data/buckets/{prefix}-raw`` (:mod:`.watcher`: a file is announced once its writer closed it). Emulators backend: pulls the Pub/Sub emulator
(:mod:`.pubsub_source`). Either way every delivery goes through the durable :class:`Queue`:
POST in binary mode, retry non-2xx with exponential backoff, dead-letter past the attempt limit.
"""

from __future__ import annotations

import errno
import logging
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx

from sunrise_common import logs, names
from sunrise_common.errors import TransientError
from sunrise_devstack.router.queue import Delivery, Queue
from sunrise_devstack.router.watcher import RawWatcher, superseded
from sunrise_devstack.settings import DevStackSettings

if TYPE_CHECKING:
    from sunrise_devstack.router.pubsub_source import PubsubSource

logger = logging.getLogger(__name__)

# Seconds between purges of expired dead letters and WAL truncations.
HOUSEKEEPING_EVERY_S = 30.0


# SQLite's primary result codes for a full disk and an I/O failure (sqlite.org/rescode.html).
_SQLITE_IOERR, _SQLITE_FULL = 10, 13


def disk_trouble(exc: BaseException) -> str | None:
    """``"disk full"`` or ``"disk I/O error"`` when ``exc`` says the queue's disk cannot take a
    write, else None. Such errors pass by themselves once space is freed: the router backs off
    and logs one line per back-off, not a traceback per attempt."""
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL or "disk is full" in str(exc):
            return "disk full"
        if code == _SQLITE_IOERR or "disk I/O error" in str(exc):
            return "disk I/O error"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if isinstance(exc, TransientError) and exc.reason == "storage_full":
        return "disk full"
    return None


class Backoff:
    """Exponential back-off of a loop that keeps failing (``initial`` doubling up to ``maximum``
    seconds), logging one line per back-off and one when it recovers."""

    def __init__(self, what: str, initial: float, maximum: float) -> None:
        self.what, self.initial, self.maximum = what, initial, maximum
        self.delay = 0.0
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; the seconds to wait before the next try."""
        self.delay = self.initial if not self.delay else min(self.delay * 2, self.maximum)
        self.failures += 1
        trouble = disk_trouble(exc)
        if trouble is not None:
            logger.warning("%s: %s (%s); backing off %.1f s", self.what, trouble, type(exc).__name__, self.delay)
        else:
            logger.exception("%s failed; backing off %.1f s", self.what, self.delay)
        return self.delay

    def succeeded(self) -> None:
        if self.failures:
            logger.info("%s: working again after %d failed tries", self.what, self.failures)
        self.delay, self.failures = 0.0, 0


class Deliverer:
    def __init__(self, settings: DevStackSettings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue
        self.client = httpx.Client(timeout=httpx.Timeout(300.0, connect=2.0))
        self.pool = ThreadPoolExecutor(max_workers=settings.router_max_in_flight, thread_name_prefix="deliver")
        self.in_flight = 0
        self.held: set[int] = set()  # ids of the deliveries a delivery thread is working on
        self._lock = threading.Lock()

    def requeue_orphans(self) -> int:
        """Deliveries in flight past their deadline that no thread of this deliverer holds (their
        outcome could not be written) are due again."""
        with self._lock:
            held = set(self.held)
        count = self.queue.requeue_stale(self.settings.router_in_flight_deadline_s, held)
        if count:
            logger.warning("%d deliveries in flight past their %.0f s deadline with no outcome recorded: due again",
                           count, self.settings.router_in_flight_deadline_s)
        return count

    def deliver_due(self) -> int:
        with self._lock:
            room = self.settings.router_max_in_flight - self.in_flight
        if room <= 0:
            return 0
        due = self.queue.take_due(room, shuffle=self.settings.router_shuffle)
        for d in due:
            with self._lock:
                self.in_flight += 1
                self.held.add(d.id)
            self.pool.submit(self._deliver, d)
        return len(due)

    def _deliver(self, d: Delivery) -> None:
        import json

        url = self.settings.service_url(d.service)
        try:
            with logs.log_context(event_id=d.headers.get("ce-id"), stage="router", trigger=d.trigger):
                if superseded(self.settings, d):
                    # A newer generation replaced the file: never process the older one.
                    self.queue.mark_superseded(d.id)
                    logger.info("delivery %s to %s dropped: a newer generation replaced its object", d.id, d.service)
                    return
                try:
                    resp = self.client.post(url, headers=d.headers, content=json.dumps(d.body).encode())
                except Exception as exc:  # noqa: BLE001 - any failure to send is a failed attempt (retry, then dead letter)
                    state = self.queue.mark_failed(d, None, f"{type(exc).__name__}: {exc}", **self._policy())
                    logger.warning("delivery %s to %s failed (%s): %s", d.id, d.service, state, exc)
                    return
                if 200 <= resp.status_code < 300:
                    self.queue.mark_delivered(d.id, resp.status_code)
                    logger.info("delivered %s to %s: %s", d.id, d.service, resp.text[:200])
                else:
                    state = self.queue.mark_failed(d, resp.status_code, resp.text[:500], **self._policy())
                    level = logging.ERROR if state == "dead" else logging.WARNING
                    logger.log(level, "delivery %s to %s got %s (%s)", d.id, d.service, resp.status_code, state)
        except Exception as exc:  # keep the loop alive whatever happens; requeue_orphans makes it due again
            trouble = disk_trouble(exc)
            if trouble is not None:
                logger.warning("delivery %s: outcome not recorded (%s); due again after %.1f s", d.id, trouble,
                               self.settings.router_in_flight_deadline_s)
            else:
                logger.exception("delivery %s crashed", d.id)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.held.discard(d.id)

    def _policy(self) -> dict:
        s = self.settings
        return {"max_attempts": s.router_max_attempts, "backoff_initial": s.router_backoff_initial_s, "backoff_max": s.router_backoff_max_s}


def run(settings: DevStackSettings, stop: threading.Event | None = None) -> None:
    """Run the router until ``stop`` is set (or SIGTERM/SIGINT)."""
    stop = stop or threading.Event()
    queue = Queue(settings.data_dir / "router.db")
    queue.reset_in_flight()
    deliverer = Deliverer(settings, queue)
    sources = []
    if settings.backend == "embedded":
        if settings.router_watch_raw:
            sources.append(RawWatcher(settings, queue))
    elif settings.backend == "emulators":
        from sunrise_devstack.router.pubsub_source import PubsubSource

        sources.append(PubsubSource(settings, queue))
    else:
        raise SystemExit("the local router is for the embedded and emulators backends; the cloud uses Eventarc")
    logger.info("router up (%s backend), delivering to %s", settings.backend,
                {s: settings.service_url(s) for s in names.SERVICES})

    def pump(source: RawWatcher | PubsubSource) -> None:
        # Each event source in its own thread: a long-polling pull never holds up deliveries.
        backoff = Backoff(f"event source {type(source).__name__}", 1.0, settings.router_backoff_max_s)
        while not stop.is_set():
            try:
                found = source.poll_once()
            except Exception as exc:  # noqa: BLE001 - a source that fails is retried after a back-off
                stop.wait(backoff.failed(exc))
                continue
            backoff.succeeded()
            if not found:
                stop.wait(settings.router_poll_s)

    threads = [threading.Thread(target=pump, args=(s,), name=type(s).__name__, daemon=True) for s in sources]
    for t in threads:
        t.start()
    housekeeping_at = time.monotonic()
    backoff = Backoff("router queue", settings.router_backoff_initial_s, settings.router_backoff_max_s)
    while not stop.is_set():
        busy = 0
        try:
            busy += queue.route_messages(settings)
            busy += deliverer.deliver_due()
            busy += deliverer.requeue_orphans()
            if time.monotonic() - housekeeping_at > HOUSEKEEPING_EVERY_S:
                housekeeping_at = time.monotonic()
                housekeeping(queue, settings)
        except Exception as exc:  # noqa: BLE001 - a full disk passes: back off, do not spin
            stop.wait(backoff.failed(exc))
            continue
        backoff.succeeded()
        if not busy:
            stop.wait(settings.router_poll_s)
    for t in threads:
        t.join(timeout=10)
    for source in sources:
        close = getattr(source, "close", None)  # the raw watcher's inotify descriptor
        if close is not None:
            close()
    deliverer.pool.shutdown(wait=True)
    try:
        housekeeping(queue, settings)
    except Exception as exc:  # noqa: BLE001 - stopping anyway; the next start does it
        logger.warning("router stopping: last housekeeping skipped (%s)", disk_trouble(exc) or type(exc).__name__)


def housekeeping(queue: Queue, settings: DevStackSettings) -> None:
    """Bound what the queue keeps (docs/privacy.md): dead letters past their retention go, and
    the write-ahead log is truncated so redacted requests do not linger in it."""
    purged = queue.purge_expired(settings.dead_letter_retention_s)
    if purged:
        logger.info("deleted %d dead or delivered deliveries older than %.0f s", purged, settings.dead_letter_retention_s)
    for _ in range(5):  # a reader (the CLI, a test) may hold the WAL for a moment
        if queue.compact():
            return
        time.sleep(0.1)


def main() -> None:
    settings = DevStackSettings()
    logs.configure(settings.log_level, settings.project)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)


if __name__ == "__main__":
    main()
