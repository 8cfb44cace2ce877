"""sunrise_common.dsp equals scipy: the zero-phase filter, the anti-aliasing FIR; and the one
noon-anchor offset (issue 17: one copy of each signal tool)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal as sps

from sunrise_common.dsp import (
    anti_alias_edges,
    anti_alias_fir,
    butter_sos,
    kaiser_lowpass,
    kaiserord,
    notch_sos,
    sosfilt,
    sosfilt_inplace,
    sosfilt_zi,
    sosfiltfilt,
    sosfiltfilt_padlen,
)
from sunrise_common.identity import time_of_day_offset_s, wrap_offset_s

FILTERS = {
    "butter2 lowpass 0.1 Hz at 10 Hz": sps.butter(2, 0.1, "lowpass", fs=10.0, output="sos"),
    "butter2 bandpass 0.15-0.6 Hz at 10 Hz": sps.butter(2, [0.15, 0.6], "bandpass", fs=10.0, output="sos"),
    "butter4 bandpass 0.3-35 Hz at 100 Hz": sps.butter(4, [0.3, 35.0], "bandpass", fs=100.0, output="sos"),
    "butter4 highpass + notch at 250 Hz": np.vstack(
        [sps.butter(4, 10.0, "highpass", fs=250.0, output="sos"), sps.tf2sos(*sps.iirnotch(50.0, 30.0, fs=250.0))]
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
@pytest.mark.parametrize("n", [2, 5, 40, 3000])
def test_sosfiltfilt_equals_scipy_with_its_default_odd_padding(name, n):
    sos = FILTERS[name]
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n)).cumsum(axis=1) + 50.0  # drifting, with an offset: edges matter
    ref = sps.sosfiltfilt(sos, x, axis=-1, padtype="odd", padlen=min(sosfiltfilt_padlen(sos), n - 1))
    got = sosfiltfilt(sos, x)
    scale = np.abs(ref).max()
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 1e-9 * scale
    assert np.max(np.abs(got[1] - sosfiltfilt(sos, x[1], zi=sps.sosfilt_zi(sos)))) <= 1e-12 * scale  # 1-D = the row


@pytest.mark.parametrize("rows", [1, 2, 3, 5])
def test_sosfiltfilt_rows_of_a_2d_call_equal_each_row_alone_bit_for_bit(rows):
    sos = FILTERS["butter4 highpass + notch at 250 Hz"]
    x = np.random.default_rng(rows).standard_normal((rows, 2000)) * 1e3 + 7.0
    together = sosfiltfilt(sos, x)
    for r in range(rows):
        assert np.array_equal(together[r], sosfiltfilt(sos, x[r]))


def test_sosfiltfilt_default_padlen_is_scipys():
    sos = FILTERS["butter4 bandpass 0.3-35 Hz at 100 Hz"]
    x = np.random.default_rng(0).standard_normal(5000)
    assert np.max(np.abs(sosfiltfilt(sos, x) - sps.sosfiltfilt(sos, x))) <= 1e-12 * np.abs(x).max()


def test_sosfiltfilt_explicit_padlen_matches_scipy_on_3d_input():
    sos = FILTERS["butter2 bandpass 0.15-0.6 Hz at 10 Hz"]
    x = np.random.default_rng(1).standard_normal((2, 3, 700))
    ref = sps.sosfiltfilt(sos, x, axis=-1, padlen=100)
    assert np.max(np.abs(sosfiltfilt(sos, x, padlen=100) - ref)) <= 1e-12


@pytest.mark.parametrize("fs_in,up,down,keep", [(256.0, 25, 64, 35.0), (256.0, 125, 128, 100.0),
                                                (256.0, 25, 128, 15.0), (100.0, 1, 10, None), (125.0, 4, 5, None)])
def test_anti_alias_fir_is_scipys_kaiser_firwin_with_unit_dc_branches(fs_in, up, down, keep):
    h = anti_alias_fir(fs_in, up, down, keep)
    fs_up = fs_in * up
    k, stop = anti_alias_edges(fs_in, fs_up / down, keep)
    numtaps, beta = sps.kaiserord(70.0, (stop - k) / (fs_up / 2))
    ref = sps.firwin(numtaps | 1, (k + stop) / 2, window=("kaiser", beta), fs=fs_up)
    for p in range(up):
        ref[p::up] /= ref[p::up].sum() * up
        assert abs(h[p::up].sum() * up - 1.0) < 1e-12
    assert np.max(np.abs(h - ref)) <= 1e-15 * np.abs(ref).max()
    # 60 dB from the stop edge up, at the upsampled rate.
    w, resp = sps.freqz(h * up, worN=1 << 15, fs=fs_up)
    stopband = np.abs(resp[w >= stop])
    assert 20 * np.log10(stopband.max() / up) <= -60.0


def test_resample_poly_with_the_fir_keeps_dc_exactly():
    x = np.full(1000, 1234.5)
    y = sps.resample_poly(x, 25, 64, window=anti_alias_fir(256.0, 25, 64, 35.0))
    assert np.max(np.abs(y[50:-50] - 1234.5)) < 1e-9


def test_noon_anchor_offset_and_its_wrapped_difference():
    assert time_of_day_offset_s(22, 30, 0) == 37800
    assert time_of_day_offset_s(12, 0, 0) == 0
    assert time_of_day_offset_s(11, 59, 59.5) == 86399.5
    assert wrap_offset_s(86000.0 - 100.0) == 85900.0 - 86400.0
    assert wrap_offset_s(-43200.0) == -43200.0
    assert wrap_offset_s(43200.0) == -43200.0
    assert np.array_equal(wrap_offset_s(np.array([0.0, 50000.0])), [0.0, 50000.0 - 86400.0])


BUTTER_CASES = [(4, [0.3, 35.0], "bandpass", 100.0), (4, [0.3, 70.0], "bandpass", 200.0),
                 (4, [10.0, 100.0], "bandpass", 250.0), (4, [0.1, 15.0], "bandpass", 50.0),
                 (4, 10.0, "highpass", 125.0), (4, 0.3, "highpass", 100.0), (4, 35.0, "lowpass", 100.0),
                 (2, 0.1, "lowpass", 10.0), (2, [0.15, 0.6], "bandpass", 10.0), (3, 5.0, "lowpass", 50.0),
                 (3, [1.0, 10.0], "bandpass", 25.0), (1, 2.0, "highpass", 50.0)]


@pytest.mark.parametrize("order,freqs,btype,fs", BUTTER_CASES)
def test_butter_sos_and_its_zi_equal_scipy(order, freqs, btype, fs):
    ref = sps.butter(order, freqs, btype, fs=fs, output="sos")
    got = butter_sos(order, freqs, btype, fs)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 1e-12 * np.abs(ref).max()
    assert np.max(np.abs(sosfilt_zi(got) - sps.sosfilt_zi(ref))) <= 1e-9 * np.abs(sps.sosfilt_zi(ref)).max()


@pytest.mark.parametrize("f0,q,fs", [(50.0, 30.0, 250.0), (60.0, 30.0, 250.0), (50.0, 30.0, 200.0), (50.0, 10.0, 1000.0)])
def test_notch_sos_equals_scipy_iirnotch_as_sos(f0, q, fs):
    ref = sps.tf2sos(*sps.iirnotch(f0, q, fs=fs))
    assert np.max(np.abs(notch_sos(f0, q, fs) - ref)) <= 1e-14


@pytest.mark.parametrize("ripple,width", [(70.0, 0.05), (70.0, 0.0123), (40.0, 0.1), (15.0, 0.2)])
def test_kaiserord_and_kaiser_lowpass_equal_scipy(ripple, width):
    assert kaiserord(ripple, width) == tuple(sps.kaiserord(ripple, width))
    numtaps, beta = sps.kaiserord(ripple, width)
    ref = sps.firwin(numtaps | 1, 12.5, window=("kaiser", beta), fs=100.0)
    assert np.max(np.abs(kaiser_lowpass(numtaps | 1, 12.5, beta, 100.0) - ref)) <= 1e-15


def test_sosfilt_equals_scipy_and_returns_the_final_state():
    sos = FILTERS["butter4 bandpass 0.3-35 Hz at 100 Hz"]
    x = np.random.default_rng(3).standard_normal((3, 500))
    zi = np.random.default_rng(4).standard_normal((len(sos), 3, 2))
    ref, ref_zf = sps.sosfilt(sos, x, axis=-1, zi=zi)
    got, zf = sosfilt(sos, x, zi)
    assert np.array_equal(got, ref) and np.array_equal(zf, ref_zf)
    one = zi[:, :1].copy()
    sosfilt(sos, x[:1], one)
    assert np.array_equal(one, zi[:, :1])  # the initial state passed in is not modified


def test_sosfilt_inplace_equals_scipy_and_carries_the_state_across_calls():
    sos = FILTERS["butter4 highpass + notch at 250 Hz"]
    x = np.random.default_rng(5).standard_normal((2, 900))
    ref, _ = sps.sosfilt(sos, x, axis=-1, zi=np.zeros((len(sos), 2, 2)))
    state = np.zeros((2, len(sos), 2))
    a, b = np.ascontiguousarray(x[:, :400]), np.ascontiguousarray(x[:, 400:])
    sosfilt_inplace(sos, a, state)
    sosfilt_inplace(sos, b, state)
    assert np.array_equal(np.hstack([a, b]), ref)


def test_importing_dsp_does_not_import_scipy_signal():
    code = "import sys, sunrise_common.dsp; print('scipy.signal' in sys.modules, 'scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_identity_and_ingest_do_not_import_scipy():
    code = "import sys, sunrise_common.identity, ingest.handler; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# What psg_prep really designs: every channel type x the rates PSGs come in x mains 50/60 Hz or
# none, through psg_prep.filters.plan_channel (29 distinct IIR designs, 49 distinct FIRs).
PSG_RATES = (10, 16, 25, 32, 64, 100, 125, 128, 200, 250, 256, 500, 512, 1000, 1024)


def _psg_prep_designs() -> tuple[dict, dict]:
    from psg_prep.filters import TYPE_SPECS, plan_channel

    iir: dict[tuple, np.ndarray] = {}
    fir: dict[tuple, tuple[np.ndarray, float, float]] = {}
    for ctype in TYPE_SPECS:
        for fs in PSG_RATES:
            for mains in (50.0, 60.0, None):
                plan, _ = plan_channel(ctype, float(fs), notch_hz=mains)
                if plan.sos is not None:
                    iir.setdefault((plan.band, plan.notch_hz, plan.fs_out), plan.sos)
                if plan.fir is not None:
                    fir.setdefault((plan.fs_in, plan.up, plan.down), (plan.fir, plan.aa_pass_hz, plan.aa_stop_hz))
    return iir, fir


PSG_IIR, PSG_FIR = _psg_prep_designs()


def _scipy_band(band: tuple, notch: float | None, fs: float) -> np.ndarray:
    from psg_prep.filters import FILTER_ORDER, NOTCH_Q

    lo, hi = band
    parts = []
    if lo is not None and hi is not None:
        parts.append(sps.butter(FILTER_ORDER, [lo, hi], "bandpass", fs=fs, output="sos"))
    elif lo is not None:
        parts.append(sps.butter(FILTER_ORDER, lo, "highpass", fs=fs, output="sos"))
    elif hi is not None:
        parts.append(sps.butter(FILTER_ORDER, hi, "lowpass", fs=fs, output="sos"))
    if notch is not None:
        parts.append(sps.tf2sos(*sps.iirnotch(notch, NOTCH_Q, fs=fs)))
    return np.vstack(parts)


def test_the_psg_prep_designs_cover_the_cases_that_matter():
    keys = set(PSG_IIR)
    assert {((0.1, None), None, float(fs)) for fs in (10, 16, 25, 32)} <= keys  # respiration, slow rates
    assert {((0.3, None), None, float(fs)) for fs in (64, 100, 125, 128)} <= keys  # EEG/EOG/ECG
    assert {((10.0, 100.0), 50.0, 250.0), ((10.0, 100.0), 60.0, 250.0)} <= keys  # EMG + notch
    assert {((10.0, None), 50.0, 125.0), ((10.0, None), 60.0, 200.0)} <= keys  # notch at 125, 200 Hz


@pytest.mark.parametrize("key", list(PSG_IIR), ids=lambda k: f"{k[0][0]}-{k[0][1]}Hz notch{k[1]} at {k[2]:g}Hz")
def test_psg_prep_iir_designs_equal_scipy(key):
    band, notch, fs = key
    got, ref = PSG_IIR[key], _scipy_band(band, notch, fs)
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) <= 1e-12 * np.abs(ref).max()
    zi_ref = sps.sosfilt_zi(ref)
    assert np.max(np.abs(sosfilt_zi(got) - zi_ref)) <= 1e-9 * np.abs(zi_ref).max()


@pytest.mark.parametrize("key", list(PSG_FIR), ids=lambda k: f"{k[0]:g}Hz x{k[1]}/{k[2]}")
def test_psg_prep_anti_alias_firs_equal_scipy(key):
    fs_in, up, down = key
    h, keep, stop = PSG_FIR[key]
    fs_up = fs_in * up
    numtaps, beta = sps.kaiserord(70.0, (stop - keep) / (fs_up / 2))
    ref = sps.firwin(numtaps | 1, (keep + stop) / 2, window=("kaiser", beta), fs=fs_up)
    for p in range(up):
        ref[p::up] /= ref[p::up].sum() * up
    assert h.shape == ref.shape
    assert np.max(np.abs(h - ref)) <= 1e-15 * np.abs(ref).max()
