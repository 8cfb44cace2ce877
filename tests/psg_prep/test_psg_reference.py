"""prepare_psg's signals equal the plain-scipy reference (tests/psg_prep/reference.py), channel by
channel, on real corpus recordings and on a synthetic multi-rate night (issue 14, must show 2).

Tolerance: ``max |ours - reference| <= 1e-6 x std(reference)`` per channel (exact equality for a
constant output). What may differ: the chunk margins (the IIR start-up transient left after
``10 / lowest edge`` seconds, ~1e-10), float64 rounding in a different summation order, and the
final float32 rounding of both (6e-8 of the value). Chunks of 60-120 s put many block boundaries
inside the files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import edfio
import numpy as np
import pytest

from psg_prep.prepare import prepare_psg
from sunrise_cli.synth_psg import SynthChannel, psg_sources, write_edf
from tests.psg_prep.reference import reference_channel
from tests.conftest import corpus_file

RTOL = 1e-6


def _read_physical(path: Path) -> dict[str, tuple[np.ndarray, float, str, float]]:
    """label -> (physical values as float32, rate Hz, dimension, physical max), read by edfio."""
    rec = edfio.read_bdf(path) if path.suffix.lower() == ".bdf" else edfio.read_edf(path)
    return {s.label: (s.data.astype(np.float32), float(s.sampling_frequency), s.physical_dimension,
                      float(s.physical_range.max)) for s in rec.signals}


def _assert_equal_to_reference(path: Path, out: Path, **kw) -> list[tuple[str, float]]:
    meta = prepare_psg(path, [], out, **kw)
    ours = np.load(out / "signals.npz")
    physical = _read_physical(path)
    errors = []
    for ch in meta["channels"]:
        x, fs, dim, pmax = physical[ch["label"]]
        ref, fs_out = reference_channel(x, ch["type"], fs, dimension=dim, physical_max=pmax)
        got = ours[ch["name"]]
        assert fs_out == ch["target_rate_hz"], ch["name"]
        assert got.shape == ref.shape, (ch["name"], got.shape, ref.shape)
        err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if len(ref) else 0.0
        scale = float(np.std(ref.astype(np.float64)))
        errors.append((ch["name"], err / scale if scale else err))
        if scale == 0:
            assert err == 0, (ch["name"], err)
        else:
            assert err <= RTOL * scale, (ch["name"], ch["type"], fs, err / scale)
    return errors


@pytest.mark.parametrize("rel", ["bdf/mne__multiple_annotation_chans.bdf", "bdf/pyedflib__test_generator.bdf",
                                 "edf/edfio__short_psg.edf", "edf/pyedflib__test_generator.edf"])
def test_real_recordings_equal_the_plain_scipy_reference(corpus, rel, tmp_path):
    # The 125-Hz BDF is DC-coupled (offsets of mV, a channel stuck at the rail); the
    # pyedflib BDF has 500, 800, 975, 999 and 1000 Hz channels; Sleep-EDF has 100 and 1 Hz.
    _assert_equal_to_reference(corpus_file(rel), tmp_path, chunk_seconds=60.0)


def _multi_rate_night(path: Path, seconds: int) -> Path:
    src = psg_sources(seed=3)

    def dc(level: float, f):  # DC-coupled: a large, slowly drifting offset under the signal
        return lambda t: level + 0.05 * level * np.sin(2 * np.pi * t / 600) + f(t)

    chans = [
        SynthChannel("EEG C3-M2", 256, dc(3000.0, src["eeg"]), "uV", -8000, 8000),
        SynthChannel("EEG O1-M2", 500, src["eeg"]),
        SynthChannel("EOG E1-M2", 128, dc(-2000.0, src["eog"]), "uV", -8000, 8000),
        SynthChannel("EMG Chin", 512, src["emg"]),
        SynthChannel("Leg L", 200, src["emg"]),
        SynthChannel("ECG", 1000, src["ecg"], "uV", -2000, 2000),
        SynthChannel("Thorax", 32, src["resp"]),
        SynthChannel("Nasal Pressure", 100, dc(400.0, src["resp"]), "", -1000, 1000),
        SynthChannel("Snore", 975, src["emg"], "", -500, 500),
        SynthChannel("SpO2", 16, src["spo2"], "%", 0, 100),
        SynthChannel("Pulse", 10, src["pulse"], "bpm", 0, 250),
        SynthChannel("Position", 1, src["position"], "", 0, 10),
        SynthChannel("Event marker", 25, lambda t: 100.0 * (np.sin(2 * np.pi * t / 7) > 0.99), "", -200, 200),
        SynthChannel("Temp rectal", 999, lambda t: 37 + 0.1 * np.sin(2 * np.pi * t / 900), "degC", 30, 45),
    ]
    return write_edf(path, chans, seconds, start=datetime(2021, 3, 1, 22, 0, 0))


def test_synthetic_multi_rate_night_equals_the_plain_scipy_reference(tmp_path):
    path = _multi_rate_night(tmp_path / "multi.edf", 900)
    errors = _assert_equal_to_reference(path, tmp_path / "o", chunk_seconds=120.0)
    assert len(errors) == 14


def test_outputs_do_not_depend_on_the_number_of_threads(tmp_path):
    # Threads change how channels are batched (8 EEG/EOG rows as one batch or as 4 + 4 ...)
    # and which chunk is decoded while another is processed; never the numbers.
    src = psg_sources(seed=5)
    chans = [SynthChannel(f"EEG C{i}-M2", 256, src["eeg"]) for i in range(5)]
    chans += [SynthChannel(f"EMG Chin{i}", 256, src["emg"]) for i in range(3)]
    chans += [SynthChannel("Thorax", 256, src["resp"]), SynthChannel("Abdomen", 256, src["resp"]),
              SynthChannel("SpO2", 256, src["spo2"], "%", 0, 100)]
    path = write_edf(tmp_path / "w.edf", chans, 1200)
    outs = []
    for workers in (1, 2, 3):
        prepare_psg(path, [], tmp_path / f"o{workers}", workers=workers, chunk_seconds=100.0)
        outs.append(np.load(tmp_path / f"o{workers}" / "signals.npz"))
    for name in outs[0].files:
        for other in outs[1:]:
            assert np.array_equal(outs[0][name], other[name]), name
