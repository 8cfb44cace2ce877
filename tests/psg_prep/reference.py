"""psg_prep's signal processing restated in plain scipy, whole signal at once.

The reference the chunked, matrix-product, threaded implementation in ``psg_prep.filters`` must
equal channel by channel (tests/psg_prep/test_psg_reference.py), so that speed work cannot
change the science silently. Written from the design in docs/psg_prep.md, not from the code:
no import from ``psg_prep``.

Per channel: physical values (float32, as the EDF reader gives them) -> unit scale ->
``resample_poly(x - c, up, down, window=h)`` with ``c`` the median of the first second and
``h`` the Kaiser anti-aliasing FIR (70-dB design, every polyphase branch at unit DC gain) ->
``sosfiltfilt`` of the 4th-order Butterworth band (+ 50 Hz ``iirnotch`` Q 30 for EMG/snore)
-> ``+ c`` when no high-pass was applied. SpO2/pulse: mean per output period; position: first
sample per period; marker: largest magnitude per period.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

# type: (band low, band high (Hz, None = open), target rate (Hz), notch, method)
SPEC: dict[str, tuple[float | None, float | None, float, bool, str]] = {
    "EEG": (0.3, 35.0, 100.0, False, "poly"),
    "EOG": (0.3, 35.0, 100.0, False, "poly"),
    "EMG_CHIN": (10.0, 100.0, 250.0, True, "poly"),
    "EMG_LEG": (10.0, 100.0, 250.0, True, "poly"),
    "ECG": (0.3, 70.0, 200.0, False, "poly"),
    "SNORE": (10.0, 100.0, 250.0, True, "poly"),
    "AIRFLOW_THERMISTOR": (0.1, 15.0, 50.0, False, "poly"),
    "NASAL_PRESSURE": (0.1, 15.0, 50.0, False, "poly"),
    "EFFORT_THORAX": (0.1, 15.0, 50.0, False, "poly"),
    "EFFORT_ABDOMEN": (0.1, 15.0, 50.0, False, "poly"),
    "SPO2": (None, None, 1.0, False, "mean"),
    "PULSE": (None, None, 1.0, False, "mean"),
    "POSITION": (None, None, 1.0, False, "pick"),
    "MARKER": (None, None, 10.0, False, "absmax"),
    "UNKNOWN": (None, None, 100.0, False, "poly"),
}
MICROVOLT_TYPES = {"EEG", "EOG", "EMG_CHIN", "EMG_LEG", "ECG"}
TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def reference_fir(fs_in: float, up: int, down: int, keep_hz: float | None) -> np.ndarray:
    """Kaiser FIR at ``fs_in * up`` Hz: pass to ``keep``, >= 60 dB from ``min(fs_out - keep, fs_in / 2)``."""
    fs_up = fs_in * up
    fs_out = fs_up / down
    keep = 0.4 * fs_out if keep_hz is None else keep_hz
    stop = min(fs_out - keep, fs_in / 2)
    numtaps, beta = sps.kaiserord(70.0, (stop - keep) / (fs_up / 2))
    h = sps.firwin(numtaps | 1, (keep + stop) / 2, window=("kaiser", beta), fs=fs_up)
    for p in range(up):
        h[p::up] /= h[p::up].sum() * up
    return h


def _reduce(x: np.ndarray, k: int, method: str) -> np.ndarray:
    n_full = len(x) // k
    periods = [x[i * k : (i + 1) * k] for i in range(n_full)]
    if len(x) > n_full * k:
        periods.append(x[n_full * k :])
    if method == "mean":
        return np.array([p.mean(dtype=np.float64) for p in periods])
    if method == "pick":
        return np.array([p[0] for p in periods])
    return np.array([p[np.argmax(np.abs(p))] for p in periods])


def reference_channel(
    x: np.ndarray, ctype: str, fs_in: float, *, dimension: str, physical_max: float, notch_hz: float | None = 50.0
) -> tuple[np.ndarray, float]:
    """One channel's output (float32) and its rate (Hz), from its physical float32 values."""
    lo, hi, target, notch_wanted, method = SPEC[ctype]
    x = np.asarray(x, dtype=np.float32)
    if ctype in MICROVOLT_TYPES:
        scale = TO_UV.get(dimension.strip().lower().replace("micro", "u"), 1.0)
    elif ctype == "SPO2" and dimension.strip() != "%" and abs(physical_max) <= 1.5:
        scale = 100.0
    else:
        scale = 1.0
    if scale != 1.0:
        x = x * np.float32(scale)
    ratio = Fraction(min(target, fs_in)).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    if method != "poly" and up != 1:
        method = "poly"
    fs_out = fs_in * up / down
    limit = 0.45 * fs_out
    if lo is not None and lo >= limit:
        lo = hi = None
    if hi is not None and hi > limit:
        hi = None
    notch = notch_hz if (notch_wanted and notch_hz is not None and notch_hz <= limit
                         and (hi is None or notch_hz < hi) and (lo is None or notch_hz > lo)) else None
    c = 0.0
    if up == down:
        y = x.astype(np.float64)
    elif method == "poly":
        c = float(np.median(x[: max(1, int(round(fs_in)))]))
        y = sps.resample_poly(x.astype(np.float64) - c, up, down, window=reference_fir(fs_in, up, down, hi))
    else:
        y = _reduce(x, down, method)
    sections = []
    if lo is not None and hi is not None:
        sections.append(sps.butter(4, [lo, hi], "bandpass", fs=fs_out, output="sos"))
    elif lo is not None:
        sections.append(sps.butter(4, lo, "highpass", fs=fs_out, output="sos"))
    elif hi is not None:
        sections.append(sps.butter(4, hi, "lowpass", fs=fs_out, output="sos"))
    if notch is not None:
        sections.append(sps.tf2sos(*sps.iirnotch(notch, 30.0, fs=fs_out)))
    if sections and len(y) > 1:
        sos = np.vstack(sections)
        padlen = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
        y = sps.sosfiltfilt(sos, y, padlen=min(padlen, len(y) - 1))
    if lo is None:
        y = y + c
    return y.astype(np.float32), fs_out
