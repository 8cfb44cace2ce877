"""An uncompressed ``.npz`` of 1-D float32 arrays filled in any interleaving: in place, or streamed.

psg_prep produces every channel's output block by block, all channels at once, while a zip
stores each member contiguously. Instead of spooling each channel to its own file and copying
the spools into the archive at the end (255 MB written twice for an 8-h night, and the copy
is serial), ``NpzWriter`` lays the archive out from the arrays' final lengths, which psg_prep
knows before it starts (``prepare.output_lengths``): each member's data go straight to their
offset (``os.pwrite``, from any thread; one writer per member), the CRC-32 is accumulated as
they arrive, and the zip headers are written last. The result is what ``numpy.savez`` writes
(one ``NAME.npy`` member per array, stored, ZIP64), read back by ``numpy.load``.

``StreamedNpzWriter`` writes the same bytes into a bucket without any local file (the service's
path, issue 26): the members' data go up in parts as they arrive, and the headers, final once
the CRCs are, are composed around them at the end (``Storage.compose``).

Why by hand (issue 25 asked whether it only pays in a one-file process): it pays in the running
service. On Cloud Run ``/tmp`` is memory and counts against the instance's limit; spooling each
channel before ``numpy.savez`` (or ``zipfile``, which needs each member's CRC before or while
streaming it, one member at a time) holds the night's output twice (255 MB spooled + 255 MB
archive for 8 h), and even laid out in place it is held once, so per-request memory would grow
with the night; streamed in parts it is held as a bounded buffer. No kept library writes a zip
from members filled concurrently with precomputed CRCs, nor lays one out for a compose.

Zip format: PKWARE APPNOTE 6.3 (local file header 4.3.7, central directory header 4.3.12,
ZIP64 extended information 4.5.3, ZIP64 end of central directory record and locator 4.3.14-15).
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import uuid
import zlib
from concurrent.futures import Future, ThreadPoolExecutor, wait
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sunrise_common.errors import NotFound, PreconditionFailed, TransientError
from sunrise_common.storage import ObjectInfo, Storage

from .errors import PrepError

log = logging.getLogger(__name__)

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # signature ... extra length (30 bytes)
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # 20 bytes
_EOCD = struct.Struct("<IHHHHIIH")  # 22 bytes
_VERSION = 45  # ZIP64
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, as zipfile writes for a date before 1980
_MAX32 = 0xFFFFFFFF


def _npy_header(n: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
    return buf.getvalue()


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while len(view):
        k = os.pwrite(fd, view, offset)
        view, offset = view[k:], offset + k


class _Member:
    def __init__(self, name: str, n: int, offset: int) -> None:
        self.name = f"{name}.npy".encode()
        self.n = n  # declared number of float32 samples
        self.offset = offset  # of the local header
        self.header = _npy_header(n)
        self.data_offset = offset + _LOCAL.size + len(self.name) + 20 + len(self.header)
        self.size = len(self.header) + 4 * n  # stored bytes
        self.written = 0  # samples written so far
        self.crc = zlib.crc32(self.header)

    @property
    def end(self) -> int:
        return self.data_offset + 4 * self.n


def _layout(arrays: list[tuple[str, int]]) -> tuple[list[_Member], int]:
    """The members of an archive of ``arrays`` (name, float32 count) laid out one after the
    other from offset 0, and the offset of the central directory after them."""
    members: list[_Member] = []
    offset = 0
    for name, n in arrays:
        m = _Member(name, int(n), offset)
        members.append(m)
        offset = m.end
    return members, offset


class NpzWriter:
    """``NpzWriter(path, [(name, n), ...])``; ``member(j)`` is the writer of array ``j``
    (``write``, ``pad_to``, ``n``); ``close()`` finishes the archive. An array that does not
    get exactly its declared length is psg_prep's own bug (``output_lengths`` mispredicted),
    not a passing fault: ``PrepError("internal_length_mismatch")``, recorded permanently
    rather than retried until dead-lettered. Written to
    ``path`` + ``.partial`` and renamed by ``close``; ``abort()`` removes it."""

    def __init__(self, path: Path, arrays: list[tuple[str, int]]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.members, self.cd_offset = _layout(arrays)
        self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(self.fd, self.cd_offset)

    def member(self, j: int) -> MemberWriter:
        return MemberWriter(self, self.members[j])

    def close(self) -> None:
        try:
            _check_lengths(self.members)
            for m in self.members:
                _pwrite_all(self.fd, _local_header(m), m.offset)
            _pwrite_all(self.fd, _central_directory(self.members, self.cd_offset), self.cd_offset)
        except BaseException:
            self.abort()
            raise
        os.close(self.fd)
        self.fd = -1
        os.replace(self.tmp, self.path)

    def _put(self, m: _Member, data: memoryview) -> None:
        _pwrite_all(self.fd, data, m.data_offset + 4 * m.written)

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.tmp.unlink(missing_ok=True)


def _local_header(m: _Member) -> bytes:
    """The member's local file header (4.3.7, ZIP64 extra 4.5.3) and its ``.npy`` header: the
    bytes before its float32 data, final once its CRC is."""
    extra = struct.pack("<HHQQ", 1, 16, m.size, m.size)
    return (_LOCAL.pack(0x04034B50, _VERSION, 0, 0, 0, _DOS_DATE, m.crc & _MAX32, _MAX32, _MAX32, len(m.name),
                        len(extra)) + m.name + extra + m.header)


def _central_directory(members: list[_Member], cd_offset: int) -> bytes:
    """Central directory (4.3.12), ZIP64 end record and locator (4.3.14-15) and end record."""
    cd = bytearray()
    for m in members:
        cextra = struct.pack("<HHQQQ", 1, 24, m.size, m.size, m.offset)
        cd += _CENTRAL.pack(0x02014B50, _VERSION, _VERSION, 0, 0, 0, _DOS_DATE, m.crc & _MAX32, _MAX32,
                            _MAX32, len(m.name), len(cextra), 0, 0, 0, 0o600 << 16, _MAX32)
        cd += m.name + cextra
    n = len(members)
    eocd64_offset = cd_offset + len(cd)
    tail = _ZIP64_EOCD.pack(0x06064B50, _ZIP64_EOCD.size - 12, _VERSION, _VERSION, 0, 0, n, n, len(cd), cd_offset)
    tail += _ZIP64_LOCATOR.pack(0x07064B50, 0, eocd64_offset, 1)
    tail += _EOCD.pack(0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF), min(len(cd), _MAX32), _MAX32, 0)
    return bytes(cd) + tail


def _check_lengths(members: list[_Member]) -> None:
    for m in members:
        if m.written != m.n:
            raise _mismatch(m, m.written)


def _mismatch(m: _Member, actual: int) -> PrepError:
    return PrepError("internal_length_mismatch",
                     f"{m.name.decode()}: {actual} samples produced, {m.n} predicted by output_lengths")


class MemberWriter:
    """Appends float32 samples to one member (one thread at a time per member)."""

    def __init__(self, owner: NpzWriter | StreamedNpzWriter, m: _Member) -> None:
        self._owner, self._m = owner, m

    @property
    def n(self) -> int:
        return self._m.written

    def write(self, y: np.ndarray) -> None:
        m = self._m
        if not len(y):
            return
        if m.written + len(y) > m.n:
            raise _mismatch(m, m.written + len(y))
        data = memoryview(np.ascontiguousarray(y, dtype="<f4")).cast("B")
        m.crc = zlib.crc32(data, m.crc)
        self._owner._put(m, data)
        m.written += len(y)

    def pad_to(self, n: int) -> None:
        while self._m.written < n:
            self.write(np.full(min(n - self._m.written, 1 << 20), np.nan, dtype=np.float32))


#: Where StreamedNpzWriter's pieces go in the bucket (outside the per-night output prefixes).
PIECES = "_parts/"
#: Bytes of float32 data all members together hold before they go up as parts (StreamedNpzWriter):
#: each member's part is this divided among the members, within PART_MIN..PART_MAX.
BUFFER_BUDGET = 16 << 20
PART_MIN, PART_MAX = 256 << 10, 4 << 20
#: Parts uploading at once (threads), and parts cut and held until one is free: what the lanes
#: may get ahead of the network before they wait.
UPLOADERS = 4
IN_FLIGHT = UPLOADERS + 1


class StreamedNpzWriter:
    """The same archive as :class:`NpzWriter`, byte for byte, written to a bucket without a
    local file: each member's data go up in parts of at most ``part_bytes`` as they arrive
    (``Storage.write_bytes`` on ``UPLOADERS`` threads, at most ``IN_FLIGHT`` parts held), and
    ``close`` writes each member's headers (final once its CRC is) and the central directory as
    small objects, then composes header, parts, header, parts, ..., directory into ``name``
    (``Storage.compose``) and deletes the pieces. Memory: every member's pending part plus the
    parts in flight (``BUFFER_BUDGET`` + ``IN_FLIGHT`` parts), whatever the night's length.

    The object is written create-if-absent: one that exists holds the same result (a crashed
    earlier attempt; names derive from the inputs) and is kept. Pieces are named
    ``_parts/TOKEN/...`` (``PIECES``, a random token per writer), outside every output prefix: a
    process killed mid-night leaves them there, never under a name a reader trusts nor in a
    prefix whose manifest they would contradict (a bucket lifecycle rule may delete ``_parts/``
    after a day)."""

    def __init__(self, storage: Storage, bucket: str, name: str, arrays: list[tuple[str, int]]) -> None:
        self.storage, self.bucket, self.name = storage, bucket, name
        self.members, self.cd_offset = _layout(arrays)
        self.part_bytes = max(PART_MIN, min(PART_MAX, BUFFER_BUDGET // max(1, len(self.members))))
        self.part_bytes -= self.part_bytes % 4
        self.prefix = f"{PIECES}{uuid.uuid4().hex}/"
        self._buffers = [bytearray() for _ in self.members]
        self._parts: list[list[str]] = [[] for _ in self.members]
        self._created: list[str] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)
        self._pool = ThreadPoolExecutor(UPLOADERS, thread_name_prefix="npz-part")
        self._futures: list[Future] = []
        self._done = False
        self._index = {id(m): j for j, m in enumerate(self.members)}
        self.on_close: Callable[[ObjectInfo], None] | None = None  # called with the object's info

    def member(self, j: int) -> MemberWriter:
        return MemberWriter(self, self.members[j])

    def _put(self, m: _Member, data: memoryview) -> None:
        j = self._index[id(m)]
        buf = self._buffers[j]
        buf += data
        while len(buf) >= self.part_bytes:
            self._send(j, bytes(buf[: self.part_bytes]))
            del buf[: self.part_bytes]

    def _send(self, j: int, data: bytes) -> None:
        """Upload one piece (waits while ``IN_FLIGHT`` are pending; re-raises an earlier failure)."""
        self._raise()
        self._slots.acquire()
        name = f"{self.prefix}{j:05d}-{len(self._parts[j]):07d}"
        self._parts[j].append(name)
        with self._lock:
            self._created.append(name)
            self._futures.append(self._pool.submit(self._upload, name, data))

    def _upload(self, name: str, data: bytes) -> None:
        try:
            self.storage.write_bytes(self.bucket, name, data, if_generation_match=0)
        finally:
            self._slots.release()

    def _raise(self) -> None:
        with self._lock:
            done = [f for f in self._futures if f.done()]
            self._futures = [f for f in self._futures if not f.done()]
        for f in done:
            f.result()

    def _write_pieces(self, pieces: list[tuple[str, bytes]]) -> None:
        """Small objects (headers, directory), written on the upload threads."""
        with self._lock:
            self._created.extend(name for name, _ in pieces)
        list(self._pool.map(lambda p: self.storage.write_bytes(self.bucket, p[0], p[1], if_generation_match=0), pieces))

    def close(self) -> ObjectInfo:
        """Flush, compose, clean up; returns the object's ``ObjectInfo``."""
        try:
            _check_lengths(self.members)
            for j, buf in enumerate(self._buffers):
                if buf:
                    self._send(j, bytes(buf))
                    buf.clear()
            wait(self._futures)
            self._raise()
            pieces = [(f"{self.prefix}{j:05d}-head", _local_header(m)) for j, m in enumerate(self.members)]
            pieces.append((f"{self.prefix}directory", _central_directory(self.members, self.cd_offset)))
            self._write_pieces(pieces)
            sources = []
            for j in range(len(self.members)):
                sources.append(pieces[j][0])
                sources.extend(self._parts[j])
            sources.append(pieces[-1][0])
            try:
                info = self.storage.compose(self.bucket, self.name, sources, if_generation_match=0)
            except PreconditionFailed:
                info = self.storage.stat(self.bucket, self.name)
                if info is None:
                    raise TransientError("storage_race", f"{self.bucket}/{self.name} vanished") from None
            except NotFound as exc:  # one of our own pieces: storage trouble, not bad input
                raise TransientError("storage_race", f"a piece of {self.bucket}/{self.name} vanished") from exc
        finally:
            self._cleanup()
        if self.on_close is not None:
            self.on_close(info)
        return info

    def abort(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        """Stop the uploads and delete every piece (also after a failure). A piece that cannot be
        deleted is logged and left: its name is never one a reader trusts. Runs once."""
        if self._done:
            return
        self._done = True
        with self._lock:
            futures, self._futures = self._futures, []
        for f in futures:
            f.cancel()
        wait(futures)
        self._buffers = [bytearray() for _ in self.members]
        with self._lock:
            created, self._created = self._created, []

        def delete(name: str) -> None:
            try:
                self.storage.delete(self.bucket, name)
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the outcome
                log.warning("npz piece left behind (%s: %s)", type(exc).__name__, getattr(exc, "reason", ""))

        list(self._pool.map(delete, created))
        self._pool.shutdown(wait=True)
