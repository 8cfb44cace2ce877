"""Jaw-IMU signal processing: gravity/dynamic split, breathing band, mandible angle, activity.

All functions work on one segment of calibrated samples (accelerometer in g, gyroscope in
deg/s, shape ``(3, n)``) and return derived signals at ``FS_OUT`` = 10 Hz.

* gravity: 2nd-order Butterworth low-pass at 0.1 Hz (zero phase) of the accelerometer, g.
* breathing band: 2nd-order Butterworth band-pass 0.15-0.60 Hz (zero phase), the published
  band of breathing-related mandibular movement (Le-Dong et al., AJRCCM 2021), on all six axes.
* mandible angle: pitch of the gravity vector, ``atan2(-g_x, sqrt(g_y^2 + g_z^2))`` in degrees
  (positive = mouth opening for the Sunrise mounting, x pointing forward); head roll
  ``atan2(g_y, g_z)`` in degrees tracks body position.
* activity: magnitude of the 1-10 Hz (or up to 0.45 x fs) band-passed accelerometer (g) and
  gyroscope (deg/s), averaged to 10 Hz: movement above the breathing band. The band-pass is
  causal (one pass): the envelope's phase is irrelevant at 0.1-s resolution. At the segment
  start it needs ~1 s to settle, well inside the processing margin.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from sunrise_common.dsp import anti_alias_fir, sosfiltfilt_padlen

FS_OUT = 10.0
GRAVITY_HZ = 0.1
BREATH_BAND_HZ = (0.15, 0.60)
ACTIVITY_BAND_HZ = (1.0, 10.0)


@lru_cache(maxsize=32)
def _sos(kind: str, freqs: tuple[float, ...], fs: float) -> np.ndarray:
    return sps.butter(2, freqs[0] if len(freqs) == 1 else freqs, kind, fs=fs, output="sos")


def filtfilt(kind: str, freqs: tuple[float, ...], fs: float, x: np.ndarray) -> np.ndarray:
    """Zero-phase Butterworth (order 2, applied forward and backward) along the last axis:
    ``scipy.signal.sosfiltfilt`` with odd padding and its default pad length (limited to the
    segment), the design cached per filter."""
    sos = _sos(kind, freqs, fs)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=min(sosfiltfilt_padlen(sos), x.shape[-1] - 1))


@lru_cache(maxsize=8)
def _resample_fir(fs: float, up: int, down: int) -> np.ndarray:
    # The shared Kaiser anti-aliasing design (pass to 0.4 x FS_OUT, >= 60 dB from
    # min(0.6 x FS_OUT, fs / 2), unit DC gain on every polyphase branch).
    return anti_alias_fir(fs, up, down)


def to_out_rate(x: np.ndarray, fs: float) -> np.ndarray:
    """Polyphase resampling along the last axis from ``fs`` to ``FS_OUT`` (anti-aliased)."""
    ratio = Fraction(FS_OUT / fs).limit_denominator(1000)
    if ratio == 1:
        return x
    up, down = ratio.numerator, ratio.denominator
    return sps.resample_poly(x, up, down, axis=-1, window=_resample_fir(fs, up, down))


def derive(acc: np.ndarray, gyro: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Derived 10-Hz signals of one segment (see module docstring for definitions and units)."""
    acc10, gyro10 = np.split(to_out_rate(np.concatenate([acc, gyro]), fs), 2)
    gravity = filtfilt("lowpass", (GRAVITY_HZ,), FS_OUT, acc10)
    breath = filtfilt("bandpass", BREATH_BAND_HZ, FS_OUT, np.concatenate([acc10, gyro10]))
    breath_acc, breath_gyro = breath[:3], breath[3:]
    gx, gy, gz = gravity
    pitch = np.degrees(np.arctan2(-gx, np.hypot(gy, gz)))
    roll = np.degrees(np.arctan2(gy, gz))
    hi = min(ACTIVITY_BAND_HZ[1], 0.45 * fs)
    # One forward pass is enough: the phase of an envelope averaged to 0.1 s does not matter.
    sos = _sos("bandpass", (ACTIVITY_BAND_HZ[0], hi), fs)
    dyn = sps.sosfilt(sos, np.concatenate([acc, gyro]), axis=-1)
    dyn *= dyn
    mags = np.sqrt(np.stack([dyn[:3].sum(axis=0), dyn[3:].sum(axis=0)]))
    activity_acc, activity_gyro = np.maximum(to_out_rate(mags, fs), 0.0)
    return {
        "breath_acc": breath_acc.astype(np.float32),
        "breath_gyro": breath_gyro.astype(np.float32),
        "mandible_angle_deg": pitch.astype(np.float32),
        "head_roll_deg": roll.astype(np.float32),
        "activity_g": activity_acc.astype(np.float32),
        "activity_dps": activity_gyro.astype(np.float32),
    }
