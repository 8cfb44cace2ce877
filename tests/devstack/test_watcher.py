"""The raw-folder watcher (sunrise_devstack.router.watcher) on a real folder: a file is announced
once its writer closed it, an upload in progress (``.part``, ``.tmp``, dot-files) once renamed,
and an older generation is never delivered once a newer one replaced it (issue 22, defect 2).

Writers run in a subprocess driven step by step through pipes: the test knows each chunk is on
disk (the writer says so) before it polls, so nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sunrise_common.storage.local import LocalStorage, generation_of
from sunrise_devstack.router.main import Deliverer
from sunrise_devstack.router.watcher import RawWatcher, in_progress
from tests.devstack.test_router_main import deliver_all

# A writer that keeps its file open and writes one chunk per line read from stdin, answering
# "wrote <bytes so far>" once the chunk is flushed; "close" closes the file and answers "closed".
WRITER = textwrap.dedent("""
    import os, sys
    path, chunk = sys.argv[1], int(sys.argv[2])
    total = 0
    with open(path, "wb") as f:
        for line in sys.stdin:
            if line.strip() == "close":
                break
            f.write(bytes([total % 251]) * chunk)
            f.flush()
            os.fsync(f.fileno())
            total += chunk
            print("wrote", total, flush=True)
    print("closed", flush=True)
""")


class SlowWriter:
    """A writer process that writes ``chunk`` bytes each time it is told to, file held open."""

    def __init__(self, path: Path, chunk: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(chunk)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def say(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.say("close") == "closed"
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def watcher(settings, queue):
    w = RawWatcher(settings, queue)
    w.poll_once()  # start: the (empty) folder is watched from here on
    yield w
    w.close()


def announced(queue) -> list[tuple[str, int, int]]:
    """(name, generation, size) of every queued raw-object delivery not yet sent, in queue order."""
    return [(d.body["name"], int(d.body["generation"]), int(d.body["size"])) for d in queue.deliveries("pending")]


def test_the_watcher_uses_inotify_here(watcher):
    assert watcher.mode == "inotify"


def test_a_slow_writer_yields_exactly_one_announcement_of_the_complete_file(watcher, queue):
    path = watcher.root / "psg" / "site" / "subj" / "night.edf"
    writer = SlowWriter(path, chunk=64 * 1024)
    try:
        for i in range(1, 31):  # 30 chunks, as in the attack, with as many polls between them
            assert writer.say("chunk") == f"wrote {i * 64 * 1024}"
            for _ in range(3):
                assert watcher.poll_once() == 0, f"announced after chunk {i} of 30, while still open"
    finally:
        writer.close()
    assert watcher.poll_once() == 1
    for _ in range(3):
        assert watcher.poll_once() == 0
    st = path.stat()
    assert announced(queue) == [("psg/site/subj/night.edf", generation_of(st), 30 * 64 * 1024)]


def test_a_part_file_is_announced_once_when_renamed_into_place(watcher, queue):
    folder = watcher.root / "psg" / "site" / "subj"
    folder.mkdir(parents=True)
    assert watcher.poll_once() == 0
    part = folder / "night.edf.part"
    part.write_bytes(b"x" * 1000)
    (folder / "night.edf.tmp").write_bytes(b"y" * 10)
    (folder / ".night.edf.swp").write_bytes(b"z")
    assert watcher.poll_once() == 0
    part.rename(folder / "night.edf")
    assert watcher.poll_once() == 1
    assert watcher.poll_once() == 0
    assert [(n, s) for n, _, s in announced(queue)] == [("psg/site/subj/night.edf", 1000)]


@pytest.mark.parametrize("name, hidden", [("a/b.edf", False), ("a/b.edf.part", True), ("a/b.EDF.TMP", True),
                                          ("a/.b.edf", True), (".upload/b.edf", True), ("a/b.partial", False)])
def test_in_progress_names_are_dot_files_and_part_or_tmp_suffixes(name: str, hidden: bool):
    assert in_progress(name) is hidden


def test_an_in_place_overwrite_delivers_the_newest_generation_only(settings, queue, watcher, service):
    server, handler = service
    settings = settings.model_copy(update={"ingest_url": f"http://127.0.0.1:{server.server_port}/"})
    path = watcher.root / "labels" / "site" / "subj" / "hypnogram.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"W\n" * 100)
    assert watcher.poll_once() == 1
    first = generation_of(path.stat())
    # Overwritten in place before the first generation was delivered: opened, truncated, written
    # in two steps, then closed.
    writer = SlowWriter(path, chunk=300)
    try:
        assert writer.say("chunk") == "wrote 300"
        assert watcher.poll_once() == 0  # still open: not announced
        assert writer.say("chunk") == "wrote 600"
    finally:
        writer.close()
    assert watcher.poll_once() == 1
    newest = path.stat()
    assert generation_of(newest) != first
    assert deliver_all(Deliverer(settings, queue)) == 2
    posted = [int(json.loads(body)["generation"]) for _, body in handler.received]
    assert posted == [generation_of(newest)]
    states = {int(d.id): d.state for d in queue.deliveries()}
    assert sorted(states.values()) == ["delivered", "superseded"]
    # The dropped delivery is redacted like a delivered one: no object name kept.
    assert all(d.subject is None and d.body == {} for d in queue.deliveries())


def test_an_older_generation_is_dropped_while_the_newer_one_is_still_being_written(settings, queue, watcher, service):
    server, handler = service
    settings = settings.model_copy(update={"ingest_url": f"http://127.0.0.1:{server.server_port}/"})
    path = watcher.root / "psg" / "site" / "subj" / "night.edf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"1" * 4096)
    assert watcher.poll_once() == 1
    writer = SlowWriter(path, chunk=1000)
    try:
        assert writer.say("chunk") == "wrote 1000"
        assert deliver_all(Deliverer(settings, queue)) == 1
        assert handler.received == []  # the half-written second generation replaced it: nothing sent
        assert watcher.poll_once() == 0
    finally:
        writer.close()
    assert watcher.poll_once() == 1
    assert announced(queue)[-1][1:] == (generation_of(path.stat()), 1000)


def test_an_object_written_by_the_local_storage_is_announced_once_whether_linked_or_renamed(watcher, queue, settings):
    storage = LocalStorage(settings.data_dir / "buckets")
    bucket = settings.bucket("raw")
    storage.write_bytes(bucket, "psg/site/a/one.edf", b"1" * 10, if_generation_match=0)  # hard link
    assert watcher.poll_once() == 1
    storage.write_bytes(bucket, "psg/site/a/one.edf", b"2" * 20, if_generation_match=None)  # rename over it
    assert watcher.poll_once() == 1
    assert watcher.poll_once() == 0
    assert [s for _, _, s in announced(queue)] == [10, 20]
    assert list(storage.tmp.iterdir()) == []


def test_a_link_and_a_fifo_are_announced_when_they_appear_for_ingest_to_refuse(watcher, queue, tmp_path: Path):
    folder = watcher.root / "psg" / "site" / "subj"
    folder.mkdir(parents=True)
    (folder / "zero.edf").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.edf")
    assert watcher.poll_once() == 2
    assert sorted(n for n, _, _ in announced(queue)) == ["psg/site/subj/fifo.edf", "psg/site/subj/zero.edf"]


def test_a_folder_moved_in_whole_is_announced_at_once_except_a_file_still_open_for_writing(settings, queue, watcher):
    staged = settings.data_dir / "staged" / "subj"
    staged.mkdir(parents=True)
    (staged / "done.edf").write_bytes(b"n" * 50)
    writer = SlowWriter(staged / "open.edf", chunk=70)
    try:
        assert writer.say("chunk") == "wrote 70"
        os.rename(staged, watcher.root / "subj")
        # inotify saw neither file being written: the kernel says who still has one open.
        assert watcher.poll_once() == 1
        assert [n for n, _, _ in announced(queue)] == ["subj/done.edf"]
        assert writer.say("chunk") == "wrote 140"
        assert watcher.poll_once() == 0
    finally:
        writer.close()
    assert watcher.poll_once() == 1  # its close, in the folder watched since it moved in
    assert announced(queue)[-1][::2] == ("subj/open.edf", 140)
    (watcher.root / "subj" / "later.edf").write_bytes(b"l")
    assert watcher.poll_once() == 1


def test_files_there_before_the_watcher_started_are_announced_unless_still_being_written(settings, queue):
    folder = settings.data_dir / "buckets" / settings.bucket("raw") / "psg" / "s" / "p"
    folder.mkdir(parents=True)
    (folder / "old.edf").write_bytes(b"o" * 10)
    writer = SlowWriter(folder / "growing.edf", chunk=5)
    w = RawWatcher(settings, queue)
    try:
        assert writer.say("chunk") == "wrote 5"
        assert w.poll_once() == 1
        writer.close()
        assert w.poll_once() == 1
        assert [(n, s) for n, _, s in announced(queue)] == [("psg/s/p/old.edf", 10), ("psg/s/p/growing.edf", 5)]
    finally:
        w.close()


def test_a_hard_link_made_by_hand_waits_out_the_quiet_period(settings, queue):
    w = RawWatcher(settings.model_copy(update={"router_raw_quiet_s": 0.0}), queue)
    try:
        w.poll_once()
        outside = settings.data_dir / "night.edf"
        outside.write_bytes(b"h" * 30)
        os.link(outside, w.root / "night.edf")  # appears complete: no close, no rename
        assert w.poll_once() == 0  # first look
        assert w.poll_once() == 1  # unchanged since, and nobody writes it (quiet period 0 s here)
    finally:
        w.close()


def test_without_inotify_a_file_is_announced_once_still_for_the_quiet_period(settings, queue):
    w = RawWatcher(settings.model_copy(update={"router_raw_quiet_s": 0.0}), queue, use_inotify=False)
    assert w.mode == "quiet-period"
    upload = w.root / "sunrise" / "site" / "subj" / "night.edf"
    w.poll_once()
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"0" * 100)
    (w.root / "sunrise" / ".partial").write_bytes(b"x")  # hidden: an upload in progress
    assert w.poll_once() == 0  # seen once: maybe still being written
    with open(upload, "ab") as f:
        f.write(b"0" * 100)
    assert w.poll_once() == 0  # it changed since: the quiet period starts again
    assert w.poll_once() == 1  # unchanged since the last poll: announced
    assert w.poll_once() == 0  # once per generation
    (delivery,) = queue.deliveries()
    assert delivery.service == "ingest" and delivery.trigger == "ingest-raw-finalized"
    assert delivery.body["name"] == "sunrise/site/subj/night.edf" and delivery.body["size"] == "200"


def test_without_inotify_a_file_younger_than_the_quiet_period_waits(settings, queue):
    w = RawWatcher(settings.model_copy(update={"router_raw_quiet_s": 3600.0}), queue, use_inotify=False)
    (w.root / "a").mkdir(parents=True)
    (w.root / "a" / "b.edf").write_bytes(b"b")
    assert [w.poll_once() for _ in range(5)] == [0] * 5


def test_links_and_fifos_in_raw_are_refused_with_a_reason_while_other_nights_go_through(settings, queue, tmp_path: Path):
    """Issue 22 defect 3 end to end: the watcher announces a link to an EDF outside the data dir,
    four FIFOs and a link to /dev/zero; the real ingest app refuses each with a recorded reason
    at once (no stall on a FIFO, nothing copied to scratch) and ingests a real EDF beside them."""
    from sunrise_common.service import Context
    from sunrise_cli import ops
    from tests.conftest import CORPUS
    from tests.inprocess import Pipeline
    from tests.privacy import edf_personal_strings, leaks

    ctx = Context.from_settings(settings)
    pipeline = Pipeline(ctx)
    watcher = RawWatcher(settings, queue)
    try:
        watcher.poll_once()
        folder = watcher.root / "psg" / "site"
        outside = tmp_path / "outside" / "psg.edf"
        outside.parent.mkdir()
        outside.write_bytes((CORPUS / "edf" / "edfio__short_psg.edf").read_bytes())
        for i, make in enumerate([lambda p: p.symlink_to(outside), *[os.mkfifo] * 4, lambda p: p.symlink_to("/dev/zero")]):
            (folder / f"bad{i}").mkdir(parents=True)
            make(folder / f"bad{i}" / "night.edf")
        ops.upload(ctx, CORPUS / "edf" / "edfio__short_psg.edf", kind="psg", site="site", subject="good")
        while watcher.poll_once():  # the folders were made after the watch: settled as they come
            pass
        assert len(list(queue.deliveries("pending"))) == 7
        pipeline.drain()
    finally:
        watcher.close()
        pipeline.close()
    uploads = [doc for _, doc in ctx.state.list("uploads")]
    ingest = [doc["stages"]["ingest"] for doc in uploads]
    refused = [s for s in ingest if s.get("state") == "failed"]
    assert len(uploads) == 7 and len(refused) == 6
    assert all("not_a_regular_file" in str(s) for s in refused), refused
    assert sum(1 for s in ingest if s.get("state") == "done") == 1
    anonymised = list(ctx.storage.list(settings.bucket("anonymised")))
    assert len(anonymised) == 1  # the linked EDF outside the data dir was not copied in
    assert leaks(ctx, edf_personal_strings(outside)) == []
    assert list(ctx.storage.tmp.iterdir()) == []


def test_a_corrected_file_renamed_into_place_with_an_older_mtime_wins_through_ingest(settings, queue, watcher,
                                                                                      tmp_path):
    """``mv``, ``cp -p``, ``rsync -a`` and tar keep a file's old modification time: a corrected PSG
    renamed over the one already ingested must still get a newer generation, be announced with
    it and replace the night's recording (on today's main its generation was its older mtime and
    ingest answered "superseded", the night keeping the old file)."""
    import ingest.handler as ingest_handler
    from sunrise_common.events import parse_event
    from sunrise_common.service import Context
    from tests.conftest import CORPUS
    from tests.ingest.test_handler_generations import corrected

    ctx = Context.from_settings(settings)
    for logical in ("raw", "anonymised", "prepped", "results"):
        ctx.storage.ensure_bucket(settings.bucket(logical))

    def ingest_pending() -> list[dict]:
        answers = []
        for d in queue.deliveries("pending"):
            if d.service == "ingest":
                answers.append(ingest_handler.handle(parse_event(d.headers, json.dumps(d.body).encode()), ctx))
                queue.mark_superseded(d.id)  # taken off the pending list: the next call sees only new ones
        return answers

    def night_psg() -> dict:
        ((_, doc),) = list(ctx.state.list("nights"))
        return doc["recordings"]["psg"]

    original = (CORPUS / "edf" / "edfio__short_psg.edf").read_bytes()
    path = watcher.root / "psg" / "namur" / "P001" / "night.edf"
    path.parent.mkdir(parents=True)
    path.write_bytes(original)
    assert watcher.poll_once() == 1
    assert [a["status"] for a in ingest_pending()] == ["done"]
    first = night_psg()

    # The correction, made elsewhere an hour before the original was uploaded, then moved in.
    fixed = tmp_path / "corrected.edf"
    fixed.write_bytes(corrected(original, 1))
    hour_ago = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(fixed, ns=(hour_ago, hour_ago))
    os.rename(fixed, path)
    assert watcher.poll_once() == 1
    ((_, generation, _),) = announced(queue)
    assert generation > first["raw_generation"]
    assert generation == ctx.storage.stat(settings.bucket("raw"), "psg/namur/P001/night.edf").generation
    assert [a["status"] for a in ingest_pending()] == ["done"]
    newest = night_psg()
    assert newest["raw_generation"] == generation
    assert newest["sha256"] != first["sha256"]


def test_a_metadata_change_is_announced_as_the_new_generation_it_makes(watcher, queue):
    """chmod moves the ctime, hence the generation: the deliverer drops the older announcement as
    superseded, so the new generation must be announced too, or the file would never be ingested."""
    path = watcher.root / "labels" / "site" / "subj" / "hypnogram.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"W\n" * 10)
    assert watcher.poll_once() == 1
    before = generation_of(path.stat())
    while time.time_ns() <= before + 50_000_000:  # past the file clock's coarse tick (a condition)
        time.sleep(0.01)
    os.chmod(path, 0o600)
    after = generation_of(path.stat())
    assert after > before
    assert watcher.poll_once() == 1
    assert [g for _, g, _ in announced(queue)] == [before, after]


def test_a_file_replacing_one_with_a_future_mtime_is_announced_above_it(settings, queue, watcher, tmp_path):
    """A device with a fast clock leaves an mtime an hour ahead: the correction moved over it has
    a smaller generation (its ctime is now). The watcher gives it the next one up, so it is not
    dropped, and the first announcement is the one the deliverer drops as superseded."""
    from sunrise_devstack.router.watcher import superseded

    path = watcher.root / "psg" / "site" / "subj" / "night.edf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"1" * 100)
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))
    assert watcher.poll_once() == 1
    ((_, first, _),) = announced(queue)
    assert first == ahead
    fixed = tmp_path / "fixed.edf"
    fixed.write_bytes(b"2" * 50)
    os.rename(fixed, path)
    assert watcher.poll_once() == 1
    assert watcher.poll_once() == 0
    older, newer = list(queue.deliveries("pending"))
    assert int(newer.body["generation"]) == ahead + 1 == generation_of(path.stat())
    assert superseded(settings, older) and not superseded(settings, newer)
    assert path.read_bytes() == b"2" * 50
