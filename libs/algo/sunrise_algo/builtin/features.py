"""Per-epoch features of a prepared Sunrise night (30-s epochs from the Sunrise start).

Input: the ``prepped.npz`` arrays and ``meta.json`` of ``sunrise_prep`` (10-Hz derived signals,
1-Hz quality/SpO2/pulse, per-epoch breathing rate). Every feature is listed in ``FEATURES`` with
its unit and source; ``docs/science.md`` §3 repeats the table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy import signal as sps
from sunrise_common.errors import PermanentError

EPOCH_S = 30.0
# Legacy absolute activity threshold (deg/s), kept so that ``act_count`` and the models built on
# it (baseline-1, logistic-1) still compute what they were fitted on. It silently assumes one
# sensor noise level: with a noisier gyroscope every second is "active".
ACTIVE_DPS = 1.0
# Per-night normalisation (``act_*_rel``): the night's activity floor is a low percentile of its
# 1-s gyroscope activity, i.e. the stillest seconds (sensor noise plus the least jaw
# micro-movement; sleep fills most of a night, so its still seconds are always there). A second
# is active when it exceeds ACTIVE_FLOOR_MULT x that floor: a constant false-alarm rate against
# the night's own noise rather than a fixed deg/s. The multiplier was chosen on the development
# batch only (seeds 7000-7011, default generator settings; 1.5-6 compared with an Oakley rule):
# 2.5 x the floor (~0.7 deg/s there) separates restless wake from still sleep.
ACTIVITY_FLOOR_PCT = 5.0
ACTIVE_FLOOR_MULT = 2.5
BASELINE_EPOCHS = 4  # 2 min of 30-s epochs
# Breath-to-breath statistics (issue 24, quiet wake): breaths are the peaks of the first
# principal component of the breathing-band gyroscope in a centred window of BREATH_WINDOW_S.
# Peaks closer than 1 / BREATH_MAX_HZ are one breath (0.7 Hz = 42 breaths/min, the upper end of
# adult breathing rates, issue 24 review); a peak must stand out by BREATH_PROMINENCE x the
# window's robust half-range (5th-95th percentile) so that noise ripples are not breaths.
# At least BREATH_MIN_CYCLES periods are needed for a CV (else NaN).
BREATH_WINDOW_S = 60.0
BREATH_MAX_HZ = 0.7
BREATH_PROMINENCE = 0.3
BREATH_MIN_CYCLES = 4
# Swallow-like transients (issue 24): a swallow closes the jaw for about a second (the
# oropharyngeal phase), so it is a run of SWALLOW_MAX_S seconds or less whose 1-s gyroscope
# activity exceeds SWALLOW_FLOOR_MULT x the night's floor, with no active second
# (> ACTIVE_FLOOR_MULT x floor) in the SWALLOW_QUIET_S seconds on either side: isolated from
# longer movement. 5 x the floor is the arousal-burst threshold of respiration.py.
SWALLOW_FLOOR_MULT = 5.0
SWALLOW_MAX_S = 2
SWALLOW_QUIET_S = 3


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    description: str
    source: str


FEATURES: tuple[Feature, ...] = (
    Feature("act_mean_g", "g", "mean accelerometer activity (1-10 Hz magnitude envelope)",
            "activity_g"),
    Feature("act_mean_dps", "deg/s", "mean gyroscope activity (1-10 Hz magnitude envelope)",
            "activity_dps"),
    Feature("act_count", "s", f"activity count: seconds with gyroscope activity > {ACTIVE_DPS} "
            "deg/s (0-30)", "activity_dps"),
    Feature("act_max_dps", "deg/s", "largest 1-s mean gyroscope activity", "activity_dps"),
    Feature("act_floor_dps", "deg/s", f"the night's activity floor: {ACTIVITY_FLOOR_PCT:g}th "
            "percentile of its 1-s gyroscope activity (same value in every epoch)",
            "activity_dps"),
    Feature("act_count_rel", "s", f"seconds with gyroscope activity > {ACTIVE_FLOOR_MULT:g} x "
            "the night's floor (0-30)", "activity_dps"),
    Feature("act_mean_rel", "1", "mean gyroscope activity / the night's floor", "activity_dps"),
    Feature("act_max_rel", "1", "largest 1-s mean gyroscope activity / the night's floor",
            "activity_dps"),
    Feature("br_amp_dps", "deg/s", "breathing-band jaw rotation amplitude: sqrt(2) x RMS of the "
            "3-axis 0.15-0.60 Hz gyroscope magnitude", "breath_gyro"),
    Feature("br_amp_mg", "mg", "breathing-band accelerometer amplitude (sqrt(2) x RMS)",
            "breath_acc"),
    Feature("br_amp_cv", "1", "breathing amplitude variability: coefficient of variation of "
            "the six 5-s RMS amplitudes of the epoch", "breath_gyro"),
    Feature("br_amp_rel", "1", "breathing amplitude / median of the previous 2 min",
            "breath_gyro"),
    Feature("br_rate_bpm", "1/min", "breathing rate, Welch peak of PC1 over a centred 60-s window",
            "breathing_rate_bpm"),
    Feature("br_regularity", "1", "spectral peak power / 0.1-0.7 Hz power (1 = regular)",
            "breathing_regularity"),
    Feature("br_rate_dev_bpm", "1/min", "|rate - median rate of the 5 epochs centred here|",
            "breathing_rate_bpm"),
    Feature("br_period_cv", "1", "breath-to-breath variability of the breathing period: CV of "
            f"the peak-to-peak intervals in a centred {BREATH_WINDOW_S:g}-s window (Tobin 1988; "
            "irregular in wake, regular in NREM)", "breath_gyro"),
    Feature("br_cycle_amp_cv", "1", "breath-to-breath amplitude variability: CV of the per-breath "
            f"peak-to-trough amplitudes in the same {BREATH_WINDOW_S:g}-s window", "breath_gyro"),
    Feature("swallow_n", "1", "swallow-like transients starting in the epoch: isolated runs of "
            f"<= {SWALLOW_MAX_S} s with 1-s gyroscope activity > {SWALLOW_FLOOR_MULT:g} x the "
            "night's floor (swallows ~1/min awake, ~2/h in N2: Sato & Nakashima 2006)",
            "activity_dps"),
    Feature("mandible_deg", "deg", "mean mandible angle (pitch of gravity)",
            "mandible_angle_deg"),
    Feature("mandible_delta_deg", "deg", "mandible angle minus the median of the previous 2 min "
            "(positive = jaw drop)", "mandible_angle_deg"),
    Feature("head_roll_deg", "deg", "mean head roll (body position)", "head_roll_deg"),
    Feature("quality_frac", "1", "fraction of seconds without clipping/flat/off flags", "quality"),
    Feature("spo2_mean", "%", "mean SpO2 (NaN without oximetry)", "spo2"),
    Feature("spo2_min", "%", "minimum SpO2 (NaN without oximetry)", "spo2"),
    Feature("pulse_mean", "1/min", "mean pulse rate (NaN without oximetry)", "pulse"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)


def _epochs(x: np.ndarray, n_epochs: int, per_epoch: int) -> np.ndarray:
    """Reshape the last axis into (n_epochs, per_epoch), padding the tail with NaN."""
    need = n_epochs * per_epoch
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < need:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, need - x.shape[-1])]
        x = np.pad(x, pad, constant_values=np.nan)
    return x[..., :need].reshape(*x.shape[:-1], n_epochs, per_epoch)


def _trailing_median(x: np.ndarray, n: int) -> np.ndarray:
    """Median of the ``n`` values before each index (the first values use what exists)."""
    out = np.empty_like(x)
    for i in range(x.size):  # n_epochs ~ 1000: a loop over epochs is cheap and clear
        w = x[max(0, i - n) : i]
        w = w[np.isfinite(w)]
        out[i] = np.median(w) if w.size else x[i]
    return out


def breath_cycles(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Breaths of one breathing-band trace: (peak times in s, peak-to-trough amplitudes).

    A breath is a peak of ``x`` at least ``1 / BREATH_MAX_HZ`` after the previous one whose
    prominence reaches ``BREATH_PROMINENCE`` x half the 5th-95th percentile range of ``x``;
    its amplitude is the peak minus the lowest value since the previous peak (the first peak
    has none and is left out). Scipy's ``find_peaks`` does the search.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3 or not np.isfinite(x).all():
        return np.empty(0), np.empty(0)
    lo, hi = np.percentile(x, [5, 95])
    if not hi > lo:
        return np.empty(0), np.empty(0)
    peaks, _ = sps.find_peaks(x, distance=max(1, int(fs / BREATH_MAX_HZ)),
                              prominence=BREATH_PROMINENCE * (hi - lo) / 2)
    if peaks.size < 2:
        return peaks / fs, np.empty(0)
    troughs = np.array([x[a:b].min() for a, b in zip(peaks[:-1], peaks[1:])])
    return peaks / fs, x[peaks[1:]] - troughs


def _cv(x: np.ndarray) -> float:
    m = float(np.mean(x))
    return float(np.std(x) / m) if m > 0 else float("nan")


def breath_variability(breath_gyro: np.ndarray, n_epochs: int, fs: float,
                       epoch_s: float = EPOCH_S) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch: (CV of breath periods, CV of breath amplitudes) over a ``BREATH_WINDOW_S``
    window centred on the epoch, on the first principal component of the 3-axis breathing-band
    gyroscope in that window (the jaw's breathing rotation, whatever the sensor's mounting;
    signed so that its largest loading is positive).
    NaN where fewer than ``BREATH_MIN_CYCLES`` periods were found or samples are missing.

    Why: breath-to-breath variability of timing and depth is high in quiet wakefulness
    (CV ~21 % of frequency, ~33 % of tidal volume: Tobin et al. 1988) and low in NREM sleep,
    where breathing is regular (Bulow 1963; Kantelhardt et al. 2003; Rostig et al. 2005);
    irregular breathing predicts EEG wake (Ayappa et al. 2009). docs/science.md §3.
    """
    g = np.asarray(breath_gyro, dtype=np.float64)
    per = int(round(epoch_s * fs))
    half = int(round(BREATH_WINDOW_S * fs / 2))
    period_cv = np.full(n_epochs, np.nan)
    amp_cv = np.full(n_epochs, np.nan)
    for e in range(n_epochs):  # ~1000 epochs, one small SVD each
        c = e * per + per // 2
        w = g[:, max(0, c - half) : c + half]
        if w.shape[1] < 2 * half or not np.isfinite(w).all():
            continue
        w = w - w.mean(axis=1, keepdims=True)
        u, _, _ = np.linalg.svd(w @ w.T)
        pc = u[:, 0] * np.sign(u[np.argmax(np.abs(u[:, 0])), 0])  # largest loading positive
        t, amp = breath_cycles(pc @ w, fs)
        periods = np.diff(t)
        if periods.size >= BREATH_MIN_CYCLES:
            period_cv[e] = _cv(periods)
            amp_cv[e] = _cv(amp)
    return period_cv, amp_cv


def swallow_like(act_sec: np.ndarray, floor: float) -> np.ndarray:
    """Per second: True where a swallow-like transient starts (see ``SWALLOW_*`` above).

    ``act_sec`` is the 1-s mean gyroscope activity (deg/s), ``floor`` the night's floor.
    Why: spontaneous swallows come ~0.2-1 per minute awake (Bulmer et al. 2021) and ~2 per
    hour in N2, almost never in N3 (Lichter & Muir 1975; Sato & Nakashima 2006).
    """
    a = np.nan_to_num(np.asarray(act_sec, dtype=np.float64), nan=0.0)
    hot = a > SWALLOW_FLOOR_MULT * floor
    active = a > ACTIVE_FLOOR_MULT * floor
    out = np.zeros(a.size, dtype=bool)
    edges = np.diff(np.concatenate([[0], hot.astype(np.int8), [0]]))
    for s0, s1 in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if s1 - s0 > SWALLOW_MAX_S:
            continue
        before = active[max(0, s0 - SWALLOW_QUIET_S) : s0]
        after = active[s1 : s1 + SWALLOW_QUIET_S]
        # The run's own shoulders (just above the active threshold) are part of it.
        if not before[:-1].any() and not after[1:].any():
            out[s0] = True
    return out


class FlatSensorError(PermanentError, ValueError):
    """The recording's gyroscope gives no usable activity floor (flat, stuck or absent sensor).

    Bad input, not trouble: the same night fails the same way every time, so it is recorded
    and acknowledged (2xx) instead of retried.
    """


def valid_seconds(quality: np.ndarray | None, n_sec: int) -> np.ndarray:
    """Boolean per second: the quality mask of ``prepped.npz`` says good (0). Seconds beyond
    the mask (or every second without one) count as valid, as before the mask existed."""
    if quality is None:
        return np.ones(n_sec, dtype=bool)
    q = np.asarray(quality)[:n_sec]
    return np.pad(q == 0, (0, n_sec - q.size), constant_values=True)


#: Quality bits that make a second unusable (``sunrise_night.quality.INVALID``: 2 flat, 4 off,
#: 8 gap, 16 non-wear; 1 clipped is not: big movements saturate a worn sensor).
INVALID_BITS = 2 | 4 | 8 | 16


def invalid_epochs(quality: np.ndarray | None, n_epochs: int, epoch_s: float = EPOCH_S) -> np.ndarray:
    """Boolean per epoch: more than half of its seconds unusable (not recorded, sensor not
    worn, no signal). Such epochs are neither sleep nor wake (``UNS``): they leave TST, every
    per-hour index and the valid recording time (issue 24)."""
    if quality is None:
        return np.zeros(n_epochs, dtype=bool)
    per = int(epoch_s)
    q = np.asarray(quality).astype(np.int64)[: n_epochs * per]
    bad = np.pad((q & INVALID_BITS) != 0, (0, n_epochs * per - q.size), constant_values=False)
    return bad.reshape(n_epochs, per).mean(axis=1) > 0.5


def activity_floor(activity_dps_1s: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The night's gyroscope activity floor (deg/s): ``ACTIVITY_FLOOR_PCT`` percentile of the
    finite 1-s means of ``activity_dps`` (10 Hz in ``prepped.npz``, averaged per second) over
    the ``valid`` seconds (quality mask good; all when None). Issue 24: a zero-filled or
    disconnected stretch is the stillest part of a night and, counted in, collapsed the floor
    to ~0 so that every real second read as movement.

    Raises :class:`FlatSensorError` (a permanent error) when no valid second is finite or the
    floor is not positive: a flat or absent gyroscope cannot be normalised.
    """
    x = np.asarray(activity_dps_1s, dtype=np.float64)
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        m = min(v.size, x.size)
        x = x[:m][v[:m]]
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise FlatSensorError("flat_gyroscope", "no finite gyroscope activity in a valid second: cannot estimate the "
                              "night's floor")
    floor = float(np.percentile(x, ACTIVITY_FLOOR_PCT))
    if not floor > 0:
        raise FlatSensorError("flat_gyroscope",
                              f"gyroscope activity floor is {floor} deg/s; a working sensor gives > 0")
    return floor


def compute_features(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, np.ndarray]:
    """Feature columns (each shape ``(n_epochs,)``), plus ``epoch`` and ``onset_s``.

    ``onset_s`` is the epoch start in seconds from the Sunrise recording start.
    """
    n = int(meta["n_epochs"])
    fs = float(meta["fs_derived"])
    per = int(round(EPOCH_S * fs))
    per_s = int(round(fs))
    out: dict[str, np.ndarray] = {
        "epoch": np.arange(n), "onset_s": np.arange(n) * EPOCH_S,
    }
    act_g = _epochs(arrays["activity_g"], n, per)
    act_d = _epochs(arrays["activity_dps"], n, per)
    out["act_mean_g"] = np.nanmean(act_g, axis=1)
    out["act_mean_dps"] = np.nanmean(act_d, axis=1)
    act_sec = np.nanmean(act_d.reshape(n, -1, per_s), axis=2)
    out["act_count"] = (act_sec > ACTIVE_DPS).sum(axis=1).astype(float)
    out["act_max_dps"] = np.nanmax(act_sec, axis=1)
    valid_1s = valid_seconds(arrays.get("quality"), act_sec.size).reshape(act_sec.shape)
    floor = activity_floor(act_sec.ravel(), valid_1s.ravel())
    out["act_floor_dps"] = np.full(n, floor)
    out["act_count_rel"] = (act_sec > ACTIVE_FLOOR_MULT * floor).sum(axis=1).astype(float)
    out["act_mean_rel"] = out["act_mean_dps"] / floor
    out["act_max_rel"] = out["act_max_dps"] / floor
    out["swallow_n"] = swallow_like(act_sec.ravel(), floor).reshape(n, -1).sum(axis=1).astype(float)

    bg = _epochs(arrays["breath_gyro"], n, per)  # (3, n, per)
    pow_g = (bg**2).sum(axis=0)  # (n, per)
    out["br_amp_dps"] = np.sqrt(2 * np.nanmean(pow_g, axis=1))
    ba = _epochs(arrays["breath_acc"], n, per)
    out["br_amp_mg"] = 1000 * np.sqrt(2 * np.nanmean((ba**2).sum(axis=0), axis=1))
    sub = np.sqrt(np.nanmean(pow_g.reshape(n, 6, -1), axis=2))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["br_amp_cv"] = sub.std(axis=1) / sub.mean(axis=1)
        base_amp = _trailing_median(out["br_amp_dps"], BASELINE_EPOCHS)
        out["br_amp_rel"] = out["br_amp_dps"] / base_amp
    rate = np.asarray(arrays["breathing_rate_bpm"], dtype=np.float64)[:n]
    rate = np.pad(rate, (0, n - rate.size), constant_values=np.nan)
    out["br_rate_bpm"] = rate
    reg = np.asarray(arrays["breathing_regularity"], dtype=np.float64)[:n]
    out["br_regularity"] = np.pad(reg, (0, n - reg.size), constant_values=np.nan)
    med = ndimage.median_filter(np.nan_to_num(rate, nan=np.nanmedian(rate) if n else 0.0), 5,
                                mode="nearest")
    out["br_rate_dev_bpm"] = np.abs(rate - med)
    out["br_period_cv"], out["br_cycle_amp_cv"] = breath_variability(
        np.asarray(arrays["breath_gyro"]), n, fs)

    ang = np.nanmean(_epochs(arrays["mandible_angle_deg"], n, per), axis=1)
    out["mandible_deg"] = ang
    out["mandible_delta_deg"] = ang - _trailing_median(ang, BASELINE_EPOCHS)
    out["head_roll_deg"] = np.nanmean(_epochs(arrays["head_roll_deg"], n, per), axis=1)
    q = _epochs(arrays["quality"], n, int(EPOCH_S))
    out["quality_frac"] = np.nanmean(q == 0, axis=1)
    for name, key, fn in (("spo2_mean", "spo2", np.nanmean), ("spo2_min", "spo2", np.nanmin),
                          ("pulse_mean", "pulse", np.nanmean)):
        if key in arrays and arrays[key].size:
            x = _epochs(arrays[key], n, int(EPOCH_S))
            with warnings.catch_warnings():  # all-NaN epochs (oximeter off) give NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[name] = fn(x, axis=1)
        else:
            out[name] = np.full(n, np.nan)
    return out
