"""The Storage port's contract, run against LocalStorage and GcsStorage (fake-gcs-server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sunrise_common.errors import NotFound, PreconditionFailed


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
