"""sunrise_common.dsp equals scipy: the zero-phase filter, the anti-aliasing FIR; and the one
noon-anchor offset (issue 17: one copy of each signal tool)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal as sps

from sunrise_common.dsp import anti_alias_edges, anti_alias_fir, sosfiltfilt, sosfiltfilt_padlen
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
    assert np.max(np.abs(got[1] - sosfiltfilt(sos, x[1], zi=sps.sosfilt_zi(sos)))) == 0  # 1-D = the row


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
    assert np.array_equal(h, ref)
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


def test_identity_and_ingest_do_not_import_scipy():
    code = "import sys, sunrise_common.identity, ingest.handler; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
