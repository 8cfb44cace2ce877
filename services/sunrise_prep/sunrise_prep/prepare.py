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
quality               (n1,)          bits    per second: 1 clipped, 2 flat, 4 off; 0 good
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
from pathlib import Path

import numpy as np

from sunrise_common.edf import EdfError, iter_chunks, read_header
from sunrise_common.errors import PermanentError
from sunrise_common.identity import time_of_day_offset_s
from sunrise_prep.breathing import breathing_rate
from sunrise_prep.channels import IMU_ROLES, map_channels
from sunrise_prep.imu import FS_OUT, derive
from sunrise_prep.quality import quality_mask

logger = logging.getLogger(__name__)

PREP_VERSION = "sunrise_prep-1.0"
MARGIN_S = 60
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


def prepare_sunrise(edf_path: Path, out_dir: Path, *, chunk_seconds: float = 600.0) -> dict:
    """Prepare a Sunrise EDF+ into ``out_dir/prepped.npz`` and ``out_dir/meta.json``.

    Returns the meta dictionary. Raises ``PermanentError`` for files that cannot be prepared
    (not EDF, no IMU channels, too short).
    """
    edf_path, out_dir = Path(edf_path), Path(out_dir)
    try:
        header = read_header(edf_path)
    except EdfError as exc:
        raise PermanentError(exc.reason, exc.detail) from exc
    channels = map_channels(header.signals)
    fs = channels["acc_x"].sample_rate
    if fs < 2 * 0.6 or abs(fs * EPOCH_S - round(fs * EPOCH_S)) > 1e-6:
        raise PermanentError("bad_imu_rate", f"IMU rate {fs} Hz is too low or not usable")
    duration = header.duration
    if duration < 5 * 60:
        raise PermanentError("too_short", f"recording lasts {duration:.0f} s; need >= 300 s")
    if header.start is None:
        raise PermanentError("no_start_time", f"unusable start: {header.start_problem}")

    imu_idx = [channels[r].index for r in IMU_ROLES]
    scales = np.array([channels[r].scale for r in IMU_ROLES])[:, None]
    limits = np.array([[header.signals[i].physical_min, header.signals[i].physical_max]
                       for i in imu_idx]) * scales
    limits.sort(axis=1)
    slow = {r: channels[r] for r in ("spo2", "pulse") if r in channels}
    wanted = imu_idx + [c.index for c in slow.values()]

    seg = _Segmenter(fs, MARGIN_S)
    quality_parts = []
    slow_parts: dict[str, list[np.ndarray]] = {r: [] for r in slow}
    chunks = iter_chunks(edf_path, header, chunk_seconds=chunk_seconds, signals=wanted)
    pending = next(chunks, None)
    while pending is not None:
        nxt = next(chunks, None)
        block = np.stack([pending.data[i] for i in imu_idx]).astype(np.float64) * scales
        seg.push(block, final=nxt is None)
        quality_parts.append(quality_mask(block[:3], block[3:], fs, limits[:3], limits[3:]))
        for role, ch in slow.items():
            lo, hi = (50.0, 100.0) if role == "spo2" else (25.0, 250.0)
            slow_parts[role].append(_to_1hz(pending.data[ch.index], ch.sample_rate, lo, hi))
        pending = nxt
    derived = seg.result()

    n_epochs = int(math.floor(duration / EPOCH_S))
    rate, regularity = breathing_rate(derived["breath_gyro"], n_epochs)
    arrays = {k: v for k, v in derived.items()}
    arrays["quality"] = np.concatenate(quality_parts)
    for role, parts in slow_parts.items():
        arrays[role] = np.concatenate(parts).astype(np.float32)
    arrays["breathing_rate_bpm"] = rate
    arrays["breathing_regularity"] = regularity

    start = header.start
    meta = {
        "kind": "sunrise",
        "prep_version": PREP_VERSION,
        "start_offset_s": time_of_day_offset_s(start.hour, start.minute,
                                               start.second + start.microsecond / 1e6),
        "duration_s": float(duration),
        "epoch_s": EPOCH_S,
        "n_epochs": n_epochs,
        "fs_imu": fs,
        "fs_derived": FS_OUT,
        "fs_slow": 1.0,
        "n_derived": int(arrays["activity_g"].shape[-1]),
        "channels": {r: {"index": c.index, "label": c.label, "unit": c.unit,
                         "sample_rate": c.sample_rate} for r, c in channels.items()},
        "has_spo2": "spo2" in slow,
        "has_pulse": "pulse" in slow,
        "units": {"breath_gyro": "deg/s", "breath_acc": "g", "mandible_angle_deg": "deg",
                  "head_roll_deg": "deg", "activity_g": "g", "activity_dps": "deg/s",
                  "quality": "bitmask (1 clipped, 2 flat, 4 off)", "spo2": "%", "pulse": "bpm",
                  "breathing_rate_bpm": "1/min", "breathing_regularity": "ratio"},
        "quality_good_fraction": float(np.mean(arrays["quality"] == 0)) if arrays["quality"].size
        else 0.0,
        "chunk_seconds": chunk_seconds,
        "margin_s": MARGIN_S,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "prepped.npz", **arrays)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta
