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
CHUNK_TOLERANCE = 1e-6

# Input rates in the corpus (125, 128, 200, 500-1000 Hz) and the usual clinical ones.
CORPUS_RATES = [125.0, 128.0, 200.0, 256.0, 500.0, 512.0, 800.0, 975.0, 999.0, 1000.0, 1024.0]


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
     ("MARKER", 256.0), ("UNKNOWN", 512.0), ("EEG", 999.0), ("ECG", 125.0), ("SNORE", 500.0)],
)
def test_chunked_processing_equals_whole_signal(ctype, fs):
    n = int(fs * 1500) + 37
    # A DC-coupled level (5 mV) on top: the offset removed before resampling must not depend
    # on how the input is pushed.
    x = _random_walk_plus_noise(n, seed=int(fs)) + np.float32(5000.0)
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


def test_emg_gets_a_notch_and_250_hz():
    plan, _ = plan_channel("EMG_CHIN", 512.0, notch_hz=50.0)
    assert plan.fs_out == 250.0 and plan.notch_hz == 50.0
    plan60, _ = plan_channel("EMG_CHIN", 512.0, notch_hz=60.0)
    assert plan60.notch_hz == 60.0
    eeg, _ = plan_channel("EEG", 512.0, notch_hz=50.0)
    assert eeg.notch_hz is None  # 50 Hz is already above the 35 Hz low-pass


def test_low_rate_channels_are_not_upsampled_and_drop_impossible_edges():
    plan, _ = plan_channel("EMG_CHIN", 1.0)
    assert plan.fs_out == 1.0 and plan.sos is None
    assert any("not applied" in n for n in plan.notes)


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


# --------------------------------------------------------------------------------------------
# issue 12 defect 4: DC must not leak into lines; the anti-aliasing FIR meets its stopband

SPUR_DB = -60.0  # no line other than the tone above this, relative to the tone (amplitude)
# Types resampled by polyphase, with a tone inside each one's band (Hz).
TONE_HZ = {"EEG": 10.0, "EOG": 3.0, "EMG_CHIN": 40.0, "ECG": 20.0, "SNORE": 40.0,
           "AIRFLOW_THERMISTOR": 0.5, "UNKNOWN": 10.0}


def _line_spectrum(y: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectrum with a 4-term Blackman-Harris window (sidelobes -92 dB)."""
    w = sps.windows.blackmanharris(len(y))
    return np.fft.rfftfreq(len(y), 1 / fs), np.abs(np.fft.rfft((y - y.mean()) * w)) * 2 / w.sum()


@pytest.mark.parametrize("fs", CORPUS_RATES)
@pytest.mark.parametrize("ctype", sorted(TONE_HZ))
def test_dc_plus_tone_gives_no_spurious_line(ctype, fs):
    # 100 mV of DC (a DC-coupled BDF's offset; the corpus BDF has 4-6 mV and a rail at 187 mV)
    # under a 100 uV tone: DC is 60 dB above the tone, so a -60 dB leak of DC would be as
    # large as the tone itself.
    plan, _ = plan_channel(ctype, fs, dimension="uV")
    f0 = TONE_HZ[ctype]
    n = int(fs * 200)
    t = np.arange(n) / fs
    x = (100_000.0 + 100.0 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    y = process_segment(plan, x).astype(np.float64)
    edge = int(40 * plan.fs_out)  # leave the filters' start-up at the segment edges out
    freqs, amp = _line_spectrum(y[edge:-edge], plan.fs_out)
    tone = amp[np.argmin(np.abs(freqs - f0))]
    assert tone == pytest.approx(100.0, rel=0.05)  # the tone passes (band edges are -6 dB)
    df = freqs[1]
    others = (np.abs(freqs - f0) > 8 * df) & (freqs > 8 * df)
    spur_db = 20 * np.log10(amp[others].max() / tone)
    assert spur_db <= SPUR_DB, f"{ctype} at {fs:g} Hz: line of {spur_db:.1f} dB at {freqs[others][amp[others].argmax()]:.2f} Hz"


def _resampled_plans():
    for fs in CORPUS_RATES:
        for ctype in ("EEG", "EMG_CHIN", "ECG", "SNORE", "NASAL_PRESSURE", "UNKNOWN"):
            plan, _ = plan_channel(ctype, fs)
            if plan.method == "poly" and plan.up != plan.down:
                yield pytest.param(plan, id=f"{ctype}-{fs:g}")


@pytest.mark.parametrize("plan", list(_resampled_plans()))
def test_anti_aliasing_fir_meets_its_stopband(plan):
    from psg_prep.filters import AA_STOPBAND_DB

    h = plan.fir  # the FIR the resampler uses (its weights are h * up, rearranged)
    fs_up = plan.fs_in * plan.up
    nfft = 1 << int(np.ceil(np.log2(32 * len(h))))
    freqs = np.fft.rfftfreq(nfft, 1 / fs_up)
    resp = np.abs(np.fft.rfft(h, nfft)) / abs(h.sum())
    stop = resp[freqs >= plan.aa_stop_hz]
    assert 20 * np.log10(stop.max()) <= -AA_STOPBAND_DB
    assert AA_STOPBAND_DB >= 60.0
    passband = resp[freqs <= plan.aa_pass_hz]
    assert np.max(np.abs(20 * np.log10(passband))) <= 0.01  # dB of ripple in the kept band
    # Nothing that lands in [0, pass] after decimation, and no image of the input, escapes.
    assert plan.aa_stop_hz <= min(plan.fs_out - plan.aa_pass_hz, plan.fs_in / 2) + 1e-9
    # The weights the resampler multiplies by are this FIR (times up), every tap used once.
    assert h.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.sum(plan.poly.weights) == pytest.approx(plan.up, rel=1e-12)


@pytest.mark.parametrize("plan", list(_resampled_plans()))
def test_every_polyphase_branch_has_unit_dc_gain(plan):
    # Unit DC gain per branch puts exact zeros on the DC images at k x fs_in.
    gains = plan.poly.weights.sum(axis=0)
    assert np.max(np.abs(gains - 1.0)) < 1e-12


# --------------------------------------------------------------------------------------------
# issue 12 defect 5: AASM bands where the rate allows, the applied band recorded otherwise

AASM = {"EEG": (0.3, 35.0), "EOG": (0.3, 35.0), "EMG_CHIN": (10.0, 100.0), "EMG_LEG": (10.0, 100.0),
        "ECG": (0.3, 70.0), "SNORE": (10.0, 100.0), "AIRFLOW_THERMISTOR": (0.1, 15.0),
        "NASAL_PRESSURE": (0.1, 15.0), "EFFORT_THORAX": (0.1, 15.0), "EFFORT_ABDOMEN": (0.1, 15.0)}


@pytest.mark.parametrize("fs", [256.0, 500.0, 512.0, 1000.0])
@pytest.mark.parametrize("ctype", sorted(AASM))
def test_aasm_band_is_applied_when_the_rate_allows(ctype, fs):
    plan, _ = plan_channel(ctype, fs, dimension="uV")
    assert plan.band == AASM[ctype] == plan.aasm_band
    assert plan.band[1] <= 0.4 * plan.fs_out  # the output rate carries the band with room
    assert not plan.notes


def test_band_actually_applied_is_recorded_when_the_rate_is_too_low():
    emg, _ = plan_channel("EMG_CHIN", 125.0)
    assert emg.fs_out == 125.0 and emg.band == (10.0, None) and emg.aasm_band == (10.0, 100.0)
    assert emg.notch_hz == 50.0
    assert any("low-pass 100 Hz not applied" in n and "62.5 Hz Nyquist" in n for n in emg.notes)
    ecg, _ = plan_channel("ECG", 128.0)
    assert ecg.band == (0.3, None) and any("low-pass 70 Hz not applied" in n for n in ecg.notes)
    resp, _ = plan_channel("EFFORT_THORAX", 25.0)
    assert resp.band == (0.1, None)


def test_emg_band_reaches_100_hz_at_256_hz_input():
    # AASM chin EMG is 10-100 Hz: a 90 Hz tone passes at full amplitude (was cut at 90 Hz).
    fs = 256.0
    plan, _ = plan_channel("EMG_CHIN", fs)
    t = np.arange(int(fs * 60)) / fs
    y = process_segment(plan, (20 * np.sin(2 * np.pi * 90 * t)).astype(np.float32))
    mid = y[int(10 * plan.fs_out) : -int(10 * plan.fs_out)]
    assert np.sqrt(2 * np.mean(mid.astype(np.float64) ** 2)) == pytest.approx(20.0, rel=0.05)


def test_a_2d_batch_equals_each_channel_alone():
    # Channels sharing a filter are processed as one 2-D batch (one sosfilt call per
    # direction, one polyphase product); each row must be that channel processed alone.
    fs = 256.0
    rng = np.random.default_rng(7)
    x = np.stack([_random_walk_plus_noise(int(fs * 700) + 5, seed=s) + np.float32(1000 * s) for s in range(3)])
    for ctype in ("EEG", "EMG_CHIN", "NASAL_PRESSURE", "SPO2", "MARKER", "UNKNOWN"):
        plan, _ = plan_channel(ctype, fs, dimension="uV", block_s=120.0)
        whole = process_segment(plan, x)
        proc = StreamProcessor(plan, scales=np.full(3, plan.scale))
        sizes = rng.integers(1, int(fs * 90), size=1000)
        parts, i = [], 0
        for n in sizes:
            if i >= x.shape[1]:
                break
            parts.append(proc.push(x[:, i : i + n]))
            i += n
        parts.append(proc.finish())
        chunked = np.concatenate(parts, axis=1)
        for r in range(3):
            alone = process_segment(plan, x[r])
            assert np.array_equal(whole[r], alone), ctype
            assert np.max(np.abs(chunked[r] - alone)) <= CHUNK_TOLERANCE * np.std(alone), ctype
