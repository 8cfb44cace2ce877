"""The signal tools psg_prep and sunrise_prep share that ``scipy.signal`` does not provide.

Designs and filters are ``scipy.signal``'s (``butter``, ``iirnotch``, ``sosfiltfilt``,
``resample_poly``, ...), called directly where they are used. What is here:

- ``anti_alias_fir``: the Kaiser anti-aliasing FIR for ``resample_poly(x, up, down, window=h)``
  with a stated stopband and each polyphase branch scaled to exactly unit DC gain. scipy's own
  default window normalises the filter as a whole, so a branch's DC gain is off by up to ~1e-3:
  on a DC-coupled recording whose offset is 100-1000x its signal, that leaves a spurious line at
  the DC image (a 125 -> 100 Hz resampling puts it on 25 Hz); per-branch scaling puts exact
  zeros there.
- ``sosfiltfilt_padlen``: ``scipy.signal.sosfiltfilt``'s default pad length, which scipy
  computes inside the function and does not expose; psg_prep's streamed filter needs it to
  extend a block's end exactly as ``sosfiltfilt`` extends a signal's end.

scipy is a dependency of sunrise-common (pyproject.toml) for this module.
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
    transition ``anti_alias_edges``, ``scipy.signal.firwin`` cut-off midway), at the upsampled
    rate ``fs_in x up``; then each of the ``up`` polyphase branches ``h[p::up]`` is scaled to
    sum to ``1 / up``, so every output sample has exactly unit DC gain (the resampler multiplies
    by ``up``) and the DC images at ``k x fs_in`` are exact zeros. Measured stopband: >=
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
