"""Storage adapter on local folders: ``root/<bucket>/<object name>``.

Generations are the file's ``st_mtime_ns``; a write goes to ``root/.tmp`` first and is then
linked (create-if-absent, atomic) or renamed (overwrite) into place, so a reader never sees a
half-written object — the same promise GCS makes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Iterator

from sunrise_common.errors import NotFound, PreconditionFailed, TransientError
from sunrise_common.storage import ObjectInfo

_lock = threading.Lock()


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / ".tmp"

    # -- paths
    def _path(self, bucket: str, name: str) -> Path:
        if not bucket or "/" in bucket or bucket.startswith("."):
            raise ValueError(f"bad bucket name {bucket!r}")
        parts = PurePosixPath(name).parts
        if not name or name.startswith("/") or any(p in ("..", ".") for p in parts) or "\x00" in name:
            raise ValueError(f"unsafe object name {name!r}")
        return self.root / bucket / Path(*parts)

    @staticmethod
    def _info(bucket: str, name: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(bucket=bucket, name=name, generation=st.st_mtime_ns, size=st.st_size)

    def ensure_bucket(self, bucket: str) -> None:
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def signed_url(self, bucket: str, name: str, *, expires_s: int = 3600) -> str:
        """A ``file://`` URL: readable by a service on the same machine only (no expiry to enforce)."""
        return self._path(bucket, name).resolve().as_uri()

    def bucket_path(self, bucket: str) -> Path:
        return self.root / bucket

    # -- reads
    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        path = self._path(bucket, name)
        try:
            return self._info(bucket, name, path) if path.is_file() else None
        except FileNotFoundError:
            return None

    def download_to_file(self, bucket: str, name: str, path: Path, *, generation: int | None = None) -> ObjectInfo:
        src = self._path(bucket, name)
        try:
            f = open(src, "rb")
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc
        with f:
            st = os.fstat(f.fileno())
            info = ObjectInfo(bucket, name, st.st_mtime_ns, st.st_size)
            if generation is not None and info.generation != generation:
                raise NotFound("generation_gone", f"{bucket}/{name} is at generation {info.generation}, not {generation}")
            try:
                with open(path, "wb") as out:
                    shutil.copyfileobj(f, out, 1 << 20)
            except OSError as exc:
                raise TransientError("storage_io", f"reading {bucket}/{name} into {path}: {exc}") from exc
        return info

    @contextlib.contextmanager
    def open_read(self, bucket: str, name: str, *, generation: int | None = None):  # noqa: ANN201
        """The object's file, open for reading (a replacement meanwhile leaves this inode whole)."""
        try:
            f = open(self._path(bucket, name), "rb")
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc
        with f:
            st = os.fstat(f.fileno())
            if generation is not None and st.st_mtime_ns != generation:
                raise NotFound("generation_gone", f"{bucket}/{name} is at generation {st.st_mtime_ns}, not {generation}")
            yield ObjectInfo(bucket, name, st.st_mtime_ns, st.st_size), f

    def read_bytes(self, bucket: str, name: str) -> bytes:
        try:
            return self._path(bucket, name).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound("object_not_found", f"{bucket}/{name}") from exc

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / bucket
        if not base.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if fn.startswith("."):
                    continue
                full = Path(dirpath) / fn
                name = full.relative_to(base).as_posix()
                if name.startswith(prefix):
                    try:
                        found.append(self._info(bucket, name, full))
                    except FileNotFoundError:
                        continue
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
    def _stage(self, write) -> Path:  # noqa: ANN001 - callable writing into an open file
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _commit(self, bucket: str, name: str, tmp: Path, if_generation_match: int | None) -> ObjectInfo:
        dest = self._path(bucket, name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if if_generation_match == 0:
                try:
                    os.link(tmp, dest)
                except FileExistsError as exc:
                    raise PreconditionFailed("object_exists", f"{bucket}/{name}") from exc
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
                        os.utime(tmp, ns=(current.generation + 1, current.generation + 1))
                    os.replace(tmp, dest)
            return self._info(bucket, name, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def upload_file(self, bucket: str, name: str, path: Path, *, if_generation_match: int | None = 0) -> ObjectInfo:
        def write(f):  # noqa: ANN001
            with open(path, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        return self._commit(bucket, name, self._stage(write), if_generation_match)

    def write_stream(self, bucket: str, name: str, produce, *, if_generation_match: int | None = 0):  # noqa: ANN001, ANN201
        """``produce(f)`` writes into a staging file, committed as :meth:`upload_file` commits."""
        result = []
        tmp = self._stage(lambda f: result.append(produce(f)))
        return self._commit(bucket, name, tmp, if_generation_match), result[0]

    def write_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None = 0) -> ObjectInfo:
        return self._commit(bucket, name, self._stage(lambda f: f.write(data)), if_generation_match)

    def rewrite(self, bucket: str, name: str) -> ObjectInfo:
        """Write an object onto itself (same bytes, a new generation): the raw-folder watcher
        announces it again, as the bucket notification does in GCS."""
        current = self.stat(bucket, name)
        if current is None:
            raise NotFound("object_not_found", f"{bucket}/{name}")
        return self.upload_file(bucket, name, self._path(bucket, name), if_generation_match=current.generation)

    def delete(self, bucket: str, name: str) -> None:
        self._path(bucket, name).unlink(missing_ok=True)
