"""Signal tools shared by psg_prep and sunrise_prep: one copy of each (issue 17).

- ``sosfiltfilt``: zero-phase IIR (second-order sections forward then backward), equal to
  ``scipy.signal.sosfiltfilt`` with its default odd padding and pad length, along the last
  axis of an array of any dimension; the initial conditions can be passed in precomputed
  (recomputing them per call dominated short segments).
- ``anti_alias_fir``: the Kaiser anti-aliasing FIR for polyphase resampling
  ``scipy.signal.resample_poly(x, up, down, window=h)``, with a stated stopband and unit DC gain
  on every polyphase branch.
- the designs they use, restated from scipy in numpy and tested equal to it
  (tests/common/test_dsp.py): ``butter_sos`` (``butter(..., output="sos")``), ``notch_sos``
  (``tf2sos(*iirnotch(...))``), ``sosfilt_zi``, ``kaiserord``, ``kaiser_lowpass``
  (``firwin(..., window=("kaiser", beta))``).

Why not ``scipy.signal``: importing it imports nearly all of scipy (stats, interpolate,
optimize, ...): 0.85 CPU-s and 80 MB of resident memory per process, more than half of
psg_prep's memory budget. This module uses only scipy's compiled ``sosfilt`` kernel, loaded on
its own (``_load_sosfilt``; scipy's package ``__init__`` is cheap, ``scipy.signal``'s is not).

The noon-anchor offset is not here: it needs no scipy, see
``sunrise_common.identity.time_of_day_offset_s`` and ``wrap_offset_s``.

scipy is not a dependency of sunrise-common but of the services that process signals
(psg_prep, sunrise_prep): import this module only there (never from ingest).
"""

from __future__ import annotations

import math

import numpy as np


def _load_sosfilt():
    """scipy's compiled ``_sosfilt(sos, x, zi)`` (filters C-contiguous ``x`` (signals x samples)
    in place, updating ``zi`` (signals x sections x 2)), without importing ``scipy.signal``."""
    import importlib.machinery
    import importlib.util
    import os
    import sys

    name = "scipy.signal._sosfilt"
    if name in sys.modules:
        return sys.modules[name]._sosfilt
    try:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "signal")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_sosfilt" + suffix)
            if os.path.exists(path):
                loader = importlib.machinery.ExtensionFileLoader(name, path)
                spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                sys.modules[name] = module  # what scipy.signal itself would import later
                return module._sosfilt
    except (ImportError, OSError):
        pass
    from scipy.signal._sosfilt import _sosfilt  # the ordinary (slow) way

    return _sosfilt


_sosfilt = _load_sosfilt()


def sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)`` for a 2-D ``x`` (rows x samples,
    float64 or complex128) and ``zi`` of shape (sections, rows, 2): (output, final state)."""
    dtype = np.result_type(x, sos)
    y = np.array(x, dtype=dtype, order="C")  # filtered in place
    state = np.array(np.moveaxis(np.asarray(zi, dtype=dtype), 0, 1), order="C")  # a copy: updated in place
    _sosfilt(np.ascontiguousarray(sos, dtype=dtype), y, state)
    return y, np.moveaxis(state, 1, 0)


def sosfilt_inplace(sos: np.ndarray, x: np.ndarray, state: np.ndarray) -> None:
    """Filter the C-contiguous 2-D float64 ``x`` (rows x samples) in place, one row at a time;
    ``state`` (rows x sections x 2, C-contiguous float64) is the initial state and becomes the
    final one. The kernel of ``sosfilt``, without its copies."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    for r in range(x.shape[0]):
        _sosfilt(sos, x[r : r + 1], state[r : r + 1])


def _lfilter_zi2(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``scipy.signal.lfilter_zi`` of one second-order section (``a[0] == 1``)."""
    # (I - companion(a).T) zi = b[1:] - a[1:] b[0]
    i_minus_a = np.array([[1.0 + a[1], -1.0], [a[2], 1.0]])
    return np.linalg.solve(i_minus_a, b[1:] - a[1:] * b[0])


def sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi``: initial states (sections x 2) for a unit-step steady state."""
    sos = np.asarray(sos, dtype=np.float64)
    zi = np.empty((len(sos), 2))
    scale = 1.0
    for i, (b, a) in enumerate(zip(sos[:, :3], sos[:, 3:])):
        b, a = b / a[0], a / a[0]
        zi[i] = scale * _lfilter_zi2(b, a)
        scale *= b.sum() / a.sum()
    return zi


def _cplxreal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal``'s split of roots into complex-conjugate pairs (the positive-imaginary
    member of each, sorted by real part) and real roots."""
    z = np.atleast_1d(np.asarray(z, dtype=np.complex128))
    tol = 100 * np.finfo(np.float64).eps
    z = z[np.lexsort((abs(z.imag), z.real))]
    real = abs(z.imag) <= tol * abs(z)
    zr = z[real].real
    z = z[~real]
    zp, zn = z[z.imag > 0], z[z.imag < 0]
    if len(zp) != len(zn) or np.any(abs(zp - zn.conj()) > tol * abs(zn)):
        raise ValueError("complex root without its conjugate")
    return (zp + zn.conj()) / 2, zr


def _nearest(fro: np.ndarray, to: complex, which: str) -> int:
    order = np.argsort(np.abs(fro - to))
    if which == "any":
        return int(order[0])
    mask = np.isreal(fro[order])
    if which == "complex":
        mask = ~mask
    return int(order[np.nonzero(mask)[0][0]])


def _section(z: list, p: list) -> np.ndarray:
    sos = np.zeros(6)
    b, a = np.atleast_1d(np.poly(z).real), np.atleast_1d(np.poly(p).real)
    sos[3 - len(b) : 3] = b
    sos[6 - len(a) : 6] = a
    return sos


def zpk2sos(z: np.ndarray, p: np.ndarray, k: float) -> np.ndarray:
    """``scipy.signal.zpk2sos(z, p, k)`` (digital, ``pairing="nearest"``)."""
    z, p = np.asarray(z, dtype=np.complex128), np.asarray(p, dtype=np.complex128)
    if len(z) == len(p) == 0:
        return np.array([[k, 0.0, 0.0, 1.0, 0.0, 0.0]])
    p = np.concatenate((p, np.zeros(max(len(z) - len(p), 0))))
    z = np.concatenate((z, np.zeros(max(len(p) - len(z), 0))))
    n_sections = (max(len(p), len(z)) + 1) // 2
    if len(p) % 2 == 1:
        p, z = np.concatenate((p, [0.0])), np.concatenate((z, [0.0]))
    z = np.concatenate(_cplxreal(z))
    p = np.concatenate(_cplxreal(p))
    sos = np.zeros((n_sections, 6))
    for si in range(n_sections - 1, -1, -1):
        p1_idx = int(np.argmin(np.abs(1 - np.abs(p))))  # the pole closest to the unit circle
        p1 = p[p1_idx]
        p = np.delete(p, p1_idx)
        if np.isreal(p1) and np.isreal(p).sum() == 0:
            z1_idx = _nearest(z, p1, "real")
            sos[si] = _section([z[z1_idx], 0], [p1, 0])
            z = np.delete(z, z1_idx)
        elif len(p) + 1 == len(z) and not np.isreal(p1) and np.isreal(p).sum() == 1 and np.isreal(z).sum() == 1:
            z1_idx = _nearest(z, p1, "complex")
            z1 = z[z1_idx]
            z = np.delete(z, z1_idx)
            sos[si] = _section([z1, z1.conj()], [p1, p1.conj()])
        else:
            if np.isreal(p1):
                real_idx = np.flatnonzero(np.isreal(p))
                p2_idx = int(real_idx[np.argmin(np.abs(1 - np.abs(p[real_idx])))])
                p2 = p[p2_idx]
                p = np.delete(p, p2_idx)
            else:
                p2 = p1.conj()
            if len(z):
                z1_idx = _nearest(z, p1, "any")
                z1 = z[z1_idx]
                z = np.delete(z, z1_idx)
                if not np.isreal(z1):
                    sos[si] = _section([z1, z1.conj()], [p1, p2])
                elif len(z):
                    z2_idx = _nearest(z, p1, "real")
                    sos[si] = _section([z1, z[z2_idx]], [p1, p2])
                    z = np.delete(z, z2_idx)
                else:
                    sos[si] = _section([z1], [p1, p2])
            else:
                sos[si] = _section([], [p1, p2])
    sos[0][:3] *= k
    return sos


def butter_sos(order: int, freqs: float | tuple[float, float] | list[float], btype: str, fs: float) -> np.ndarray:
    """``scipy.signal.butter(order, freqs, btype, fs=fs, output="sos")`` for ``btype`` lowpass,
    highpass or bandpass (Hz): analog prototype, prewarped edges, bilinear transform."""
    wn = 2.0 * np.atleast_1d(np.asarray(freqs, dtype=np.float64)) / fs  # fraction of Nyquist
    if np.any(wn <= 0) or np.any(wn >= 1):
        raise ValueError(f"band edges {freqs} Hz outside (0, {fs / 2:g}) Hz")
    m = np.arange(-order + 1, order, 2)
    p = -np.exp(1j * np.pi * m / (2 * order))  # Butterworth prototype poles, no zeros, gain 1
    z = np.array([], dtype=np.complex128)
    k = 1.0
    warped = 4.0 * np.tan(np.pi * wn / 2.0)  # prewarped for the bilinear transform at fs = 2
    if btype == "lowpass":
        z, p, k = z * warped[0], p * warped[0], k * warped[0] ** len(p)
    elif btype == "highpass":
        k = k * np.real(np.prod(-z) / np.prod(-p))
        z, p = np.append(warped[0] / z, np.zeros(len(p) - len(z))), warped[0] / p
    elif btype == "bandpass":
        bw = warped[1] - warped[0]
        wo = math.sqrt(warped[0] * warped[1])
        degree = len(p) - len(z)
        z_lp, p_lp = z * bw / 2, p * bw / 2
        z = np.concatenate((z_lp + np.sqrt(z_lp**2 - wo**2), z_lp - np.sqrt(z_lp**2 - wo**2), np.zeros(degree)))
        p = np.concatenate((p_lp + np.sqrt(p_lp**2 - wo**2), p_lp - np.sqrt(p_lp**2 - wo**2)))
        k = k * bw**degree
    else:
        raise ValueError(f"btype {btype!r}")
    fs2 = 4.0  # bilinear transform at fs = 2
    degree = len(p) - len(z)
    k = k * np.real(np.prod(fs2 - z) / np.prod(fs2 - p))
    z = np.append((fs2 + z) / (fs2 - z), -np.ones(degree))
    p = (fs2 + p) / (fs2 - p)
    return zpk2sos(z, p, k)


def notch_sos(f0: float, q: float, fs: float) -> np.ndarray:
    """``scipy.signal.tf2sos(*scipy.signal.iirnotch(f0, q, fs=fs))``: one section."""
    w0 = 2.0 * f0 / fs * np.pi
    bw = 2.0 * f0 / fs / q * np.pi
    beta = math.tan(bw / 2.0)  # gb = 1/sqrt(2): sqrt(1 - gb^2) / gb = 1
    gain = 1.0 / (1.0 + beta)
    b = gain * np.array([1.0, -2.0 * math.cos(w0), 1.0])
    a = np.array([1.0, -2.0 * gain * math.cos(w0), 2.0 * gain - 1.0])
    return np.concatenate((b, a))[None, :]


def kaiserord(ripple_db: float, width: float) -> tuple[int, float]:
    """``scipy.signal.kaiserord``: taps and Kaiser beta for ``ripple_db`` of attenuation over a
    transition ``width`` (a fraction of Nyquist)."""
    a = abs(ripple_db)
    if a > 50:
        beta = 0.1102 * (a - 8.7)
    elif a > 21:
        beta = 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    else:
        beta = 0.0
    return int(math.ceil((a - 7.95) / 2.285 / (np.pi * width) + 1)), beta


def kaiser_lowpass(numtaps: int, cutoff_hz: float, beta: float, fs: float) -> np.ndarray:
    """``scipy.signal.firwin(numtaps, cutoff_hz, window=("kaiser", beta), fs=fs)`` (unit DC gain)."""
    c = 2.0 * cutoff_hz / fs
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = c * np.sinc(c * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


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
    ``n - 1``. ``zi``: ``scipy.signal.sosfilt_zi(sos)`` if already computed.

    Row by row, not one 2-D ``sosfilt`` call: the recursion is latency-bound, and a row's
    forward pass, reversed copy and backward pass then stay in the CPU cache (4 EMG rows of a
    310-s block at 250 Hz: 4.4 ms row by row, 6.4-8.5 ms as one 2-D call, 8-10 ms as two complex
    rows carrying two channels each; measured on this machine).
    """
    sos = np.asarray(sos, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if zi is None:
        zi = sosfilt_zi(sos)
    zi = np.reshape(zi, (len(sos), 1, 2))
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    pad = max(0, min(sosfiltfilt_padlen(sos) if padlen is None else int(padlen), n - 1))
    y = np.empty(rows.shape, dtype=np.float64)
    for r in range(len(rows)):
        y[r] = _filtfilt_rows(sos, zi, rows[r : r + 1], pad)[0]
    return y.reshape(x.shape)


def _filtfilt_rows(sos: np.ndarray, zi: np.ndarray, rows: np.ndarray, pad: int) -> np.ndarray:
    """Forward-backward ``sos`` filter of a 2-D float64 array, odd-extended by ``pad`` samples
    at both ends."""
    n = rows.shape[-1]
    ext = np.empty((len(rows), n + 2 * pad), dtype=rows.dtype)
    ext[:, pad : pad + n] = rows
    if pad:  # odd extension
        ext[:, :pad] = 2 * rows[:, :1] - rows[:, pad:0:-1]
        ext[:, pad + n :] = 2 * rows[:, -1:] - rows[:, -2 : -pad - 2 : -1]
    sos = np.ascontiguousarray(sos, dtype=ext.dtype)
    _sosfilt(sos, ext, np.ascontiguousarray(np.moveaxis(zi * ext[None, :, :1], 0, 1)))  # in place
    rev = np.ascontiguousarray(ext[:, ::-1])
    _sosfilt(sos, rev, np.ascontiguousarray(np.moveaxis(zi * rev[None, :, :1], 0, 1)))
    return rev[:, pad + n - 1 : (pad - 1 if pad else None) : -1]


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

    A Kaiser window design (``kaiserord`` for ``AA_DESIGN_DB`` = 70 dB over the
    transition ``anti_alias_edges``, ``kaiser_lowpass`` cut-off midway), at the upsampled rate
    ``fs_in x up``; then each of the ``up`` polyphase branches ``h[p::up]`` is scaled to sum to
    ``1 / up``, so every output sample has exactly unit DC gain (the resampler multiplies by
    ``up``) and the DC images at ``k x fs_in`` are exact zeros. Measured stopband: >=
    ``AA_STOPBAND_DB`` (60 dB) at every corpus rate (tests/psg_prep/test_psg_filters.py).
    """
    fs_up = fs_in * up
    fs_out = fs_in * up / down
    keep, stop = anti_alias_edges(fs_in, fs_out, keep_hz)
    numtaps, beta = kaiserord(AA_DESIGN_DB, (stop - keep) / (fs_up / 2.0))
    numtaps |= 1  # odd: a centred, linear-phase FIR (resample_poly's delay convention)
    h = kaiser_lowpass(numtaps, (keep + stop) / 2.0, beta, fs_up)
    for p in range(up):
        branch = h[p::up].sum()
        if branch <= 0:
            raise ValueError(f"polyphase branch {p} of {up} has DC gain {branch:g}: design too short")
        h[p::up] /= branch * up
    return h
