"""Breathing rate from jaw movement (science.md §2.3 recipe).

Per 30-s epoch (from the recording start) a 60-s window centred on the epoch is taken from the
breathing-band (0.15-0.60 Hz) gyroscope signal at 10 Hz; the first principal component over the
three axes (the dominant rotation axis of the mandible, Hostrup et al. 2025 use PCA the same way
for the abdomen) is analysed with Welch's method (30-s Hann segments, 50 % overlap, zero-padded
to 1024 points at 5 Hz: 0.005 Hz bins). Rate = 60 x peak frequency (breaths/min) within 0.15-0.60 Hz.
Regularity = power within +-0.03 Hz of the peak / power in 0.1-0.7 Hz (0..1; low = irregular
breathing or no breathing signal).
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from sunrise_night.imu import BREATH_BAND_HZ, FS_OUT

WINDOW_S = 60.0
EPOCH_S = 30.0


def breathing_rate(breath: np.ndarray, n_epochs: int, fs: float = FS_OUT,
                   epoch_s: float = EPOCH_S, window_s: float = WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
    """Breathing rate (breaths/min) and regularity per epoch.

    Parameters
    ----------
    breath : ndarray, shape (n_axes, n)
        Breathing-band signal at ``fs`` Hz.
    n_epochs : int
        Number of epochs to report.

    Returns
    -------
    rate_bpm, regularity : ndarray, shape (n_epochs,)
        NaN where the window has no data.
    """
    # The band ends at 0.6 Hz: keep every 2nd sample (5 Hz) to halve the spectral work.
    step = 2 if fs >= 8 else 1
    breath = breath[:, ::step]
    fs = fs / step
    n_axes, n = breath.shape
    win = int(window_s * fs)
    half_pad = int((window_s - epoch_s) / 2 * fs)
    padded = np.pad(breath, ((0, 0), (half_pad, win)), mode="constant")
    starts = (np.arange(n_epochs) * epoch_s * fs).astype(int)
    idx = starts[:, None] + np.arange(win)[None, :]
    w = padded[:, idx]  # (axes, epochs, win)
    w = np.moveaxis(w, 0, 1)  # (epochs, axes, win)
    w = w - w.mean(axis=2, keepdims=True)
    cov = np.einsum("eaw,ebw->eab", w, w)
    _, vecs = np.linalg.eigh(cov)
    pc = np.einsum("ea,eaw->ew", vecs[:, :, -1], w)
    f, p = sps.welch(pc, fs=fs, nperseg=int(30 * fs), noverlap=int(15 * fs), nfft=1024, axis=-1)
    band = (f >= BREATH_BAND_HZ[0]) & (f <= BREATH_BAND_HZ[1])
    wide = (f >= 0.1) & (f <= 0.7)
    pb = p[:, band]
    k = pb.argmax(axis=1)
    fpk = f[band][k]
    near = np.abs(f[None, :] - fpk[:, None]) <= 0.03
    total = p[:, wide].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        regularity = np.where(total > 0, (p * near).sum(axis=1) / total, np.nan)
    rate = 60.0 * fpk
    empty = total <= 0
    rate[empty] = np.nan
    return rate.astype(np.float32), regularity.astype(np.float32)
