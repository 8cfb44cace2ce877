"""``sunrise forget``: one subject's data erased from every bucket, the state, the gold layer and
the dead letters, on nights processed by the real pipeline (the four apps in-process, embedded
backend) and, copied object by object and document by document, on fake-gcs-server and the
Firestore emulator. A forget killed (SIGKILL) at a checkpoint and run again ends with nothing of
the subject left and every other subject untouched; the audit record holds no name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sunrise_common import dataset as ds
from sunrise_common import identity, names
from sunrise_common.events import pubsub_event
from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_common.state import make_state
from sunrise_common.storage import make_storage
from sunrise_devstack.dead_letters import make_dead_letters
from sunrise_devstack.router.queue import Queue
from sunrise_cli import forget as lib
from sunrise_cli.stack import settings_env
from tests.conftest import TEST_KEY
from tests.inprocess import Pipeline, synth

SITE = "lab"
#: The subject to forget has two nights; its code is distinctive so that a byte scan finds it.
GONE = "MRN4471902"
KEPT = ("MRN5550001", "MRN5550002")
NIGHTS = [(GONE, datetime(2024, 3, 5, 22, 30)), (GONE, datetime(2024, 3, 9, 23, 0)),
          (KEPT[0], datetime(2024, 3, 5, 22, 30)), (KEPT[1], datetime(2024, 4, 1, 22, 0))]
PSEUDONYM = identity.subject_pseudonym(TEST_KEY.encode(), SITE, GONE)
KEPT_PSEUDONYMS = tuple(identity.subject_pseudonym(TEST_KEY.encode(), SITE, s) for s in KEPT)


def embedded_settings(data_dir: Path) -> DevStackSettings:
    return DevStackSettings(backend="embedded", data_dir=data_dir, pseudonym_key=TEST_KEY, prefix="sunrise-test",
                    project="sunrise-test", lease_s=30)


def kill_as_dead_letter(settings: DevStackSettings, queue: Queue, trigger: names.Trigger, headers, body, subject) -> None:
    """A delivery that the router gave up on (its one attempt answered 500)."""
    queue.enqueue_event(trigger, headers, body, subject)
    (due,) = [d for d in queue.take_due(10)]
    assert queue.mark_failed(due, 500, "boom", max_attempts=1, backoff_initial=1, backoff_max=1) == "dead"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A data folder after the pipeline processed every night, with three dead letters: a raw
    upload and a night message of the subject to forget, a raw upload of another subject."""
    root = tmp_path_factory.mktemp("forget")
    settings = embedded_settings(root / "data")
    pipeline = Pipeline(Context.from_settings(settings))
    for i, (subject, start) in enumerate(NIGHTS):
        pipeline.upload_night(synth(root / f"n{i}", 60 + i, start=start), site=SITE, subject=subject)
        pipeline.drain()
    queue = pipeline.queue
    storage_trigger = next(t for t in names.TRIGGERS if t.event_type == names.STORAGE_FINALIZED)
    psg_trigger = next(t for t in names.TRIGGERS if t.source == names.TOPIC_PSG_ANONYMISED)
    raw = settings.bucket("raw")
    for subject in (GONE, KEPT[0]):
        info = next(pipeline.ctx.storage.list(raw, f"psg/{SITE}/{subject}/"))
        from sunrise_common.events import storage_event

        headers, body = storage_event(raw, info.name, info.generation, info.size)
        kill_as_dead_letter(settings, queue, storage_trigger, headers, body, info.name)
    night = next(n for n, _ in pipeline.ctx.state.list("nights") if n.startswith(PSEUDONYM))
    headers, body = pubsub_event(settings.project, settings.topic(names.TOPIC_PSG_ANONYMISED),
                                 json.dumps({"night_id": night, "kind": "psg"}).encode())
    kill_as_dead_letter(settings, queue, psg_trigger, headers, body, settings.topic(names.TOPIC_PSG_ANONYMISED))
    pipeline.close()
    return root / "data"


@pytest.fixture
def data(pristine, tmp_path) -> Path:
    """A private copy of the processed data folder (each test may erase from it)."""
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


# --------------------------------------------------------------------------- what is where

def snapshot(settings: DevStackSettings, dead_letters=None) -> dict:
    """Every object (name -> size), document (collection/id -> JSON), dataset row (subject
    pseudonym -> rows) and dead letter (id -> JSON) of a backend, through its ports."""
    storage, state = make_storage(settings), make_state(settings)
    objects = {f"{logical}/{o.name}": o.size for logical in names.BUCKETS
               for o in storage.list(settings.bucket(logical))}
    docs = {f"{c}/{i}": json.dumps(d, sort_keys=True, default=str)
            for c in ("nights", "uploads", "pairing", lib.AUDIT_COLLECTION) for i, d in state.list(c)}
    rows: dict[str, int] = {}
    for name in objects:
        if name.startswith("results/dataset/"):
            import io

            table = pq.read_table(io.BytesIO(storage.read_bytes(settings.bucket("results"), name[len("results/"):])))
            for subject in table.column("subject_pseudonym").to_pylist():
                rows[subject] = rows.get(subject, 0) + 1
    letters = {d.id: json.dumps([d.body, d.subject], sort_keys=True, default=str)
               for d in (dead_letters or make_dead_letters(settings)).list(limit=10_000)}
    return {"objects": objects, "docs": docs, "rows": rows, "dead_letters": letters}


def of_subject(snap: dict, pseudonym: str = PSEUDONYM, code: str = GONE) -> dict:
    """What of a snapshot belongs to a subject (by raw name, pseudonym or night id)."""
    def mine(key: str, value: str = "") -> bool:
        return f"/{code}/" in key or pseudonym in key or pseudonym in value or f"/{code}/" in value

    return {
        "objects": sorted(k for k in snap["objects"] if mine(k)),
        "docs": sorted(k for k, v in snap["docs"].items() if mine(k, v) and not k.startswith(f"{lib.AUDIT_COLLECTION}/")),
        "rows": snap["rows"].get(pseudonym, 0),
        "dead_letters": sorted(k for k, v in snap["dead_letters"].items() if mine(v) or lib.mentions(
            TEST_KEY.encode(), lib.Subject(pseudonym), json.loads(v))),
    }


def without_subject(snap: dict) -> dict:
    """A snapshot less the forgotten subject's items and the audit record."""
    mine = of_subject(snap)
    return {
        "objects": {k: v for k, v in snap["objects"].items() if k not in mine["objects"]},
        "docs": {k: v for k, v in snap["docs"].items()
                 if k not in mine["docs"] and not k.startswith(f"{lib.AUDIT_COLLECTION}/")},
        "rows": {k: v for k, v in snap["rows"].items() if k != PSEUDONYM},
        "dead_letters": {k: v for k, v in snap["dead_letters"].items() if k not in mine["dead_letters"]},
    }


def scan_files(folder: Path, needles: list[bytes], skip: tuple[str, ...] = ()) -> list[str]:
    """Files under ``folder`` (databases and their -wal files included) holding any needle."""
    hits = []
    for path in folder.rglob("*"):
        hits += [f"{path.relative_to(folder)}: the path names {n.decode()}" for n in needles
                 if n.decode() in str(path.relative_to(folder))]
        if path.is_file() and not any(path.name.startswith(s) for s in skip):
            blob = path.read_bytes()
            hits += [f"{path.relative_to(folder)}: {n.decode()}" for n in needles if n in blob]
    return hits


def assert_forgotten(settings: DevStackSettings, before: dict) -> None:
    after = snapshot(settings)
    assert of_subject(after) == {"objects": [], "docs": [], "rows": 0, "dead_letters": []}
    assert without_subject(after) == without_subject(before)  # every other subject untouched
    audit = make_state(settings).get(lib.AUDIT_COLLECTION, PSEUDONYM)
    assert audit["state"] == "done" and audit["pseudonym"] == PSEUDONYM and not any(audit["remaining"].values())
    text = json.dumps(audit)
    assert GONE not in text and SITE not in text and f"{PSEUDONYM}-n" not in text  # no name, site or night
    mine = of_subject(before)
    assert audit["dataset_rows"] == mine["rows"] > 0


def run_cli(settings: DevStackSettings, *args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.Popen([sys.executable, "-m", "sunrise_cli.main", "forget", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def cli(settings: DevStackSettings, *args: str) -> tuple[int, str]:
    proc = run_cli(settings, *args)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out + err


# --------------------------------------------------------------------------- embedded

def test_the_fixture_has_something_of_the_subject_everywhere(data):
    mine = of_subject(snapshot(embedded_settings(data)))
    buckets = {k.split("/", 1)[0] for k in mine["objects"]}
    assert buckets == set(names.BUCKETS), buckets
    assert any(k.startswith("results/dataset/training_rows/") for k in mine["objects"])
    assert any(k.startswith("results/dataset/night_scores/") for k in mine["objects"])
    # pairing/{pseudonym}: the PSG nights ingest registered for date-less label files (issue 23)
    assert {k.split("/")[0] for k in mine["docs"]} == {"nights", "uploads", "pairing"}
    assert mine["rows"] > 0 and len(mine["dead_letters"]) == 2


def test_forget_is_a_dry_run_by_default_and_changes_nothing(data):
    settings = embedded_settings(data)
    before = snapshot(settings)
    code, out = cli(settings, "--site", SITE, "--subject", GONE, "--json")
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    mine = of_subject(before)
    assert report["applied"] is False and report["dataset_rows"] == mine["rows"] and report["busy_nights"] == 0
    planned = report["planned"]
    assert planned["dead_letters"] == 2 and planned["nights"] == 2
    assert sum(planned[b] for b in ("raw", "anonymised", "prepped", "results")) + planned["dataset_parts"] \
        == len(mine["objects"])
    assert planned["uploads"] == sum(k.startswith("uploads/") for k in mine["docs"])
    assert snapshot(settings) == before
    assert make_state(settings).get(lib.AUDIT_COLLECTION, PSEUDONYM) is None
    code, out = cli(settings, "--site", SITE, "--subject", GONE)
    assert code == 0 and "dry run: nothing was changed" in out and GONE not in out


def test_forget_by_name_erases_the_subject_everywhere_and_nothing_else(data):
    settings = embedded_settings(data)
    before = snapshot(settings)
    code, out = cli(settings, "--site", SITE, "--subject", GONE, "--apply")
    assert code == 0, out
    assert "done: nothing of the subject is left" in out and GONE not in out
    assert_forgotten(settings, before)
    # Byte scan of every file (databases and write-ahead logs included): no subject code, and no
    # night id (only the audit record, in state.db, holds the pseudonym itself).
    assert scan_files(data, [GONE.encode(), f"{PSEUDONYM}-n".encode()]) == []
    assert scan_files(data, [PSEUDONYM.encode()], skip=("state.db",)) == []


def test_forget_by_pseudonym_erases_the_same_and_a_second_run_finds_nothing(data):
    settings = embedded_settings(data)
    before = snapshot(settings)
    code, out = cli(settings, "--pseudonym", PSEUDONYM, "--yes", "--json")
    assert code == 0, out
    first = json.loads(out.strip().splitlines()[-1])
    assert first["complete"] and first["removed"]["raw"] == len([k for k in of_subject(before)["objects"]
                                                                 if k.startswith("raw/")]) > 0
    assert_forgotten(settings, before)
    code, out = cli(settings, "--pseudonym", PSEUDONYM, "--yes", "--json")
    again = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and again["complete"] and not any(again["planned"].values())


def test_forget_warns_while_a_stage_still_works_on_one_of_the_nights(data):
    settings = embedded_settings(data)
    state = make_state(settings)
    night = next(n for n, _ in state.list("nights") if n.startswith(PSEUDONYM))
    state.transact("nights", night, lambda d: {**d, "stages": {**d["stages"], "sunalgo": {
        **d["stages"]["sunalgo"], "state": "running"}}})
    code, out = cli(settings, "--site", SITE, "--subject", GONE)
    assert code == 0 and "1 night(s) of the subject still have a stage running or retrying" in out


def test_forget_refuses_a_name_outside_the_raw_layout_and_a_mismatched_pseudonym(data):
    settings = embedded_settings(data)
    code, out = cli(settings, "--site", SITE, "--subject", "../etc")
    assert code == 2 and "--subject must be" in out
    code, out = cli(settings, "--site", SITE, "--subject", GONE, "--pseudonym", KEPT_PSEUDONYMS[0])
    assert code == 2 and "does not match" in out
    code, out = cli(settings)
    assert code == 2 and "name the subject" in out


def wait_for_progress(settings: DevStackSettings, at_least: int, proc: subprocess.Popen) -> dict:
    """The audit record once it shows ``at_least`` items removed (the forget then waits, paused)."""
    state = make_state(settings)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        doc = state.get(lib.AUDIT_COLLECTION, PSEUDONYM)
        if doc and sum(doc.get("removed", {}).values()) >= at_least:
            return doc
        if proc.poll() is not None:
            raise AssertionError(f"forget exited {proc.returncode} before its checkpoint: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the forget never reached its checkpoint")


def kill_at(settings: DevStackSettings, at: int, *args: str) -> dict:
    """Run a forget that pauses after ``at`` deletions, SIGKILL it there; the audit record then."""
    proc = run_cli(settings, *args, "--apply", "--pause-after", str(at), start_new_session=True)
    try:
        doc = wait_for_progress(settings, at, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return doc


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_forget_killed_midway_is_finished_by_running_it_again(data, where):
    settings = embedded_settings(data)
    before = snapshot(settings)
    code, out = cli(settings, "--site", SITE, "--subject", GONE, "--json")
    total = sum(json.loads(out.strip().splitlines()[-1])["planned"].values())
    at = {"first": 1, "middle": total // 2, "last": total - 1}[where]
    doc = kill_at(settings, at, "--site", SITE, "--subject", GONE)
    assert doc["state"] == "running" and sum(doc["removed"].values()) >= at
    partial = of_subject(snapshot(settings))
    assert 0 < len(partial["objects"]) + len(partial["docs"]) + len(partial["dead_letters"])  # cut short
    # The re-run is by pseudonym: it needs neither the name nor the raw objects (gone by now).
    code, out = cli(settings, "--pseudonym", PSEUDONYM, "--apply", "--json")
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["resumed"] and report["complete"]
    assert_forgotten(settings, before)
    audit = make_state(settings).get(lib.AUDIT_COLLECTION, PSEUDONYM)
    assert audit["runs"] == 2 and audit["removed"]["nights"] == 2 and audit["removed"]["dead_letters"] == 2
    assert scan_files(data, [GONE.encode(), f"{PSEUDONYM}-n".encode()]) == []


# --------------------------------------------------------------------------- emulators

def copy_to_emulators(source: DevStackSettings, target: DevStackSettings) -> None:
    """Every object and document of the embedded stack, written through the emulators' adapters;
    the dead letters stay in router.db, which the emulators backend uses too."""
    src_storage, src_state = make_storage(source), make_state(source)
    dst_storage, dst_state = make_storage(target), make_state(target)
    for logical in names.BUCKETS:
        dst_storage.ensure_bucket(target.bucket(logical))
        for o in src_storage.list(source.bucket(logical)):
            dst_storage.write_bytes(target.bucket(logical), o.name, src_storage.read_bytes(source.bucket(logical), o.name),
                                    if_generation_match=None)
    for collection in ("nights", "uploads"):
        for doc_id, doc in src_state.list(collection):
            dst_state.set(collection, doc_id, doc)
    for path in Path(source.data_dir).glob("router.db*"):  # with its write-ahead log
        shutil.copy(path, Path(target.data_dir) / path.name)


# --------------------------------------------------------------------------- emulators

@pytest.fixture(scope="module")
def emulators_running(tmp_path_factory):
    from sunrise_devstack.emulators import Emulators

    emu = Emulators(tmp_path_factory.mktemp("emulator-logs"), project="sunrise-forget", prefix="sunrise-forget")
    emu.start()  # fails with the reason when Java or gcloud's emulators are missing (never skipped)
    try:
        yield emu
    finally:
        emu.stop()


def copy_to_emulators(source: DevStackSettings, target: DevStackSettings) -> None:
    """Every object and document of the embedded stack written through the emulators' adapters
    (fake-gcs-server, the Firestore emulator); the dead letters stay in router.db, which the
    emulators backend keeps too."""
    src_storage, src_state = make_storage(source), make_state(source)
    dst_storage, dst_state = make_storage(target), make_state(target)
    for logical in names.BUCKETS:
        dst_storage.ensure_bucket(target.bucket(logical))
        for o in src_storage.list(source.bucket(logical)):
            dst_storage.write_bytes(target.bucket(logical), o.name,
                                    src_storage.read_bytes(source.bucket(logical), o.name), if_generation_match=None)
    for collection in ("nights", "uploads"):
        for doc_id, doc in src_state.list(collection):
            dst_state.set(collection, doc_id, doc)
    Path(target.data_dir).mkdir(parents=True, exist_ok=True)
    for path in Path(source.data_dir).glob("router.db*"):  # with its write-ahead log
        shutil.copy(path, Path(target.data_dir) / path.name)


@pytest.mark.emulators
def test_on_the_emulators_a_forget_killed_midway_is_finished_by_running_it_again(data, tmp_path, emulators_running):
    emu = emulators_running
    emu.reset()
    settings = DevStackSettings(backend="emulators", project=emu.project, prefix="sunrise-forget", data_dir=tmp_path / "emu-data",
                        pseudonym_key=TEST_KEY, gcs_endpoint=emu.gcs_endpoint,
                        pubsub_emulator_host=emu.pubsub_emulator_host,
                        firestore_emulator_host=emu.firestore_emulator_host)
    copy_to_emulators(embedded_settings(data), settings)
    # The dataset as `sunrise dataset` mirrors it on this backend: the mirror must lose the parts too.
    from sunrise_cli.dataset import local_root

    local_root(Context.from_settings(settings))
    mirror = Path(settings.data_dir) / "dataset-mirror"
    assert any(f"night_id={PSEUDONYM}-n" in str(p) for p in mirror.rglob("*.parquet"))
    before = snapshot(settings)
    mine = of_subject(before)
    assert mine["rows"] > 0 and len(mine["dead_letters"]) == 2 and {k.split("/")[0] for k in mine["objects"]} \
        == set(names.BUCKETS)
    code, out = cli(settings, "--site", SITE, "--subject", GONE, "--json")
    total = sum(json.loads(out.strip().splitlines()[-1])["planned"].values())
    doc = kill_at(settings, total // 2, "--site", SITE, "--subject", GONE)
    assert doc["state"] == "running"
    code, out = cli(settings, "--pseudonym", PSEUDONYM, "--apply", "--json")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["complete"]
    assert_forgotten(settings, before)
    assert not any(f"night_id={PSEUDONYM}-n" in str(p) for p in mirror.rglob("*"))
    assert scan_files(Path(settings.data_dir), [GONE.encode(), PSEUDONYM.encode()]) == []
