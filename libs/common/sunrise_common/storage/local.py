"""Storage adapter on local folders: ``root/<bucket>/<object name>``.

A file's generation is :func:`generation_of` its status: the later of its ``st_mtime_ns`` and
``st_ctime_ns``. ``mv``, ``cp -p``, ``rsync -a``, tar and unzip keep a file's old modification
time, so the mtime alone would give a corrected file moved into place a generation older than the
one it replaced, and ingest would keep the old one (issue 22); the ctime is set by the kernel on
every write, rename and link and cannot be set by users, so it lifts such a file above the one
it replaced. Every generation this module reports or checks (stat, list, open_read,
download_to_file, write, rewrite) and the raw-folder watcher's announcements use it. A change of
metadata (``chmod``, ``touch``) moves the ctime too: a new generation, which the watcher
announces. A file replacing one whose mtime is ahead of the clock is lifted above it by the
watcher (:mod:`sunrise_devstack.router.watcher`), as an overwrite here is (:meth:`_commit`).

A write goes to ``root/.tmp`` first and is then linked (create-if-absent, atomic) or renamed
(overwrite) into place, so a reader never sees a half-written object — the same promise GCS
makes. A write that fails (a full disk, an interrupted copy) removes its staging file at once:
``root/.tmp`` never keeps the bytes of a failed upload (raw personal data outside raw, issue 22).

An object is a regular file inside its bucket's folder, and nothing else (issue 22): every path
is walked one component at a time from the bucket's folder with ``O_NOFOLLOW`` (``openat`` through
``dir_fd``), so a symbolic link anywhere in the name (to an EDF outside the data dir, to
``/dev/zero``, to another folder) is refused, never followed, and the file opened is checked with
``fstat`` to be regular before a byte is read: a FIFO, a device or a socket is refused without
being read (opened ``O_NONBLOCK``, so a FIFO without a writer cannot stall the reader). A refused
object raises :class:`~sunrise_common.errors.PermanentError` ``not_a_regular_file`` whose detail
names the kind of file found, never its name (object names are personal data). :meth:`stat` and
:meth:`list` see only regular files.

Written by hand on ``os.open``/``dir_fd``: the standard library has no ``openat2``
(``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``) and no kept library offers the walk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as st_mode
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator, TypeVar

from sunrise_common.errors import NotFound, PermanentError, PreconditionFailed, TransientError
from sunrise_common.storage import ObjectInfo

T = TypeVar("T")

_lock = threading.Lock()

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading must not wait for a writer (it is refused right after).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Errors that mean "the disk is full": the write is retried later, its staging file removed.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def generation_of(st: os.stat_result) -> int:
    """The generation of a file with status ``st`` (ns since the epoch): the later of its mtime
    and its ctime (the ctime moves on rename, write and link, and cannot be set back by users)."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


def file_kind(mode: int) -> str:
    """What a file is, in words fit for a recorded reason."""
    for test, word in ((st_mode.S_ISREG, "regular file"), (st_mode.S_ISLNK, "symbolic link"),
                       (st_mode.S_ISDIR, "directory"), (st_mode.S_ISFIFO, "FIFO"),
                       (st_mode.S_ISCHR, "character device"), (st_mode.S_ISBLK, "block device"),
                       (st_mode.S_ISSOCK, "socket")):
        if test(mode):
            return word
    return f"file of mode {mode:o}"


def _refuse(what: str, where: str) -> PermanentError:
    return PermanentError("not_a_regular_file", f"{where} is a {what}; objects are regular files only")


def _append(src: BinaryIO, dst: BinaryIO, size: int) -> None:
    """Append ``src`` (``size`` bytes, read from its start) to ``dst``: inside the kernel
    (``copy_file_range``, at and advancing both files' offsets) where the filesystem allows, else
    through a buffer, from where the kernel copy stopped."""
    dst.flush()
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < size and (n := os.copy_file_range(src.fileno(), dst.fileno(), size - done)):
                done += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
    if done < size:
        shutil.copyfileobj(src, dst, 1 << 20)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"

    # -- paths
    @staticmethod
    def _parts(bucket: str, name: str) -> tuple[str, ...]:
        """The folder components of ``bucket/name``: no ``..``, no absolute path, no NUL, no empty
        name; the bucket is one plain folder name."""
        if not bucket or "/" in bucket or bucket.startswith(".") or "\x00" in bucket:
            raise ValueError(f"bad bucket name {bucket!r}")
        parts = PurePosixPath(name).parts
        if not name or name.startswith("/") or any(p in ("..", ".") for p in parts) or "\x00" in name:
            raise ValueError(f"unsafe object name {name!r}")
        return (bucket, *parts)

    def _path(self, bucket: str, name: str) -> Path:
        return self.root.joinpath(*self._parts(bucket, name))

    @contextmanager
    def _folder(self, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``root/parts[0]/.../parts[-1]``, each component opened with
        ``O_NOFOLLOW`` relative to the one before (``create``: made where missing). Raises
        FileNotFoundError where a component is missing, PermanentError where one is not a folder."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the data dir: configuration
        try:
            for i, part in enumerate(parts):
                if create:
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        kind = file_kind(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                        raise _refuse(kind, "a folder of the object's name" if i else "the bucket") from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _open(self, bucket: str, name: str) -> Iterator[tuple[BinaryIO, os.stat_result]]:
        """The object opened for reading, with its ``fstat``; FileNotFoundError if it is missing,
        PermanentError ``not_a_regular_file`` if it (or a folder on its way) is anything else."""
        *folders, last = self._parts(bucket, name)
        with self._folder(tuple(folders)) as dfd:
            # lstat first: a device node is refused without being opened at all.
            kind = os.stat(last, dir_fd=dfd, follow_symlinks=False).st_mode
            if st_mode.S_ISDIR(kind):  # a folder is a name prefix, not an object (as in GCS)
                raise FileNotFoundError(errno.ENOENT, "a folder, not an object")
            if not st_mode.S_ISREG(kind):
                raise _refuse(file_kind(kind), f"{bucket} object")
            try:
                fd = os.open(last, _READ_FLAGS, dir_fd=dfd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # swapped for a link since the lstat
                    raise _refuse("symbolic link", f"{bucket} object") from None
                raise
        f = os.fdopen(fd, "rb")
        with f:
            info = os.fstat(fd)
            if not st_mode.S_ISREG(info.st_mode):  # swapped since the lstat
                raise _refuse(file_kind(info.st_mode), f"{bucket} object")
            os.set_blocking(fd, True)
            yield f, info

    def _lstat(self, bucket: str, name: str) -> os.stat_result | None:
        """The object's own status if it is a regular file, else None (missing or anything else)."""
        *folders, last = self._parts(bucket, name)
        try:
            with self._folder(tuple(folders)) as dfd:
                found = os.stat(last, dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, PermanentError):
            return None
        return found if st_mode.S_ISREG(found.st_mode) else None

    def ensure_bucket(self, bucket: str) -> None:
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def signed_url(self, bucket: str, name: str, *, expires_s: int = 3600) -> str:
        """A ``file://`` URL: readable by a service on the same machine only (no expiry to enforce)."""
        return self._path(bucket, name).absolute().as_uri()

    def bucket_path(self, bucket: str) -> Path:
        return self.root / bucket

    # -- reads
    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        found = self._lstat(bucket, name)
        return None if found is None else ObjectInfo(bucket, name, generation_of(found), found.st_size)

    def download_to_file(self, bucket: str, name: str, path: Path, *, generation: int | None = None) -> ObjectInfo:
        try:
            with self._open(bucket, name) as (f, st):
                info = ObjectInfo(bucket, name, generation_of(st), st.st_size)
                if generation is not None and info.generation != generation:
                    raise NotFound("generation_gone",
                                   f"{bucket}/{name} is at generation {info.generation}, not {generation}")
                try:
                    with open(path, "wb") as out:
                        shutil.copyfileobj(f, out, 1 << 20)
                except OSError as exc:
                    raise TransientError("storage_io", f"reading {bucket}/{name} into {path}: {exc}") from exc
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc
        return info

    @contextlib.contextmanager
    def open_read(self, bucket: str, name: str, *, generation: int | None = None
                  ) -> Iterator[tuple[ObjectInfo, BinaryIO]]:
        """The object's file, open for reading (a replacement meanwhile leaves this inode whole);
        opened as every read is (:meth:`_open`: a regular file inside the bucket, no link followed)."""
        with contextlib.ExitStack() as stack:
            try:
                f, st = stack.enter_context(self._open(bucket, name))
            except FileNotFoundError as exc:
                raise NotFound("object_not_found", f"{bucket}/{name}") from exc
            info = ObjectInfo(bucket, name, generation_of(st), st.st_size)
            if generation is not None and info.generation != generation:
                raise NotFound("generation_gone",
                               f"{bucket}/{name} is at generation {info.generation}, not {generation}")
            yield info, f

    def read_bytes(self, bucket: str, name: str) -> bytes:
        try:
            with self._open(bucket, name) as (f, _):
                return f.read()
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / bucket
        try:
            if not st_mode.S_ISDIR(os.lstat(base).st_mode):
                return
        except FileNotFoundError:
            return
        found = []
        # os.walk does not descend into linked folders; linked and special files are skipped below.
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if fn.startswith("."):
                    continue
                full = Path(dirpath) / fn
                name = full.relative_to(base).as_posix()
                if name.startswith(prefix):
                    try:
                        own = os.lstat(full)
                    except FileNotFoundError:
                        continue
                    if st_mode.S_ISREG(own.st_mode):
                        found.append(ObjectInfo(bucket, name, generation_of(own), own.st_size))
        yield from sorted(found, key=lambda o: o.name)

    def clean_stale_staging(self, max_age_s: float = 3600.0, now: float | None = None) -> int:
        """Delete files left in ``root/.tmp`` by a writer killed mid-write (anonymised signals:
        they must not outlive their use). A write lasts seconds; anything older than
        ``max_age_s`` seconds is stale. Returns how many files were removed."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    # -- writes
    def _stage(self, write: Callable[[BinaryIO], object]) -> Path:
        """A new file in ``root/.tmp`` holding what ``write`` writes, synced; removed again if
        anything fails (a full disk is a TransientError ``storage_full``: retry later)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        try:
            with open(tmp, "xb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in _FULL:
                raise TransientError("storage_full", f"no space left under {self.root} ({os.strerror(exc.errno)})") from None
            raise
        return tmp

    def _commit(self, bucket: str, name: str, tmp: Path, if_generation_match: int | None) -> ObjectInfo:
        *folders, last = self._parts(bucket, name)
        try:
            with self._folder(tuple(folders), create=True) as dfd:
                if if_generation_match == 0:
                    try:
                        os.link(tmp, last, dst_dir_fd=dfd)
                    except FileExistsError as exc:
                        raise PreconditionFailed("object_exists", f"{bucket}/{name}") from exc
                    # Unlinked before the object's status is taken: the link count's change moves
                    # its ctime, hence its generation.
                    tmp.unlink()
                    # A link appears complete but sends no close-write; closing a write handle on
                    # it (nothing written, mtime unchanged) does, so a close-write watcher (the
                    # router's raw watcher) announces it as it does a renamed-in overwrite.
                    os.close(os.open(last, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd))
                else:
                    with _lock:
                        current = self.stat(bucket, name)
                        if if_generation_match is not None and (current is None or current.generation != if_generation_match):
                            raise PreconditionFailed(
                                "generation_mismatch",
                                f"{bucket}/{name}: expected {if_generation_match}, found {current and current.generation}",
                            )
                        if current is not None and tmp.stat().st_mtime_ns <= current.generation:
                            # File times can be coarser than two quick writes: a new version must still
                            # get a new, larger generation (GCS guarantees that; the watcher relies on it).
                            # The rename moves the ctime, never below this mtime: the generation grows.
                            os.utime(tmp, ns=(current.generation + 1, current.generation + 1))
                        # rename(2) replaces a link or a FIFO found there by the object; never writes through it.
                        os.replace(tmp, last, dst_dir_fd=dfd)
                found = os.stat(last, dir_fd=dfd, follow_symlinks=False)
            return ObjectInfo(bucket, name, generation_of(found), found.st_size)
        except OSError as exc:
            if exc.errno in _FULL:
                raise TransientError("storage_full", f"no space left under {self.root} ({os.strerror(exc.errno)})") from None
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def upload_file(self, bucket: str, name: str, path: Path, *, if_generation_match: int | None = 0) -> ObjectInfo:
        def write(f: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        return self._commit(bucket, name, self._stage(write), if_generation_match)

    def write_stream(self, bucket: str, name: str, produce: Callable[[BinaryIO], T], *,
                     if_generation_match: int | None = 0) -> tuple[ObjectInfo, T]:
        """``produce(f)`` writes into a staging file, committed as :meth:`upload_file` commits."""
        result = []
        tmp = self._stage(lambda f: result.append(produce(f)))
        return self._commit(bucket, name, tmp, if_generation_match), result[0]

    def compose(self, bucket: str, name: str, sources: list[str], *, if_generation_match: int | None = 0) -> ObjectInfo:
        """The sources' bytes, in order, copied into a staging file (by the kernel) and committed
        as :meth:`upload_file` commits; each source opened as every read is (:meth:`_open`)."""
        def write(f: BinaryIO) -> None:
            for source in sources:
                try:
                    with self._open(bucket, source) as (src, st):
                        _append(src, f, st.st_size)
                except FileNotFoundError as exc:
                    raise NotFound("object_not_found", f"{bucket}/{source}") from exc

        return self._commit(bucket, name, self._stage(write), if_generation_match)

    def write_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None = 0) -> ObjectInfo:
        return self._commit(bucket, name, self._stage(lambda f: f.write(data)), if_generation_match)

    def rewrite(self, bucket: str, name: str) -> ObjectInfo:
        """Write an object onto itself (same bytes, a new generation): the raw-folder watcher
        announces it again, as the bucket notification does in GCS."""
        try:
            with self._open(bucket, name) as (src, current):
                tmp = self._stage(lambda f: shutil.copyfileobj(src, f, 1 << 20))
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc
        return self._commit(bucket, name, tmp, generation_of(current))

    def delete(self, bucket: str, name: str) -> None:
        """Remove the object; a link or special file at its name is removed itself, never what
        it points to. Missing objects are ignored."""
        *folders, last = self._parts(bucket, name)
        try:
            with self._folder(tuple(folders)) as dfd:
                os.unlink(last, dir_fd=dfd)
        except FileNotFoundError:
            pass
