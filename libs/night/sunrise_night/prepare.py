"""Prepare one Sunrise recording: EDF+ -> ``prepped.npz`` + ``meta.json``.

Pipeline (numpy/scipy only; see ``imu``, ``quality``, ``breathing`` for the science):

1. Header: map the six IMU channels (+ optional SpO2 and pulse) by label; calibration to physical
   units is the EDF gain/offset (done by ``sunrise_common.edf``), then unit normalisation
   (mg -> g, rad/s -> deg/s).
2. The signal is decoded in chunks of ``chunk_seconds`` and processed in overlapping segments
   with ``MARGIN_S`` seconds of context on both sides, so zero-phase filters see enough signal
   and memory stays bounded whatever the night's length.
3. Derived signals at 10 Hz, the per-second quality mask, SpO2/pulse at 1 Hz, breathing rate
   per 30-s epoch.

``prepped.npz`` arrays (time 0 = the Sunrise recording start):

===================== ============== ======= ==========================================
name                  shape          unit    meaning
===================== ============== ======= ==========================================
breath_gyro           (3, n10)       deg/s   gyroscope, 0.15-0.60 Hz band
breath_acc            (3, n10)       g       accelerometer, 0.15-0.60 Hz band
mandible_angle_deg    (n10,)         deg     pitch of gravity (jaw position)
head_roll_deg         (n10,)         deg     roll of gravity (body position)
activity_g            (n10,)         g       1-10 Hz accelerometer magnitude envelope
activity_dps          (n10,)         deg/s   1-10 Hz gyroscope magnitude envelope
quality               (n1,)          bits    per second: see ``quality``; 0 good
spo2                  (n1,)          %       1 Hz, NaN if absent/invalid (optional)
pulse                 (n1,)          bpm     1 Hz, NaN if absent/invalid (optional)
breathing_rate_bpm    (n_epochs,)    1/min   Welch peak of PC1 over 60-s windows
breathing_regularity  (n_epochs,)    0..1    spectral peak power ratio
===================== ============== ======= ==========================================
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sunrise_common.edf import EdfError, EdfHeader, iter_chunks, read_header, read_record_onsets
from sunrise_common.errors import PermanentError
from sunrise_common.identity import time_of_day_offset_s
from sunrise_night.breathing import breathing_rate
from sunrise_night.channels import IMU_ROLES, Channel, map_channels
from sunrise_night.imu import FS_OUT, derive
from sunrise_night.quality import (GAP, INVALID, NONWEAR, QUALITY_UNIT, nonwear_seconds,
                                   quality_mask)

logger = logging.getLogger(__name__)

PREP_VERSION = "sunrise_prep-1.1"  # 1.1: EDF+D gaps at true time, GAP and NONWEAR bits
MARGIN_S = 60
MAX_SPAN_S = 48 * 3600  # an EDF+D whose records span more than two days is not one night
EPOCH_S = 30.0


def _to_1hz(x: np.ndarray, fs: float, lo: float, hi: float) -> np.ndarray:
    """Mean per whole second of a slow channel; samples outside [lo, hi] are invalid (NaN)."""
    x = np.where((x >= lo) & (x <= hi), x.astype(np.float64), np.nan)
    if fs == 1:
        return x
    if fs > 1:
        k = int(round(fs))
        n = x.size // k
        with np.errstate(invalid="ignore"):
            return np.nanmean(x[: n * k].reshape(n, k), axis=1) if n else x[:0]
    return np.repeat(x, int(round(1 / fs)))


class _Segmenter:
    """Overlap-save style processing of a stream of IMU samples with a context margin."""

    def __init__(self, fs: float, margin_s: int) -> None:
        self.fs = fs
        self.margin = int(round(margin_s * fs))
        self.margin_out = int(round(margin_s * FS_OUT))
        self.buf: np.ndarray | None = None  # (6, m) raw samples not yet fully emitted
        self.first = True
        self.parts: dict[str, list[np.ndarray]] = {}

    def push(self, block: np.ndarray, final: bool) -> None:
        buf = block if self.buf is None else np.concatenate([self.buf, block], axis=1)
        n = buf.shape[1]
        if not final and n < 3 * self.margin:
            self.buf = buf
            return
        derived = derive(buf[:3], buf[3:], self.fs)
        n_out = next(iter(derived.values())).shape[-1]
        lo = 0 if self.first else self.margin_out
        hi = n_out if final else n_out - self.margin_out
        for key, val in derived.items():
            self.parts.setdefault(key, []).append(val[..., lo:hi])
        self.first = False
        self.buf = None if final else buf[:, n - 2 * self.margin :]

    def result(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v, axis=-1) for k, v in self.parts.items()}


class _QualityStream:
    """Per-second quality of a stream of IMU pieces whose lengths need not be whole seconds
    (EDF+D runs, gap fills): samples of an unfinished second wait for the next piece."""

    def __init__(self, fs: float, acc_limits: np.ndarray, gyro_limits: np.ndarray) -> None:
        self.fs, self.k = fs, int(round(fs))
        self.acc_limits, self.gyro_limits = acc_limits, gyro_limits
        self.rest: np.ndarray | None = None  # (6, < k) raw samples
        self.rest_gap: np.ndarray | None = None
        self.parts: list[np.ndarray] = []

    def push(self, block: np.ndarray, gap: np.ndarray) -> None:
        if self.rest is not None:
            block = np.concatenate([self.rest, block], axis=1)
            gap = np.concatenate([self.rest_gap, gap])
        n_sec = block.shape[1] // self.k
        used = n_sec * self.k
        self.rest, self.rest_gap = block[:, used:], gap[used:]
        if n_sec == 0:
            return
        q = quality_mask(block[:3, :used], block[3:, :used], self.fs, self.acc_limits,
                         self.gyro_limits)
        q[gap[:used].reshape(n_sec, self.k).any(axis=1)] |= GAP
        self.parts.append(q)

    def result(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.uint8)


def _record_layout(edf_path: Path, header: EdfHeader) -> tuple[np.ndarray | None, float, float]:
    """EDF+D: (record onsets from the first record's onset, origin, span in s); None for
    continuous files (EDF, EDF+C), whose span is the header duration.

    Raises ``PermanentError`` for overlapping records or a span beyond ``MAX_SPAN_S``.
    """
    if header.plus != "D":
        return None, 0.0, float(header.duration)
    try:
        onsets = read_record_onsets(edf_path, header)
    except EdfError as exc:
        raise PermanentError(exc.reason, exc.detail) from exc
    rd = header.record_duration
    steps = np.diff(onsets)
    if steps.size and np.any(steps < rd - 1e-3):
        bad = int(np.argmax(steps < rd - 1e-3))
        raise PermanentError("overlapping_records",
                             f"record {bad + 1} starts at {onsets[bad + 1]:g} s, before record "
                             f"{bad} ends ({onsets[bad]:g} + {rd:g} s)")
    origin = float(onsets[0])
    span = float(onsets[-1] + rd - origin)
    if span > MAX_SPAN_S:
        raise PermanentError("absurd_gap", f"records span {span / 3600:.1f} h (limit "
                             f"{MAX_SPAN_S / 3600:.0f} h)")
    return onsets - origin, origin, span


def _pieces(edf_path: Path, header: EdfHeader, chunk_seconds: float, wanted: list[int],
            onsets: np.ndarray | None, fs_of: dict[int, float]) -> Iterator[tuple[dict[int, np.ndarray] | None, bool, float]]:
    """Contiguous pieces of the timeline, in order: ``(data, is_gap, gap_s)``.

    ``data`` maps signal index -> samples; for a gap (EDF+D: time between one record's end and
    the next record's onset) ``data`` is None and ``gap_s`` its length in seconds.
    """
    rd = header.record_duration
    t_next = 0.0
    for chunk in iter_chunks(edf_path, header, chunk_seconds=chunk_seconds, signals=wanted):
        if onsets is None:
            yield chunk.data, False, 0.0
            continue
        on = onsets[chunk.start_record : chunk.start_record + chunk.n_records]
        breaks = np.flatnonzero(np.abs(np.diff(on) - rd) > 1e-3) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, on.size]):
            gap_s = float(on[a]) - t_next
            if gap_s > 1e-3:
                yield None, True, gap_s
            yield ({i: chunk.data[i][int(a * round(fs_of[i] * rd)) : int(b * round(fs_of[i] * rd))]
                    for i in wanted}, False, 0.0)
            t_next = float(on[b - 1]) + rd


@dataclass(frozen=True)
class _Layout:
    """Which signals one preparation reads and how it scales them (from the EDF header)."""

    fs: float  # IMU sample rate, Hz
    imu_idx: list[int]  # signal indices of the six IMU channels, in ``IMU_ROLES`` order
    scales: np.ndarray  # (6, 1) unit normalisation (mg -> g, rad/s -> deg/s)
    limits: np.ndarray  # (6, 2) physical range of each IMU channel after scaling, sorted
    slow: dict[str, Channel]  # "spo2"/"pulse" -> channel, those present
    wanted: list[int]  # every signal index read
    fs_of: dict[int, float]  # signal index -> sample rate, Hz


@dataclass
class _Streamed:
    """What one pass over the timeline accumulates (time 0 = the first record's onset)."""

    derived: dict[str, np.ndarray]  # 10-Hz derived signals (``imu.derive``)
    quality: np.ndarray  # (n1,) per-second quality bits, GAP set, NONWEAR not yet
    slow_parts: dict[str, list[np.ndarray]]  # role -> 1-Hz pieces, NaN over gaps
    gaps: list[dict]  # {"onset_s", "duration_s"} of each EDF+D gap


def _checked_header(edf_path: Path) -> tuple[EdfHeader, dict[str, Channel], float]:
    """Header, mapped channels and IMU rate (Hz) of a file fit for preparation.

    Raises ``PermanentError`` for an unreadable header, an unusable IMU rate, a recording
    shorter than 300 s or without a usable start time.
    """
    try:
        header = read_header(edf_path)
    except EdfError as exc:
        raise PermanentError(exc.reason, exc.detail) from exc
    channels = map_channels(header.signals)
    fs = channels["acc_x"].sample_rate
    if fs < 2 * 0.6 or abs(fs * EPOCH_S - round(fs * EPOCH_S)) > 1e-6:
        raise PermanentError("bad_imu_rate", f"IMU rate {fs} Hz is too low or not usable")
    if header.duration < 5 * 60:
        raise PermanentError("too_short", f"recording lasts {header.duration:.0f} s; need >= 300 s")
    if header.start is None:
        raise PermanentError("no_start_time", f"unusable start: {header.start_problem}")
    return header, channels, fs


def _layout(header: EdfHeader, channels: dict[str, Channel], fs: float) -> _Layout:
    """The signals to read, their unit scales and the IMU channels' physical limits."""
    imu_idx = [channels[r].index for r in IMU_ROLES]
    scales = np.array([channels[r].scale for r in IMU_ROLES])[:, None]
    limits = np.array([[header.signals[i].physical_min, header.signals[i].physical_max]
                       for i in imu_idx]) * scales
    limits.sort(axis=1)
    slow = {r: channels[r] for r in ("spo2", "pulse") if r in channels}
    wanted = imu_idx + [c.index for c in slow.values()]
    fs_of = {i: header.signals[i].sample_rate for i in wanted}
    return _Layout(fs, imu_idx, scales, limits, slow, wanted, fs_of)


def _stream(edf_path: Path, header: EdfHeader, lay: _Layout, onsets: np.ndarray | None,
            chunk_seconds: float) -> _Streamed:
    """One pass over the timeline: derived signals, quality and 1-Hz SpO2/pulse, gaps filled."""
    fs, scales = lay.fs, lay.scales
    seg = _Segmenter(fs, MARGIN_S)
    quality = _QualityStream(fs, lay.limits[:3], lay.limits[3:])
    slow_parts: dict[str, list[np.ndarray]] = {r: [] for r in lay.slow}
    gaps: list[dict] = []
    t = 0.0  # seconds of timeline emitted so far
    last = None  # last IMU sample column, for bridging a gap
    pieces = _pieces(edf_path, header, chunk_seconds, lay.wanted, onsets, lay.fs_of)
    pending = next(pieces, None)
    while pending is not None:
        nxt = next(pieces, None)
        data, is_gap, gap_s = pending
        if is_gap:
            # Bridge the IMU from the last sample before the gap to the first one after it:
            # no step for the zero-phase filters to ring on; every bridged second is GAP.
            n_fill = int(round(gap_s * fs))
            first = np.stack([nxt[0][i][:1] for i in lay.imu_idx]).astype(np.float64) * scales
            w = (np.arange(1, n_fill + 1) / (n_fill + 1))[None, :]
            block = (last if last is not None else first) * (1 - w) + first * w
            quality.push(block, np.ones(n_fill, dtype=bool))
            for role, ch in lay.slow.items():
                slow_parts[role].append(np.full(int(round(gap_s * ch.sample_rate)), np.nan))
            gaps.append({"onset_s": round(t, 3), "duration_s": round(gap_s, 3)})
        else:
            block = np.stack([data[i] for i in lay.imu_idx]).astype(np.float64) * scales
            quality.push(block, np.zeros(block.shape[1], dtype=bool))
            for role, ch in lay.slow.items():
                lo, hi = (50.0, 100.0) if role == "spo2" else (25.0, 250.0)
                slow_parts[role].append(_to_1hz(data[ch.index], ch.sample_rate, lo, hi))
        last = block[:, -1:]
        seg.push(block, final=nxt is None)
        t += block.shape[1] / fs
        pending = nxt
    return _Streamed(seg.result(), quality.result(), slow_parts, gaps)


def _arrays(st: _Streamed, n_epochs: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``prepped.npz`` arrays (NONWEAR marked in ``quality``) and the per-second non-wear
    mask."""
    derived = st.derived
    rate, regularity = breathing_rate(derived["breath_gyro"], n_epochs)
    arrays = {k: v for k, v in derived.items()}
    q = st.quality
    nonwear = nonwear_seconds(derived["breath_gyro"], derived["mandible_angle_deg"],
                              derived["head_roll_deg"], derived["activity_dps"], FS_OUT, q.size,
                              valid=(q & INVALID) == 0)
    q[: nonwear.size][nonwear] |= NONWEAR
    arrays["quality"] = q
    for role, parts in st.slow_parts.items():
        arrays[role] = np.concatenate(parts).astype(np.float32)
    arrays["breathing_rate_bpm"] = rate
    arrays["breathing_regularity"] = regularity
    return arrays, nonwear


def _meta(header: EdfHeader, channels: dict[str, Channel], lay: _Layout,
          arrays: dict[str, np.ndarray], nonwear: np.ndarray, gaps: list[dict],
          onsets: np.ndarray | None, origin: float, duration: float, n_epochs: int,
          chunk_seconds: float) -> dict:
    """The ``meta.json`` dictionary of a prepared recording."""
    start = header.start
    q = arrays["quality"]
    return {
        "kind": "sunrise",
        "prep_version": PREP_VERSION,
        "start_offset_s": time_of_day_offset_s(start.hour, start.minute,
                                               start.second + start.microsecond / 1e6 + origin),
        "duration_s": float(duration),
        "recorded_s": float(header.duration),
        "discontinuous": onsets is not None and bool(gaps),
        "gaps": gaps,
        "epoch_s": EPOCH_S,
        "n_epochs": n_epochs,
        "fs_imu": lay.fs,
        "fs_derived": FS_OUT,
        "fs_slow": 1.0,
        "n_derived": int(arrays["activity_g"].shape[-1]),
        "channels": {r: {"index": c.index, "label": c.label, "unit": c.unit,
                         "sample_rate": c.sample_rate} for r, c in channels.items()},
        "has_spo2": "spo2" in lay.slow,
        "has_pulse": "pulse" in lay.slow,
        "units": {"breath_gyro": "deg/s", "breath_acc": "g", "mandible_angle_deg": "deg",
                  "head_roll_deg": "deg", "activity_g": "g", "activity_dps": "deg/s",
                  "quality": QUALITY_UNIT, "spo2": "%", "pulse": "bpm",
                  "breathing_rate_bpm": "1/min", "breathing_regularity": "ratio"},
        "quality_good_fraction": float(np.mean(q == 0)) if q.size else 0.0,
        "nonwear_s": float(nonwear.sum()),
        "valid_s": float(np.sum((q & INVALID) == 0)),
        "chunk_seconds": chunk_seconds,
        "margin_s": MARGIN_S,
    }


def prepare_sunrise(edf_path: Path, out_dir: Path, *, chunk_seconds: float = 600.0) -> dict:
    """Prepare a Sunrise EDF+ into ``out_dir/prepped.npz`` and ``out_dir/meta.json``.

    EDF+D recordings keep their true timeline: a gap between records (sensor off, device
    paused) becomes samples that every array carries at their true time, flagged ``GAP`` in the
    quality mask (the IMU is bridged linearly so that filters do not ring, SpO2/pulse are NaN);
    ``meta.json`` lists the gaps and the ``recorded_s`` beside the span ``duration_s``.

    Returns the meta dictionary. Raises ``PermanentError`` for files that cannot be prepared
    (not EDF, no IMU channels, too short, overlapping EDF+D records).
    """
    edf_path, out_dir = Path(edf_path), Path(out_dir)
    header, channels, fs = _checked_header(edf_path)
    onsets, origin, duration = _record_layout(edf_path, header)
    lay = _layout(header, channels, fs)
    streamed = _stream(edf_path, header, lay, onsets, chunk_seconds)
    n_epochs = int(math.floor(duration / EPOCH_S))
    arrays, nonwear = _arrays(streamed, n_epochs)
    meta = _meta(header, channels, lay, arrays, nonwear, streamed.gaps, onsets, origin, duration,
                 n_epochs, chunk_seconds)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "prepped.npz", **arrays)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta
