"""Signal tools shared by psg_prep and sunrise_prep: one copy of each (issue 17).

- ``sosfiltfilt``: zero-phase IIR (second-order sections forward then backward), equal to
  ``scipy.signal.sosfiltfilt`` with its default odd padding and pad length, along the last
  axis of an array of any dimension; the initial conditions can be passed in precomputed
  (recomputing them per call dominated short segments).
- ``anti_alias_fir``: the Kaiser anti-aliasing FIR for polyphase resampling
  ``scipy.signal.resample_poly(x, up, down, window=h)``, with a stated stopband and unit DC gain
  on every polyphase branch.

The noon-anchor offset is not here: it needs no scipy, see
``sunrise_common.identity.time_of_day_offset_s`` and ``wrap_offset_s``.

Imports scipy's filter design and ``sosfilt``; scipy is not a dependency of sunrise-common but
of the services that process signals (psg_prep, sunrise_prep): import this module only there
(never from ingest, whose image does not need scipy).
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

AA_STOPBAND_DB = 60.0  # stated (and tested) minimum attenuation of the anti-aliasing FIR
AA_DESIGN_DB = 70.0  # what the Kaiser design aims at: margin for the per-branch DC scaling
AA_KEEP_FRACTION = 0.4  # pass edge as a fraction of the output rate when no low-pass follows


def sosfiltfilt_padlen(sos: np.ndarray) -> int:
    """``scipy.signal.sosfiltfilt``'s default pad length: 3 x its ``ntaps`` estimate."""
    n_taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * n_taps


def sosfiltfilt(sos: np.ndarray, x: np.ndarray, *, zi: np.ndarray | None = None,
                padlen: int | None = None) -> np.ndarray:
    """Zero-phase ``sos`` filter along the last axis; float64 out.

    Equal (to rounding) to ``scipy.signal.sosfiltfilt(sos, x, axis=-1, padtype="odd",
    padlen=padlen)``; ``padlen`` defaults to scipy's (``sosfiltfilt_padlen``) and is limited to
    ``n - 1``. ``zi``: ``scipy.signal.sosfilt_zi(sos)`` if already computed. One ``sosfilt``
    call per direction whatever the number of rows.
    """
    sos = np.asarray(sos, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if zi is None:
        zi = sps.sosfilt_zi(sos)
    n = x.shape[-1]
    pad = min(sosfiltfilt_padlen(sos) if padlen is None else int(padlen), n - 1)
    if pad >= 1:  # odd extension
        ext = np.empty((*x.shape[:-1], n + 2 * pad), dtype=np.float64)
        ext[..., pad : pad + n] = x
        ext[..., :pad] = 2 * x[..., :1] - x[..., pad:0:-1]
        ext[..., pad + n :] = 2 * x[..., -1:] - x[..., -2 : -pad - 2 : -1]
    else:
        pad = 0
        ext = x
    zi = np.reshape(zi, (len(sos), *([1] * (x.ndim - 1)), 2))
    fwd, _ = sps.sosfilt(sos, ext, axis=-1, zi=zi * ext[None, ..., :1])
    bwd, _ = sps.sosfilt(sos, fwd[..., ::-1], axis=-1, zi=zi * fwd[None, ..., -1:])
    y = bwd[..., ::-1]
    return y[..., pad : pad + n] if pad else y


def anti_alias_edges(fs_in: float, fs_out: float, keep_hz: float | None) -> tuple[float, float]:
    """Pass and stop edges (Hz) of the anti-aliasing FIR for ``fs_in -> fs_out``.

    The pass edge ``keep`` is the low-pass that follows (or ``0.4 x fs_out``). The stop edge is
    ``min(fs_out - keep, fs_in / 2)``: everything that would alias into ``[0, keep]`` at the
    output rate, and every image of the input spectrum (which start at ``fs_in / 2``), is in
    the stopband.
    """
    keep = AA_KEEP_FRACTION * fs_out if keep_hz is None else float(keep_hz)
    stop = min(fs_out - keep, fs_in / 2.0)
    if not 0 < keep < stop:
        raise ValueError(f"no anti-aliasing design for {fs_in:g} -> {fs_out:g} Hz keeping {keep:g} Hz")
    return keep, stop


def anti_alias_fir(fs_in: float, up: int, down: int, keep_hz: float | None = None) -> np.ndarray:
    """The polyphase FIR for ``resample_poly(x, up, down, window=h)`` (float64).

    A Kaiser window design (``scipy.signal.kaiserord`` for ``AA_DESIGN_DB`` = 70 dB over the
    transition ``anti_alias_edges``, ``firwin`` cut-off midway), at the upsampled rate
    ``fs_in x up``; then each of the ``up`` polyphase branches ``h[p::up]`` is scaled to sum to
    ``1 / up``, so every output sample has exactly unit DC gain (the resampler multiplies by
    ``up``) and the DC images at ``k x fs_in`` are exact zeros. Measured stopband: >=
    ``AA_STOPBAND_DB`` (60 dB) at every corpus rate (tests/psg_prep/test_psg_filters.py).
    """
    fs_up = fs_in * up
    fs_out = fs_in * up / down
    keep, stop = anti_alias_edges(fs_in, fs_out, keep_hz)
    numtaps, beta = sps.kaiserord(AA_DESIGN_DB, (stop - keep) / (fs_up / 2.0))
    numtaps |= 1  # odd: a centred, linear-phase FIR (resample_poly's delay convention)
    h = sps.firwin(numtaps, (keep + stop) / 2.0, window=("kaiser", beta), fs=fs_up)
    for p in range(up):
        branch = h[p::up].sum()
        if branch <= 0:
            raise ValueError(f"polyphase branch {p} of {up} has DC gain {branch:g}: design too short")
        h[p::up] /= branch * up
    return h
