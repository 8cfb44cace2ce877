"""Storage port: buckets of objects with generations and conditional writes.

Adapters: :mod:`.local` (one folder per bucket) and :mod:`.gcs` (Cloud Storage or fake-gcs-server).
Bucket arguments are physical names (``Settings.bucket("raw")``). Adapters whose backend keeps
old versions (Cloud Storage with versioning) also offer ``list_versions(bucket, prefix)`` and
``delete_version(bucket, name, generation)``, which an erasure (``sunrise forget``) uses to delete
noncurrent versions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Iterator, Protocol, TypeVar

T = TypeVar("T")

from sunrise_common.settings import Settings


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    name: str
    generation: int
    size: int


class Storage(Protocol):
    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        """Current version of an object, or None."""

    def download_to_file(self, bucket: str, name: str, path: Path, *, generation: int | None = None) -> ObjectInfo:
        """Copy an object (a given generation, if asked) to a local file. Raises NotFound."""

    def open_read(
        self, bucket: str, name: str, *, generation: int | None = None
    ) -> ContextManager[tuple[ObjectInfo, BinaryIO]]:
        """``with open_read(...) as (info, stream)``: the object (that generation, if asked) as a
        sequential binary stream read in bounded chunks, never whole. Raises NotFound, also when
        the generation goes while it is being read (Cloud Storage)."""

    def write_stream(
        self, bucket: str, name: str, produce: Callable[[BinaryIO], T], *, if_generation_match: int | None = 0
    ) -> tuple[ObjectInfo, T]:
        """Write an object from what ``produce(stream)`` writes into ``stream`` (sequentially;
        bounded memory: chunks of a resumable upload, or a staging file beside the bucket).
        Nothing is committed if ``produce`` raises. Preconditions as :meth:`upload_file`.
        Returns the object's info and what ``produce`` returned."""

    def compose(
        self, bucket: str, name: str, sources: list[str], *, if_generation_match: int | None = 0
    ) -> ObjectInfo:
        """Write an object that is the concatenation of ``sources`` (objects of the same bucket,
        in order; any number: Cloud Storage composes 32 at a time, in a tree of intermediate
        objects, which are deleted). The sources are left in place. Preconditions as
        :meth:`upload_file`. How an output produced in parallel pieces (psg_prep's signals.npz,
        one stream per channel) reaches the bucket without a whole copy in memory or ``/tmp``."""

    def upload_file(
        self, bucket: str, name: str, path: Path, *, if_generation_match: int | None = 0
    ) -> ObjectInfo:
        """Write a local file as an object. ``if_generation_match=0``: only if absent
        (raises PreconditionFailed otherwise); ``None``: overwrite."""

    def read_bytes(self, bucket: str, name: str) -> bytes:
        """Whole object (small objects only). Raises NotFound."""

    def write_bytes(
        self, bucket: str, name: str, data: bytes, *, if_generation_match: int | None = 0
    ) -> ObjectInfo:
        """Like upload_file, for bytes in memory."""

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose name starts with prefix, in name order."""

    def rewrite(self, bucket: str, name: str) -> ObjectInfo:
        """Write an object onto itself: same bytes, a new generation, so the bucket's finalize
        event fires again (how ``sunrise backfill --via rewrite`` replays uploads in the cloud)."""

    def signed_url(self, bucket: str, name: str, *, expires_s: int = 3600) -> str:
        """A URL that lets another service read the object for ``expires_s`` seconds without credentials
        (Cloud Storage: a V4 signed URL; fake-gcs-server: its media URL; local folders: ``file://``)."""

    def delete(self, bucket: str, name: str) -> None:
        """Remove an object (tests, purges). Missing objects are ignored."""

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket where the backend allows it (embedded, emulators)."""


def make_storage(settings: Settings) -> Storage:
    """The storage adapter of ``settings.backend``."""
    if settings.backend == "embedded":
        from sunrise_common.storage.local import LocalStorage

        return LocalStorage(settings.data_dir / "buckets")
    from sunrise_common.storage.gcs import GcsStorage

    if settings.backend == "emulators":
        return GcsStorage.for_emulator(settings.gcs_endpoint, settings.project)
    return GcsStorage.for_cloud(settings.project)
