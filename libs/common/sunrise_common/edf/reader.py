"""Chunked reading of EDF/BDF data records with bounded memory.

Data records are read whole, a block of records at a time, into one reused buffer with
``readinto``; signals are decoded from numpy views of that buffer. Peak memory is therefore a
few times the chunk size (raw bytes + float32 output), never the file size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sunrise_common.edf.annotations import Annotation, parse_tals, tal_annotations
from sunrise_common.edf.errors import EdfError
from sunrise_common.edf.header import EdfHeader

#: Upper bound of the raw bytes held per block, whatever ``chunk_seconds`` asks for.
MAX_BLOCK_BYTES = 256 << 20


@dataclass(frozen=True)
class Chunk:
    """A block of consecutive data records, decoded.

    Attributes
    ----------
    start_record : int
        Index of the first data record of the block.
    n_records : int
        Number of data records in the block.
    start_time : float
        Seconds from the recording start (header start date/time, whole seconds) to the first
        sample of the block: ``start_record * record_duration`` for plain EDF/BDF, plus the
        first record's time-keeping onset (the sub-second start) for EDF+C, and the time-keeping
        TAL onset of the block's first record for EDF+D (gaps preserved). Annotation onsets
        use the same origin.
    data : dict of int to numpy.ndarray
        Signal index -> physical values, float32, shape ``(n_records * samples_per_record,)``,
        in the signal's physical dimension (``gain * digital + offset``). Annotation signals
        are not decoded.
    record_onsets : numpy.ndarray or None
        For EDF+D, the onset in seconds of every record of the block (float64, shape
        ``(n_records,)``); None otherwise.
    """

    start_record: int
    n_records: int
    start_time: float
    data: dict[int, np.ndarray]
    record_onsets: np.ndarray | None = None


@contextlib.contextmanager
def _open(path_or_file: str | Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "rb") as f:
            yield f
    else:
        yield path_or_file


def _readinto_exact(f: BinaryIO, view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def iter_record_blocks(
    f: BinaryIO, header: EdfHeader, records_per_block: int, *, seek: bool = True
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_record, block)`` with ``block`` a uint8 view of shape (k, record_bytes).

    The view aliases one buffer reused between iterations: copy what must outlive the step.

    Parameters
    ----------
    f : BinaryIO
        The file; when ``seek`` is False it must already be positioned at the first record.
    header : EdfHeader
    records_per_block : int
        Records per block (>= 1).

    Raises
    ------
    EdfError
        ``truncated`` when the stream ends before ``header.n_records`` records.
    """
    if records_per_block < 1:
        raise ValueError(f"records_per_block must be >= 1, got {records_per_block}")
    if seek:
        f.seek(header.header_bytes)
    records_per_block = min(records_per_block, max(header.n_records, 1))
    buf = bytearray(records_per_block * header.record_bytes)
    mem = memoryview(buf)
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(records_per_block, header.record_bytes)
    start = 0
    while start < header.n_records:
        k = min(records_per_block, header.n_records - start)
        nbytes = k * header.record_bytes
        got = _readinto_exact(f, mem[:nbytes])
        if got < nbytes:
            raise EdfError(
                "truncated",
                f"stream ended {nbytes - got} bytes early in records {start}..{start + k - 1} of {header.n_records}",
            )
        yield start, arr[:k]
        start += k


def decode_signal(block: np.ndarray, header: EdfHeader, index: int) -> np.ndarray:
    """Physical float32 values of one signal from a (k, record_bytes) uint8 block.

    EDF samples are int16 little-endian, BDF samples 24-bit little-endian two's complement;
    ``physical = gain * digital + offset`` computed in float64, then stored as float32.
    """
    sig = header.signals[index]
    raw = block[:, header.signal_slice(index)]
    if header.sample_bytes == 2:
        digital = np.ascontiguousarray(raw).view("<i2").reshape(-1)
    else:
        b = raw.reshape(raw.shape[0], -1, 3).astype(np.int32)
        digital = (b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)).reshape(-1)
        digital = (digital ^ 0x800000) - 0x800000
    out = digital * sig.gain
    out += sig.offset
    return out.astype(np.float32)


def _records_per_chunk(header: EdfHeader, chunk_seconds: float) -> int:
    by_bytes = max(1, MAX_BLOCK_BYTES // header.record_bytes)
    if header.record_duration > 0:
        by_time = max(1, int(chunk_seconds // header.record_duration))
        return min(by_time, by_bytes)
    return by_bytes


def _timekeeping_onset(block_row: np.ndarray, header: EdfHeader, record: int) -> float:
    index = header.annotation_indices[0]
    tals = parse_tals(block_row[header.signal_slice(index)].tobytes())
    if not tals or not tals[0].is_timekeeping:
        raise EdfError("bad_annotations", f"record {record} has no time-keeping TAL in signal {index}")
    return tals[0].onset_s


def iter_chunks(
    path_or_file: str | Path | BinaryIO,
    header: EdfHeader,
    chunk_seconds: float = 300.0,
    signals: list[int] | None = None,
) -> Iterator[Chunk]:
    """Decode a file in chunks of about ``chunk_seconds`` of recording.

    Parameters
    ----------
    path_or_file : str, Path or BinaryIO
        The EDF/BDF file (seekable when a stream).
    header : EdfHeader
        Its parsed header.
    chunk_seconds : float
        Seconds of recording per chunk (rounded down to whole records, at least one record,
        at most :data:`MAX_BLOCK_BYTES` of raw data). Default 300 s.
    signals : list of int, optional
        Indices of the signals to decode; default all ordinary (non-annotation) signals.

    Yields
    ------
    Chunk

    Raises
    ------
    EdfError
        ``truncated`` if the file is shorter than the header says; ``bad_annotations`` for an
        EDF+ record without a valid time-keeping TAL.
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    indices = list(header.ordinary_indices) if signals is None else list(signals)
    for i in indices:
        if not 0 <= i < header.ns or header.signals[i].is_annotation:
            raise ValueError(f"signal index {i} is not an ordinary signal of this {header.ns}-signal file")
    per_chunk = _records_per_chunk(header, chunk_seconds)
    first_onset = 0.0
    with _open(path_or_file) as f:
        for start, block in iter_record_blocks(f, header, per_chunk):
            onsets = None
            if header.plus == "D":
                onsets = np.array([_timekeeping_onset(block[r], header, start + r) for r in range(block.shape[0])])
                start_time = float(onsets[0])
            else:
                if start == 0 and header.plus == "C" and header.annotation_indices:
                    first_onset = _timekeeping_onset(block[0], header, 0)
                start_time = first_onset + start * header.record_duration
            data = {i: decode_signal(block, header, i) for i in indices}
            yield Chunk(start, block.shape[0], start_time, data, onsets)


def read_start_offset(path_or_file: str | Path | BinaryIO, header: EdfHeader) -> float:
    """Onset in seconds of the first data record relative to the header start time.

    EDF+ stores the sub-second part of the start time (and for EDF+D any initial gap) in the
    time-keeping TAL of the first record; plain EDF/BDF and empty files give 0.0.
    """
    if header.plus is None or not header.annotation_indices or header.n_records == 0:
        return 0.0
    with _open(path_or_file) as f:
        for _, block in iter_record_blocks(f, header, 1):
            return _timekeeping_onset(block[0], header, 0)
    return 0.0


def read_record_onsets(path_or_file: str | Path | BinaryIO, header: EdfHeader) -> np.ndarray:
    """Onset in seconds of every data record, gaps preserved.

    For EDF+ files (C or D) the onset is the time-keeping TAL of each record's first annotation
    signal; for plain EDF/BDF it is ``record * record_duration``.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(n_records,)``.
    """
    if header.plus is None or not header.annotation_indices:
        return np.arange(header.n_records, dtype=np.float64) * header.record_duration
    onsets = np.empty(header.n_records, dtype=np.float64)
    per_block = _records_per_chunk(header, 300.0)
    with _open(path_or_file) as f:
        for start, block in iter_record_blocks(f, header, per_block):
            for r in range(block.shape[0]):
                onsets[start + r] = _timekeeping_onset(block[r], header, start + r)
    return onsets


def read_annotations(path_or_file: str | Path | BinaryIO, header: EdfHeader) -> list[Annotation]:
    """All annotations of all annotation signals, in file order (time-keeping TALs excluded).

    Returns
    -------
    list of Annotation
        Onsets in seconds from the recording start; texts decoded as UTF-8.

    Raises
    ------
    EdfError
        ``bad_annotations`` on malformed TALs.
    """
    out: list[Annotation] = []
    indices = header.annotation_indices
    if not indices:
        return out
    per_block = _records_per_chunk(header, 300.0)
    with _open(path_or_file) as f:
        for _, block in iter_record_blocks(f, header, per_block):
            for r in range(block.shape[0]):
                for i in indices:
                    out.extend(tal_annotations(parse_tals(block[r, header.signal_slice(i)].tobytes())))
    return out
