"""The reliability harness (issue 8): a stack on free loopback ports (embedded, or against the
emulators), synthetic nights, waiting for them, counting events. The scenarios
(:mod:`reliability.scenarios`, :mod:`reliability.abuse`) build on it."""

from __future__ import annotations


import json
import re
import shutil
import signal
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sunrise_common import names
from sunrise_devstack import status
from sunrise_devstack.emulators import Emulators, local_service_urls
from sunrise_devstack.router.queue import Queue
from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_cli import ops
from sunrise_cli.stack import SERVICE_APPS, Stack
from sunrise_cli.synth import SynthNight, synth_night


REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "corpus"
KEY = "reliability-pseudonym-key-0123456789abcdef"
BACKEND = "embedded"
BACKENDS = ("embedded", "emulators")
SITE = "SITE-RELIAB"
SERVICES = tuple(SERVICE_APPS)
# Time limits of the waits are generous (a loaded machine: CI, a laptop, two CPU hogs): a wait
# ends as soon as its condition holds, so they only cost time when something is wrong.
PATIENCE = 3


def subject_code(i: int) -> str:
    """Subject codes of the raw names: distinctive, so the personal-data scan can look for them."""
    return f"PATIENT{i:05d}"


# --------------------------------------------------------------------------------------------
# Harness: a stack on free ports, synthetic nights, waiting, counting
# --------------------------------------------------------------------------------------------


def stack_settings(data_dir: Path, **overrides: Any) -> DevStackSettings:
    urls = local_service_urls()
    values: dict[str, Any] = dict(
        backend="embedded", data_dir=data_dir, pseudonym_key=KEY, prefix="sunrise-rel", project="sunrise-rel",
        router_poll_s=0.05, router_backoff_initial_s=0.2, router_backoff_max_s=2.0, router_max_attempts=8,
        router_max_in_flight=4, router_watch_raw=False, lease_s=30, log_level="INFO", **urls,
    )
    values.update(overrides)
    return DevStackSettings(**values)


@dataclass
class Harness:
    """One stack, its context (in this process) and the raw inputs given to it.

    ``backend="embedded"``: local folders, SQLite, the router watching nothing (inputs are
    announced). ``backend="emulators"``: its own fake-gcs-server, Pub/Sub and Firestore emulators
    (started here, provisioned as Terraform would, stopped by :meth:`close`); an upload's
    notification reaches the router through the Pub/Sub emulator. Use inside :func:`harnesses`
    so that every harness is closed whatever happens.
    """

    work: Path
    settings: DevStackSettings
    ctx: Context
    stack: Stack
    queue: Queue
    inputs: list[tuple[str, int]] = field(default_factory=list)  # raw (name, generation)
    direct_posts: int = 0
    emulators: Emulators | None = None

    @classmethod
    def create(cls, work: Path, *, backend: str = BACKEND, cleanup: ExitStack | None = None,
               **overrides: Any) -> "Harness":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        work = Path(work)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        emulators = None
        if backend == "emulators":
            emulators = Emulators(work / "emulators", project="sunrise-rel", prefix="sunrise-rel")
            emulators.start()  # stops what it started if it fails
            if cleanup is not None:
                cleanup.callback(emulators.stop)
            try:
                emulators.provision()
            except BaseException:
                emulators.stop()
                raise
            overrides = dict(backend="emulators", project=emulators.project, prefix=emulators.prefix,
                             gcs_endpoint=emulators.gcs_endpoint, pubsub_emulator_host=emulators.pubsub_emulator_host,
                             firestore_emulator_host=emulators.firestore_emulator_host, **overrides)
        try:
            settings = stack_settings(work / "data", **overrides)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            ctx = Context.from_settings(settings.model_copy(update={"fault_rate": 0.0}))
            if backend == "embedded":
                for logical in names.BUCKETS:
                    ctx.storage.ensure_bucket(settings.bucket(logical))
            h = cls(work, settings, ctx, Stack(settings, work / "logs"), Queue(settings.data_dir / "router.db"),
                    emulators=emulators)
        except BaseException:
            if emulators is not None:
                emulators.stop()
            raise
        if cleanup is not None:
            cleanup.callback(h.close)
        return h

    @property
    def backend(self) -> str:
        return self.settings.backend

    def close(self) -> None:
        """Stop the stack (if running) and the emulators (if any). Idempotent."""
        try:
            self.stack.stop()
        finally:
            if self.emulators is not None:
                self.emulators.stop()

    # -- inputs
    def upload(self, path: Path, kind: str, subject: str, name: str | None = None) -> str:
        info = ops.upload(self.ctx, Path(path), kind=kind, site=SITE, subject=subject, name=name)
        self.inputs.append((info.name, info.generation))
        return info.name

    def upload_night(self, night: SynthNight, subject: str, *, labels: int = 1) -> list[str]:
        uploaded = [self.upload(night.sunrise, "sunrise", subject), self.upload(night.psg, "psg", subject)]
        for label in night.labels[:labels]:
            uploaded.append(self.upload(label, "labels", subject))
        return uploaded

    def announce(self, raw_names: Iterable[str] | None = None) -> int:
        """Object-finalize events for raw objects, queued in the router (as the watcher does), so
        that the router's delivery chaos (duplicates, shuffled order) applies to them too.
        On the emulators fake-gcs-server has sent them already (the router pulls them): no-op."""
        bucket = self.settings.bucket("raw")
        wanted = set(raw_names) if raw_names is not None else None
        if self.backend == "emulators":
            return sum(1 for name, _ in self.inputs if wanted is None or name in wanted)
        count = 0
        for name, generation in self.inputs:
            if wanted is not None and name not in wanted:
                continue
            info = self.ctx.storage.stat(bucket, name)
            count += self.queue.enqueue_storage(self.settings, bucket, name, generation, info.size if info else 0)
        return count

    # -- the stack
    def __enter__(self) -> "Harness":
        if self.backend == "emulators":
            # The uploads' notifications already wait in the Pub/Sub emulator: start the router
            # only once the services answer, or its first deliveries meet closed ports.
            try:
                for service in SERVICES:
                    self.stack.start_service(service)
                self.stack.wait_healthy(services=list(SERVICES))
                self.stack.start_router()
            except BaseException:
                self.stack.stop()
                raise
        else:
            self.stack.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.backend == "emulators" and exc[0] is None:
                self.drain()
        finally:
            self.stack.stop()

    def drain(self, quiet_s: float = 2.0, timeout: float = 30.0) -> bool:
        """Emulators: messages may still be on their way through the Pub/Sub emulator when the
        state says done (a duplicate the services will answer 'duplicate'); let the router pull
        and deliver them before the stack stops, so that the figures count them."""
        deadline = time.monotonic() + timeout
        since = None
        while time.monotonic() < deadline:
            if self.queue.idle():
                since = since or time.monotonic()
                if time.monotonic() - since >= quiet_s:
                    return True
            else:
                since = None
            time.sleep(0.1)
        return False

    def restart_services(self, **overrides: Any) -> None:
        """Stop every service and start it again with changed settings (same ports)."""
        self.settings = self.settings.model_copy(update=overrides)
        for service in SERVICES:
            self.stack.kill(service, signal.SIGTERM)
        self.stack.settings = self.settings
        for service in SERVICES:
            self.stack.start_service(service)
        self.stack.wait_healthy(services=list(SERVICES))

    # -- observing
    def nights(self) -> list[tuple[str, dict]]:
        return list(self.ctx.state.list("nights"))

    def settled(self, n_nights: int | None = None) -> bool:
        """Every event delivered and every night fully done (checked twice: a stable state)."""
        if not self.queue.idle():
            return False
        nights = self.nights()
        if n_nights is not None and len(nights) != n_nights:
            return False
        if not (status.all_done(self.ctx.state) and self.queue.idle()):
            return False
        # Emulators: an event may still sit in a Pub/Sub subscription while the local queue is
        # idle (a label file not yet ingested, a psg_prep not yet rerun with it): every input must
        # have gone all the way.
        from reliability.census import census  # census reads a Harness: the import goes this way only here

        return self.backend != "emulators" or not census(self)["lost"]

    def quiet(self) -> bool:
        """Every event delivered (or dead) and no stage run left running or retrying."""
        if not self.queue.idle():
            return False
        for collection in ("nights", "uploads"):
            for _, doc in self.ctx.state.list(collection):
                for runs in doc.get("runs", {}).values():
                    if any(r.get("state") in ("running", "retrying") for r in runs.values()):
                        return False
        return self.queue.idle()

    def events(self) -> int:
        counts = self.queue.counts()
        return sum(v for k, v in counts.items() if k != "unrouted_messages") + self.direct_posts

    def service_logs(self) -> Iterable[dict]:
        for service in SERVICES:
            path = self.work / "logs" / f"{service}.log"
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

    def router_failures(self) -> Counter:
        """Failed delivery attempts seen by the router, by HTTP status (None: no answer)."""
        found: Counter = Counter()
        path = self.work / "logs" / "router.log"
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                m = re.search(r"delivery \d+ to \w+ (got (\d+)|failed)", line)
                if m:
                    found[int(m.group(2)) if m.group(2) else None] += 1
        return found


_NIGHT_CACHE: dict[tuple[str, int, float], SynthNight] = {}


def make_nights(folder: Path, n: int, *, hours: float = 0.5, seed0: int = 1000) -> list[SynthNight]:
    """n synthetic night pairs (seed ``seed0 + i``); the same seed gives the same bytes."""
    nights = []
    for i in range(n):
        key = (str(folder), seed0 + i, hours)
        if key not in _NIGHT_CACHE or not Path(_NIGHT_CACHE[key].psg).exists():
            _NIGHT_CACHE[key] = synth_night(Path(folder) / f"{seed0 + i}-{hours}h", seed=seed0 + i, hours=hours)
        nights.append(_NIGHT_CACHE[key])
    return nights
