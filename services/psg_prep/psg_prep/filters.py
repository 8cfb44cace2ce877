"""Per-type filtering, resampling, unit normalisation and signal quality, chunk by chunk.

Processing per channel type (``TYPE_SPECS``); bands are the AASM recommended filter settings
(``AASM_BANDS``: AASM Manual for the Scoring of Sleep and Associated Events, v2.x, technical
specifications, "routinely recorded filter settings"), applied where the output rate can carry
them:

============================  ==============  ===========  =======  ==========================
type                          band (Hz)       target (Hz)  notch    resampling
============================  ==============  ===========  =======  ==========================
EEG, EOG                      0.3 - 35        100          no       polyphase, then band-pass
EMG_CHIN, EMG_LEG             10 - 100        250          yes      polyphase, then band-pass
ECG                           0.3 - 70        200          no       polyphase, then band-pass
SNORE                         10 - 100        250          yes      polyphase, then band-pass
AIRFLOW_THERMISTOR,           0.1 - 15        50           no       polyphase, then band-pass
NASAL_PRESSURE, EFFORT_*
SPO2, PULSE                   none            1            no       mean over each output period
POSITION                      none            1            no       sample pick (categorical)
MARKER                        none            10           no       largest magnitude per period
UNKNOWN                       none            <= 100       no       polyphase when above 100 Hz
============================  ==============  ===========  =======  ==========================

Choices and why:

- Target rates are the lowest round rates that carry the AASM band with the low-pass edge at
  <= 0.4 x the rate (room for the filter roll-off): EEG/EOG 100 Hz (35 Hz; what YASA expects),
  ECG 200 Hz (70 Hz), EMG/snore 250 Hz (100 Hz; 200 Hz, the AASM minimum sampling rate, puts
  100 Hz at Nyquist), respiratory 50 Hz (15 Hz; the AASM minimum of 25 Hz cannot carry 15 Hz).
- Where the input rate is below the target, the channel is not resampled (never upsampled) and
  a band edge at or above 0.45 x its rate is not applied; the band actually applied is recorded
  per channel (``ChannelPlan.band``, ``band_hz`` in meta.json) next to the AASM band, with a
  note (a 125-Hz chin EMG gets 10 Hz high-pass + notch: its data end at the 62.5 Hz Nyquist).
- SpO2/pulse averaged per second: no ringing or overshoot (a polyphase filter would produce
  values above 100 % at dropouts).
- Notch (default 50 Hz, ``notch_hz``) only for EMG and snore, whose AASM band contains mains;
  not on ECG (the AASM does not ask for one, and it would ring on R-peaks).

Filters are 4th-order Butterworth band-passes (second-order sections) applied forward and
backward (``scipy.signal.sosfiltfilt``: zero phase, effective order 8, -6 dB at the band edges).

Resampling is polyphase (``scipy.signal.resample_poly``'s definition, computed as one BLAS
matrix product, see ``PolyphaseMatrix``), done first so the IIR runs at the lower rate. Two
things keep it from leaking the (often large, drifting) DC of DC-coupled recordings into
spurious lines (a 125 -> 100 Hz resampling puts the DC image at 125 Hz onto 25 Hz):

- the anti-aliasing FIR (``anti_alias_fir``) is a Kaiser design with a stated stopband:
  >= ``AA_STOPBAND_DB`` (60 dB) of attenuation from ``min(fs_out - keep, fs_in / 2)`` up,
  ``keep`` being the low-pass edge (0.4 x fs_out without one), so nothing aliases into
  ``[0, keep]`` and no image of the input survives; and each of its ``up`` polyphase branches is
  scaled to exactly unit DC gain, which puts exact zeros on the DC images (k x fs_in);
- a per-segment offset (the median of the segment's first second) is subtracted before
  resampling, so the resampler works on small numbers; it is added back only for channels
  without a high-pass (with one, the high-pass removes it anyway).

Chunking: each channel is processed in blocks of ``block_s`` seconds with ``margin`` seconds of
real signal on each side (``margin_s = clip(10 / low_edge, 5, 120)``: 33 s for 0.3 Hz, 100 s for
0.1 Hz), and only the middle is kept; where the margin is >= 10 % of the block the forward
IIR pass is instead streamed exactly across blocks and only the backward pass uses the right
margin (``StreamProcessor``). The resampling grid is kept exact by making block and
margin lengths multiples of the polyphase ``down`` factor. The result equals whole-signal
processing to within ``CHUNK_RTOL`` (1e-6) of the signal's standard deviation (tested, and
tested against plain scipy in tests/psg_prep/test_psg_reference.py); memory is bounded by the
block size, independent of the recording length.

Units: EEG/EOG/EMG/ECG are converted to uV from V/mV/uV/nV (``physical_dimension``); SpO2 given as
a fraction (physical maximum <= 1.5) is converted to %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from scipy import signal as sps

from sunrise_common.dsp import AA_STOPBAND_DB, anti_alias_edges, anti_alias_fir, sosfiltfilt_padlen


EPOCH_S = 30.0


# AASM recommended filter settings (low-frequency, high-frequency filter; Hz), AASM Manual for
# the Scoring of Sleep and Associated Events v2.x, technical specifications. The respiratory
# row is the manual's "respiration" setting (oronasal thermal flow, effort belts); it is also
# applied to nasal pressure.
AASM_BANDS: dict[str, tuple[float, float]] = {
    "EEG": (0.3, 35.0),
    "EOG": (0.3, 35.0),
    "EMG": (10.0, 100.0),
    "ECG": (0.3, 70.0),
    "RESPIRATION": (0.1, 15.0),
    "SNORE": (10.0, 100.0),
}


@dataclass(frozen=True)
class TypeSpec:
    """Processing of one channel type.

    ``band``: filter edges in Hz (None = open), the AASM setting where one exists; ``aasm``:
    the AASM key in ``AASM_BANDS`` (None: no AASM setting); ``target_hz``: output rate;
    ``method``: "poly" | "mean" | "pick" | "absmax"; ``unit``: target unit, or None to keep
    the file's.
    """

    band: tuple[float | None, float | None]
    target_hz: float
    notch: bool
    method: str
    unit: str | None
    aasm: str | None = None


TYPE_SPECS: dict[str, TypeSpec] = {
    "EEG": TypeSpec(AASM_BANDS["EEG"], 100.0, False, "poly", "uV", "EEG"),
    "EOG": TypeSpec(AASM_BANDS["EOG"], 100.0, False, "poly", "uV", "EOG"),
    "EMG_CHIN": TypeSpec(AASM_BANDS["EMG"], 250.0, True, "poly", "uV", "EMG"),
    "EMG_LEG": TypeSpec(AASM_BANDS["EMG"], 250.0, True, "poly", "uV", "EMG"),
    "ECG": TypeSpec(AASM_BANDS["ECG"], 200.0, False, "poly", "uV", "ECG"),
    "SNORE": TypeSpec(AASM_BANDS["SNORE"], 250.0, True, "poly", None, "SNORE"),
    "AIRFLOW_THERMISTOR": TypeSpec(AASM_BANDS["RESPIRATION"], 50.0, False, "poly", None, "RESPIRATION"),
    "NASAL_PRESSURE": TypeSpec(AASM_BANDS["RESPIRATION"], 50.0, False, "poly", None, "RESPIRATION"),
    "EFFORT_THORAX": TypeSpec(AASM_BANDS["RESPIRATION"], 50.0, False, "poly", None, "RESPIRATION"),
    "EFFORT_ABDOMEN": TypeSpec(AASM_BANDS["RESPIRATION"], 50.0, False, "poly", None, "RESPIRATION"),
    "SPO2": TypeSpec((None, None), 1.0, False, "mean", "%"),
    "PULSE": TypeSpec((None, None), 1.0, False, "mean", None),
    "POSITION": TypeSpec((None, None), 1.0, False, "pick", None),
    "MARKER": TypeSpec((None, None), 10.0, False, "absmax", None),
    "UNKNOWN": TypeSpec((None, None), 100.0, False, "poly", None),
}

FILTER_ORDER = 4
NOTCH_Q = 30.0

_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def unit_scale(ctype: str, dimension: str, physical_max: float) -> tuple[float, str, str | None]:
    """Factor to multiply physical values by, the resulting unit, and a warning (or None)."""
    spec = TYPE_SPECS[ctype]
    dim = dimension.strip()
    if spec.unit == "uV":
        key = dim.lower().replace("micro", "u")
        if key in _TO_UV:
            return _TO_UV[key], "uV", None
        return 1.0, dim, f"unit {dim!r} is not V/mV/uV/nV: kept as is"
    if spec.unit == "%":
        if dim == "%":
            return 1.0, "%", None
        if abs(physical_max) <= 1.5:
            return 100.0, "%", None
        return 1.0, dim or "%", None if not dim else f"SpO2 unit {dim!r}: kept as is"
    return 1.0, dim, None


@dataclass
class ChannelPlan:
    """How one channel is processed (all rates in Hz, lengths in input samples).

    ``band`` is the band actually applied (None = edge not applied), ``aasm_band`` the AASM
    recommendation for the type (None: none exists); ``aa_pass_hz``/``aa_stop_hz`` the
    anti-aliasing FIR's edges when the channel is resampled by polyphase; ``offset_len`` the
    number of first samples whose median is subtracted before resampling; ``restore_offset``
    whether it is added back (no high-pass follows).
    """

    ctype: str
    fs_in: float
    fs_out: float
    up: int
    down: int
    method: str
    sos: np.ndarray | None
    scale: float
    margin: int
    block: int
    description: str
    band: tuple[float | None, float | None] = (None, None)
    notch_hz: float | None = None
    notes: list[str] = field(default_factory=list)
    aasm_band: tuple[float, float] | None = None
    fir: np.ndarray | None = None  # polyphase anti-aliasing FIR, float64, unit DC gain per branch
    aa_pass_hz: float | None = None
    aa_stop_hz: float | None = None
    zi: np.ndarray | None = None  # sosfilt_zi(sos), computed once
    padlen: int = 0
    poly: PolyphaseMatrix | None = None
    offset_len: int = 0
    restore_offset: bool = False

    def __post_init__(self) -> None:
        if self.method == "poly" and self.up != self.down:
            self.aa_pass_hz, self.aa_stop_hz = anti_alias_edges(self.fs_in, self.fs_out, self.band[1])
            if self.fir is None:
                self.fir = anti_alias_fir(self.fs_in, self.up, self.down, self.band[1])
            self.offset_len = max(1, min(self.block, int(round(self.fs_in))))
            self.restore_offset = self.band[0] is None
        self.poly = PolyphaseMatrix(self.up, self.down, self.fir) if self.fir is not None else None
        if self.sos is not None and self.zi is None:
            self.zi = sps.sosfilt_zi(self.sos)
            self.padlen = sosfiltfilt_padlen(self.sos)

    @property
    def out_per_in(self) -> Fraction:
        return Fraction(self.up, self.down)


class PolyphaseMatrix:
    """``resample_poly`` as one matrix product (BLAS, float64), equal to scipy to rounding.

    Output sample ``m = g * up + p`` is ``sum_j x[j] * up * h[c + m * down - j * up]`` with
    ``c = (len(h) - 1) // 2`` (the centred FIR, zero padding outside the signal): exactly what
    ``scipy.signal.resample_poly(x, up, down, window=h)`` computes. Grouping the outputs by
    phase ``p`` gives frames of ``L`` consecutive inputs hopping by ``down`` and a fixed
    ``(L, up)`` weight matrix, so the whole block is ``frames @ W`` (computed in runs of
    phases and blocks of frames, see ``__call__``). Measured against ``upfirdn`` (CPU time, 4
    channels x 360 s at 256 Hz, loaded machine): 1.4-2x faster for 256 -> 100, 200 and 50 Hz,
    about equal for 256 -> 250 Hz. Float64 throughout: DC-coupled channels carry offsets
    100-1000x their signal, and float32 sums of them would leave periodic rounding patterns.

    Kept over ``scipy.signal.resample_poly`` because it pays in a warm service (issue 25):
    ``prepare_psg`` of the 8-h, 20-channel, 256-Hz night in a process that has served a night
    already, median CPU of 3 nights, two rounds: 2.48 and 2.67 CPU-s with this class, 3.23 and
    3.57 with ``resample_poly`` (same window, same offset handling), i.e. +30 %.
    """

    def __init__(self, up: int, down: int, h: np.ndarray) -> None:
        self.up, self.down = up, down
        n = len(h)
        c = (n - 1) // 2
        p = np.arange(up)
        j_lo = -((-(c + p * down - (n - 1))) // up)
        j_hi = (c + p * down) // up
        self.j0 = int(j_lo.min())
        self.length = int(j_hi.max()) - self.j0 + 1
        idx = c + p[None, :] * down - (self.j0 + np.arange(self.length)[:, None]) * up
        inside = (idx >= 0) & (idx < n)
        self.weights = np.where(inside, np.asarray(h, dtype=np.float64)[np.clip(idx, 0, n - 1)], 0.0) * up
        # Consecutive phases start ``down / up`` inputs apart, so when up ~ down most of a
        # column of ``weights`` is zero (256 -> 250 Hz: 40 taps in 166 rows). Phases are
        # computed in runs whose span adds at most the taps per phase to each frame: no more
        # than 2x the useful products, and matrices still wide enough for a GEMM.
        taps = -(-n // up)
        run = max(1, min(up, 1 + taps * up // max(down, 1)))
        self.parts: list[tuple[int, int, int, int, np.ndarray]] = []  # p0, p1, j0, length, W
        for p0 in range(0, up, run):
            w = self.weights[:, p0 : p0 + run]
            used = np.nonzero(np.any(w != 0, axis=1))[0]
            lo, hi = int(used[0]), int(used[-1])
            self.parts.append((p0, p0 + w.shape[1], self.j0 + lo, hi - lo + 1, np.ascontiguousarray(w[lo : hi + 1])))

    def __call__(self, x: np.ndarray, offset: float | np.ndarray = 0.0) -> np.ndarray:
        """Resample ``x - offset`` along its last axis (float64, ``ceil(n * up / down)`` samples).

        ``x`` is 1-D or 2-D (channels x samples, sharing this filter); ``offset`` a scalar or
        one value per channel.
        """
        x2 = np.atleast_2d(x)
        rows, n = x2.shape
        n_out = -(-n * self.up // self.down)
        if n_out == 0:
            return np.empty((rows, 0) if x.ndim == 2 else 0, dtype=np.float64)
        groups = -(-n_out // self.up)
        left = max(0, -self.j0)
        right = max(0, (groups - 1) * self.down + self.j0 + self.length - n)
        xp = np.zeros((rows, left + n + right), dtype=np.float64)
        xp[:, left : left + n] = x2
        # In float64: x - offset in float32 would round.
        xp[:, left : left + n] -= np.reshape(np.asarray(offset, dtype=np.float64), (-1, 1))
        out = np.empty((rows, groups, self.up), dtype=np.float64)
        for p0, p1, j0, length, w in self.parts:
            frames = np.lib.stride_tricks.as_strided(
                xp[:, j0 + left :], shape=(rows, groups, length), strides=(xp.strides[0], self.down * 8, 8),
                writeable=False,
            )
            # OpenBLAS runs a GEMM on the calling thread when m*n*k <= 4 x 65536 (interface/gemm.c,
            # GEMM_MULTITHREAD_THRESHOLD x SMP_THRESHOLD_MIN); larger ones wake its own thread
            # pool, which on a loaded 2-core machine cost 10-37x the CPU of these small products.
            # Blocks under the threshold keep BLAS on our threads (we parallelise over channels);
            # each block's frames are copied just before use (cache-sized). Kept because the warm
            # benchmark shows it matters (issue 25): one GEMM per row and part instead took
            # ``prepare_psg`` of the 8-h, 20-channel night from 2.71 / 2.49 to 13.8 / 18.4 CPU-s
            # (median of 3 warm nights, two rounds back to back, load 5.7-8.8).
            step = max(1, _BLAS_SINGLE_THREAD_MNK // (length * (p1 - p0)))
            for r in range(rows):
                for g in range(0, groups, step):
                    np.matmul(np.ascontiguousarray(frames[r, g : g + step]), w, out=out[r, g : g + step, p0:p1])
        y = out.reshape(rows, groups * self.up)[:, :n_out]
        return y if x.ndim == 2 else y[0]


_BLAS_SINGLE_THREAD_MNK = 4 * 65536


def _band_sos(
    lo: float | None, hi: float | None, notch: float | None, fs: float
) -> tuple[np.ndarray | None, list[str]]:
    parts = []
    text = []
    if lo is not None and hi is not None:
        parts.append(sps.butter(FILTER_ORDER, (lo, hi), "bandpass", fs=fs, output="sos"))
        text.append(f"butterworth bandpass {lo:g}-{hi:g} Hz order {FILTER_ORDER} zero-phase")
    elif lo is not None:
        parts.append(sps.butter(FILTER_ORDER, lo, "highpass", fs=fs, output="sos"))
        text.append(f"butterworth highpass {lo:g} Hz order {FILTER_ORDER} zero-phase")
    elif hi is not None:
        parts.append(sps.butter(FILTER_ORDER, hi, "lowpass", fs=fs, output="sos"))
        text.append(f"butterworth lowpass {hi:g} Hz order {FILTER_ORDER} zero-phase")
    if notch is not None:
        parts.append(sps.tf2sos(*sps.iirnotch(notch, NOTCH_Q, fs=fs)))
        text.append(f"notch {notch:g} Hz Q {NOTCH_Q:g}")
    if not parts:
        return None, []
    return np.vstack(parts), text


# Chunk margin per slowest filter edge: the zero-phase IIR's start-up transient, whose slowest
# pole decays with a time constant of ~0.42 / f s for a 4th-order Butterworth at f Hz, is
# down by ~1e-10 after 10 / f s: chunked output equals whole-signal output to CHUNK_RTOL.
MARGIN_CYCLES = 10.0
MARGIN_MIN_S, MARGIN_MAX_S = 5.0, 120.0
CHUNK_RTOL = 1e-6  # chunked vs whole-signal, as a fraction of the output's standard deviation
BAND_EDGE_FRACTION = 0.45  # band edges at or above 0.45 x the output rate are not applied


def plan_channel(
    ctype: str,
    fs_in: float,
    *,
    dimension: str = "",
    physical_max: float = 0.0,
    notch_hz: float | None = 50.0,
    block_s: float = 300.0,
) -> tuple[ChannelPlan, str]:
    """Plan the processing of one channel; also return the output unit.

    Parameters
    ----------
    ctype : str
        Channel type (a key of ``TYPE_SPECS``).
    fs_in : float
        Input sampling rate, Hz.
    dimension, physical_max : str, float
        The EDF header's physical dimension and maximum (unit conversion).
    notch_hz : float or None
        Mains frequency (Hz) notched where the type asks for it and the band contains it.
    block_s : float
        Processing block length, seconds.
    """
    spec = TYPE_SPECS[ctype]
    notes: list[str] = []
    fs_out = min(spec.target_hz, fs_in)
    ratio = Fraction(fs_out).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    method = spec.method
    if method in ("mean", "pick", "absmax") and up != 1:
        # Block reducers need an integer decimation factor; otherwise anti-aliased polyphase.
        notes.append(f"{fs_in:g} -> {fs_out:g} Hz is not an integer factor: polyphase instead of {method}")
        method = "poly"
    fs_out = fs_in * up / down
    lo, hi = spec.band
    nyq_ok = BAND_EDGE_FRACTION * fs_out
    aasm = "AASM " if spec.aasm else ""
    if lo is not None and lo >= nyq_ok:  # a high-pass at or above 0.45 x rate leaves nothing
        notes.append(f"{aasm}band {lo:g}-{hi:g} Hz not applied: rate {fs_out:g} Hz too low")
        lo = None
        hi = None
    if hi is not None and hi > nyq_ok + 1e-9:
        # Only when the input is below the target rate (never upsampled): its data end at
        # its own Nyquist, which is then the band's upper limit.
        notes.append(
            f"{aasm}low-pass {hi:g} Hz not applied: above {BAND_EDGE_FRACTION:g} x {fs_out:g} Hz; "
            f"the data end at the {fs_out / 2:g} Hz Nyquist"
        )
        hi = None
    notch = None
    if spec.notch and notch_hz is not None and notch_hz <= nyq_ok and (hi is None or notch_hz < hi) and (
        lo is None or notch_hz > lo
    ):
        notch = notch_hz
    sos, text = _band_sos(lo, hi, notch, fs_out)
    margin_s = 0.0
    if sos is not None:
        slowest = min(f for f in (lo, hi, notch) if f is not None)
        margin_s = float(np.clip(MARGIN_CYCLES / slowest, MARGIN_MIN_S, MARGIN_MAX_S))
    if method == "poly" and up != down:
        margin_s = max(margin_s, 2.0)  # polyphase FIR half-length is well under a second
    margin = int(math.ceil(margin_s * fs_in / down)) * down if margin_s else 0
    block = max(down, int(round(block_s * fs_in / down)) * down)
    scale, unit, warn = unit_scale(ctype, dimension, physical_max)
    if warn:
        notes.append(warn)
    plan = ChannelPlan(
        ctype=ctype,
        fs_in=fs_in,
        fs_out=fs_out,
        up=up,
        down=down,
        method=method,
        sos=sos,
        scale=scale,
        margin=margin,
        block=block,
        description="",
        band=(lo, hi),
        notch_hz=notch,
        notes=notes,
        aasm_band=AASM_BANDS[spec.aasm] if spec.aasm else None,
    )
    desc_parts = []
    if up != down:
        if method == "poly":
            desc_parts.append(
                f"resample_poly {fs_in:g}->{fs_out:g} Hz (Kaiser FIR, pass {plan.aa_pass_hz:g} Hz, "
                f">= {AA_STOPBAND_DB:g} dB from {plan.aa_stop_hz:g} Hz)"
            )
        else:
            desc_parts.append(f"{method} {fs_in:g}->{fs_out:g} Hz")
    desc_parts.extend(text)
    plan.description = "; ".join(desc_parts) or "none"
    return plan, unit


def _filtfilt(plan: ChannelPlan, y: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfiltfilt`` (odd extension, its default padlen, limited to the signal)
    along the last axis of a 2-D (channels x samples) array with the plan's filter; float64."""
    return sps.sosfiltfilt(plan.sos, y, axis=-1, padlen=min(plan.padlen, y.shape[-1] - 1))


def segment_offset(plan: ChannelPlan, x: np.ndarray) -> np.ndarray:
    """The offset subtracted before polyphase resampling, per channel of a 2-D array: median of
    a segment's first ``offset_len`` samples (0 when the plan does not resample by polyphase)."""
    if plan.offset_len == 0 or x.shape[-1] == 0:
        return np.zeros(x.shape[0])
    return np.median(x[:, : plan.offset_len], axis=-1)


def _apply(plan: ChannelPlan, seg: np.ndarray, final: bool, offset: np.ndarray) -> np.ndarray:
    """Resample/reduce then filter a 2-D run of scaled input (channels x samples); float32 out."""
    if plan.method == "poly" and plan.up != plan.down:
        if plan.poly is None:
            raise ValueError(f"{plan.ctype}: polyphase plan without a filter")
        y = plan.poly(seg, offset)
    else:
        y = _reduce(plan, seg, final)
    if plan.sos is not None and y.shape[-1] > 1:
        y = _filtfilt(plan, y)
    if plan.restore_offset:
        y = y + offset[:, None]
    return np.asarray(y, dtype=np.float32)


def process_segment(plan: ChannelPlan, x: np.ndarray) -> np.ndarray:
    """Resample/reduce then filter one whole contiguous segment (the reference for chunking).

    ``x``: 1-D, or 2-D (channels x samples) for channels sharing this plan.
    """
    x2 = np.atleast_2d(np.asarray(x, dtype=np.float32))
    if plan.scale != 1.0:
        x2 = x2 * np.float32(plan.scale)
    y = _apply(plan, x2, True, segment_offset(plan, x2))
    return y if np.ndim(x) == 2 else y[0]


def _reduce(plan: ChannelPlan, x: np.ndarray, final: bool) -> np.ndarray:
    """Block reducers (mean, pick, absmax) over integer decimation periods along the last axis
    of a 2-D array; identity at 1:1."""
    if plan.up == plan.down:
        return x
    k = plan.down
    rows, n = x.shape
    n_full = n // k
    head = x[:, : n_full * k].reshape(rows, n_full, k)
    tail = x[:, n_full * k :] if final else x[:, :0]
    if plan.method == "mean":
        out = head.mean(axis=2, dtype=np.float64)
        if tail.shape[1]:
            out = np.hstack([out, tail.mean(axis=1, dtype=np.float64)[:, None]])
    elif plan.method == "pick":
        out = head[:, :, 0]
        if tail.shape[1]:
            out = np.hstack([out, tail[:, :1]])
    else:  # absmax: the sample with the largest magnitude in each period, sign kept
        idx = np.abs(head).argmax(axis=2)
        out = np.take_along_axis(head, idx[:, :, None], axis=2)[:, :, 0]
        if tail.shape[1]:
            out = np.hstack([out, np.take_along_axis(tail, np.abs(tail).argmax(axis=1)[:, None], axis=1)])
    return np.asarray(out, dtype=np.float32)


FIR_MARGIN_S = 2.0  # input context each side of a polyphase window (the FIR half-length is < 0.1 s)
STREAM_MIN_MARGIN_FRACTION = 0.1  # margin / block from which the forward pass is streamed


class StreamProcessor:
    """Chunked, zero-phase processing of one contiguous segment of channels sharing a plan.

    Feed input blocks of any length with :meth:`push` (1-D for one channel, or 2-D channels x
    samples; ``scales`` multiplies each channel, default ``plan.scale``); each call returns the
    output samples that are final, with the same dimensions. :meth:`finish` returns the rest.
    Concatenated outputs equal ``process_segment(plan, whole_input)`` within ``CHUNK_RTOL`` of
    the output's std.

    With a filter whose margin is at least ``STREAM_MIN_MARGIN_FRACTION`` of the block (else
    each block is processed whole, margin on both sides, and the middle kept), the forward
    pass is streamed: its state is carried from block to block, so
    it is computed once per sample and equals the whole-signal forward pass exactly; only the
    backward pass of each block starts ``margin`` seconds past the block's end (on the odd
    extension there, as ``sosfiltfilt`` does at a signal's end) and its start-up transient
    decays over the margin. The resampler sees ``FIR_MARGIN_S`` of context on each side. So
    each block costs ``block`` forward and ``block + margin`` backward samples (not
    ``block + 2 x margin`` for both passes, as whole-block ``sosfiltfilt`` calls would).
    """

    def __init__(self, plan: ChannelPlan, scales: np.ndarray | None = None) -> None:
        self.plan = plan
        self._scales = None if scales is None else np.asarray(scales, dtype=np.float32)[:, None]
        self._rows = 1 if scales is None else len(scales)
        self._buf = np.empty((self._rows, 0), dtype=np.float32)
        self._buf_start = 0  # global input index of _buf[:, 0]
        self._pos = 0  # global input index of the next block to emit
        self._offset: np.ndarray | None = None  # set from the segment's first samples
        self._one_d: bool | None = None
        # Streamed forward pass where the margin is a sizeable part of the block (EEG/EOG/ECG
        # 33 s, respiration 100 s per 300 s: 8-27 % less time per batch, measured); with short
        # margins (EMG/snore, 5 s) its extra copies cost more than the margin saves.
        self._iir = plan.sos is not None and plan.margin >= STREAM_MIN_MARGIN_FRACTION * plan.block
        resamples = plan.method == "poly" and plan.up != plan.down
        self._fir_margin = int(math.ceil(FIR_MARGIN_S * plan.fs_in / plan.down)) * plan.down if resamples else 0
        # Streamed forward pass (filter plans): computed up to output index _f_end, state _zf
        # there; _f_tail = forward output from the next emitted sample to _f_end; _y_tail = the
        # filter input's last samples before _f_end (for the odd extension of a block's end).
        self._f_end = 0
        self._zf: np.ndarray | None = None
        self._f_tail = np.empty((self._rows, 0))
        self._y_tail = np.empty((self._rows, 0))

    def push(self, x: np.ndarray) -> np.ndarray:
        p = self.plan
        if self._one_d is None:
            self._one_d = np.ndim(x) == 1
        x2 = np.atleast_2d(np.asarray(x, dtype=np.float32))
        if x2.shape[0] != self._rows:
            raise ValueError(f"{p.ctype}: {x2.shape[0]} channels pushed to a {self._rows}-channel processor")
        if self._scales is not None:
            x2 = x2 * self._scales
        elif p.scale != 1.0:
            x2 = x2 * np.float32(p.scale)
        self._buf = np.concatenate([self._buf, x2], axis=1) if self._buf.shape[1] else x2
        lookahead = p.block + p.margin + (self._fir_margin if self._iir else 0)
        outs = []
        while self._buf_start + self._buf.shape[1] - self._pos >= lookahead:
            block_end = self._pos + p.block
            outs.append(self._run_iir(block_end, final=False) if self._iir else self._run(block_end, final=False))
        out = np.concatenate(outs, axis=1) if outs else np.empty((self._rows, 0), dtype=np.float32)
        return out[0] if self._one_d else out

    def finish(self) -> np.ndarray:
        end = self._buf_start + self._buf.shape[1]
        if end > self._pos:
            out = self._run_iir(end, final=True) if self._iir else self._run(end, final=True)
        else:
            out = np.empty((self._rows, 0), dtype=np.float32)
        return out[0] if self._one_d else out

    def _run(self, block_end: int, final: bool) -> np.ndarray:
        """A block processed whole, ``margin`` on both sides: resample (or reduce), then
        ``sosfiltfilt`` if the plan has a filter; the middle is kept."""
        p = self.plan
        if self._offset is None:
            # The first run always starts at the segment's first sample, whatever the pushes.
            self._offset = segment_offset(p, self._buf)
        left = min(p.margin, self._pos - self._buf_start) if p.sos is not None or p.method == "poly" else 0
        seg_start = self._pos - left
        seg_end = self._buf.shape[1] + self._buf_start if final else block_end + p.margin
        seg = self._buf[:, seg_start - self._buf_start : seg_end - self._buf_start]
        y = _apply(p, seg, final, self._offset)
        o0 = left * p.up // p.down
        if final:
            out = y[:, o0:]
        else:
            o1 = (block_end - seg_start) * p.up // p.down
            out = y[:, o0:o1]
        self._pos = block_end
        keep_from = max(self._pos - p.margin, self._buf_start)
        self._buf = self._buf[:, keep_from - self._buf_start :].copy()
        self._buf_start = keep_from
        return out

    def _filter_input(self, f_end: int, final: bool) -> np.ndarray:
        """The filter's input (resampled, offset removed; float64) from output index
        ``self._f_end`` to ``f_end`` (to the segment's end when ``final``)."""
        p = self.plan
        i_from = self._f_end * p.down // p.up  # both on the resampling grid
        if p.method == "poly" and p.up != p.down:
            s = max(self._buf_start, i_from - self._fir_margin)
            e = self._buf_start + self._buf.shape[1] if final else f_end * p.down // p.up + self._fir_margin
            y = p.poly(self._buf[:, s - self._buf_start : e - self._buf_start], self._offset)
            o_s = s * p.up // p.down
            return y[:, self._f_end - o_s :] if final else y[:, self._f_end - o_s : f_end - o_s]
        if p.up != p.down:  # a block reducer with a filter: not planned today
            raise ValueError(f"{p.ctype}: {p.method} with a filter")
        e = self._buf_start + self._buf.shape[1] if final else f_end
        return self._buf[:, i_from - self._buf_start : e - self._buf_start].astype(np.float64)

    def _run_iir(self, block_end: int, final: bool) -> np.ndarray:
        """A block of a filter plan: emit outputs [o(pos), o(block_end)) (all that is left when
        ``final``); see the class docstring."""
        p = self.plan
        if self._offset is None:
            self._offset = segment_offset(p, self._buf)
        e0 = self._pos * p.up // p.down
        if self._zf is None and final:  # the whole segment in one block: plain sosfiltfilt
            y = _filtfilt(p, self._filter_input(0, True))
            return self._emit(y, p)
        f_end = (block_end + p.margin) * p.up // p.down
        y_new = np.ascontiguousarray(self._filter_input(f_end, final))
        sos, zi = p.sos, p.zi[:, None, :]
        if self._zf is None:  # the segment's start: odd extension, as sosfiltfilt
            pad = p.padlen
            left = np.ascontiguousarray(2 * y_new[:, :1] - y_new[:, pad:0:-1])
            _, self._zf = sps.sosfilt(sos, left, zi=zi * left[None, :, :1])
        y_all = np.concatenate([self._y_tail, y_new[:, -(p.padlen + 1) :]], axis=1)  # the end of the input
        n_new = y_new.shape[1]
        n_tail = self._f_tail.shape[1]
        n_all = n_tail + n_new
        pad = min(p.padlen, y_all.shape[1] - 1) if not final else min(p.padlen, e0 + n_all - 1)
        right = np.ascontiguousarray(2 * y_all[:, -1:] - y_all[:, -2 : -pad - 2 : -1])
        self._y_tail = y_all[:, -(p.padlen + 1) :].copy()
        y_new, self._zf = sps.sosfilt(sos, y_new, zi=self._zf)  # y_new is now the forward output
        right, _ = sps.sosfilt(sos, right, zi=self._zf)  # a branch: the carried state stays at f_end
        # The backward pass runs on [f_tail, f_new, f_ext] reversed, in one buffer.
        full = np.empty((self._rows, n_all + pad))
        full[:, :pad] = right[:, ::-1]
        full[:, pad : pad + n_new] = y_new[:, ::-1]
        full[:, pad + n_new :] = self._f_tail[:, ::-1]
        n_emit = n_all if final else (block_end - self._pos) * p.up // p.down
        self._f_tail = y_new[:, n_emit - n_tail :].copy() if n_emit >= n_tail else np.concatenate(
            [self._f_tail[:, n_emit:], y_new], axis=1)
        full, _ = sps.sosfilt(sos, full, zi=zi * full[None, :, :1])
        out = self._emit(full[:, ::-1][:, :n_emit], p)  # back in time order: [f_tail, f_new, f_ext]
        self._f_end = e0 + n_all if not final else self._f_end
        self._pos = block_end
        # Input still needed: from the next filter input's resampling context on.
        keep_from = max(self._buf_start, self._f_end * p.down // p.up - self._fir_margin)
        self._buf = self._buf[:, keep_from - self._buf_start :].copy()
        self._buf_start = keep_from
        return out

    def _emit(self, y: np.ndarray, p: ChannelPlan) -> np.ndarray:
        if p.restore_offset:
            y = y + self._offset[:, None]
        return np.asarray(y, dtype=np.float32)


QUALITY_TYPES = frozenset(
    {"EEG", "EOG", "EMG_CHIN", "EMG_LEG", "ECG", "SNORE", "AIRFLOW_THERMISTOR", "NASAL_PRESSURE",
     "EFFORT_THORAX", "EFFORT_ABDOMEN", "UNKNOWN"}
)


@dataclass
class QualityAccumulator:
    """Per-30-s-epoch flat and saturated flags for one channel, from raw physical values.

    - flat: peak-to-peak within the epoch <= 2 digital steps (std ~ 0: a disconnected or
      clipped-to-constant channel);
    - saturated: >= 1 % of the epoch's samples within half a digital step of the physical
      minimum or maximum (the amplifier's rails).

    Not computed for SPO2, PULSE, POSITION and MARKER (``QUALITY_TYPES``): steady values and
    values at the range limits are normal there.
    """

    fs: float
    lsb: float
    physical_min: float
    physical_max: float
    n_epochs: int
    epoch_s: float = EPOCH_S
    enabled: bool = True

    def __post_init__(self) -> None:
        self.vmax = np.full(self.n_epochs, -np.inf)
        self.vmin = np.full(self.n_epochs, np.inf)
        self.n = np.zeros(self.n_epochs, dtype=np.int64)
        self.n_sat = np.zeros(self.n_epochs, dtype=np.int64)

    def add(self, x: np.ndarray, t0: float) -> None:
        """Add samples ``x`` whose first sample is at ``t0`` seconds from the recording start."""
        if len(x) == 0 or not self.enabled:
            return
        e_first = int(math.floor(t0 / self.epoch_s + 1e-9))
        t_end = t0 + len(x) / self.fs
        e_last = int(math.ceil(t_end / self.epoch_s - 1e-9))
        bounds = np.ceil((np.arange(e_first + 1, e_last) * self.epoch_s - t0) * self.fs - 1e-6).astype(np.int64)
        starts = np.concatenate([[0], np.clip(bounds, 0, len(x))])
        epochs = np.arange(e_first, e_first + len(starts))
        valid = np.r_[starts[1:] > starts[:-1], len(x) > starts[-1]]
        starts, epochs = starts[valid], epochs[valid]
        half = 0.5 * self.lsb
        hi, lo = self.physical_max - half, self.physical_min + half
        vmax = np.maximum.reduceat(x, starts)
        vmin = np.minimum.reduceat(x, starts)
        counts = np.diff(np.r_[starts, len(x)])
        nsat = np.zeros(len(starts), dtype=np.int64)
        # Count rail samples only in epochs whose extremes touch a rail (rare): saves two passes.
        for j in np.nonzero((vmax >= hi) | (vmin <= lo))[0]:
            seg = x[starts[j] : starts[j] + counts[j]]
            nsat[j] = int(np.count_nonzero(seg >= hi) + np.count_nonzero(seg <= lo))
        ok = (epochs >= 0) & (epochs < self.n_epochs)
        e = epochs[ok]
        self.vmax[e] = np.maximum(self.vmax[e], vmax[ok])
        self.vmin[e] = np.minimum(self.vmin[e], vmin[ok])
        self.n[e] += counts[ok]
        self.n_sat[e] += nsat[ok]

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        has = self.n > 0
        flat = has & ((self.vmax - self.vmin) <= 2.0 * self.lsb)
        saturated = has & (self.n_sat >= 0.01 * np.maximum(self.n, 1))
        return flat, saturated
