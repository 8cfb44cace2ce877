"""The Storage port's contract, run against LocalStorage and GcsStorage (fake-gcs-server)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from sunrise_common.errors import NotFound, PermanentError, PreconditionFailed
from sunrise_common.storage.local import LocalStorage


def test_write_if_absent_creates_then_refuses(storage, bucket):
    info = storage.write_bytes(bucket, "a/b.txt", b"one")
    assert (info.bucket, info.name, info.size) == (bucket, "a/b.txt", 3)
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(bucket, "a/b.txt", b"two")
    assert storage.read_bytes(bucket, "a/b.txt") == b"one"


def test_overwrite_without_precondition_changes_generation(storage, bucket):
    first = storage.write_bytes(bucket, "x.bin", b"one")
    second = storage.write_bytes(bucket, "x.bin", b"three", if_generation_match=None)
    assert second.generation != first.generation
    assert second.size == 5
    assert storage.stat(bucket, "x.bin") == second
    assert storage.read_bytes(bucket, "x.bin") == b"three"


def test_write_matching_the_current_generation_succeeds_and_a_stale_one_fails(storage, bucket):
    first = storage.write_bytes(bucket, "x.bin", b"one")
    second = storage.write_bytes(bucket, "x.bin", b"two", if_generation_match=first.generation)
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(bucket, "x.bin", b"three", if_generation_match=first.generation)
    assert storage.stat(bucket, "x.bin") == second


def test_upload_file_and_download_round_trip(storage, bucket, tmp_path: Path):
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 1000)
    info = storage.upload_file(bucket, "nights/n1/psg.edf", src)
    assert info.size == 256_000
    with pytest.raises(PreconditionFailed):
        storage.upload_file(bucket, "nights/n1/psg.edf", src)
    out = tmp_path / "out.bin"
    got = storage.download_to_file(bucket, "nights/n1/psg.edf", out, generation=info.generation)
    assert got == info
    assert out.read_bytes() == src.read_bytes()


def test_download_of_a_stale_generation_raises_not_found(storage, bucket, tmp_path: Path):
    old = storage.write_bytes(bucket, "x.bin", b"one")
    storage.write_bytes(bucket, "x.bin", b"two", if_generation_match=None)
    with pytest.raises(NotFound):
        storage.download_to_file(bucket, "x.bin", tmp_path / "out", generation=old.generation)


def test_missing_objects_raise_not_found_or_stat_none(storage, bucket, tmp_path: Path):
    assert storage.stat(bucket, "nope") is None
    with pytest.raises(NotFound):
        storage.read_bytes(bucket, "nope")
    with pytest.raises(NotFound):
        storage.download_to_file(bucket, "nope", tmp_path / "out")


def test_list_by_prefix_in_name_order(storage, bucket):
    for name in ["b/2", "a/1", "b/1", "b/10", "c"]:
        storage.write_bytes(bucket, name, name.encode())
    assert [o.name for o in storage.list(bucket, "b/")] == ["b/1", "b/10", "b/2"]
    assert [o.name for o in storage.list(bucket)] == ["a/1", "b/1", "b/10", "b/2", "c"]
    assert [o.size for o in storage.list(bucket, "a/")] == [3]


def test_rewrite_keeps_the_bytes_under_a_new_generation(storage, bucket):
    first = storage.write_bytes(bucket, "raw/a.edf", b"same bytes", if_generation_match=0)
    again = storage.rewrite(bucket, "raw/a.edf")
    assert again.generation != first.generation and again.size == first.size
    assert storage.read_bytes(bucket, "raw/a.edf") == b"same bytes"
    with pytest.raises(NotFound):
        storage.rewrite(bucket, "raw/missing.edf")


def test_quick_overwrites_always_get_a_new_larger_generation(storage, bucket):
    generations = [storage.write_bytes(bucket, "raw/b.edf", bytes([i]), if_generation_match=None).generation
                   for i in range(20)]
    assert generations == sorted(generations) and len(set(generations)) == 20


def test_delete_removes_and_ignores_missing(storage, bucket):
    storage.write_bytes(bucket, "gone", b"x")
    storage.delete(bucket, "gone")
    storage.delete(bucket, "gone")
    assert storage.stat(bucket, "gone") is None
    assert list(storage.list(bucket)) == []


def test_large_upload_honours_if_absent(storage, bucket, tmp_path: Path):
    # Above 8 MiB the GCS adapter switches to a chunked resumable upload.
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        f.truncate(9 * 1024 * 1024 + 5)
    info = storage.upload_file(bucket, "big.bin", src)
    assert info.size == src.stat().st_size
    with pytest.raises(PreconditionFailed):
        storage.upload_file(bucket, "big.bin", src)
    again = storage.upload_file(bucket, "big.bin", src, if_generation_match=info.generation)
    assert again.generation != info.generation
    out = tmp_path / "out.bin"
    assert storage.download_to_file(bucket, "big.bin", out) == again
    assert out.stat().st_size == src.stat().st_size


def test_gcs_unreachable_is_a_transient_error():
    from sunrise_devstack.emulators import free_port
    from sunrise_common.errors import TransientError
    from sunrise_common.storage.gcs import GcsStorage

    # Nothing listens on this port.
    storage = GcsStorage.for_emulator(f"http://127.0.0.1:{free_port()}", "sunrise-contracts", retry_timeout_s=1.0)
    with pytest.raises(TransientError):
        storage.write_bytes("sunrise-contracts-raw", "x", b"x", if_generation_match=None)


def test_open_read_streams_one_generation_and_refuses_a_replaced_one(storage, bucket):
    data = bytes(range(256)) * 40_000  # 10 MB: more than one 8 MiB range read on Cloud Storage
    old = storage.write_bytes(bucket, "big.bin", b"old", if_generation_match=None)
    info = storage.write_bytes(bucket, "big.bin", data, if_generation_match=None)
    with storage.open_read(bucket, "big.bin", generation=info.generation) as (got, stream):
        assert got == info
        chunks = iter(lambda: stream.read(1 << 20), b"")
        assert b"".join(chunks) == data
    with pytest.raises(NotFound):
        with storage.open_read(bucket, "big.bin", generation=old.generation):
            pass
    with pytest.raises(NotFound):
        with storage.open_read(bucket, "nope"):
            pass

def test_open_read_is_seekable_as_psg_prep_reads_it(storage, bucket):
    # psg_prep's passes: the size (seek to the end), the header, one record, then blocks larger
    # than the read buffer (readinto), and back to the start for the next pass.
    data = bytes(range(256)) * 48_000  # 12 MB
    storage.write_bytes(bucket, "psg.bin", data, if_generation_match=None)
    with storage.open_read(bucket, "psg.bin") as (_, f):
        assert f.seek(0, 2) == len(data) and f.seek(0) == 0
        assert f.read(256) == data[:256] and f.read(5120) == data[256:5376]
        f.seek(10_000)
        assert f.read(100) == data[10_000:10_100] and f.tell() == 10_100
        buf = bytearray(9 << 20)  # more than the 8 MiB buffer: read straight into it
        f.seek(1_000)
        got = 0
        while got < len(buf) and (n := f.readinto(memoryview(buf)[got:])):
            got += n
        assert bytes(buf) == data[1_000 : 1_000 + len(buf)]
        f.seek(len(data) - 10)
        assert f.read(100) == data[-10:] and f.read(100) == b""
        f.seek(0)
        assert f.read(3) == data[:3]


def test_write_stream_commits_what_the_producer_wrote_create_if_absent(storage, bucket):
    def produce(out):
        for i in range(20):  # 20 MiB in 1 MiB writes: several chunks of a resumable upload
            out.write(bytes([i]) * (1 << 20))
        return "made"

    info, result = storage.write_stream(bucket, "nights/n1/psg-gx.edf", produce)
    assert result == "made" and info.size == 20 << 20 and storage.stat(bucket, "nights/n1/psg-gx.edf") == info
    with pytest.raises(PreconditionFailed):
        storage.write_stream(bucket, "nights/n1/psg-gx.edf", lambda out: out.write(b"again"))
    assert storage.stat(bucket, "nights/n1/psg-gx.edf") == info

def test_a_producer_that_fails_commits_nothing(storage, bucket):
    def produce(out):
        out.write(b"x" * (17 << 20))  # past the first upload chunk
        raise ValueError("bad input halfway")

    with pytest.raises(ValueError):
        storage.write_stream(bucket, "half.bin", produce)
    assert storage.stat(bucket, "half.bin") is None


def test_compose_concatenates_its_sources_in_order_beyond_one_request_and_leaves_them(storage, bucket):
    # 70 sources: more than Cloud Storage's 32 per compose, so the adapter builds a tree.
    pieces = [f"p/{i:03d}" for i in range(70)]
    for i, name in enumerate(pieces):
        storage.write_bytes(bucket, name, bytes([i]) * (i + 1))
    info = storage.compose(bucket, "whole.bin", pieces)
    assert storage.read_bytes(bucket, "whole.bin") == b"".join(bytes([i]) * (i + 1) for i in range(70))
    assert info.size == sum(range(1, 71)) and storage.stat(bucket, "whole.bin") == info
    # The sources stay; no intermediate object is left beside them.
    assert [o.name for o in storage.list(bucket)] == sorted(pieces + ["whole.bin"])
    with pytest.raises(PreconditionFailed):
        storage.compose(bucket, "whole.bin", pieces[:1])
    assert storage.read_bytes(bucket, "whole.bin") != bytes([0])




# -- the local adapter only: an object is a regular file inside its bucket's folder (issue 22) --

def _refused_within(call, seconds: float = 30.0) -> BaseException | None:
    """Run ``call`` in a thread; the exception it raised, or a failure if it is still blocked
    after ``seconds`` (an open of a FIFO without a writer never returns on its own)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still blocked after {seconds} s")
    return outcome[0]


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "buckets")
    storage.ensure_bucket("raw")
    return storage


def test_a_link_to_an_edf_outside_the_data_dir_is_refused_with_its_kind_not_followed(local, tmp_path: Path):
    outside = tmp_path / "elsewhere" / "Mueller Zofia.edf"
    outside.parent.mkdir()
    outside.write_bytes(b"0       personal header")
    link = local.bucket_path("raw") / "psg" / "site" / "subj" / "night.edf"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    out = tmp_path / "copy"
    with pytest.raises(PermanentError) as caught:
        local.download_to_file("raw", "psg/site/subj/night.edf", out)
    assert caught.value.reason == "not_a_regular_file" and "symbolic link" in caught.value.detail
    assert "Mueller" not in str(caught.value) and "night" not in caught.value.detail
    assert not out.exists() or out.read_bytes() == b""
    with pytest.raises(PermanentError):
        local.read_bytes("raw", "psg/site/subj/night.edf")
    assert local.stat("raw", "psg/site/subj/night.edf") is None
    assert list(local.list("raw")) == []


def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(local, tmp_path: Path):
    fifo = local.bucket_path("raw") / "psg" / "fifo.edf"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    error = _refused_within(lambda: local.download_to_file("raw", "psg/fifo.edf", tmp_path / "copy"))
    assert isinstance(error, PermanentError) and error.reason == "not_a_regular_file" and "FIFO" in error.detail
    assert isinstance(_refused_within(lambda: local.read_bytes("raw", "psg/fifo.edf")), PermanentError)
    assert local.stat("raw", "psg/fifo.edf") is None and list(local.list("raw")) == []


def test_a_link_to_dev_zero_is_refused_and_nothing_is_copied(local, tmp_path: Path):
    link = local.bucket_path("raw") / "psg" / "zero.edf"
    link.parent.mkdir(parents=True)
    link.symlink_to("/dev/zero")
    out = tmp_path / "scratch.edf"
    error = _refused_within(lambda: local.download_to_file("raw", "psg/zero.edf", out))
    assert isinstance(error, PermanentError) and "symbolic link" in error.detail
    assert not out.exists() or out.stat().st_size == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_a_device_node_in_a_bucket_is_refused_without_being_opened(local, tmp_path: Path):
    node = local.bucket_path("raw") / "zero.edf"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    error = _refused_within(lambda: local.download_to_file("raw", "zero.edf", tmp_path / "scratch"))
    assert isinstance(error, PermanentError) and "character device" in error.detail


def test_a_linked_folder_inside_a_name_is_refused_for_reads_writes_and_deletes(local, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.edf").write_bytes(b"outside the data dir")
    (local.bucket_path("raw") / "psg").mkdir()
    (local.bucket_path("raw") / "psg" / "site").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PermanentError, match="not_a_regular_file"):
        local.read_bytes("raw", "psg/site/secret.edf")
    with pytest.raises(PermanentError, match="not_a_regular_file"):
        local.write_bytes("raw", "psg/site/planted.edf", b"x", if_generation_match=None)
    with pytest.raises(PermanentError, match="not_a_regular_file"):
        local.delete("raw", "psg/site/secret.edf")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.edf"]
    assert local.stat("raw", "psg/site/secret.edf") is None and list(local.list("raw")) == []
    assert list(local.tmp.iterdir()) == []  # the refused write left no staging file


@pytest.mark.parametrize("name", ["../raw2/x", "a/../../x", "/etc/passwd", "", "a/\x00b"])
def test_names_that_leave_the_bucket_are_refused(local, name: str):
    with pytest.raises(ValueError):
        local.write_bytes("raw", name, b"x")
    with pytest.raises(ValueError):
        local.stat("raw", name)


def test_an_object_written_over_a_link_replaces_the_link_not_its_target(local, tmp_path: Path):
    target = tmp_path / "target.bin"
    target.write_bytes(b"keep me")
    (local.bucket_path("raw") / "x.bin").symlink_to(target)
    info = local.write_bytes("raw", "x.bin", b"new", if_generation_match=None)
    assert info.size == 3 and local.read_bytes("raw", "x.bin") == b"new"
    assert target.read_bytes() == b"keep me"


def test_a_file_moved_into_place_with_an_older_mtime_gets_a_larger_generation_everywhere(local, tmp_path: Path):
    """``mv``/``cp -p``/``rsync -a``/tar keep an old mtime: the generation still grows (it is the
    later of mtime and ctime, and rename sets ctime), and every read reports the same one."""
    first = local.write_bytes("raw", "psg/a/night.edf", b"1" * 100, if_generation_match=0)
    fixed = tmp_path / "fixed.edf"
    fixed.write_bytes(b"2" * 50)
    hour_ago = first.generation - 3600 * 10**9
    os.utime(fixed, ns=(hour_ago, hour_ago))
    os.rename(fixed, local.bucket_path("raw") / "psg" / "a" / "night.edf")
    now = local.stat("raw", "psg/a/night.edf")
    assert now.generation > first.generation
    assert [o.generation for o in local.list("raw")] == [now.generation]
    with local.open_read("raw", "psg/a/night.edf", generation=now.generation) as (info, f):
        assert (info.generation, f.read()) == (now.generation, b"2" * 50)
    assert local.download_to_file("raw", "psg/a/night.edf", tmp_path / "out", generation=now.generation) == now
    with pytest.raises(NotFound):
        local.download_to_file("raw", "psg/a/night.edf", tmp_path / "out", generation=first.generation)
    assert local.rewrite("raw", "psg/a/night.edf").generation > now.generation
    current = local.stat("raw", "psg/a/night.edf").generation
    assert local.write_bytes("raw", "psg/a/night.edf", b"3", if_generation_match=current).size == 1


def test_the_generation_a_write_returns_is_the_one_every_read_reports(local, tmp_path: Path):
    """Create-if-absent links the staging file into place and removes it: both change the inode's
    ctime, so the generation is taken after both (else ingest's read of it says generation_gone)."""
    for if_match in (0, None):
        written = local.write_bytes("raw", f"x/{if_match}.edf", b"abc", if_generation_match=if_match)
        assert local.stat("raw", f"x/{if_match}.edf") == written
        with local.open_read("raw", f"x/{if_match}.edf", generation=written.generation) as (info, _):
            assert info == written


def test_compose_of_a_missing_source_raises_not_found_and_writes_nothing(local):
    # Local only: Cloud Storage answers such a compose with 404 too, but fake-gcs-server answers
    # 500 ("Error running compose"), which the adapter retries as a passing fault.
    local.write_bytes("raw", "a", b"a")
    with pytest.raises(NotFound):
        local.compose("raw", "ab", ["a", "b"])
    assert local.stat("raw", "ab") is None and not list(local.tmp.iterdir())
