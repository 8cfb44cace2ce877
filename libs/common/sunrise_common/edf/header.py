"""Strict parsing of the EDF / EDF+ / BDF / BDF+ header.

Layout (EDF spec; BDF differs only in the version bytes and 3-byte samples): a fixed 256-byte
header, then ``ns`` x 256 bytes of per-signal fields stored field by field (all labels, then all
transducers, ...), then ``n_records`` data records. A record holds, signal after signal,
``samples_per_record`` little-endian two's-complement samples of 2 bytes (EDF) or 3 bytes (BDF).

The parser never trusts a count before it has checked it against the real file size, so a
hostile header cannot make it allocate or read more than ``256 * (ns + 1) <= file_size`` bytes,
with ``ns <= 4096`` (at most ~1 MB).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sunrise_common.edf.errors import EdfError

EDF_VERSION = b"0       "
BDF_VERSION = b"\xffBIOSEMI"

#: (offset, width) in bytes of the fields of the fixed 256-byte header.
FIXED_FIELDS: dict[str, tuple[int, int]] = {
    "version": (0, 8),
    "patient": (8, 80),
    "recording": (88, 80),
    "startdate": (168, 8),
    "starttime": (176, 8),
    "header_bytes": (184, 8),
    "reserved": (192, 44),
    "n_records": (236, 8),
    "record_duration": (244, 8),
    "ns": (252, 4),
}

#: Width in bytes of each per-signal field, in file order.
SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16),
    ("transducer", 80),
    ("physical_dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefiltering", 80),
    ("samples_per_record", 8),
    ("reserved", 32),
)

# Limits checked from the header before anything is allocated from it (issue 22, defect 4). A
# file beyond one is rejected permanently (``absurd_value``), with a reason that names the header
# fields and their numbers. Each is far above any real sleep recording and low enough that a
# service working block by block on such a file stays within its memory budget.

#: Signals per file. PSGs carry 10-70, high-density EEG 256 (+ a few aux): 4x margin over that.
MAX_SIGNALS = 1024
#: Sampling rate of an ordinary signal, samples per record / record duration (Hz). The fastest
#: real acquisition in the field, BioSemi ActiveTwo BDF, samples at 16,384 Hz; PSG amplifiers
#: at 128-2,048 Hz. A claimed 10^13 Hz made psg_prep size its buffers from it (MemoryError).
MAX_SAMPLE_RATE_HZ = 16_384.0
#: Samples of one signal in one data record: the rate limit over the longest record the EDF
#: spec recommends keeping a record under (1 MiB for all signals, 61,440 bytes per record is its
#: advice for EDF; BDF files by BioSemi use 1-s records), with room for 60-s records at 16 kHz.
MAX_SAMPLES_PER_RECORD = 1_048_576
#: Bytes of one data record (all signals); the reader and the anonymiser hold a record whole.
#: 30-s records of 64 channels at 2 kHz in BDF are ~11 MB.
MAX_RECORD_BYTES = 32 << 20
#: Bytes of all annotation signals over the whole file (records x annotation bytes per record).
#: An 8-h EDF+ PSG with 1-s records and a 120-byte annotation signal holds 3.5 MB; a scored
#: night's hypnogram file well under 1 MB. 76 MB of annotations cost ingest 1,250 MB and 43 s.
MAX_ANNOTATION_BYTES = 16 << 20
#: No recording is longer than a few days; a record longer than a day is a corrupt field.
MAX_RECORD_DURATION_S = 86_400.0

#: The limits above by name (documented in docs/limits.md, "EDF/BDF headers").
LIMITS = {
    "MAX_SIGNALS": MAX_SIGNALS,
    "MAX_SAMPLE_RATE_HZ": MAX_SAMPLE_RATE_HZ,
    "MAX_SAMPLES_PER_RECORD": MAX_SAMPLES_PER_RECORD,
    "MAX_RECORD_BYTES": MAX_RECORD_BYTES,
    "MAX_ANNOTATION_BYTES": MAX_ANNOTATION_BYTES,
    "MAX_RECORD_DURATION_S": MAX_RECORD_DURATION_S,
}

ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

# The field grammars (ASCII digits only: ``[0-9]``, not ``\d``, which is any Unicode digit in str).
INT = re.compile(rb"[+-]?[0-9]+")
UNSIGNED_DECIMAL = re.compile(rb"[0-9]+\.?[0-9]*|\.[0-9]+")
FLOAT = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DATE = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{2}|yy)")  # dd.mm.yy ("yy": EDF+ after 2084)
TIME = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{2})")  # hh.mm.ss
EDFPLUS_DATE = re.compile(rf"([0-9]{{2}})-({'|'.join(_MONTHS)})-([0-9]{{4}})")  # dd-MMM-yyyy


def signal_field_offset(name: str, index: int, ns: int) -> tuple[int, int]:
    """Return the absolute (offset, width) in bytes of one signal's header field.

    Parameters
    ----------
    name : str
        One of the names in :data:`SIGNAL_FIELDS` (e.g. ``"transducer"``).
    index : int
        Signal index, ``0 <= index < ns``.
    ns : int
        Number of signals in the file.
    """
    offset = 256
    for field_name, width in SIGNAL_FIELDS:
        if field_name == name:
            return offset + index * width, width
        offset += ns * width
    raise KeyError(f"unknown signal header field {name!r}")


@dataclass(frozen=True, slots=True)
class SignalHeader:
    """The header fields of one signal.

    Attributes
    ----------
    label, transducer, physical_dimension, prefiltering, reserved : str
        Text fields, right-stripped, decoded as Latin-1 (lossless for any byte).
    physical_min, physical_max : float
        Physical range, in ``physical_dimension`` units (e.g. uV). ``min > max`` is allowed
        (an inverted signal); ``min == max`` is rejected.
    digital_min, digital_max : int
        Digital range (int16 for EDF, int24 for BDF), ``digital_min < digital_max``.
    samples_per_record : int
        Samples of this signal in each data record (> 0).
    record_duration : float
        Duration of a data record in seconds (copied from the file header for ``sample_rate``).
    is_annotation : bool
        True for an EDF+/BDF+ annotation signal ("EDF Annotations" / "BDF Annotations").
    """

    label: str
    transducer: str
    physical_dimension: str
    physical_min: float
    physical_max: float
    digital_min: int
    digital_max: int
    prefiltering: str
    samples_per_record: int
    reserved: str
    record_duration: float = field(repr=False)
    is_annotation: bool

    @property
    def gain(self) -> float:
        """Physical units per digital step: (pmax - pmin) / (dmax - dmin)."""
        return (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min)

    @property
    def offset(self) -> float:
        """Physical value of digital 0, so that ``physical = gain * digital + offset``."""
        return self.physical_max - self.gain * self.digital_max

    @property
    def sample_rate(self) -> float:
        """Sampling rate in Hz; 0.0 when the record duration is 0 (annotation-only files)."""
        if self.record_duration <= 0:
            return 0.0
        return self.samples_per_record / self.record_duration


@dataclass(frozen=True, slots=True)
class PatientFields:
    """EDF+ patient identification subfields: ``code sex birthdate name [additional...]``."""

    code: str
    sex: str  # "M", "F" or "X"
    birthdate: dt.date | None  # None when "X"
    name: str
    additional: str


@dataclass(frozen=True, slots=True)
class RecordingFields:
    """EDF+ recording identification: ``Startdate dd-MMM-yyyy admin technician equipment ...``."""

    startdate: dt.date | None  # None when "X"
    admin_code: str
    technician: str
    equipment: str
    additional: str


@dataclass(frozen=True, slots=True)
class EdfHeader:
    """A parsed, validated EDF/BDF header.

    Attributes
    ----------
    fmt : {"EDF", "BDF"}
    sample_bytes : {2, 3}
        Bytes per sample (int16 for EDF, int24 for BDF), little-endian two's complement.
    plus : {None, "C", "D"}
        EDF+/BDF+ continuity from the reserved field (``EDF+C``/``EDF+D``/``BDF+C``/``BDF+D``);
        None for plain EDF/BDF.
    patient, recording : str
        Raw 80-byte identification fields (right-stripped, Latin-1). Personal data.
    startdate_raw, starttime_raw : str
        The raw ``dd.mm.yy`` and ``hh.mm.ss`` fields.
    start : datetime.datetime or None
        Naive local start of the recording; None when the date or time is invalid (e.g. the
        NSRR de-identified ``00.00.00``), in which case ``start_problem`` says why.
    start_problem : str or None
    year : int or None
        Recording year (EDF+ window 85-99 -> 19xx, 00-84 -> 20xx, or the 4-digit year of the
        recording field's ``Startdate`` when it agrees), None when the date is invalid.
    header_bytes : int
        Size of the header, ``256 * (ns + 1)``; data records start at this byte offset.
    reserved : str
        The 44-byte reserved field.
    n_records : int
        Number of data records (>= 0; a ``-1`` field is resolved from the file size).
    n_records_field : int
        The value written in the header (may be -1).
    record_duration : float
        Duration of one data record in seconds (0 only for annotation-only files).
    signals : tuple of SignalHeader
    record_bytes : int
        Bytes per data record.
    signal_offsets : tuple of int
        Byte offset of each signal inside a data record.
    file_size : int
        Size of the file in bytes (``header_bytes + n_records * record_bytes``).
    raw : bytes
        The exact header bytes, for rewriting fields (see :data:`FIXED_FIELDS` and
        :func:`signal_field_offset`).
    """

    fmt: str
    sample_bytes: int
    plus: str | None
    patient: str
    recording: str
    startdate_raw: str
    starttime_raw: str
    start: dt.datetime | None
    start_problem: str | None
    year: int | None
    header_bytes: int
    reserved: str
    n_records: int
    n_records_field: int
    record_duration: float
    signals: tuple[SignalHeader, ...]
    record_bytes: int
    signal_offsets: tuple[int, ...]
    file_size: int
    raw: bytes = field(repr=False)

    @property
    def ns(self) -> int:
        """Number of signals, annotation signals included."""
        return len(self.signals)

    @property
    def duration(self) -> float:
        """Recorded duration in seconds, ``n_records * record_duration``.

        For EDF+D this excludes the gaps; see :func:`sunrise_common.edf.reader.read_record_onsets`.
        """
        return self.n_records * self.record_duration

    @property
    def annotation_indices(self) -> tuple[int, ...]:
        """Indices of the annotation signals."""
        return tuple(i for i, s in enumerate(self.signals) if s.is_annotation)

    @property
    def ordinary_indices(self) -> tuple[int, ...]:
        """Indices of the ordinary (sampled) signals."""
        return tuple(i for i, s in enumerate(self.signals) if not s.is_annotation)

    def signal_slice(self, index: int) -> slice:
        """Byte range of one signal inside a data record."""
        start = self.signal_offsets[index]
        return slice(start, start + self.signals[index].samples_per_record * self.sample_bytes)

    def patient_fields(self) -> PatientFields | None:
        """Split the patient field into EDF+ subfields, or None when it does not follow EDF+."""
        return parse_patient_field(self.patient)

    def recording_fields(self) -> RecordingFields | None:
        """Split the recording field into EDF+ subfields, or None when it does not follow EDF+."""
        return parse_recording_field(self.recording)


def _edfplus_date(text: str) -> dt.date | None:
    """``dd-MMM-yyyy`` with an English month abbreviation; ValueError otherwise."""
    m = EDFPLUS_DATE.fullmatch(text)
    if m is None:
        raise ValueError("not dd-MMM-yyyy")
    return dt.date(int(m[3]), _MONTHS.index(m[2]) + 1, int(m[1]))


def parse_patient_field(text: str) -> PatientFields | None:
    """Parse ``code sex dd-MMM-yyyy name [additional]``; None when the text is not EDF+."""
    parts = text.split(" ")
    if len(parts) < 4 or any(p == "" for p in parts[:4]) or parts[1] not in ("M", "F", "X"):
        return None
    birthdate = None
    if parts[2] != "X":
        try:
            birthdate = _edfplus_date(parts[2])
        except ValueError:
            return None
    return PatientFields(parts[0], parts[1], birthdate, parts[3], " ".join(parts[4:]))


def parse_recording_field(text: str) -> RecordingFields | None:
    """Parse ``Startdate dd-MMM-yyyy admin technician equipment [additional]``; None if not EDF+."""
    parts = text.split(" ")
    if len(parts) < 5 or parts[0] != "Startdate" or any(p == "" for p in parts[1:5]):
        return None
    startdate = None
    if parts[1] != "X":
        try:
            startdate = _edfplus_date(parts[1])
        except ValueError:
            return None
    return RecordingFields(startdate, parts[2], parts[3], parts[4], " ".join(parts[5:]))


def _field(raw: bytes, name: str) -> bytes:
    offset, width = FIXED_FIELDS[name]
    return raw[offset : offset + width]


def _text(value: bytes) -> str:
    return value.decode("latin-1").rstrip(" \x00")


def _parse_int(value: bytes, what: str) -> int:
    stripped = value.strip(b" \x00")
    if not INT.fullmatch(stripped):
        raise EdfError("bad_header_field", f"{what} is not an integer ({len(stripped)} characters)")
    return int(stripped)


def _parse_float(value: bytes, what: str) -> float:
    stripped = value.strip(b" \x00")
    if not FLOAT.fullmatch(stripped):
        raise EdfError("bad_header_field", f"{what} is not a decimal number ({len(stripped)} characters)")
    number = float(stripped)
    if not math.isfinite(number):
        raise EdfError("absurd_value", f"{what} is not finite")
    return number


def _read_exact(f: BinaryIO, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _resolve_start(startdate: str, starttime: str, recording: str) -> tuple[dt.datetime | None, int | None, str | None]:
    date_m = DATE.fullmatch(startdate)
    rec = parse_recording_field(recording)
    rec_year = rec.startdate.year if rec is not None and rec.startdate is not None else None
    if date_m is None:
        return None, None, "startdate is not dd.mm.yy"
    day, month, yy = date_m.groups()
    if yy == "yy":  # EDF+: years after 2084 are only in the recording field
        if rec_year is None:
            return None, None, "startdate year yy needs a Startdate year in the recording field"
        year = rec_year
    else:
        year = 1900 + int(yy) if int(yy) >= 85 else 2000 + int(yy)
        if rec_year is not None and rec_year % 100 == int(yy):
            year = rec_year
    try:
        date = dt.date(year, int(month), int(day))
    except ValueError:
        return None, None, "startdate is not a valid date"
    time_m = TIME.fullmatch(starttime)
    if time_m is None:
        return None, year, "starttime is not hh.mm.ss"
    try:
        time = dt.time(*(int(g) for g in time_m.groups()))
    except ValueError:
        return None, year, "starttime is not a valid time"
    return dt.datetime.combine(date, time), year, None


def parse_header_bytes(fixed: bytes, file_size: int) -> int:
    """Validate the fixed 256-byte header and return ``ns``, before the signal fields are read.

    Raises
    ------
    EdfError
        ``empty_file``, ``not_edf``, ``truncated``, ``bad_header_field`` or ``absurd_value``.
    """
    if file_size == 0:
        raise EdfError("empty_file", "the file has 0 bytes")
    version = fixed[:8]
    if version not in (EDF_VERSION, BDF_VERSION):
        raise EdfError("not_edf", f"version field is not {EDF_VERSION!r} (EDF) or {BDF_VERSION!r} (BDF)")
    if file_size < 256 or len(fixed) < 256:
        raise EdfError("truncated", f"file has {min(file_size, len(fixed))} bytes, the fixed header alone needs 256")
    ns = _parse_int(_field(fixed, "ns"), "number of signals")
    if not 1 <= ns <= MAX_SIGNALS:
        raise EdfError("absurd_value", f"number of signals (ns) is {ns}, expected 1..{MAX_SIGNALS} (MAX_SIGNALS)")
    header_bytes = 256 * (ns + 1)
    if header_bytes > file_size:
        raise EdfError(
            "truncated", f"{ns} signals need a {header_bytes}-byte header but the file has {file_size} bytes"
        )
    claimed = _parse_int(_field(fixed, "header_bytes"), "header byte count")
    if claimed != header_bytes:
        raise EdfError("bad_header_field", f"header byte count is {claimed}, but {ns} signals need {header_bytes}")
    return ns


def parse_header(f: BinaryIO, file_size: int) -> EdfHeader:
    """Read and validate an EDF/BDF header from a binary stream.

    Reads exactly ``256`` then ``256 * ns`` bytes from the stream's current position (which must
    be the start of the file) and leaves the stream at the first data record. Nothing is
    allocated from a claimed size before that size has been checked against ``file_size``.

    Parameters
    ----------
    f : BinaryIO
        Stream positioned at byte 0 of the file; need not be seekable.
    file_size : int
        Total size of the file in bytes (from the filesystem or the object metadata).

    Returns
    -------
    EdfHeader

    Raises
    ------
    EdfError
        With ``reason`` one of ``empty_file``, ``not_edf``, ``truncated``, ``size_mismatch``,
        ``bad_header_field``, ``absurd_value``.
    """
    if file_size < 0:
        raise EdfError("bad_header_field", f"file size is negative: {file_size}")
    if file_size == 0:
        raise EdfError("empty_file", "the file has 0 bytes")
    fixed = _read_exact(f, 256)
    if not fixed:
        raise EdfError("empty_file", "the stream has 0 bytes")
    ns = parse_header_bytes(fixed, file_size)
    rest = _read_exact(f, 256 * ns)
    if len(rest) < 256 * ns:
        raise EdfError("truncated", f"header needs {256 * (ns + 1)} bytes, the stream ended after {256 + len(rest)}")
    return _parse_full(fixed + rest, ns, file_size)


def read_header(path: str | Path) -> EdfHeader:
    """Parse the header of the file at ``path`` (see :func:`parse_header`)."""
    with open(os.fspath(path), "rb") as f:
        return parse_header(f, os.fstat(f.fileno()).st_size)


def _parse_full(raw: bytes, ns: int, file_size: int) -> EdfHeader:
    """The whole header, in steps: the fixed fields, each signal's fields, the record layout and
    the record count, each checked (and bounded) before the next uses it."""
    fmt, sample_bytes = ("EDF", 2) if raw[:8] == EDF_VERSION else ("BDF", 3)
    reserved = _text(_field(raw, "reserved"))
    plus = _continuity(reserved)
    record_duration = _record_duration(raw)
    signals = [_signal(_signal_fields(raw, ns, i), i, fmt, sample_bytes, record_duration) for i in range(ns)]
    if record_duration == 0 and not all(s.is_annotation for s in signals):
        raise EdfError("absurd_value", "data record duration is 0 s but the file has ordinary signals")
    if plus == "D" and not any(s.is_annotation for s in signals):
        raise EdfError("bad_header_field", "reserved field says EDF+D but there is no annotation signal")
    signal_offsets, record_bytes = _record_layout(signals, sample_bytes)
    header_bytes = 256 * (ns + 1)
    n_records_field = _parse_int(_field(raw, "n_records"), "number of data records")
    annotation_record_bytes = sum(s.samples_per_record * sample_bytes for s in signals if s.is_annotation)
    n_records = _record_count(n_records_field, file_size, header_bytes, record_bytes, annotation_record_bytes)

    patient = _text(_field(raw, "patient"))
    recording = _text(_field(raw, "recording"))
    startdate_raw = _field(raw, "startdate").decode("latin-1")
    starttime_raw = _field(raw, "starttime").decode("latin-1")
    start, year, start_problem = _resolve_start(startdate_raw, starttime_raw, recording)
    return EdfHeader(
        fmt=fmt,
        sample_bytes=sample_bytes,
        plus=plus,
        patient=patient,
        recording=recording,
        startdate_raw=startdate_raw,
        starttime_raw=starttime_raw,
        start=start,
        start_problem=start_problem,
        year=year,
        header_bytes=header_bytes,
        reserved=reserved,
        n_records=n_records,
        n_records_field=n_records_field,
        record_duration=record_duration,
        signals=tuple(signals),
        record_bytes=record_bytes,
        signal_offsets=tuple(signal_offsets),
        file_size=file_size,
        raw=raw,
    )


def _continuity(reserved: str) -> str | None:
    """EDF+/BDF+ continuity from the reserved field: "C", "D" or None (plain EDF/BDF)."""
    for tag in ("EDF+", "BDF+"):
        if reserved.startswith(tag + "C"):
            return "C"
        if reserved.startswith(tag + "D"):
            return "D"
    return None


def _record_duration(raw: bytes) -> float:
    record_duration = _parse_float(_field(raw, "record_duration"), "data record duration")
    if not 0 <= record_duration <= MAX_RECORD_DURATION_S:
        raise EdfError(
            "absurd_value", f"data record duration is {record_duration} s, expected 0..{MAX_RECORD_DURATION_S}"
        )
    return record_duration


def _signal_fields(raw: bytes, ns: int, index: int) -> dict[str, bytes]:
    """The raw per-signal fields of signal ``index`` (the header stores them field by field)."""
    fields = {}
    offset = 256
    for name, width in SIGNAL_FIELDS:
        fields[name] = raw[offset + index * width : offset + (index + 1) * width]
        offset += ns * width
    return fields


def _signal(fields: dict[str, bytes], i: int, fmt: str, sample_bytes: int, record_duration: float) -> SignalHeader:
    """One signal's header, its samples per record and rate bounded, its ranges checked."""
    label = _text(fields["label"])
    is_annotation = label in ANNOTATION_LABELS
    spr = _parse_int(fields["samples_per_record"], f"samples per record of signal {i}")
    if not 1 <= spr <= MAX_SAMPLES_PER_RECORD:
        raise EdfError(
            "absurd_value",
            f"samples per record of signal {i} is {spr}, expected 1..{MAX_SAMPLES_PER_RECORD} "
            "(MAX_SAMPLES_PER_RECORD)",
        )
    if not is_annotation and record_duration > 0 and spr > MAX_SAMPLE_RATE_HZ * record_duration:
        raise EdfError(
            "absurd_value",
            f"signal {i}: samples per record {spr} over data record duration {record_duration:g} s is "
            f"{spr / record_duration:g} Hz, limit {MAX_SAMPLE_RATE_HZ:g} Hz (MAX_SAMPLE_RATE_HZ)",
        )
    pmin = _parse_float(fields["physical_min"], f"physical minimum of signal {i}")
    pmax = _parse_float(fields["physical_max"], f"physical maximum of signal {i}")
    dmin = _parse_int(fields["digital_min"], f"digital minimum of signal {i}")
    dmax = _parse_int(fields["digital_max"], f"digital maximum of signal {i}")
    if not is_annotation:
        _check_ranges(i, fmt, sample_bytes, pmin, pmax, dmin, dmax)
    return SignalHeader(
        label=label,
        transducer=_text(fields["transducer"]),
        physical_dimension=_text(fields["physical_dimension"]),
        physical_min=pmin,
        physical_max=pmax,
        digital_min=dmin,
        digital_max=dmax,
        prefiltering=_text(fields["prefiltering"]),
        samples_per_record=spr,
        reserved=_text(fields["reserved"]),
        record_duration=record_duration,
        is_annotation=is_annotation,
    )


def _check_ranges(i: int, fmt: str, sample_bytes: int, pmin: float, pmax: float, dmin: int, dmax: int) -> None:
    """An ordinary signal's digital range fits its format and maps onto a physical range."""
    dig_lo, dig_hi = (-32768, 32767) if sample_bytes == 2 else (-(1 << 23), (1 << 23) - 1)
    if dmin >= dmax:
        raise EdfError("absurd_value", f"signal {i}: digital minimum {dmin} >= digital maximum {dmax}")
    if dmin < dig_lo or dmax > dig_hi:
        raise EdfError(
            "absurd_value", f"signal {i}: digital range {dmin}..{dmax} exceeds the {fmt} range {dig_lo}..{dig_hi}"
        )
    if pmin == pmax:
        raise EdfError("absurd_value", f"signal {i}: physical minimum == physical maximum == {pmin}")


def _record_layout(signals: list[SignalHeader], sample_bytes: int) -> tuple[list[int], int]:
    """Each signal's byte offset in a data record, and the record's size (bounded)."""
    signal_offsets = []
    record_bytes = 0
    for s in signals:
        signal_offsets.append(record_bytes)
        record_bytes += s.samples_per_record * sample_bytes
    if record_bytes > MAX_RECORD_BYTES:
        raise EdfError(
            "absurd_value",
            f"a data record would hold {record_bytes} bytes (sum of samples per record x {sample_bytes}), "
            f"limit {MAX_RECORD_BYTES} (MAX_RECORD_BYTES)",
        )
    return signal_offsets, record_bytes


def _record_count(n_records_field: int, file_size: int, header_bytes: int, record_bytes: int,
                  annotation_record_bytes: int) -> int:
    """The number of data records: the field's, or (for -1) the file size's; its annotation bytes
    bounded, then checked against the file size."""
    data_bytes = file_size - header_bytes
    if n_records_field == -1:
        if data_bytes % record_bytes:
            raise EdfError(
                "truncated",
                f"number of data records is -1 and the {data_bytes} data bytes are not a whole number "
                f"of {record_bytes}-byte records",
            )
        n_records = data_bytes // record_bytes
    elif n_records_field < 0:
        raise EdfError("absurd_value", f"number of data records is {n_records_field}")
    else:
        n_records = n_records_field
    # Before the size checks: a header claiming more annotation bytes than allowed is absurd
    # whatever the file holds.
    if n_records * annotation_record_bytes > MAX_ANNOTATION_BYTES:
        raise EdfError(
            "absurd_value",
            f"{n_records} data records x {annotation_record_bytes} annotation bytes per record = "
            f"{n_records * annotation_record_bytes} annotation bytes, limit {MAX_ANNOTATION_BYTES} "
            "(MAX_ANNOTATION_BYTES)",
        )
    if n_records_field >= 0:
        expected = header_bytes + n_records * record_bytes
        if expected > file_size:
            raise EdfError(
                "truncated",
                f"{n_records} records of {record_bytes} bytes + {header_bytes} header bytes = {expected} bytes, "
                f"but the file has {file_size}",
            )
        if expected < file_size:
            raise EdfError(
                "size_mismatch",
                f"{n_records} records of {record_bytes} bytes + {header_bytes} header bytes = {expected} bytes, "
                f"but the file has {file_size} ({file_size - expected} extra)",
            )
    return n_records
