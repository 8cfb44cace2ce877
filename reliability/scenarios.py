"""Fault-injection scenarios (issue 8) and the registry of every scenario, :data:`SCENARIOS`
(the abuse scenarios live in :mod:`reliability.abuse`). Each returns one row of RELIABILITY.md.

Every scenario takes a work folder and a size and returns::

    {"scenario", "backend", "events", "files", "lost", "duplicated", "recover_s", "notes", "details"}

- ``events``: CloudEvent deliveries made (router deliveries, retries excluded, plus direct POSTs).
- ``files``: raw objects given to the pipeline.
- ``lost``: inputs that did not end done (or rejected with the expected reason).
- ``duplicated``: stage runs completed more than once for the same input (document, stage,
  input key), counted from the services' summary log lines and the documents' history.
- ``recover_s``: seconds from the end of the fault (or the start of the burst) to all done.
- ``details``: the scenario-specific figures the tests assert on (not printed in the table).

The harness (:mod:`reliability.harness`), the census of lost and duplicated work
(:mod:`reliability.census`) and the personal-data scanner (:mod:`reliability.privacy`) are modules
of their own. The stack is the embedded one (real service processes, the local router, SQLite, local
folders) on free loopback ports; events go through the router exactly as Eventarc would send them.
The fault scenarios (duplicates and shuffle, SIGKILL, transient faults) also run with
``backend="emulators"``: the same services and router against fake-gcs-server and the Pub/Sub and
Firestore emulators (one set per harness, always stopped), where an upload's object-finalize
notification comes from fake-gcs-server through the Pub/Sub emulator to the router.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from sunrise_common import identity, names
from sunrise_devstack import status
from sunrise_devstack.emulators import free_port
from sunrise_devstack.router.queue import Queue
from sunrise_cli import ops
from sunrise_cli.stack import Stack, wait_until
from sunrise_cli.synth import SynthNight
from reliability.abuse import abuse_events, abuse_files
from reliability.census import census, completions, diff_outputs, final_outputs, make_row, manifest_problems
from reliability.harness import BACKEND, CORPUS, PATIENCE, SERVICES, Harness, make_nights, stack_settings, subject_code
from reliability.privacy import (
    PERSONAL_EDF_NAME, PERSONAL_EDF_NEEDLES, PERSONAL_EDF_SUBJECT, SIGNAL_FIELD_NEEDLES, SYNTH_PATTERNS, SYNTH_PERSONAL,
    corpus_needles, personal_edf, privacy_scan,
)


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
# 9. no personal data outside raw (the scanner: reliability/privacy.py)
# --------------------------------------------------------------------------------------------


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
