"""Filters, resampling and the chunked == whole-signal property."""

import numpy as np
import pytest
from scipy import signal as sps

from psg_prep.filters import (
    TYPE_SPECS,
    PolyphaseMatrix,
    QualityAccumulator,
    StreamProcessor,
    anti_alias_fir,
    plan_channel,
    process_segment,
    unit_scale,
)

# Chunked output equals whole-signal output to within this fraction of the output's std.
CHUNK_TOLERANCE = 1e-3


def _random_walk_plus_noise(n, seed):
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.normal(size=n)) * 0.1 + rng.normal(size=n) * 20).astype(np.float32)


def _chunked(plan, x, sizes):
    proc = StreamProcessor(plan)
    out, i = [], 0
    for s in sizes:
        if i >= len(x):
            break
        out.append(proc.push(x[i : i + s]))
        i += s
    if i < len(x):
        out.append(proc.push(x[i:]))
    out.append(proc.finish())
    return np.concatenate(out)


@pytest.mark.parametrize(
    "ctype,fs",
    [("EEG", 256.0), ("EEG", 100.0), ("EOG", 128.0), ("EMG_CHIN", 256.0), ("ECG", 200.0),
     ("NASAL_PRESSURE", 256.0), ("EFFORT_THORAX", 32.0), ("SPO2", 256.0), ("POSITION", 256.0),
     ("MARKER", 256.0), ("UNKNOWN", 512.0)],
)
def test_chunked_processing_equals_whole_signal(ctype, fs):
    n = int(fs * 1500) + 37
    x = _random_walk_plus_noise(n, seed=int(fs))
    plan, _ = plan_channel(ctype, fs, dimension="uV", block_s=120.0)
    whole = process_segment(plan, x)
    rng = np.random.default_rng(3)
    chunked = _chunked(plan, x, rng.integers(1, int(fs * 90), size=100_000))
    assert len(chunked) == len(whole) == int(np.ceil(n * plan.up / plan.down))
    assert np.max(np.abs(chunked - whole)) <= CHUNK_TOLERANCE * np.std(whole)


def test_polyphase_matrix_equals_scipy_resample_poly():
    rng = np.random.default_rng(0)
    for up, down, n in [(25, 64, 25_637), (25, 32, 10_001), (25, 256, 30_000), (1, 2, 999), (5, 128, 1000)]:
        h = anti_alias_fir(256.0, up, down, None)
        x = rng.normal(size=n).astype(np.float32)
        ref = sps.resample_poly(x, up, down, window=h)
        got = PolyphaseMatrix(up, down, h)(x)
        assert got.shape == ref.shape
        assert np.max(np.abs(got - ref)) < 1e-5


def test_eeg_band_keeps_10_hz_and_removes_drift_and_mains():
    fs = 256.0
    t = np.arange(int(fs * 120)) / fs
    x = (50 * np.sin(2 * np.pi * 10 * t) + 200 * np.sin(2 * np.pi * 0.02 * t) + 80 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    plan, unit = plan_channel("EEG", fs, dimension="uV")
    y = process_segment(plan, x)
    assert plan.fs_out == 100.0 and unit == "uV"
    mid = y[1000:-1000]
    ref = 50 * np.sin(2 * np.pi * 10 * (np.arange(len(y)) / 100.0))[1000:-1000]
    assert np.sqrt(np.mean((mid - ref) ** 2)) < 0.05 * 50


def test_emg_gets_a_notch_and_200_hz():
    plan, _ = plan_channel("EMG_CHIN", 512.0, notch_hz=50.0)
    assert plan.fs_out == 200.0 and plan.notch_hz == 50.0
    plan60, _ = plan_channel("EMG_CHIN", 512.0, notch_hz=60.0)
    assert plan60.notch_hz == 60.0
    eeg, _ = plan_channel("EEG", 512.0, notch_hz=50.0)
    assert eeg.notch_hz is None  # 50 Hz is already above the 35 Hz low-pass


def test_low_rate_channels_are_not_upsampled_and_drop_impossible_edges():
    plan, _ = plan_channel("EMG_CHIN", 1.0)
    assert plan.fs_out == 1.0 and plan.sos is None
    assert any("dropped" in n for n in plan.notes)


def test_spo2_is_averaged_per_second_without_overshoot():
    fs = 256.0
    x = np.r_[np.full(256 * 10, 97.0), np.zeros(256 * 2), np.full(256 * 10, 96.0)].astype(np.float32)
    plan, unit = plan_channel("SPO2", fs, dimension="%")
    y = process_segment(plan, x)
    assert unit == "%" and plan.fs_out == 1.0 and len(y) == 22
    assert y.max() <= 97.0 and y.min() >= 0.0


@pytest.mark.parametrize("dim,factor", [("uV", 1.0), ("mV", 1e3), ("V", 1e6), ("nV", 1e-3)])
def test_electrophysiology_units_become_microvolts(dim, factor):
    assert unit_scale("EEG", dim, 1.0)[:2] == (factor, "uV")


def test_spo2_fraction_becomes_percent():
    assert unit_scale("SPO2", "", 1.0)[:2] == (100.0, "%")


def test_every_type_has_a_spec():
    from psg_prep.channels import CHANNEL_TYPES

    assert set(TYPE_SPECS) == set(CHANNEL_TYPES)


def test_quality_flags_flat_and_saturated_epochs():
    fs = 100.0
    q = QualityAccumulator(fs=fs, lsb=0.1, physical_min=-100.0, physical_max=100.0, n_epochs=4)
    rng = np.random.default_rng(0)
    e0 = rng.normal(size=3000) * 10
    e1 = np.full(3000, 3.0)
    e2 = rng.normal(size=3000) * 10
    e2[:100] = 100.0
    e3 = rng.normal(size=3000) * 10
    x = np.concatenate([e0, e1, e2, e3]).astype(np.float32)
    for i in range(0, len(x), 777):  # chunks straddle epoch boundaries
        q.add(x[i : i + 777], i / fs)
    flat, sat = q.flags()
    assert flat.tolist() == [False, True, False, False]
    assert sat.tolist() == [False, False, True, False]
