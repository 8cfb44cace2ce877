"""Per-second signal-quality mask of the jaw IMU.

A second is **bad** when any of:

* ``clipped``: an accelerometer or gyroscope sample sits at the channel's physical min/max
  (sensor saturation);
* ``flat``: every accelerometer axis has a standard deviation below 0.1 mg over the second
  (stuck sensor, or a disconnected channel padded with constants);
* ``off``: the mean acceleration magnitude is outside 0.5-1.5 g (a sensor at rest or worn
  always reads ~1 g; anything else is a dropout or a decoding fault);
* ``gap`` (set by ``prepare``): an EDF+D gap, the second was not recorded;
* ``nonwear`` (:func:`nonwear_seconds`, from the derived 10-Hz signals): the sensor is not on
  a breathing chin. A worn sensor always carries the mandible's breathing movement (present in
  every sleep stage and in quiet wake; Le-Dong et al. 2021, Senny et al. 2008) and small
  head/jaw movements; a sensor lying on a table has neither. A second is non-wear when, over
  the ``NONWEAR_WINDOW_S`` window centred on it, (a) breathing-band gyroscope power is below
  ``NONWEAR_BREATH_FRAC`` of the night's typical (75th percentile) breathing power, (b) the
  orientation (mandible pitch and head roll of gravity) moves by less than
  ``NONWEAR_ORIENT_DEG`` and (c) the 1-10 Hz activity stays below ``NONWEAR_ACT_MULT`` x its
  night's 5th percentile (no micro-movement), and all three hold for at least
  ``NONWEAR_MIN_S`` seconds (runs are then widened by half a window, which the centred window
  took off their ends). The duration is what separates a sensor taken off from a central
  apnea (no breathing movement, but <= ~2 min; AASM events last 10 s to ~2 min) and from still
  sleep (breathing present).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CLIPPED, FLAT, OFF = 1, 2, 4
#: EDF+D gap: the second was not recorded (set by ``prepare``, not by ``quality_mask``).
GAP = 8
#: Sensor not worn (``nonwear_seconds``).
NONWEAR = 16
#: Bits that make a second unusable for scoring (sleep/wake, events, TRT): not recorded, not
#: worn, or not a signal. ``CLIPPED`` is left out: saturation happens in big movements.
INVALID = FLAT | OFF | GAP | NONWEAR
QUALITY_UNIT = ("bitmask (1 clipped, 2 flat, 4 off, 8 gap: not recorded, 16 non-wear: "
                "sensor not on a breathing chin)")
NONWEAR_WINDOW_S = 60
NONWEAR_MIN_S = 300
NONWEAR_BREATH_FRAC = 0.05
NONWEAR_ORIENT_DEG = 1.0
NONWEAR_ACT_MULT = 1.5
FLAT_G = 1e-4
MAG_RANGE_G = (0.5, 1.5)


def quality_mask(acc: np.ndarray, gyro: np.ndarray, fs: float,
                 acc_limits: np.ndarray, gyro_limits: np.ndarray) -> np.ndarray:
    """Bit mask per whole second (uint8): 1 clipped, 2 flat, 4 off; 0 = good.

    ``acc_limits``/``gyro_limits``: shape (3, 2) physical (min, max) per axis in g / deg/s.
    Samples beyond the last whole second are ignored.
    """
    n_sec = int(acc.shape[1] // fs)
    if n_sec == 0:
        return np.zeros(0, dtype=np.uint8)
    k = int(round(fs))
    a = acc[:, : n_sec * k].reshape(3, n_sec, k)
    g = gyro[:, : n_sec * k].reshape(3, n_sec, k)
    eps_a = 1e-6 + 1e-4 * np.abs(acc_limits).max()
    eps_g = 1e-6 + 1e-4 * np.abs(gyro_limits).max()
    clipped = ((a <= acc_limits[:, :1, None] + eps_a) | (a >= acc_limits[:, 1:, None] - eps_a)
               | (g <= gyro_limits[:, :1, None] + eps_g)
               | (g >= gyro_limits[:, 1:, None] - eps_g)).any(axis=(0, 2))
    flat = (a.std(axis=2) < FLAT_G).all(axis=0)
    mag = np.sqrt((a.mean(axis=2) ** 2).sum(axis=0))
    off = (mag < MAG_RANGE_G[0]) | (mag > MAG_RANGE_G[1])
    return (clipped * 1 + flat * 2 + off * 4).astype(np.uint8)


def _per_second(x: np.ndarray, fs: float, n_sec: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
    k = int(round(fs))
    x = np.asarray(x, dtype=np.float64)[..., : n_sec * k]
    return fn(x.reshape(*x.shape[:-1], n_sec, k), axis=-1)


def nonwear_seconds(breath_gyro: np.ndarray, pitch_deg: np.ndarray, roll_deg: np.ndarray,
                    activity_dps: np.ndarray, fs: float, n_sec: int,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Boolean per second: the sensor is not worn (see the module docstring for the rule).

    Inputs are the derived signals of ``imu.derive`` at ``fs`` Hz (deg/s, deg, deg, deg/s);
    ``valid`` (per second) marks the seconds whose statistics may set the night's references
    (default all). Every threshold is relative to the night's own signal except the
    orientation range, which is a physical angle.
    """
    from scipy import ndimage

    n_sec = min(n_sec, int(np.asarray(activity_dps).shape[-1] // round(fs)))
    if n_sec <= 0:
        return np.zeros(0, dtype=bool)
    valid = np.ones(n_sec, bool) if valid is None else np.asarray(valid, bool)[:n_sec]
    w = NONWEAR_WINDOW_S
    power = _per_second((np.asarray(breath_gyro, np.float64) ** 2).sum(axis=0), fs, n_sec,
                        np.mean)
    power_w = ndimage.uniform_filter1d(power, w, mode="nearest")
    act = _per_second(activity_dps, fs, n_sec, np.mean)
    ref = valid & np.isfinite(power_w) & np.isfinite(act)
    if ref.sum() < 2 * w:
        return np.zeros(n_sec, dtype=bool)
    quiet = power_w < NONWEAR_BREATH_FRAC * np.percentile(power_w[ref], 75)
    still = ndimage.maximum_filter1d(act, w, mode="nearest") < \
        NONWEAR_ACT_MULT * np.percentile(act[ref], 5)
    fixed = np.ones(n_sec, dtype=bool)
    for ang in (pitch_deg, roll_deg):
        a_hi = _per_second(ang, fs, n_sec, np.max)
        a_lo = _per_second(ang, fs, n_sec, np.min)
        span = (ndimage.maximum_filter1d(a_hi, w, mode="nearest")
                - ndimage.minimum_filter1d(a_lo, w, mode="nearest"))
        fixed &= span < NONWEAR_ORIENT_DEG
    cand = quiet & still & fixed
    labels, n = ndimage.label(cand)
    if n == 0:
        return cand
    sizes = np.bincount(labels)[1:]
    keep = np.r_[False, sizes >= NONWEAR_MIN_S]
    # The centred window erodes each run by half a window at both ends: give it back.
    return ndimage.binary_dilation(keep[labels], iterations=w // 2)
