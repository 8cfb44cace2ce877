"""sunrise_common.dsp: what psg_prep and sunrise_prep need beyond scipy.signal (the anti-aliasing
FIR with unit-DC polyphase branches, scipy's default sosfiltfilt pad length); and the one
noon-anchor offset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from sunrise_common.dsp import anti_alias_edges, anti_alias_fir, sosfiltfilt_padlen
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
def test_sosfiltfilt_padlen_is_the_pad_length_scipy_uses_by_default(name):
    sos = FILTERS[name]
    x = np.random.default_rng(0).standard_normal(5000).cumsum() + 50.0  # drifting: the edges matter
    default = sps.sosfiltfilt(sos, x)
    assert np.array_equal(sps.sosfiltfilt(sos, x, padlen=sosfiltfilt_padlen(sos)), default)
    assert not np.array_equal(sps.sosfiltfilt(sos, x, padlen=sosfiltfilt_padlen(sos) + 1), default)


@pytest.mark.parametrize("fs_in,up,down,keep", [(256.0, 25, 64, 35.0), (256.0, 125, 128, 100.0),
                                                (256.0, 25, 128, 15.0), (100.0, 1, 10, None), (125.0, 4, 5, None)])
def test_anti_alias_fir_is_a_kaiser_firwin_with_unit_dc_branches_and_60_db_of_stopband(fs_in, up, down, keep):
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


def test_scipys_default_window_leaves_dc_images_that_the_per_branch_scaling_removes():
    """Why anti_alias_fir is not plain firwin: a 125 -> 100 Hz resampling of a DC offset."""
    x = np.full(4000, 1000.0)
    fs_up = 125.0 * 4
    keep, stop = anti_alias_edges(125.0, 100.0, None)
    numtaps, beta = sps.kaiserord(70.0, (stop - keep) / (fs_up / 2))
    plain = sps.firwin(numtaps | 1, (keep + stop) / 2, window=("kaiser", beta), fs=fs_up)
    ripple_plain = np.ptp(sps.resample_poly(x, 4, 5, window=plain)[100:-100])
    ripple_ours = np.ptp(sps.resample_poly(x, 4, 5, window=anti_alias_fir(125.0, 4, 5))[100:-100])
    assert ripple_ours < 1e-9
    assert ripple_plain > 1e3 * max(ripple_ours, 1e-12)


def test_noon_anchor_offset_and_its_wrapped_difference():
    assert time_of_day_offset_s(22, 30, 0) == 37800
    assert time_of_day_offset_s(12, 0, 0) == 0
    assert time_of_day_offset_s(11, 59, 59.5) == 86399.5
    assert wrap_offset_s(86000.0 - 100.0) == 85900.0 - 86400.0
    assert wrap_offset_s(-43200.0) == -43200.0
    assert wrap_offset_s(43200.0) == -43200.0
    assert np.array_equal(wrap_offset_s(np.array([0.0, 50000.0])), [0.0, 50000.0 - 86400.0])


# What psg_prep really designs: every channel type x the rates PSGs come in x mains 50/60 Hz or
# none, through psg_prep.filters.plan_channel.
PSG_RATES = (10, 16, 25, 32, 64, 100, 125, 128, 200, 250, 256, 500, 512, 1000, 1024)


def _psg_prep_firs() -> dict:
    from psg_prep.filters import TYPE_SPECS, plan_channel

    fir: dict[tuple, tuple[np.ndarray, float, float]] = {}
    for ctype in TYPE_SPECS:
        for fs in PSG_RATES:
            for mains in (50.0, 60.0, None):
                plan, _ = plan_channel(ctype, float(fs), notch_hz=mains)
                if plan.fir is not None:
                    fir.setdefault((plan.fs_in, plan.up, plan.down), (plan.fir, plan.aa_pass_hz, plan.aa_stop_hz))
    return fir


PSG_FIR = _psg_prep_firs()


@pytest.mark.parametrize("key", list(PSG_FIR), ids=lambda k: f"{k[0]:g}Hz x{k[1]}/{k[2]}")
def test_every_psg_prep_anti_alias_fir_has_unit_dc_branches_and_its_stated_stopband(key):
    fs_in, up, down = key
    h, keep, stop = PSG_FIR[key]
    for p in range(up):
        assert abs(h[p::up].sum() * up - 1.0) < 1e-12
    w, resp = sps.freqz(h * up, worN=1 << 15, fs=fs_in * up)
    assert 20 * np.log10(np.abs(resp[w >= stop]).max() / up) <= -60.0
