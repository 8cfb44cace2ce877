"""Storage port: buckets of objects with generations and conditional writes.

Adapters: :mod:`.local` (one folder per bucket) and :mod:`.gcs` (Cloud Storage or fake-gcs-server).
Bucket arguments are physical names (``Settings.bucket("raw")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

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
