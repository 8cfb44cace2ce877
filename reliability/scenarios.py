"""Fault-injection and abuse scenarios (issue 8). Each returns one row of RELIABILITY.md.

Every scenario takes a work folder and a size and returns::

    {"scenario", "backend", "events", "files", "lost", "duplicated", "recover_s", "notes", "details"}

- ``events``: CloudEvent deliveries made (router deliveries, retries excluded, plus direct POSTs).
- ``files``: raw objects given to the pipeline.
- ``lost``: inputs that did not end done (or rejected with the expected reason).
- ``duplicated``: stage runs completed more than once for the same input (document, stage,
  input key), counted from the services' summary log lines and the documents' history.
- ``recover_s``: seconds from the end of the fault (or the start of the burst) to all done.
- ``details``: the scenario-specific figures the tests assert on (not printed in the table).

The stack is the embedded one (real service processes, the local router, SQLite, local
folders) on free loopback ports; events go through the router exactly as Eventarc would send them.
The fault scenarios (duplicates and shuffle, SIGKILL, transient faults) also run with
``backend="emulators"``: the same services and router against fake-gcs-server and the Pub/Sub and
Firestore emulators (one set per harness, always stopped), where an upload's object-finalize
notification comes from fake-gcs-server through the Pub/Sub emulator to the router.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sunrise_common import identity, names
from sunrise_devstack import status
from sunrise_devstack.emulators import Emulators, free_port, local_service_urls
from sunrise_devstack.router.queue import Queue
from sunrise_common.service import Context
from sunrise_common.settings import Settings
from sunrise_cli import ops
from sunrise_cli.stack import SERVICE_APPS, Stack, wait_until
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


def stack_settings(data_dir: Path, **overrides: Any) -> Settings:
    urls = local_service_urls()
    values: dict[str, Any] = dict(
        backend="embedded", data_dir=data_dir, pseudonym_key=KEY, prefix="sunrise-rel", project="sunrise-rel",
        router_poll_s=0.05, router_backoff_initial_s=0.2, router_backoff_max_s=2.0, router_max_attempts=8,
        router_max_in_flight=4, router_watch_raw=False, lease_s=30, log_level="INFO", **urls,
    )
    values.update(overrides)
    return Settings(**values)


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
    settings: Settings
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


# --------------------------------------------------------------------------------------------
# Census: lost inputs and duplicated stage runs
# --------------------------------------------------------------------------------------------


def census(h: Harness, expected_rejections: dict[str, str] | None = None,
           ingest_only: set[str] | None = None) -> dict[str, Any]:
    """Which raw inputs ended done (or rejected as expected) and which did not (lost).
    ``ingest_only``: inputs with no partner (a lone label file) that only have to be ingested."""
    expected_rejections = expected_rejections or {}
    ingest_only = ingest_only or set()
    key = h.settings.key_bytes()
    bucket = h.settings.bucket("raw")
    lost: list[str] = []
    rejected = 0
    for name, generation in h.inputs:
        doc = h.ctx.state.get("uploads", identity.upload_id(key, bucket, name)) or {}
        run = doc.get("runs", {}).get("ingest", {}).get(str(generation))
        if run is None:
            lost.append(f"{name}@{generation}: never ingested")
            continue
        if run["state"] == "failed" and run.get("permanent"):
            want = expected_rejections.get(name)
            if want is not None and str(run.get("error", "")).startswith(want):
                rejected += 1
            else:
                lost.append(f"{name}@{generation}: rejected ({run.get('error')})")
            continue
        if run["state"] != "done":
            lost.append(f"{name}@{generation}: ingest {run['state']}")
            continue
        if name in ingest_only:
            continue
        night = run["outputs"]["night_id"]
        kind = run["outputs"]["kind"]
        ndoc = h.ctx.state.get("nights", night) or {}
        stages = ndoc.get("stages", {})
        runs = ndoc.get("runs", {})
        problem = None
        if stages.get("sunalgo", {}).get("state") != "done" and "sunrise" in ndoc.get("recordings", {}):
            problem = f"sunalgo {stages.get('sunalgo', {}).get('state')}"
        if kind == "sunrise" and not any(r["state"] == "done" for r in runs.get("sunrise_prep", {}).values()):
            problem = "sunrise_prep never done"
        if kind in ("psg", "labels") and stages.get("psg_prep", {}).get("state") != "done":
            problem = f"psg_prep {stages.get('psg_prep', {}).get('state')}"
        if kind == "labels" and problem is None:
            n_labels = len(ndoc.get("recordings", {}).get("labels", {}))
            if stages["psg_prep"].get("outputs", {}).get("labels") != n_labels:
                problem = "the latest psg_prep does not include every label file"
        if problem:
            lost.append(f"{name}@{generation} ({night}): {problem}")
    return {"lost": lost, "rejected": rejected}


def completions(h: Harness) -> dict[str, Any]:
    """Stage runs completed more than once for the same input, and runs that needed retries."""
    done: Counter = Counter()
    for entry in h.service_logs():
        if entry.get("summary") and " done in " in entry.get("message", ""):
            stage = entry["message"].split(" done in ")[0]
            doc = entry.get("night_id") if stage != "ingest" else entry.get("upload_id")
            done[(stage, doc, entry.get("input_key"))] += 1
    from_history: Counter = Counter()
    retried: list[str] = []
    not_once: list[str] = []
    for collection in ("nights", "uploads"):
        for doc_id, doc in h.ctx.state.list(collection):
            for entry in doc.get("history", []):
                if entry.get("state") == "done":
                    from_history[(entry["stage"], doc_id, entry["input_key"])] += 1
            for stage, runs in doc.get("runs", {}).items():
                for key, run in runs.items():
                    if run.get("attempts", 0) > 1:
                        retried.append(f"{collection}/{doc_id} {stage} {key}: {run.get('state')} x{run.get('attempts')}")
                    if run.get("attempts") != 1 or run.get("state") != "done":
                        not_once.append(f"{collection}/{doc_id} {stage} {key}: {run.get('state')} x{run.get('attempts')}")
    twice = {k: max(done[k], from_history[k]) for k in set(done) | set(from_history) if max(done[k], from_history[k]) > 1}
    return {
        "duplicated": sum(n - 1 for n in twice.values()),
        "duplicated_runs": [f"{s} {d} {k} x{n}" for (s, d, k), n in sorted(twice.items(), key=str)],
        "retried": retried,
        "not_once": not_once,
        "completions": sum(max(done[k], from_history[k]) for k in set(done) | set(from_history)),
    }


def make_row(scenario: str, h: Harness | None, *, events: int, files: int, lost: list[str] | int, duplicated: int,
             recover_s: float | None, notes: str, **details: Any) -> dict[str, Any]:
    lost_list = lost if isinstance(lost, list) else []
    return {
        "scenario": scenario,
        "backend": h.backend if h is not None else BACKEND,
        "events": events,
        "files": files,
        "lost": len(lost) if isinstance(lost, list) else lost,
        "duplicated": duplicated,
        "recover_s": None if recover_s is None else round(recover_s, 2),
        "notes": notes,
        "details": {"lost": lost_list[:20], **details},
    }


# --------------------------------------------------------------------------------------------
# Comparing outputs of two runs (byte identity modulo input keys)
# --------------------------------------------------------------------------------------------


def final_outputs(h: Harness) -> dict[str, dict[str, bytes]]:
    """Per night: the anonymised objects and the latest output prefix of every stage, with the
    run-specific tokens (input keys, storage generations) replaced by their role."""
    out: dict[str, dict[str, bytes]] = {}
    for night, doc in h.nights():
        tokens: list[tuple[bytes, bytes]] = []
        for stage, runs in doc.get("runs", {}).items():
            latest = doc.get("stages", {}).get(stage, {}).get("input_key")
            for i, key in enumerate(sorted(runs)):
                role = f"<{stage}:{'latest' if key == latest else i}>"
                tokens.append((key.encode(), role.encode()))
        recs = doc.get("recordings", {})
        for kind in ("sunrise", "psg"):
            if kind in recs:
                tokens.append((str(recs[kind]["generation"]).encode(), f"<gen:{kind}>".encode()))
        for lk, rec in recs.get("labels", {}).items():
            tokens.append((str(rec["generation"]).encode(), f"<gen:{lk}>".encode()))
        tokens.sort(key=lambda t: -len(t[0]))

        def norm(data: bytes) -> bytes:
            for old, new in tokens:
                data = data.replace(old, new)
            return data

        files: dict[str, bytes] = {}
        anon = h.settings.bucket("anonymised")
        for info in h.ctx.storage.list(anon, f"nights/{night}/"):
            # Anonymised objects are named by their raw generation's keyed token (names.anonymised_object),
            # which differs from run to run like a generation does.
            files["anonymised/" + re.sub(r"-g[a-z2-7]{12}(?=\.)", "", info.name)] = norm(h.ctx.storage.read_bytes(anon, info.name))
        for stage, logical in (("sunrise_prep", "prepped"), ("psg_prep", "prepped"), ("sunalgo", "results")):
            st = doc.get("stages", {}).get(stage, {})
            prefix = st.get("outputs", {}).get("prefix")
            if not prefix:
                continue
            bucket = h.settings.bucket(logical)
            for info in h.ctx.storage.list(bucket, prefix):
                files[f"{stage}/" + info.name[len(prefix):]] = norm(h.ctx.storage.read_bytes(bucket, info.name))
        out[night] = files
    return out


def diff_outputs(a: dict[str, dict[str, bytes]], b: dict[str, dict[str, bytes]]) -> list[str]:
    diffs = []
    for night in sorted(set(a) | set(b)):
        fa, fb = a.get(night, {}), b.get(night, {})
        if night not in a or night not in b:
            diffs.append(f"{night}: only in {'clean' if night in a else 'chaos'}")
            continue
        for name in sorted(set(fa) | set(fb)):
            if name not in fa or name not in fb:
                diffs.append(f"{night}/{name}: only in {'clean' if name in fa else 'chaos'}")
            elif fa[name] != fb[name]:
                at = next((i for i, (x, y) in enumerate(zip(fa[name], fb[name])) if x != y), min(len(fa[name]), len(fb[name])))
                diffs.append(f"{night}/{name}: differs at byte {at}: {fa[name][max(0, at - 40):at + 40]!r} vs "
                             f"{fb[name][max(0, at - 40):at + 40]!r}")
    return diffs


def manifest_problems(h: Harness) -> list[str]:
    """Output prefixes whose ``_MANIFEST.json`` is missing or does not list exactly the files present."""
    problems = []
    for logical in ("prepped", "results"):
        bucket = h.settings.bucket(logical)
        prefixes: dict[str, set[str]] = {}
        # Per-night output prefixes only: results/dataset/ is the gold layer (Hive-partitioned
        # Parquet), written beside them without a manifest of its own.
        for info in h.ctx.storage.list(bucket, "nights/"):
            prefix, _, rel = info.name.rpartition("/")
            # prefixes are nights/{night}/{kind or version}/{input_key}/ (files may sit in sub-folders)
            parts = info.name.split("/")
            prefix = "/".join(parts[:4]) + "/"
            prefixes.setdefault(prefix, set()).add(info.name[len(prefix):])
        for prefix, files in sorted(prefixes.items()):
            if "_MANIFEST.json" not in files:
                problems.append(f"{logical}/{prefix}: no manifest ({len(files)} files)")
                continue
            listed = set(json.loads(h.ctx.storage.read_bytes(bucket, prefix + "_MANIFEST.json"))["files"])
            if listed != files - {"_MANIFEST.json"}:
                problems.append(f"{logical}/{prefix}: manifest lists {sorted(listed ^ (files - {'_MANIFEST.json'}))} wrongly")
    return problems


# --------------------------------------------------------------------------------------------
# 1. duplicates and shuffled order
# --------------------------------------------------------------------------------------------


def _process(work: Path, nights: list[SynthNight], timeout: float, *, backend: str = BACKEND,
             cleanup: ExitStack | None = None, **overrides: Any) -> tuple[Harness, float]:
    h = Harness.create(work, backend=backend, cleanup=cleanup, **overrides)
    for i, night in enumerate(nights):
        h.upload_night(night, subject_code(i))
    with h:
        t0 = time.monotonic()
        h.announce()
        wait_until(lambda: h.settled(len(nights)), timeout * PATIENCE, f"{len(nights)} nights done", interval=0.2)
        elapsed = time.monotonic() - t0
    return h, elapsed


def duplicates_and_shuffle(work: Path, n: int = 3, *, hours: float = 0.5, backend: str = BACKEND) -> dict[str, Any]:
    """Every event delivered 3 times in shuffled order: the outputs are byte-identical to a clean
    run of the same nights, and every stage's work is done once per input."""
    work = Path(work)
    nights = make_nights(work / "inputs", n, hours=hours)
    timeout = 120 + 20 * n if backend == "embedded" else 180 + 40 * n
    # The clean run is on the same backend (its generations differ: final_outputs normalises them).
    with ExitStack() as cleanup:  # every stack and emulator stopped, whatever happens
        clean, _ = _process(work / "clean", nights, timeout, backend=backend, cleanup=cleanup)
        clean_outputs = final_outputs(clean)
        clean.close()
        chaos, elapsed = _process(work / "chaos", nights, timeout, backend=backend, cleanup=cleanup,
                                  router_duplicates=3, router_shuffle=True)
        chaos_outputs = final_outputs(chaos)
        diffs = diff_outputs(clean_outputs, chaos_outputs)
        c = completions(chaos)
        lost = census(chaos)["lost"]
        failures = chaos.router_failures()
        statuses = Counter(d.last_status for d in chaos.queue.deliveries(limit=10**6))
        answers = Counter()
        for entry in chaos.service_logs():
            msg = entry.get("message", "")
            if msg.startswith("duplicate while running"):
                answers["busy"] += 1
        n_files = len(chaos.inputs)
        scan = privacy_scan(chaos)
        notes = (f"{n} nights x 3 files, each event x3 in random order; {statuses.get(200, 0)} deliveries answered 2xx, "
                 f"{failures.get(429, 0)} 429 busy then retried; outputs vs clean run: "
                 f"{'byte-identical' if not diffs else f'{len(diffs)} differ'}; runs with attempts != 1: {len(c['not_once'])}; "
                 f"personal data outside raw: {scan['total']}")
        return make_row("duplicates_and_shuffle", chaos, events=chaos.events(), files=n_files, lost=lost,
                        duplicated=c["duplicated"], recover_s=elapsed, notes=notes, diffs=diffs, not_once=c["not_once"],
                        non_busy_failures={str(k): v for k, v in failures.items() if k != 429},
                        delivery_states=chaos.queue.counts(), duplicated_runs=c["duplicated_runs"],
                        compared_files=sum(len(v) for v in chaos_outputs.values()), privacy=scan)


# --------------------------------------------------------------------------------------------
# 2. SIGKILL in the middle of a stage
# --------------------------------------------------------------------------------------------


def sigkill_mid_stage(work: Path, n: int = 1, *, hours: float = 8.0, service: str = "psg_prep",
                      backend: str = BACKEND) -> dict[str, Any]:
    """SIGKILL a service while it works on a night, restart it: the night completes, the killed
    run is taken over once its lease expires, no partial output is ever used downstream."""
    work = Path(work)
    stage = service
    nights = make_nights(work / "inputs", n, hours=hours, seed0=2000)
    lease_s = 3.0
    with ExitStack() as cleanup:  # every stack and emulator stopped, whatever happens
        slow = 1 if backend == "embedded" else 2  # the emulators answer slower: longer waits
        # Attempts enough for a restart and a lease expiry on a loaded machine (the scenario is
        # about the takeover, not about dead letters): 400 x <= 1.5 s is 10 minutes.
        h = Harness.create(work / "run", backend=backend, cleanup=cleanup, lease_s=lease_s, router_max_attempts=400,
                           router_backoff_initial_s=0.3, router_backoff_max_s=1.5)
        for i, night in enumerate(nights):
            h.upload_night(night, subject_code(100 + i), labels=4)
        killed: dict[str, Any] = {}
        with h:
            h.announce()

            def running() -> tuple[str, str, dict] | None:
                for night, doc in h.nights():
                    for key, run in doc.get("runs", {}).get(stage, {}).items():
                        if run.get("state") == "running":
                            return night, key, run
                return None

            # Aim for the worst moment: some output objects written, the manifest not yet. If the
            # stage finishes before that is seen, kill the next running one as soon as it runs.
            prepped = h.settings.bucket("prepped")
            kind = "psg" if stage == "psg_prep" else "sunrise"
            deadline = time.monotonic() + 120 * slow * PATIENCE
            target = None
            seen: set[tuple[str, str]] = set()
            while target is None and time.monotonic() < deadline:
                found = running()
                if found is None or (found[0], found[1]) in seen:
                    time.sleep(0.005)
                    continue
                night, key, _ = found
                seen.add((night, key))
                prefix = names.prepped_prefix(night, kind, key)
                if len(seen) >= 2:  # second chance: kill as soon as it runs
                    target = (night, key)
                    break
                while time.monotonic() < deadline:
                    objs = [i.name for i in h.ctx.storage.list(prepped, prefix)]
                    if objs and not any(o.endswith("_MANIFEST.json") for o in objs):
                        target = (night, key)
                        break
                    run = (h.ctx.state.get("nights", night) or {}).get("runs", {}).get(stage, {}).get(key, {})
                    if run.get("state") != "running" or objs:
                        break
                    time.sleep(0.002)
            if target is None:
                raise TimeoutError(f"never caught {stage} running")
            night, key = target
            h.stack.kill(service)  # SIGKILL to the process group
            t_kill = time.monotonic()
            after = (h.ctx.state.get("nights", night) or {}).get("runs", {}).get(stage, {}).get(key, {})
            killed = {"night": night, "input_key": key, "state_when_killed": after.get("state"),
                      "attempts_when_killed": after.get("attempts")}
            partial_prefix = names.prepped_prefix(night, "psg" if stage == "psg_prep" else "sunrise", key)
            partial = [i.name for i in h.ctx.storage.list(h.settings.bucket("prepped"), partial_prefix)]
            killed["objects_under_prefix_when_killed"] = len(partial)
            killed["manifest_when_killed"] = any(p.endswith("_MANIFEST.json") for p in partial)
            time.sleep(0.5)
            h.stack.start_service(service)
            h.stack.wait_healthy(services=[service])
            t_back = time.monotonic()
            wait_until(lambda: h.settled(n), (180 + 30 * n) * slow * PATIENCE, f"{n} nights done after the restart",
                       interval=0.2)
            recover = time.monotonic() - t_back
        doc = h.ctx.state.get("nights", killed["night"]) or {}
        final = doc.get("runs", {}).get(stage, {}).get(killed["input_key"], {})
        killed.update(final_state=final.get("state"), final_attempts=final.get("attempts"),
                      downtime_s=round(t_back - t_kill, 2))
        c = completions(h)
        lost = census(h)["lost"]
        problems = manifest_problems(h)
        # the downstream stage ran once per input, on a complete prefix
        downstream = [f"{k}: x{r.get('attempts')} {r.get('state')}" for _, d in h.nights()
                      for k, r in d.get("runs", {}).get("sunalgo", {}).items() if r.get("attempts") != 1 or r.get("state") != "done"]
        killed_mid_work = killed["state_when_killed"] == "running" and not killed["manifest_when_killed"]
        scan = privacy_scan(h)
        notes = (f"SIGKILL {service} while running on a {hours:g}-h night (lease {lease_s:g} s; "
                 f"{killed['objects_under_prefix_when_killed']} of its objects written, no manifest), restarted after "
                 f"{killed['downtime_s']} s; the run was taken over (attempts {killed['final_attempts']}, {killed['final_state']}); "
                 f"manifest problems: {len(problems)}; sunalgo runs not once: {len(downstream)}; "
                 f"personal data outside raw: {scan['total']}")
        return make_row("sigkill_mid_stage", h, events=h.events(), files=len(h.inputs), lost=lost, duplicated=c["duplicated"],
                        recover_s=recover, notes=notes, killed=killed, killed_mid_work=killed_mid_work, privacy=scan,
                        manifest_problems=problems, downstream_not_once=downstream, duplicated_runs=c["duplicated_runs"])


# --------------------------------------------------------------------------------------------
# 3. transient faults in storage, state and publisher calls
# --------------------------------------------------------------------------------------------


def _dead_subjects(q: Queue) -> tuple[set[str], set[str]]:
    objects, nights = set(), set()
    for d in q.deliveries("dead", limit=10**6):
        if "message" in d.body:
            try:
                payload = json.loads(base64.b64decode(d.body["message"].get("data", "")) or b"{}")
                nights.add(payload.get("night_id"))
            except ValueError:
                pass
        else:
            objects.add(d.body.get("name"))
    return objects, nights


def transient_faults(work: Path, n: int = 4, *, hours: float = 0.5, rate: float = 0.1,
                     backend: str = BACKEND) -> dict[str, Any]:
    """Faults in 10 % of port calls (seeded): everything completes. Then with 2 attempts and every
    publish failing, each raw input's event dead-letters (exactly one each, deterministically;
    none dropped) and replaying them with faults off completes every night."""
    work = Path(work)
    nights = make_nights(work / "inputs", n, hours=hours, seed0=3000)
    # Phase A: generous retries, every input must end done.
    # sunalgo makes ~30 storage calls per attempt: at 10 % per call one attempt in 20 or so gets
    # through, so "generous" means hundreds of attempts (Eventarc retries for 24 h)
    with ExitStack() as cleanup:  # every stack and emulator stopped, whatever happens
        slow = 1 if backend == "embedded" else 3  # the emulators answer slower: longer waits
        settle_s = 1.0 if backend == "embedded" else 2.5  # no delivery for this long: nothing moves any more
        a = Harness.create(work / "a", backend=backend, cleanup=cleanup, fault_rate=rate, fault_seed=1,
                           router_max_attempts=500, router_backoff_initial_s=0.05, router_backoff_max_s=0.3, lease_s=4)
        for i, night in enumerate(nights):
            a.upload_night(night, subject_code(200 + i))
        with a:
            t0 = time.monotonic()
            a.announce()
            wait_until(lambda: a.settled(n), (240 + 30 * n) * slow * PATIENCE, f"{n} nights done under faults",
                       interval=0.3)
            elapsed_a = time.monotonic() - t0
        injected_a = sum(1 for e in a.service_logs() if "injected_fault" in json.dumps(e))
        fail_a = a.router_failures()
        max_attempts_a = max((d.attempts for d in a.queue.deliveries(limit=10**6)), default=0)
        lost_a = census(a)["lost"]
        c_a = completions(a)
        scan_a = privacy_scan(a)
        a.close()

        # Phase B: 2 attempts only, and every publish fails (rate 1 on the publisher port): each
        # object event reaches ingest, which records the night and fails to publish, twice, and is
        # dead-lettered. Deterministic: exactly one dead letter per raw input, by construction,
        # whatever the machine's load or the order of deliveries. Replaying them with faults off
        # must then complete every night (nothing dropped).
        b = Harness.create(work / "b", backend=backend, cleanup=cleanup, fault_rate=1.0, fault_ports="publisher",
                           fault_seed=2, router_max_attempts=2, router_backoff_initial_s=0.1, router_backoff_max_s=0.5,
                           lease_s=2)
        for i, night in enumerate(nights):
            b.upload_night(night, subject_code(200 + i))
        replays = 0
        with b:
            b.announce()
            expected_dead = len(b.inputs)  # one storage trigger per raw object
            # Wait on the outcome, not on quiet: on the emulators the notifications may not have
            # reached the router yet when its queue first looks idle.
            wait_until(lambda: b.queue.counts().get("dead", 0) >= expected_dead and b.queue.idle(),
                       (120 + 30 * n) * slow * PATIENCE, f"{expected_dead} dead letters", interval=0.3)
            counts = b.queue.counts()
            dead_before = counts.get("dead", 0)
            unexplained = []
            dead_objects, dead_nights = _dead_subjects(b.queue)
            key = b.settings.key_bytes()
            for item in census(b)["lost"]:  # every input that is not done is explained by a dead letter
                name = item.split("@", 1)[0]
                doc = b.ctx.state.get("uploads", identity.upload_id(key, b.settings.bucket("raw"), name)) or {}
                run = next(iter(doc.get("runs", {}).get("ingest", {}).values()), {})
                night = run.get("outputs", {}).get("night_id")
                if name not in dead_objects and night not in dead_nights:
                    unexplained.append(item)
            stuck = {k: v for k, v in counts.items() if k not in ("delivered", "dead") and v}
            dead_list = [f"{d.service} {d.subject} x{d.attempts} {d.last_status}" for d in b.queue.deliveries("dead")]
            b.restart_services(fault_rate=0.0)
            time.sleep(b.settings.lease_s + 0.5)  # leases left by runs whose failure could not be recorded
            t_replay = time.monotonic()
            for _ in range(6):
                replays += 1
                b.queue.replay_dead()
                try:  # stale runs (superseded input keys) may stay "retrying": wait for the queue, not the runs
                    wait_until(lambda: b.settled(n) or (b.queue.idle() and (time.sleep(settle_s) or b.queue.idle())),
                               (120 + 10 * n) * slow * PATIENCE, "the replay to finish", interval=0.3)
                except TimeoutError:
                    pass
                if b.settled(n):
                    break
                time.sleep(b.settings.lease_s)
            recover_b = time.monotonic() - t_replay
        lost_b = census(b)["lost"]
        c_b = completions(b)
        scan_b = privacy_scan(b)  # after the replay: the dead letters were delivered, i.e. redacted
        notes = (f"A: {n} nights, fault rate {rate:g} on storage/state/publisher calls, {injected_a} faults injected, "
                 f"{sum(v for k, v in fail_a.items() if k and k >= 500)} 5xx retried (at most {max_attempts_a} attempts for one "
                 f"delivery), all done in {elapsed_a:.1f} s. "
                 f"B: every publish failing, 2 attempts: {dead_before} events dead-lettered (expected {expected_dead}), "
                 f"{len(unexplained)} unexplained, replay_dead with faults off ({replays} round(s)) completed them; "
                 f"personal data outside raw: {scan_a['total'] + scan_b['total']}")
        return make_row("transient_faults", b, events=a.events() + b.events(), files=len(a.inputs) + len(b.inputs),
                        lost=lost_a + lost_b, duplicated=c_a["duplicated"] + c_b["duplicated"], recover_s=recover_b, notes=notes,
                        injected=injected_a, dead_letters=dead_before, expected_dead_letters=expected_dead,
                        unexplained=unexplained, stuck=stuck,
                        replay_rounds=replays, dead_list=dead_list[:30], privacy=scan_b, privacy_a=scan_a, duplicated_runs=c_a["duplicated_runs"] + c_b["duplicated_runs"],
                        phase_a_s=round(elapsed_a, 2), lost_a=len(lost_a), lost_b=len(lost_b))


# --------------------------------------------------------------------------------------------
# 4. burst
# --------------------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Peak resident memory of each stack process (MB), sampled every ``interval`` seconds."""

    def __init__(self, stack: Stack, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.interval = interval
        self.peak: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            for name, proc in list(self.stack.procs.items()):
                try:
                    p = psutil.Process(proc.pid)
                    rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                except psutil.Error:
                    continue
                self.peak[name] = max(self.peak.get(name, 0.0), rss / 2**20)
            self.stop.wait(self.interval)


def burst(work: Path, n: int = 60, *, hours: float = 0.5, rss_limit_mb: float = 1024.0) -> dict[str, Any]:
    """n nights' files (3 each) announced at once: all processed, none lost, memory bounded."""
    work = Path(work)
    nights = make_nights(work / "inputs", min(n, 50), hours=hours, seed0=4000)
    h = Harness.create(work / "run", router_max_in_flight=4, router_max_attempts=10)
    for i in range(n):
        h.upload_night(nights[i % len(nights)], subject_code(1000 + i))
    sampler = RssSampler(h.stack)
    with h:
        sampler.start()
        t0 = time.monotonic()
        h.announce()
        wait_until(lambda: h.settled(n), 120 + 6 * n, f"{n} nights done", interval=0.5)
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
    c = completions(h)
    lost = census(h)["lost"]
    peak = {k: round(v, 1) for k, v in sorted(sampler.peak.items())}
    summary = status.summarize(h.ctx.state)
    notes = (f"{n} nights x 3 files announced at once; {n / elapsed * 60:.0f} nights/min; peak RSS MB: "
             + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    return make_row("burst", h, events=h.events(), files=len(h.inputs), lost=lost, duplicated=c["duplicated"],
                    recover_s=elapsed, notes=notes, peak_rss_mb=peak, rss_limit_mb=rss_limit_mb,
                    not_once=c["not_once"], stage_times=summary["stage_times"])


# --------------------------------------------------------------------------------------------
# 5. a new generation of a raw object
# --------------------------------------------------------------------------------------------


def new_generation(work: Path, n: int = 1, *, hours: float = 0.5) -> dict[str, Any]:
    """The same raw Sunrise file uploaded again with new content is reprocessed into a new
    results prefix; the old results stay untouched under theirs."""
    work = Path(work)
    first = make_nights(work / "inputs", n, hours=hours, seed0=5000)
    second = make_nights(work / "inputs2", n, hours=hours, seed0=5500)
    h = Harness.create(work / "run")
    for i, night in enumerate(first):
        h.upload_night(night, subject_code(300 + i))
    problems: list[str] = []
    with h:
        h.announce()
        wait_until(lambda: h.settled(n), 120 + 20 * n, "the first generation")
        results = h.settings.bucket("results")
        before = {i.name: h.ctx.storage.read_bytes(results, i.name) for i in h.ctx.storage.list(results)}
        old = {night: doc["stages"]["sunalgo"]["outputs"]["prefix"] for night, doc in h.nights()}
        old_sunrise = {night: doc["stages"]["sunrise_prep"]["input_key"] for night, doc in h.nights()}
        time.sleep(0.01)  # a new mtime, i.e. a new generation
        renamed = []
        for i, night in enumerate(second):
            renamed.append(h.upload(night.sunrise, "sunrise", subject_code(300 + i), name=Path(first[i].sunrise).name))
        t0 = time.monotonic()
        h.announce(renamed)

        def reprocessed() -> bool:
            docs = dict(h.nights())
            return (len(docs) == n and h.settled(n)
                    and all(docs[night]["stages"]["sunalgo"]["outputs"]["prefix"] != old[night] for night in old))

        wait_until(reprocessed, 120 + 20 * n, "the new generation to be scored")
        elapsed = time.monotonic() - t0
        after = {i.name: h.ctx.storage.read_bytes(results, i.name) for i in h.ctx.storage.list(results)}
    for name, data in before.items():
        if after.get(name) != data:
            problems.append(f"old result changed or removed: {name}")
    changed_scores = 0
    for night, doc in h.nights():
        new_prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
        if doc["stages"]["sunrise_prep"]["input_key"] == old_sunrise[night]:
            problems.append(f"{night}: sunrise_prep did not run on the new generation")
        new_files = {k for k in after if k.startswith(new_prefix)}
        if not new_files or new_prefix == old[night]:
            problems.append(f"{night}: no new prefix")
        mixed = {k for k in new_files if k in before}
        if mixed:
            problems.append(f"{night}: new prefix reuses old paths {sorted(mixed)[:3]}")
        manifest = json.loads(after[new_prefix + "_MANIFEST.json"])["files"]
        if {new_prefix + f for f in manifest} | {new_prefix + "_MANIFEST.json"} != new_files:
            problems.append(f"{night}: the new manifest does not list exactly the new prefix")
        if after.get(new_prefix + "scores.json") != before.get(old[night] + "scores.json"):
            changed_scores += 1
    c = completions(h)
    lost = census(h)["lost"]
    notes = (f"{n} night(s) scored, then the Sunrise file re-uploaded with another seed (new generation): "
             f"new results prefix for {n - sum('no new prefix' in p for p in problems)}/{n}, scores changed for "
             f"{changed_scores}/{n}, {len(before)} old result objects untouched: {not any('old result' in p for p in problems)}")
    return make_row("new_generation", h, events=h.events(), files=len(h.inputs), lost=lost, duplicated=c["duplicated"],
                    recover_s=elapsed, notes=notes, problems=problems, changed_scores=changed_scores)


# --------------------------------------------------------------------------------------------
# 6. fuzzed CloudEvent requests against every service's app, in-process
# --------------------------------------------------------------------------------------------

# No 5xx is acceptable from parsing: an unknown night is a recorded 2xx too (ingest writes the
# night before it publishes its event), so nothing a request says may earn a retry.
ALLOWED_5XX_REASONS: set[str] = set()
# A request that takes this long to be answered (or dropped) holds a worker: a hang.
HANG_S = 10.0


def hostile_requests(settings: Settings, night: str) -> list[tuple[str, dict[str, str], bytes]]:
    """The cases issue 13 measured as 5xx or hangs, one request each: (label, headers, body)."""
    from sunrise_common.events import pubsub_event, storage_event

    raw = settings.bucket("raw")
    topic = settings.topic(names.TOPIC_SUNRISE_PREPPED)
    cases: list[tuple[str, dict[str, str], bytes]] = []
    deep = "[" * 990 + "]" * 990
    envelope = {"specversion": "1.0", "id": "x", "source": f"//storage.googleapis.com/projects/_/buckets/{raw}",
                "type": names.STORAGE_FINALIZED, "data": {"bucket": raw, "name": "psg/s/x/f.edf", "generation": "1"}}
    structured = {"content-type": "application/cloudevents+json"}
    cases.append(("structured: data nested 990 deep", structured,
                  json.dumps({**envelope, "data": "@"}).replace('"@"', deep).encode()))
    cases.append(("structured: envelope nested 5000 deep", structured, ("[" * 5000 + "]" * 5000).encode()))
    for attr, value in (("time", 12345), ("subject", ["x"]), ("subject", {"a": 1}), ("time", None), ("id", 7)):
        cases.append((f"structured: {attr}={value!r}", structured, json.dumps({**envelope, attr: value}).encode()))
    headers, _ = storage_event(raw, "psg/s/x/f.edf", 1, 1)
    cases.append(("binary: generation of 5000 digits", headers,
                  b'{"bucket": "%s", "name": "psg/s/x/f.edf", "generation": %s}' % (raw.encode(), b"7" * 5000)))
    cases.append(("binary: body nested 5000 deep", headers, ("[" * 5000 + "]" * 5000).encode()))
    for label, data in (("pubsub data: integer of 5000 digits", b'{"night_id": "%s", "generation": %s}' % (night.encode(), b"9" * 5000)),
                        ("pubsub data: nested 5000 deep", b"[" * 5000 + b"]" * 5000),
                        ("pubsub data: unknown night", json.dumps({"night_id": "s" + "a" * 12 + "-n" + "b" * 8}).encode()),
                        ("pubsub data: model_version is a path", json.dumps({"night_id": night, "model_version": "/tmp/x/evil"}).encode()),
                        ("pubsub data: model_version of 5000 chars", json.dumps({"night_id": night, "model_version": "m" * 5000}).encode()),
                        ("pubsub data: model_version is a list", json.dumps({"night_id": night, "model_version": ["a"]}).encode())):
        h_, b_ = pubsub_event(settings.project, topic, data)
        cases.append((label, h_, json.dumps(b_).encode()))
    h_, b_ = pubsub_event(settings.project, topic, b"{}")
    b_["message"]["attributes"] = {"kind": 5, "x": ["y"]}
    cases.append(("pubsub: non-string attributes", h_, json.dumps(b_).encode()))
    return cases


def abuse_events(work: Path, n: int = 100) -> dict[str, Any]:
    """Hypothesis-fuzzed requests (headers, content types, bodies, valid envelopes with random
    data, huge bodies, unicode) against each service's real app: never a 5xx from parsing, never
    an exception escaping. ``n`` is the number of examples per service."""
    from importlib import import_module

    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

    from sunrise_common.service import create_app

    work = Path(work)
    if work.exists():
        shutil.rmtree(work)
    settings = stack_settings(work / "data")
    ctx = Context.from_settings(settings)
    for logical in names.BUCKETS:
        ctx.storage.ensure_bucket(settings.bucket(logical))
    raw = settings.bucket("raw")
    topics = [settings.topic(t) for t in names.TOPICS]
    # One real night, ingested, so that well-formed events about it reach deep into the handlers.
    from ingest.handler import handle as ingest_handle
    from sunrise_common.events import storage_event

    night = make_nights(work / "inputs", 1, seed0=8000)[0]
    ingest_client = TestClient(create_app("ingest", ingest_handle, settings=settings))
    for path, kind in ((night.sunrise, "sunrise"), (night.psg, "psg"), (night.labels[0], "labels")):
        info = ops.upload(ctx, Path(path), kind=kind, site=SITE, subject=subject_code(800))
        headers, body = storage_event(raw, info.name, info.generation, info.size)
        ingest_client.post("/", headers=headers, content=json.dumps(body).encode())
    known_night, known_doc = next(iter(ctx.state.list("nights")))
    known_generations = [str(r["generation"]) for k, r in known_doc["recordings"].items() if k != "labels"]

    token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
    header_name = st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time",
                                   "ce-datacontenttype", "ce-dataschema", "content-type", "ce-bucket", "ce-",
                                   "content-length", "transfer-encoding", "x-cloud-trace-context", "traceparent"]) \
        | token.map(lambda t: "ce-" + t) | token
    header_value = st.one_of(
        st.sampled_from(["1.0", "0.3", "2.0", "", "application/json", "application/cloudevents+json",
                         "application/cloudevents-batch+json", "text/plain; charset=utf-8", "application/json; charset=latin-1",
                         "multipart/form-data; boundary=x", names.STORAGE_FINALIZED, names.PUBSUB_PUBLISHED,
                         f"//storage.googleapis.com/projects/_/buckets/{raw}", "-1", "0" * 400, "abc/def;o=1",
                         "00-" + "a" * 32 + "-" + "b" * 16 + "-01"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
        st.text(st.characters(min_codepoint=128, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), max_size=50),
    )
    json_value = st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False) | st.text(max_size=50),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
        max_leaves=20,
    )

    def mostly(good: Any, bad: Any, p: int = 8) -> Any:  # good p times in 10: reach the handlers often
        return st.sampled_from(range(10)).flatmap(lambda i: good if i < p else bad)

    night_like = mostly(
        st.sampled_from([known_night]) | st.from_regex(r"\As[a-z2-7]{12}-n[a-z2-7]{8}\Z"),
        st.sampled_from(["s" + "a" * 12 + "-n1", "s" + "2" * 12 + "-n99999999", "../x", "", None, 7]) | json_value,
        p=6,
    )
    storage_data = st.fixed_dictionaries(
        {"bucket": mostly(st.just(raw), st.sampled_from(["other-bucket", "", "a" * 300]) | st.text(max_size=30)),
         "name": mostly(st.sampled_from(["psg/s/x/f.edf", "../../etc/passwd", "sunrise/site/subj/\x00.edf", "a" * 1024,
                                         "labels/site/subj/Sleep profile.txt", "/abs/olute/x/y", "psg/site/subj/ü🛌.edf"])
                        | st.builds(lambda k, a, b, c: f"{k}/{a}/{b}/{c}", st.sampled_from(names.UPLOAD_KINDS),
                                    st.text(max_size=10), st.text(max_size=10), st.text(max_size=30)),
                        st.text(max_size=100)),
         "generation": mostly(st.integers(min_value=0, max_value=2**63).map(str),
                              st.integers(min_value=-5, max_value=2**80).map(str) | json_value),
         "size": mostly(st.integers(min_value=0, max_value=2**40).map(str), json_value)},
        optional={"contentType": json_value, "metageneration": json_value, "timeCreated": json_value, "extra": json_value},
    )
    message_payload = st.fixed_dictionaries({"night_id": night_like},
                                            optional={"kind": mostly(st.sampled_from(["sunrise", "psg", "rerun"]), json_value),
                                                      "object": json_value,
                                                      "generation": mostly(st.sampled_from(known_generations), json_value),
                                                      "prefix": json_value, "input_key": json_value,
                                                      "model_version": json_value})
    pubsub_data = mostly(st.fixed_dictionaries({
        "message": st.fixed_dictionaries({"data": mostly(
            message_payload.map(lambda p: base64.b64encode(json.dumps(p).encode()).decode()),
            st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=40) | json_value)},
            optional={"attributes": mostly(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
                                           json_value),
                      "messageId": mostly(st.text(max_size=20), json_value),
                      "publishTime": mostly(st.text(max_size=30), json_value),
                      "deliveryAttempt": mostly(st.integers(0, 10**6), json_value)}),
    }, optional={"subscription": mostly(st.text(max_size=60), json_value)}), json_value)

    @st.composite
    def valid_binary(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        kind = draw(st.sampled_from(["storage", "pubsub"]))
        ce_type = names.STORAGE_FINALIZED if kind == "storage" else names.PUBSUB_PUBLISHED
        source = (f"//storage.googleapis.com/projects/_/buckets/{raw}" if kind == "storage"
                  else f"//pubsub.googleapis.com/projects/{settings.project}/topics/{draw(st.sampled_from(topics))}")
        data = draw(storage_data if kind == "storage" else pubsub_data)
        headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": draw(st.text(min_size=1, max_size=40).filter(str.isprintable)),
                   "ce-source": source, "ce-type": ce_type}
        for k in draw(mostly(st.just([]), st.lists(st.sampled_from(list(headers)), max_size=2, unique=True))):
            headers[k] = draw(header_value)
        body = json.dumps(data).encode()
        return "valid_binary", _encode_headers(headers), body

    @st.composite
    def structured(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        kind = draw(st.sampled_from(["storage", "pubsub"]))
        envelope = {"specversion": draw(mostly(st.just("1.0"), st.sampled_from(["0.3", None, 1, ""]) | json_value)),
                    "id": draw(mostly(st.text(min_size=1, max_size=30), json_value)),
                    "source": draw(mostly(st.sampled_from([f"//storage.googleapis.com/projects/_/buckets/{raw}"]
                                                          + [f"//pubsub.googleapis.com/projects/p/topics/{t}" for t in topics]),
                                          json_value)),
                    "type": draw(mostly(st.just(names.STORAGE_FINALIZED if kind == "storage" else names.PUBSUB_PUBLISHED),
                                        st.sampled_from([names.STORAGE_FINALIZED, names.PUBSUB_PUBLISHED]) | json_value)),
                    "data": draw(storage_data if kind == "storage" else pubsub_data)}
        for k in draw(mostly(st.just([]), st.lists(st.sampled_from(["specversion", "id", "source", "type", "data"]),
                                                    max_size=2, unique=True))):
            envelope.pop(k)
        if draw(mostly(st.just(False), st.just(True))):
            envelope["data_base64"] = draw(st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()) | json_value)
        ctype = draw(st.sampled_from(["application/cloudevents+json", "application/cloudevents+json; charset=utf-8",
                                      "application/cloudevents-batch+json"]))
        return "structured", _encode_headers({"content-type": ctype}), json.dumps(envelope).encode()

    @st.composite
    def random_request(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        headers = draw(st.dictionaries(header_name, header_value, max_size=8))
        body = draw(st.one_of(
            st.binary(max_size=3000),
            json_value.map(lambda v: json.dumps(v).encode()),
            st.text(max_size=500).map(lambda t: t.encode("utf-8")),
            st.text(max_size=100).map(lambda t: t.encode("utf-16")),
            st.sampled_from([b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b"{\"data\": 1e999}", b"1" * 5000]),
        ))
        return "random", _encode_headers(headers), body

    @st.composite
    def huge(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        size = draw(st.sampled_from([(1 << 20) - 10, (1 << 20) + 1, 3 << 20]))
        headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "h", "ce-type": names.STORAGE_FINALIZED,
                   "ce-source": f"//storage.googleapis.com/projects/_/buckets/{raw}"}
        name = "psg/site/subj/" + "x" * 200
        body = json.dumps({"bucket": raw, "name": name, "generation": "1", "pad": "a" * size}).encode()
        return "huge", _encode_headers(headers), body

    request = st.one_of(random_request(), valid_binary(), structured(), huge())
    tally: Counter = Counter()
    reasons: Counter = Counter()
    branches: Counter = Counter()
    samples: list[str] = []
    bad: list[str] = []
    per_service: dict[str, int] = {}
    explicit: dict[str, int] = {}
    for service in SERVICES:
        handler = import_module(f"{service}.handler").handle
        client = TestClient(create_app(service, handler, settings=settings))  # exceptions escaping re-raise here
        count = {"n": 0}

        @hsettings(max_examples=n, deadline=None, database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        @given(request)
        def check(req: tuple[str, list[tuple[bytes, bytes]], bytes]) -> None:
            branch, headers, body = req
            branches[branch] += 1
            count["n"] += 1
            resp = client.post("/", headers=headers, content=body)
            tally[resp.status_code] += 1
            answer = _reason(resp) if resp.headers.get("content-type") == "application/json" else None
            if branch == "structured" and resp.status_code == 400 and len(samples) < 8:
                samples.append(f"{_json(resp).get('detail')} <- {body[:150]!r}")
            reasons[f"{branch}: {resp.status_code} {answer or _json(resp).get('error') or _json(resp).get('status')}"] += 1
            if resp.status_code >= 500:
                reason = _reason(resp)
                if reason not in ALLOWED_5XX_REASONS:
                    bad.append(f"{service}: {resp.status_code} {resp.text[:300]} for headers={headers!r:.300} body={body[:200]!r}")

        t0 = time.monotonic()
        quiet = logging.getLogger("sunrise_common")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # thousands of "rejected a malformed request" lines otherwise
        try:
            check()
            for label, headers, body in hostile_requests(settings, known_night):  # the cases of issue 13
                count["n"] += 1
                branches["issue_13"] += 1
                resp = client.post("/", headers=headers, content=body)
                tally[resp.status_code] += 1
                explicit[f"{service} {label}"] = resp.status_code
                if resp.status_code >= 500 and _reason(resp) not in ALLOWED_5XX_REASONS:
                    bad.append(f"{service}: {resp.status_code} {resp.text[:300]} for {label}")
        finally:
            quiet.setLevel(level)
        per_service[service] = count["n"]
        tally[f"{service}_s"] = round(time.monotonic() - t0, 1)
    live = _abuse_live_stack(work / "live", known_night)
    bad += live["bad"]
    total = sum(per_service.values()) + live["requests"]
    notes = (f"{total} fuzzed and hostile requests ({', '.join(f'{k} {v}' for k, v in per_service.items())} in-process, "
             f"incl. {branches['issue_13']} of issue 13's cases; {live['requests']} over HTTP to the running stack: "
             f"slow headers, slow body, 20 MB bodies, /docs /openapi.json /redoc, issue 13's cases); answers: "
             + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items(), key=str) if isinstance(k, int))
             + f"; over HTTP: {', '.join(f'{k}: {v}' for k, v in sorted(live['statuses'].items(), key=str))}"
             + f"; 5xx from parsing: {len(bad)}; hangs >= {HANG_S:g} s: {live['hangs']}; exceptions escaping: 0")
    return make_row("abuse_events", None, events=total, files=0, lost=0, duplicated=0, recover_s=None, notes=notes,
                    bad=bad[:20], statuses={str(k): v for k, v in tally.items()}, requests=total,
                    reasons=dict(reasons.most_common()), branches=dict(branches), samples=samples,
                    explicit=explicit, live=live, hangs=live["hangs"])


def _abuse_live_stack(work: Path, night: str) -> dict[str, Any]:
    """Hostile requests over real HTTP to the four running services (sunrise_devstack.server):
    slow clients must be dropped, big bodies refused while reading, no API browser served, and
    issue 13's parsing cases answered without a 5xx. Every request is timed: >= HANG_S is a hang."""
    import socket
    from urllib.parse import urlparse

    import httpx

    h = Harness.create(work)
    statuses: Counter = Counter()
    bad: list[str] = []
    slow: list[str] = []
    answers: dict[str, int | str] = {}
    requests = 0
    with h, httpx.Client(timeout=HANG_S * 3) as client:
        cases = hostile_requests(h.settings, night)
        for service in SERVICES:
            url = h.settings.service_url(service)
            port = urlparse(url).port

            def timed(label: str, send: Callable[[], Any]) -> None:
                nonlocal requests
                requests += 1
                t0 = time.monotonic()
                try:
                    answer = send()
                except (httpx.HTTPError, OSError) as exc:
                    answer = f"no answer: {type(exc).__name__}"
                took = time.monotonic() - t0
                status = answer if isinstance(answer, (int, str)) else answer.status_code
                statuses[status] += 1
                answers[f"{service} {label}"] = status
                if took >= HANG_S:
                    slow.append(f"{service} {label}: {took:.1f} s")
                if isinstance(status, int) and status >= 500:
                    bad.append(f"{service}: {status} over HTTP for {label}")

            for label, headers, body in cases:
                timed(label, lambda: client.post(url, headers=headers, content=body))
            for path in ("docs", "openapi.json", "redoc"):
                timed(f"GET /{path}", lambda: client.get(url + path))
            headers, _ = storage_event_headers(h.settings)

            def twenty_mb() -> Iterable[bytes]:
                for _ in range(320):
                    yield b" " * 65536

            timed("20 MB chunked body", lambda: client.post(url, headers=headers, content=twenty_mb()))

            def slow_client(head: bytes) -> int | str:
                # Dropped by the server, or answered: either way it must not be held.
                with socket.create_connection(("127.0.0.1", port), timeout=HANG_S * 3) as sock:
                    sock.sendall(head)
                    data = sock.recv(65536)
                    return "dropped" if not data else int(data.split(b" ", 2)[1])

            declared = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
            timed("20 MB declared body", lambda: slow_client(  # refused on the header, before the body
                b"POST / HTTP/1.1\r\nHost: x\r\n" + declared + b"content-length: %d\r\n\r\n" % (20 << 20) + b" " * 65536))

            timed("headers never finished", lambda: slow_client(b"POST / HTTP/1.1\r\nHost: x\r\nce-id: 1\r\n"))
            timed("body never finished", lambda: slow_client(
                b"POST / HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"))
    return {"requests": requests, "statuses": {str(k): v for k, v in statuses.items()}, "bad": bad,
            "hangs": len(slow), "slow": slow, "answers": answers}


def storage_event_headers(settings: Settings) -> tuple[dict[str, str], dict[str, Any]]:
    from sunrise_common.events import storage_event

    return storage_event(settings.bucket("raw"), "psg/s/x/f.edf", 1, 1)


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    out = []
    for k, v in headers.items():
        out.append((k.encode("latin-1", "replace"), v.encode("utf-8")))
    return out


def _json(resp: Any) -> dict:
    try:
        value = resp.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(resp: Any) -> str | None:
    return _json(resp).get("reason")


# --------------------------------------------------------------------------------------------
# 7. hostile object names and malformed EDF files through ingest
# --------------------------------------------------------------------------------------------

HOSTILE_NAMES: list[tuple[str, str]] = [
    ("../../etc/passwd", "unsafe_name"),
    ("psg/site/../../../etc/passwd", "unsafe_name"),
    ("psg/./subj/f.edf", "unsafe_name"),
    ("/psg/site/subj/f.edf", "unsafe_name"),
    ("/etc/passwd", "unsafe_name"),
    ("psg\\site\\subj\\f.edf", "unsafe_name"),
    ("psg/site/subj/f\x00.edf", "unsafe_name"),
    ("psg/site/subj/\x00\x00\x00", "unsafe_name"),
    ("psg/site/subj/f\n.edf", "unsafe_name"),
    ("psg/site/subj/f\r\nX-Injected: 1.edf", "unsafe_name"),
    ("psg/site/subj/\x1b[31mred.edf", "unsafe_name"),
    ("psg/site/subj/tab\t.edf", "unsafe_name"),
    ("psg/site/subj", "bad_layout"),
    ("psg/site/subj/a/b.edf", "bad_layout"),
    ("psg//subj/f.edf", "bad_layout"),
    ("unknown/site/subj/f.edf", "unknown_kind"),
    ("PSG/site/subj/f.edf", "unknown_kind"),
    ("psg/sïte/subj/f.edf", "bad_site"),
    ("psg/site/sübj/f.edf", "bad_subject"),
    ("psg/-site/subj/f.edf", "bad_site"),
    ("psg/" + "s" * 65 + "/subj/f.edf", "bad_site"),
    ("psg/site/subj/" + "é" * 200 + ".edf", "bad_file_name"),
    ("psg/site/subj/" + "🛌" * 70 + ".edf", "bad_file_name"),
    ("psg/site/subj/ünïcødé-🛌-\u202egnp.edf", "object_gone"),  # a legal name whose object does not exist
    ("psg/site/subj/" + "a" * 10_000, "invalid_data"),  # beyond GCS's 1024-byte cap: not an event Eventarc can send
    ("psg/" + "s" * 10_000 + "/subj/f.edf", "invalid_data"),
]


def abuse_files(work: Path, n: int = 1, *, hours: float = 0.5) -> dict[str, Any]:
    """Hostile object names and the malformed EDF set through the ingest service: each rejected
    with its reason and a 2xx, fast; good nights processed alongside still complete."""
    import httpx

    from tests.edf.malformed import MALFORMED

    work = Path(work)
    nights = make_nights(work / "inputs", n, hours=hours, seed0=6000)
    h = Harness.create(work / "run")
    raw = h.settings.bucket("raw")
    good: list[str] = []
    for i, night in enumerate(nights):
        subject = subject_code(400 + i)
        good += [h.upload(night.sunrise, "sunrise", subject, name=f"nuit été 🛌 {i}.edf"),
                 h.upload(night.psg, "psg", subject, name=f"psg – ünïcødé {i}.edf"),
                 h.upload(night.labels[0], "labels", subject)]
    expected: dict[str, str] = {}
    malformed_names = []
    for i, (name, data, reason) in enumerate(MALFORMED):
        tmp = work / "malformed" / f"{name}.edf"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        kind = "sunrise" if i % 2 else "psg"
        raw_name = h.upload(tmp, kind, subject_code(500 + i))
        expected[raw_name] = reason
        malformed_names.append(raw_name)
    timings: list[tuple[float, str]] = []
    wrong: list[str] = []
    with h:
        jobs = []
        for raw_name in malformed_names:
            info = h.ctx.storage.stat(raw, raw_name)
            headers, body = ops.object_event(h.settings, raw_name, info)
            jobs.append((raw_name, expected[raw_name], headers, body))
        for name, reason in HOSTILE_NAMES:
            from sunrise_common.events import storage_event

            headers, body = storage_event(raw, name, 1, 10)
            jobs.append((name, reason, headers, json.dumps(body).encode()))
        random.Random(8).shuffle(jobs)
        t0 = time.monotonic()
        h.announce(good)  # the good nights travel through the router meanwhile
        with httpx.Client(timeout=60) as client:
            for name, reason, headers, body in jobs:
                start = time.perf_counter()
                resp = client.post(h.settings.ingest_url, headers=headers, content=body)
                timings.append((time.perf_counter() - start, name[:60]))
                h.direct_posts += 1
                got = _reason(resp) if resp.status_code == 200 else (resp.json().get("error") if resp.status_code == 400 else None)
                want_status = 400 if reason == "invalid_data" else 200
                if resp.status_code != want_status or got != reason:
                    wrong.append(f"{name[:80]!r}: want {want_status} {reason}, got {resp.status_code} {resp.text[:200]}")
        wait_until(lambda: h.settled(n), 120 + 20 * n, "the good nights")
        elapsed = time.monotonic() - t0
    recorded = census(h, expected)
    c = completions(h)
    slowest = max(timings)
    notes = (f"{len(MALFORMED)} malformed EDF files + {len(HOSTILE_NAMES)} hostile names (../, absolute, NUL and control "
             f"characters, 10 kB, unicode) posted to ingest beside {n} good night(s) with unicode file names: "
             f"{len(jobs) - len(wrong)}/{len(jobs)} rejected with the expected reason (2xx; 400 only for names over "
             f"GCS's 1024-byte limit), slowest {slowest[0] * 1000:.0f} ms; {recorded['rejected']} rejections recorded; "
             f"good nights done")
    return make_row("abuse_files", h, events=h.events(), files=len(h.inputs) + len(HOSTILE_NAMES),
                    lost=recorded["lost"], duplicated=c["duplicated"], recover_s=elapsed, notes=notes, wrong=wrong,
                    max_seconds_per_file=round(slowest[0], 4), slowest=slowest[1], rejected_recorded=recorded["rejected"],
                    malformed=len(MALFORMED))


# --------------------------------------------------------------------------------------------
# 8. loopback only
# --------------------------------------------------------------------------------------------


def loopback_only(work: Path, n: int = 1) -> dict[str, Any]:
    """The stack refuses non-loopback URLs, listens on 127.0.0.1 only, and in the cloud only the
    trigger accounts may invoke the (internal-ingress) services."""
    import psutil

    work = Path(work)
    problems: list[str] = []
    refused = 0
    for host in ("0.0.0.0", "10.1.2.3", "[::]", "example.com", "192.168.0.10"):
        settings = stack_settings(work / "refuse", ingest_url=f"http://{host}:{free_port()}/")
        stack = Stack(settings, work / "refuse" / "logs")
        try:
            stack.start_service("ingest")
            problems.append(f"started a service on {host}")
            stack.stop()
        except ValueError:
            refused += 1
            if stack.procs:
                problems.append(f"{host}: a process was started anyway")
    h = Harness.create(work / "run")
    sockets: list[str] = []
    with h:
        for name, proc in h.stack.procs.items():
            p = psutil.Process(proc.pid)
            for q in [p, *p.children(recursive=True)]:
                for conn in q.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        sockets.append(f"{name} {conn.laddr.ip}:{conn.laddr.port}")
                        if conn.laddr.ip != "127.0.0.1":
                            problems.append(f"{name} listens on {conn.laddr.ip}:{conn.laddr.port}")
    listening = {s.split()[0] for s in sockets}
    if listening != set(SERVICES):
        problems.append(f"expected one listener per service, found {sorted(listening)}")
    terraform = []
    try:
        import tests.terraform.test_terraform as tf

        for check in (tf.test_services_are_internal_with_bounded_scaling_concurrency_and_timeouts,
                      tf.test_each_trigger_account_can_invoke_only_its_destination,
                      tf.test_no_public_principals_anywhere,
                      tf.test_every_service_and_trigger_has_its_own_service_account):
            check()
            terraform.append(check.__name__)
    except AssertionError as exc:
        problems.append(f"terraform: {exc}")
    notes = (f"{refused} non-loopback service URLs refused before any process starts; {len(sockets)} listening "
             f"sockets, all on 127.0.0.1 ({', '.join(sorted(s.split()[0] for s in sockets))}); the router listens on "
             f"none; Terraform: ingress internal-only, run.invoker granted only to each trigger's account on its "
             f"service ({len(terraform)} checks)")
    return make_row("loopback_only", h, events=0, files=0, lost=0, duplicated=0, recover_s=None, notes=notes,
                    problems=problems, sockets=sockets, refused=refused, terraform_checks=terraform)


# --------------------------------------------------------------------------------------------
# 9. no personal data outside raw
# --------------------------------------------------------------------------------------------

SYNTH_PERSONAL = [b"Jane_Synthetic", b"12-MAR-1961", b"05-MAR-2024", b"05.03.24", b"05.03.2024", b"Tech_Smith",
                  b"LAB-7", b"SunriseSim", b"Sleep profile - SYN-", b"Flow Events - SYN-", SITE.encode(),
                  b"nuit \xc3\xa9t\xc3\xa9", "psg – ünïcødé".encode()]
SYNTH_PATTERNS = [re.compile(rb"SYN-\d{4}"), re.compile(rb"PATIENT\d{5}")]


# A third-party-written EDF+ (edfio: pyedflib is not installed here) with personal data in every
# free-text header field, in its annotations and in its object name (issue 13).
PERSONAL_EDF_NAME = "Mueller Zofia PSG 2021-03-12.edf"
PERSONAL_EDF_SUBJECT = "MRN4471902"
PERSONAL_EDF_NEEDLES = [b"MRN4471902", b"Mueller", b"Zofia", b"12-MAR-1961", b"Bahnhofstrasse", b"HOSP-ZH-77",
                        b"Dr_Keller", b"Somno-XY-42", b"+41 79 555 01 23", b"555 01 23", b"2021-03-12", b"12.03.21",
                        b"12-MAR-2021"]
# Names put in the per-signal transducer and prefiltering fields. The anonymiser keeps those fields
# only when they pass its allowlist (docs/privacy.md), so these are blanked and scanned for like
# every other needle (tests/reliability/test_personal_edf.py).
SIGNAL_FIELD_NEEDLES = [b"Huber_Anna", b"Brunner_Lea"]


def personal_edf(path: Path, *, minutes: float = 10.0) -> Path:
    """Write a 2-channel EDF+ (256 Hz EEG, 100 Hz EOG) whose patient, recording, transducer and
    prefiltering fields and annotations all carry a (fictional) person's data."""
    import datetime as dt

    import numpy as np
    from edfio import Edf, EdfAnnotation, EdfSignal, Patient, Recording

    rng = np.random.default_rng(13)
    n = int(minutes * 60)
    signals = [
        EdfSignal(rng.normal(0, 20, n * 256), 256, label="EEG C3-A2", transducer_type="AgCl Huber_Anna",
                  physical_dimension="uV", physical_range=(-500, 500), prefiltering="HP:0.1Hz Brunner_Lea"),
        EdfSignal(rng.normal(0, 30, n * 100), 100, label="EOG E1-M2", transducer_type="AgCl Huber_Anna",
                  physical_dimension="uV", physical_range=(-500, 500), prefiltering="HP:0.1Hz Brunner_Lea"),
    ]
    edf = Edf(
        signals,
        patient=Patient(code="MRN4471902", sex="F", birthdate=dt.date(1961, 3, 12), name="Mueller_Zofia",
                        additional=["Bahnhofstrasse_12_Zurich", "+41_79_555_01_23"]),
        recording=Recording(startdate=dt.date(2021, 3, 12), hospital_administration_code="HOSP-ZH-77",
                            investigator_technician_code="Dr_Keller", equipment_code="Somno-XY-42",
                            additional=["Mueller_Zofia_night_1"]),
        starttime=dt.time(22, 41, 5),
        annotations=[EdfAnnotation(5.0, None, "Lights off, Zofia Mueller settled"),
                     EdfAnnotation(60.0, 1.0, "Call +41 79 555 01 23 if awake"),
                     EdfAnnotation(120.0, None, "Patient MRN4471902 born 12-MAR-1961")],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    edf.write(path)
    return path


def _scan_bytes(where: str, data: bytes, needles: Iterable[bytes], patterns: Iterable[re.Pattern]) -> list[str]:
    hits = [f"{where}: contains {n!r}" for n in needles if n in data]
    hits += [f"{where}: matches {p.pattern!r}" for p in patterns if p.search(data)]
    return hits


def privacy_scan(h: Harness, needles: Iterable[bytes] = (), patterns: Iterable[re.Pattern] = ()) -> dict[str, Any]:
    """Every store of one harness outside raw, scanned for personal strings: the non-raw buckets
    (object bytes and names, through the storage port: local folders or fake-gcs-server), the
    state (every document, through the state port: SQLite or the Firestore emulator), every file
    under the data dir but raw (the SQLite files with their WAL, the router's database, the
    storage's staging folder), the dead letters, the service and router logs, and every CLI view
    (``status``, ``status --json``, ``dlq list``, ``dataset stats``...). Run it after the stack stopped."""
    from sunrise_devstack.dead_letters import make_dead_letters

    needles = sorted(set(needles) | set(SYNTH_PERSONAL) | {n[0].encode() for n in h.inputs})
    patterns = list(patterns) or SYNTH_PATTERNS
    hits: dict[str, list[str]] = {}
    counts: Counter = Counter()
    for logical in ("anonymised", "prepped", "results"):
        bucket = h.settings.bucket(logical)
        for info in h.ctx.storage.list(bucket):
            counts["objects"] += 1
            where = f"{bucket}/{info.name}"
            found = _scan_bytes(where, h.ctx.storage.read_bytes(bucket, info.name), needles, patterns)
            found += _scan_bytes(f"name {where}", info.name.encode(), needles, patterns)
            hits.setdefault("buckets", []).extend(found)
    for collection in ("nights", "uploads"):
        for doc_id, doc in h.ctx.state.list(collection):
            counts["documents"] += 1
            hits.setdefault("state", []).extend(
                _scan_bytes(f"{collection}/{doc_id}", json.dumps(doc, default=str).encode(), needles, patterns))
    # Every file under the data dir but raw (tests/privacy.py): SQLite files with their -wal and
    # -shm, the storage's staging folder buckets/.tmp, the local buckets, the gold layer.
    from tests.privacy import files_outside_raw, scan_cli, staging_files

    staging = set(staging_files(h.settings))
    counts["staging_files"] = len(staging)
    for path in files_outside_raw(h.settings):
        counts["data_files"] += 1
        counts["database_files"] += ".db" in path.name
        store = ("router_db" if path.name.startswith("router.db") else "state" if path.name.startswith("state.db")
                 else "staging" if path in staging else "data_files")
        hits.setdefault(store, []).extend(_scan_bytes(path.name, path.read_bytes(), needles, patterns))
    letters = make_dead_letters(h.settings).list(limit=100_000)
    counts["dead_letters"] = len(letters)
    for letter in letters:
        hits.setdefault("dead_letters", []).extend(
            _scan_bytes(f"dead letter {letter.id}", json.dumps(letter.__dict__, default=str).encode(), needles, patterns))
    for path in sorted((h.work / "logs").glob("*.log")):
        counts["log_files"] += 1
        hits.setdefault("logs", []).extend(_scan_bytes(f"logs/{path.name}", path.read_bytes(), needles, patterns))
    # Every CLI view an operator reads: status, status --json, dlq list, dataset stats (tests/privacy.py).
    cli_hits, cli_counts = scan_cli(h.settings, h.ctx.storage, needles, patterns)
    hits.setdefault("cli", []).extend(cli_hits)
    counts.update(cli_counts)
    return {"hits": {k: v[:20] for k, v in hits.items() if v}, "total": sum(len(v) for v in hits.values()),
            "stores": sorted(set(hits)), "scanned": dict(counts), "needles": len(needles)}


def corpus_needles() -> dict[str, list[bytes]]:
    """Personal strings of each corpus EDF (tests/edf: known list + header fields + dropped annotations)."""
    from tests.edf.test_anonymise import KNOWN_PERSONAL, _personal_needles

    found = {}
    for path in sorted((CORPUS / "edf").glob("*")):
        try:
            found[path.name] = _personal_needles(path.name)
        except Exception:  # a file whose header cannot be read: ingest rejects it; the known list applies
            found[path.name] = sorted(n.encode() for n in KNOWN_PERSONAL)
    return found


def no_personal_data(work: Path, n: int = 2, *, hours: float = 0.5, scan_root: Path | None = None) -> dict[str, Any]:
    """Process synthetic nights, every corpus EDF and a third-party-written EDF+ with personal data
    in every header field, its annotations and its object name; then scan every store of this
    stack outside raw (buckets, state, router database and WAL, dead letters, logs,
    ``sunrise status --json``) and every bucket and database file under ``scan_root`` (default:
    ``work``, i.e. also earlier scenarios' data)."""
    work = Path(work)
    scan_root = Path(scan_root or work)
    nights = make_nights(work / "inputs", n, hours=hours, seed0=7000)
    h = Harness.create(work / "no_personal_data")
    for i, night in enumerate(nights):
        h.upload_night(night, subject_code(600 + i), labels=4)
    for i, path in enumerate(sorted((CORPUS / "edf").glob("*"))):
        kind = "labels" if "Hypnogram" in path.name else "psg"
        h.upload(path, kind, subject_code(700 + i))
    hostile = personal_edf(work / "inputs" / "personal" / PERSONAL_EDF_NAME)
    info = ops.upload(h.ctx, hostile, kind="psg", site="clinic", subject=PERSONAL_EDF_SUBJECT, name=PERSONAL_EDF_NAME)
    h.inputs.append((info.name, info.generation))
    with h:
        t0 = time.monotonic()
        h.announce()
        wait_until(lambda: h.quiet() and len([1 for _, d in h.nights()
                                              if d["stages"].get("sunalgo", {}).get("state") == "done"]) >= n,
                   (120 + 20 * n) * PATIENCE, "the nights and the corpus")
        elapsed = time.monotonic() - t0
    stores = privacy_scan(h, PERSONAL_EDF_NEEDLES + SIGNAL_FIELD_NEEDLES)
    rejected_corpus = [name for name, _ in h.inputs if name.split("/")[2] >= subject_code(700)]
    rejected_corpus.append(info.name)  # it may be too short or too odd for psg_prep: a recorded rejection
    # corpus files may be rejected (reason recorded) and a lone hypnogram waits for its PSG
    lost = census(h, {name: "" for name in rejected_corpus},
                  ingest_only={name for name in rejected_corpus if name.startswith("labels/")})["lost"]
    # identifiers, not English words: tests/edf splits header fields into tokens, and generic ones
    # ("recording", "file") name things in every output
    needles = {n_ for ns in corpus_needles().values() for n_ in ns if not re.fullmatch(rb"[a-z]+", n_)}
    personal = set(SYNTH_PERSONAL) | set(PERSONAL_EDF_NEEDLES) | set(SIGNAL_FIELD_NEEDLES)
    long_needles = sorted({x for x in needles if len(x) >= 6} | personal)
    name_needles = sorted({x for x in needles if len(x) >= 4} | personal)
    hits: list[str] = []
    scanned = 0
    scanned_bytes = 0
    buckets = set()
    for buckets_dir in scan_root.rglob("buckets"):
        if not buckets_dir.is_dir():
            continue
        for bucket in sorted(buckets_dir.iterdir()):
            if bucket.name.endswith("-raw") or not bucket.is_dir():
                continue
            buckets.add(bucket.name)
            for path in bucket.rglob("*"):
                if not path.is_file():
                    continue
                scanned += 1
                data = path.read_bytes()
                scanned_bytes += len(data)
                rel = path.relative_to(buckets_dir).as_posix().encode()
                for needle in long_needles:
                    if needle in data:
                        hits.append(f"{rel.decode()}: contains {needle!r}")
                for needle in name_needles:
                    if needle in rel:
                        hits.append(f"{rel.decode()}: name contains {needle!r}")
                for pattern in SYNTH_PATTERNS:
                    if pattern.search(data) or pattern.search(rel):
                        hits.append(f"{rel.decode()}: matches {pattern.pattern!r}")
    state_hits = []
    db_files = [p for p in scan_root.rglob("*.db*") if p.is_file() and re.search(r"\.db(-wal|-shm|-journal)?$", p.name)]
    for state_db in db_files:  # state and router databases of every scenario, with their WALs
        data = state_db.read_bytes()
        for needle in long_needles:
            if needle in data:
                state_hits.append(f"{state_db.relative_to(scan_root)}: contains {needle!r}")
        for pattern in SYNTH_PATTERNS:
            if pattern.search(data):
                state_hits.append(f"{state_db.relative_to(scan_root)}: matches {pattern.pattern!r}")
    notes = (f"{scanned} objects ({scanned_bytes / 2**20:.0f} MB) in {len(buckets)} non-raw buckets of every scenario "
             f"scanned for {len(long_needles)} strings + 2 patterns (synthetic identities, dates, site and subject "
             f"codes, file names; tests/edf's corpus strings): {len(hits)} found in objects or names, "
             f"{len(state_hits)} in {len(db_files)} state and router database files (with WALs); {n} synthetic nights + "
             f"{len(rejected_corpus) - 1} corpus files + 1 edfio-written EDF+ with personal data in every header field, "
             f"annotations and object name run; this stack's stores ({', '.join(sorted(stores['scanned']))}: "
             f"{stores['scanned']}) scanned for {stores['needles']} strings (names in transducer/prefiltering fields "
             f"included): {stores['total']} found")
    return make_row("no_personal_data", h, events=h.events(), files=len(h.inputs), lost=lost, duplicated=completions(h)["duplicated"],
                    recover_s=elapsed, notes=notes, hits=hits[:50], state_hits=state_hits[:50], scanned=scanned,
                    privacy=stores, db_files=len(db_files))


def on_emulators(scenario: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The same scenario with ``backend="emulators"`` (its row says so in the backend column)."""

    def variant(work: Path, n: int, **kwargs: Any) -> dict[str, Any]:
        return scenario(work, n, backend="emulators", **kwargs)

    variant.__name__ = variant.__qualname__ = f"{scenario.__name__}_on_emulators"
    variant.__doc__ = (f"{scenario.__name__} on the emulators backend (fake-gcs-server, the Pub/Sub and Firestore "
                       "emulators; uploads announced by fake-gcs-server's notifications through Pub/Sub; compared "
                       "with a run on the same backend).")
    return variant


# The fault scenarios run on both local backends; ``NAME@emulators`` is the emulators variant.
EMULATOR_VARIANTS = ("duplicates_and_shuffle", "sigkill_mid_stage", "transient_faults")

SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "duplicates_and_shuffle": duplicates_and_shuffle,
    "duplicates_and_shuffle@emulators": on_emulators(duplicates_and_shuffle),
    "sigkill_mid_stage": sigkill_mid_stage,
    "sigkill_mid_stage@emulators": on_emulators(sigkill_mid_stage),
    "transient_faults": transient_faults,
    "transient_faults@emulators": on_emulators(transient_faults),
    "burst": burst,
    "new_generation": new_generation,
    "abuse_events": abuse_events,
    "abuse_files": abuse_files,
    "loopback_only": loopback_only,
    "no_personal_data": no_personal_data,
}
