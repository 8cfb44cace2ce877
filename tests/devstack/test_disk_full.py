"""A full disk under the embedded stack (issue 22, defect 5), on a real 4 MiB tmpfs: the router
backs off (one log line per back-off, no traceback), the deliveries whose outcome it could not
write are sent again past their deadline, and everything is delivered once space is back —
without a restart. A failed ``sunrise upload`` leaves nothing in ``data/buckets/.tmp``.

Mounting needs root (``mount -t tmpfs``); elsewhere these tests are skipped.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sunrise_cli.main import app
from sunrise_common.errors import TransientError
from sunrise_common.storage.local import LocalStorage
from sunrise_devstack.router.main import run
from sunrise_devstack.router.queue import Queue
from tests.conftest import TEST_KEY


def wait_for(condition, what: str, timeout: float = 120.0) -> None:  # noqa: ANN001
    """Wait until ``condition()`` holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs at ``tmp_path/disk``, unmounted at teardown whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk refuses another byte; returns it (delete it to recover)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 4096, 1):  # unbuffered: whatever the disk took is written
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler


class Records(logging.Handler):
    """The router's log records, kept for the test to count."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def count(self, text: str) -> int:
        return sum(1 for r in list(self.records) if text in r.getMessage())


def test_the_router_recovers_from_a_full_disk_without_a_restart(small_disk: Path):
    release = threading.Event()
    received: list[str] = []

    class Ingest(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body["name"])
            release.wait(120)  # the first four wait here until the disk is full
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from sunrise_devstack.settings import DevStackSettings

    settings = DevStackSettings(backend="embedded", data_dir=small_disk / "data", pseudonym_key=TEST_KEY, prefix="sunrise-df",
                        project="sunrise-df", ingest_url=f"http://127.0.0.1:{server.server_port}/",
                        router_watch_raw=False, router_poll_s=0.02, router_backoff_initial_s=0.05,
                        router_backoff_max_s=0.4, router_in_flight_deadline_s=0.5, router_max_in_flight=4)
    queue = Queue(settings.data_dir / "router.db")
    names = [f"psg/site/s{i}/night.edf" for i in range(4)]
    for i, name in enumerate(names):
        assert queue.enqueue_storage(settings, settings.bucket("raw"), name, 1000 + i, 10) == 1
    records = Records()
    router_log = logging.getLogger("sunrise_devstack")
    router_log.addHandler(records)
    router_log.setLevel(logging.INFO)
    stop = threading.Event()
    router = threading.Thread(target=run, args=(settings, stop), daemon=True)
    router.start()
    filler = None
    try:
        wait_for(lambda: len(received) == 4, "the four deliveries to be in flight")
        filler = fill(small_disk)
        before = len(records.records)
        release.set()  # the service answers; the router cannot write the outcomes
        wait_for(lambda: records.count("outcome not recorded") == 4, "four unrecorded outcomes")
        wait_for(lambda: records.count("backing off") >= 5, "the router to back off five times")
        full = records.records[before:]
        counts = Queue(settings.data_dir / "router.db").counts()
        assert counts.get("in_flight") == 4 and not counts.get("delivered")
        # One line per back-off or per lost outcome, never a traceback.
        assert [r for r in full if r.exc_info] == []
        backoffs = sum(1 for r in full if "backing off" in r.getMessage())
        assert len(full) <= backoffs + 4 + sum(1 for r in full if "due again" in r.getMessage()) + 1
        assert all("disk full" in r.getMessage() or "disk I/O error" in r.getMessage() or "due again" in r.getMessage()
                   for r in full if r.levelno >= logging.WARNING), [r.getMessage() for r in full]
        filler.unlink()
        filler = None
        freed = time.monotonic()
        # Space is back: the orphaned deliveries are due again and delivered, same process.
        wait_for(lambda: Queue(settings.data_dir / "router.db").counts().get("delivered") == 4, "four deliveries done")
        print(f"disk full: {len(full)} log lines ({backoffs} back-offs, 0 tracebacks); 4 in flight delivered "
              f"{time.monotonic() - freed:.2f} s after space was freed; {len(received)} posts in all")
        assert sorted(set(received)) == sorted(names) and len(received) >= 8  # each sent again after the full disk
        assert router.is_alive()
        assert records.count("working again") >= 1
    finally:
        release.set()
        stop.set()
        router.join(timeout=30)
        router_log.removeHandler(records)
        server.shutdown()
        server.server_close()
        if filler is not None:
            filler.unlink(missing_ok=True)


def test_a_write_that_fills_the_disk_leaves_no_staging_file_and_the_next_one_succeeds(small_disk: Path, tmp_path: Path):
    storage = LocalStorage(small_disk / "buckets")
    storage.ensure_bucket("raw")
    big = tmp_path / "big.edf"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    with pytest.raises(TransientError) as caught:
        storage.upload_file("raw", "psg/site/subj/big.edf", big, if_generation_match=None)
    assert caught.value.reason == "storage_full"
    assert list(storage.tmp.iterdir()) == [] and list(storage.list("raw")) == []
    assert storage.write_bytes("raw", "psg/site/subj/small.edf", b"s" * 1000).size == 1000


def test_a_failed_sunrise_upload_keeps_no_raw_bytes_in_staging(small_disk: Path, tmp_path: Path, monkeypatch):
    data = small_disk / "data"
    monkeypatch.setenv("SUNRISE_DATA_DIR", str(data))
    monkeypatch.setenv("SUNRISE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("SUNRISE_PREFIX", "sunrise-df")
    big = tmp_path / "Mueller Zofia PSG.edf"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    result = CliRunner().invoke(app, ["upload", str(big), "--kind", "psg", "--site", "zh", "--subject", "MRN1"])
    assert result.exit_code == 1, result.output
    assert "storage_full" in result.output and "nothing was kept" in result.output
    assert list((data / "buckets" / ".tmp").iterdir()) == []
    assert not (data / "buckets" / "sunrise-df-raw" / "psg" / "zh" / "MRN1" / big.name).exists()
    small = tmp_path / "small.edf"
    small.write_bytes(b"x" * 2000)
    result = CliRunner().invoke(app, ["upload", str(small), "--kind", "psg", "--site", "zh", "--subject", "MRN1"])
    assert result.exit_code == 0, result.output


def test_sunrise_upload_refuses_a_fifo(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SUNRISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SUNRISE_PSEUDONYM_KEY", TEST_KEY)
    fifo = tmp_path / "fifo.edf"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["upload", str(fifo), "--kind", "psg", "--site", "zh", "--subject", "MRN1"])
    assert result.exit_code != 0 and "not a regular file" in result.output
