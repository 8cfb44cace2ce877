"""Storage adapter on Cloud Storage (or fake-gcs-server, for the emulators backend).

SDK exceptions are translated here: missing object -> ``NotFound``, lost precondition (412) ->
``PreconditionFailed``, throttling, 5xx and connection trouble -> ``TransientError``.
Uploads and downloads stream between the object and a local file; files above 8 MiB go up as a
chunked resumable upload (16 MiB in memory at a time), so a 300 MB EDF never sits in memory.
``open_read`` and ``write_stream`` go without a local file at all: range reads of 8 MiB pinned to
one generation (written straight into one 8 MiB buffer, or into the caller's for larger reads), and a resumable upload fed 16 MiB at a time (``BlobWriter``; an exception in the
producer cancels the session, so no partial object is ever finalized).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.fileio import BlobWriter
from google.api_core.retry import Retry
from google.cloud.storage.retry import DEFAULT_RETRY

from sunrise_common.errors import NotFound, PreconditionFailed, TransientError
from sunrise_common.storage import ObjectInfo

TIMEOUT_S = 120.0
# How long the SDK keeps retrying 429/5xx/connection errors before we report a TransientError.
RETRY_TIMEOUT_S = 60.0
# Chunk of a resumable upload (a multiple of 256 KiB).
CHUNK_SIZE = 16 * 1024 * 1024
# Above this the SDK switches from one multipart request to a resumable session.
SDK_MULTIPART_MAX = 8 * 1024 * 1024
# Range read of a streamed download (open_read): what one read request holds in memory.
READ_CHUNK_SIZE = 8 * 1024 * 1024

#: Sources of one compose request (Cloud Storage's limit).
COMPOSE_MAX = 32

T = TypeVar("T")


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Translate SDK and transport errors into the pipeline's error tree."""
    try:
        yield
    except gexc.NotFound as exc:
        raise NotFound("object_not_found", f"{what}: {exc.message}") from exc
    except gexc.PreconditionFailed as exc:
        raise PreconditionFailed("precondition_failed", f"{what}: {exc.message}") from exc
    except (gexc.TooManyRequests, gexc.ServerError, gexc.RetryError) as exc:
        raise TransientError("storage_unavailable", f"{what}: {exc}") from exc
    except (requests.ConnectionError, requests.Timeout, auth_exc.TransportError, ConnectionError, TimeoutError) as exc:
        raise TransientError("storage_unreachable", f"{what}: {exc}") from exc


class _IntoView:
    """Where a range download writes: straight into the reader's buffer (no intermediate bytes)."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.n = view, 0

    def write(self, data: bytes) -> int:
        k = len(data)
        if self.n + k > len(self.view):  # the server sent more than the range asked
            raise TransientError("storage_range", f"a range read of {len(self.view)} bytes received {self.n + k}")
        self.view[self.n : self.n + k] = data
        self.n += k
        return k


class _RangeReader(io.RawIOBase):
    """A seekable raw stream over one generation of an object: each ``readinto`` is one range
    request written straight into the caller's buffer. ``open_read`` wraps it in an
    ``io.BufferedReader`` of ``READ_CHUNK_SIZE``: small reads are served from that one buffer,
    seeks within it cost nothing. (The SDK's ``BlobReader`` holds each 8 MiB range three or four
    times over while it splits it: ~35 MB per read instead of 8; issue 26.)"""

    def __init__(self, blob: storage.Blob, retry: Retry) -> None:
        self.blob, self.retry, self.size, self.pos = blob, retry, int(blob.size or 0), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self.pos = base + offset
        return self.pos

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.pos)
        if n <= 0:
            return 0
        sink = _IntoView(view[:n])
        # blob.generation (from get_blob) pins the request to the generation opened.
        self.blob.download_to_file(sink, start=self.pos, end=self.pos + n - 1, checksum=None, retry=self.retry,
                                   timeout=TIMEOUT_S)
        self.pos += sink.n
        return sink.n


class GcsStorage:
    """The Storage port on a ``google.cloud.storage.Client``.

    Build it with :meth:`for_emulator` or :meth:`for_cloud` rather than by hand.
    """

    def __init__(
        self,
        client: storage.Client,
        *,
        can_create_buckets: bool = False,
        emulated_preconditions: bool = False,
        retry_timeout_s: float = RETRY_TIMEOUT_S,
    ) -> None:
        self.client = client
        # Every call, uploads included, is safe to retry: writes are conditional or overwrite
        # with the same bytes.
        self.retry = DEFAULT_RETRY.with_timeout(retry_timeout_s)
        self.can_create_buckets = can_create_buckets
        self.emulated_preconditions = emulated_preconditions

    @classmethod
    def for_emulator(cls, endpoint: str, project: str, *, retry_timeout_s: float = RETRY_TIMEOUT_S) -> GcsStorage:
        """fake-gcs-server at ``endpoint`` (``http://127.0.0.1:4443``), no credentials."""
        client = storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )
        # fake-gcs-server (up to fsouza/fake-gcs-server#2260) drops ifGenerationMatch on resumable
        # uploads, so there the adapter checks the generation itself before a large upload.
        return cls(client, can_create_buckets=True, emulated_preconditions=True, retry_timeout_s=retry_timeout_s)

    @classmethod
    def for_cloud(cls, project: str, *, retry_timeout_s: float = RETRY_TIMEOUT_S) -> GcsStorage:
        """Cloud Storage with the runtime's default credentials (the Cloud Run service account)."""
        return cls(storage.Client(project=project), retry_timeout_s=retry_timeout_s)

    @staticmethod
    def _info(blob: storage.Blob) -> ObjectInfo:
        return ObjectInfo(
            bucket=blob.bucket.name, name=blob.name, generation=int(blob.generation), size=int(blob.size or 0)
        )

    # -- reads
    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        with _translated(f"stat {bucket}/{name}"):
            try:
                blob = self.client.bucket(bucket).get_blob(name, timeout=TIMEOUT_S, retry=self.retry)
            except gexc.NotFound:  # the bucket itself is missing
                return None
        return self._info(blob) if blob is not None else None

    def download_to_file(self, bucket: str, name: str, path: Path, *, generation: int | None = None) -> ObjectInfo:
        what = f"{bucket}/{name}" + (f"#{generation}" if generation is not None else "")
        with _translated(f"download {what}"):
            # Fetch the metadata first and download exactly that generation, so the returned
            # info always describes the bytes written (an overwrite in between -> NotFound).
            blob = self.client.bucket(bucket).get_blob(
                name, generation=generation, timeout=TIMEOUT_S, retry=self.retry
            )
            if blob is None:
                reason = "generation_gone" if generation is not None else "object_not_found"
                raise NotFound(reason, what)
            with open(path, "wb") as out:
                blob.download_to_file(out, timeout=TIMEOUT_S, retry=self.retry, checksum="auto")
        return self._info(blob)

    @contextlib.contextmanager
    def open_read(self, bucket: str, name: str, *, generation: int | None = None
                  ) -> Iterator[tuple[ObjectInfo, BinaryIO]]:
        what = f"{bucket}/{name}" + (f"#{generation}" if generation is not None else "")
        with _translated(f"read {what}"):
            # The metadata first, then range reads of exactly that generation (blob.generation
            # pins every range request), so a replacement meanwhile is a NotFound, never a mix.
            blob = self.client.bucket(bucket).get_blob(name, generation=generation, timeout=TIMEOUT_S, retry=self.retry)
            if blob is None:
                raise NotFound("generation_gone" if generation is not None else "object_not_found", what)
            reader = io.BufferedReader(_RangeReader(blob, self.retry), buffer_size=READ_CHUNK_SIZE)
        try:
            with _translated(f"read {what}"):
                yield self._info(blob), reader
        finally:
            reader.close()

    def read_bytes(self, bucket: str, name: str) -> bytes:
        with _translated(f"read {bucket}/{name}"):
            return self.client.bucket(bucket).blob(name).download_as_bytes(timeout=TIMEOUT_S, retry=self.retry)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        # GCS lists in lexicographic (UTF-8 byte) order, page by page.
        with _translated(f"list {bucket}/{prefix}*"):
            for blob in self.client.list_blobs(bucket, prefix=prefix or None, timeout=TIMEOUT_S, retry=self.retry):
                yield self._info(blob)

    # -- writes
    def upload_file(self, bucket: str, name: str, path: Path, *, if_generation_match: int | None = 0) -> ObjectInfo:
        blob = self.client.bucket(bucket).blob(name, chunk_size=CHUNK_SIZE)
        with _translated(f"upload {bucket}/{name}"):
            with open(path, "rb") as src:
                size = Path(path).stat().st_size
                if size <= SDK_MULTIPART_MAX:
                    # Small files go in one multipart request rather than a resumable session.
                    blob.chunk_size = None
                elif self.emulated_preconditions and if_generation_match is not None:
                    self._check_generation(bucket, name, if_generation_match)
                blob.upload_from_file(
                    src, size=size, if_generation_match=if_generation_match, timeout=TIMEOUT_S, retry=self.retry
                )
        return self._info(blob)

    def write_stream(self, bucket: str, name: str, produce: Callable[[BinaryIO], T], *,
                     if_generation_match: int | None = 0) -> tuple[ObjectInfo, T]:
        blob = self.client.bucket(bucket).blob(name, chunk_size=CHUNK_SIZE)
        with _translated(f"upload {bucket}/{name}"):
            if self.emulated_preconditions and if_generation_match is not None:
                self._check_generation(bucket, name, if_generation_match)
            writer = BlobWriter(blob, chunk_size=CHUNK_SIZE, ignore_flush=True, retry=self.retry,
                                if_generation_match=if_generation_match, timeout=TIMEOUT_S)
            with writer:  # an exception cancels the resumable session: nothing is finalized
                result = produce(writer)
            blob.reload(timeout=TIMEOUT_S, retry=self.retry)
        return self._info(blob), result

    def compose(self, bucket: str, name: str, sources: list[str], *, if_generation_match: int | None = 0) -> ObjectInfo:
        """Cloud Storage's compose, 32 sources per request (its limit): more sources are composed
        in groups into intermediate objects named after the first source
        (``SOURCE.compose-TOKEN-LEVEL-I``: beside the sources, never under the destination's
        prefix), deleted afterwards."""
        if not sources:
            raise ValueError("compose needs at least one source")
        b = self.client.bucket(bucket)
        token = uuid.uuid4().hex[:12]
        first = sources[0]
        made: list[str] = []
        try:
            with _translated(f"compose {bucket}/{name}"):
                level = 0
                while len(sources) > COMPOSE_MAX:
                    level += 1
                    grouped = []
                    for i in range(0, len(sources), COMPOSE_MAX):
                        part = f"{first}.compose-{token}-{level}-{i // COMPOSE_MAX}"
                        b.blob(part).compose([b.blob(s) for s in sources[i:i + COMPOSE_MAX]], if_generation_match=0,
                                             timeout=TIMEOUT_S, retry=self.retry)
                        made.append(part)
                        grouped.append(part)
                    sources = grouped
                if self.emulated_preconditions and if_generation_match is not None:
                    self._check_generation(bucket, name, if_generation_match)
                blob = b.blob(name)
                blob.compose([b.blob(s) for s in sources], if_generation_match=if_generation_match,
                             timeout=TIMEOUT_S, retry=self.retry)
                blob.reload(timeout=TIMEOUT_S, retry=self.retry)
        finally:
            for part in made:
                self.delete(bucket, part)
        return self._info(blob)

    def _check_generation(self, bucket: str, name: str, expected: int) -> None:
        """Emulator only (racy by nature): refuse a write whose precondition already fails."""
        current = self.stat(bucket, name)
        if (current.generation if current else 0) != expected:
            raise PreconditionFailed(
                "precondition_failed",
                f"{bucket}/{name}: expected generation {expected}, found {current and current.generation}",
            )

    def write_bytes(self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None = 0) -> ObjectInfo:
        blob = self.client.bucket(bucket).blob(name)
        with _translated(f"write {bucket}/{name}"):
            if self.emulated_preconditions and if_generation_match is not None and len(data) > SDK_MULTIPART_MAX:
                self._check_generation(bucket, name, if_generation_match)
            blob.upload_from_string(
                data, if_generation_match=if_generation_match, timeout=TIMEOUT_S, retry=self.retry
            )
        return self._info(blob)

    def rewrite(self, bucket: str, name: str) -> ObjectInfo:
        """Write an object onto itself (same bytes, a new generation): the bucket's notification
        fires again. GCS refuses a copy onto itself that changes nothing, so a metadata stamp
        records the replay."""
        import time

        with _translated(f"rewrite {bucket}/{name}"):
            b = self.client.bucket(bucket)
            source = b.get_blob(name, timeout=TIMEOUT_S, retry=self.retry)
            if source is None:
                raise NotFound("object_not_found", f"{bucket}/{name}")
            dest = b.blob(name)
            dest.metadata = {**(source.metadata or {}), "sunrise-replayed-at": str(time.time())}
            token, _, _ = dest.rewrite(source, if_generation_match=source.generation, timeout=TIMEOUT_S)
            while token is not None:
                token, _, _ = dest.rewrite(source, token=token, if_generation_match=source.generation, timeout=TIMEOUT_S)
        return self._info(dest)

    def delete(self, bucket: str, name: str) -> None:
        with _translated(f"delete {bucket}/{name}"):
            try:
                self.client.bucket(bucket).blob(name).delete(timeout=TIMEOUT_S, retry=self.retry)
            except gexc.NotFound:
                pass

    def signed_url(self, bucket: str, name: str, *, expires_s: int = 3600) -> str:
        """A V4 signed GET URL. In Cloud Run the runtime service account signs through the IAM
        signBlob API (it needs ``iam.serviceAccountTokenCreator`` on itself, terraform/iam.tf);
        fake-gcs-server does not check signatures, so the emulator gets its plain media URL."""
        blob = self.client.bucket(bucket).blob(name)
        if self.can_create_buckets:  # fake-gcs-server
            from urllib.parse import quote

            return f"{self.client._connection.API_BASE_URL}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
        with _translated(f"sign {bucket}/{name}"):
            import datetime as dt

            import google.auth
            from google.auth.transport import requests as auth_requests

            credentials, _ = google.auth.default()
            credentials.refresh(auth_requests.Request())
            return blob.generate_signed_url(version="v4", expiration=dt.timedelta(seconds=expires_s), method="GET",
                                            service_account_email=getattr(credentials, "service_account_email", None),
                                            access_token=getattr(credentials, "token", None))

    def list_versions(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every stored version under prefix, noncurrent ones included (a versioned bucket keeps a
        deleted or overwritten object as a noncurrent version): what an erasure must delete."""
        with _translated(f"list versions {bucket}/{prefix}*"):
            # "true", not True: the SDK sends a bool as "True", which Cloud Storage takes and
            # fake-gcs-server reads as false (it compares with "true").
            for blob in self.client.list_blobs(bucket, prefix=prefix or None, versions="true", timeout=TIMEOUT_S,
                                               retry=self.retry):
                yield self._info(blob)

    def delete_version(self, bucket: str, name: str, generation: int) -> None:
        """Remove one version of an object (live or noncurrent). Missing versions are ignored."""
        with _translated(f"delete {bucket}/{name}#{generation}"):
            try:
                self.client.bucket(bucket).blob(name, generation=generation).delete(timeout=TIMEOUT_S, retry=self.retry)
            except gexc.NotFound:
                pass

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket on fake-gcs-server; in the cloud Terraform owns buckets (no-op)."""
        if not self.can_create_buckets:
            return
        with _translated(f"create bucket {bucket}"):
            try:
                self.client.create_bucket(bucket, timeout=TIMEOUT_S, retry=self.retry)
            except gexc.Conflict:
                pass
