"""Where ``prepare_psg`` writes its outputs: a local folder (the CLI, tests, benchmarks) or
straight into the ``prepped`` bucket (the service).

On Cloud Run ``/tmp`` is memory: writing the outputs to a scratch folder and uploading it
afterwards held the whole of ``signals.npz`` (455 MB for a 16-h night) in the request's memory
(issue 26). :class:`BucketOutputs` writes the small files (CSVs, ``quality.npz``, ``meta.json``:
a few hundred kB at most, bounded by the label limits and the epoch count) from memory, and
``signals.npz`` as it is produced (:class:`~psg_prep.npzfile.StreamedNpzWriter`), so nothing
reaches ``/tmp`` and the request's memory does not grow with the night.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sunrise_common.errors import PreconditionFailed, TransientError
from sunrise_common.storage import Storage

from .npzfile import NpzWriter, StreamedNpzWriter


class Outputs(Protocol):
    def write(self, name: str, data: bytes) -> None:
        """One small output file, whole."""

    def npz(self, name: str, arrays: list[tuple[str, int]]) -> NpzWriter | StreamedNpzWriter:
        """A writer of the float32 arrays ``(name, length)``, filled member by member in any
        interleaving (``member(j).write``), finished by ``close()`` (``abort()`` on failure)."""


class FolderOutputs:
    """Files in a local folder (created if missing)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        (self.folder / name).write_bytes(data)

    def npz(self, name: str, arrays: list[tuple[str, int]]) -> NpzWriter:
        return NpzWriter(self.folder / name, arrays)


class BucketOutputs:
    """Objects ``prefix + name`` in a bucket, written create-if-absent: names derive from the
    inputs, so an object that exists already holds the same result (a crashed earlier attempt)
    and is kept. ``written`` maps each name to its size; the caller writes the manifest last."""

    def __init__(self, storage: Storage, bucket: str, prefix: str) -> None:
        self.storage, self.bucket, self.prefix = storage, bucket, prefix
        self.written: dict[str, int] = {}
        self._npz: list[str] = []

    def write(self, name: str, data: bytes) -> None:
        try:
            info = self.storage.write_bytes(self.bucket, self.prefix + name, data, if_generation_match=0)
        except PreconditionFailed:
            info = self.storage.stat(self.bucket, self.prefix + name)
            if info is None:
                raise TransientError("storage_race", f"{self.bucket}/{self.prefix}{name} vanished") from None
        self.written[name] = info.size

    def npz(self, name: str, arrays: list[tuple[str, int]]) -> StreamedNpzWriter:
        writer = StreamedNpzWriter(self.storage, self.bucket, self.prefix + name, arrays)
        writer.on_close = lambda info: self.written.__setitem__(name, info.size)
        return writer
