"""The Sunrise night preparation (sunrise_night, run by sunrise_prep) on synthetic recordings:
channel mapping, breathing rate, outputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from sunrise_common.errors import PermanentError
from sunrise_cli.synth import synth_night
from sunrise_night.breathing import breathing_rate
from sunrise_night.channels import map_channels
from sunrise_night.imu import derive
from sunrise_common.identity import time_of_day_offset_s as start_offset_s
from sunrise_night.prepare import prepare_sunrise


def _sig(label, unit, fs=25.0):
    return SimpleNamespace(label=label, physical_dimension=unit, sample_rate=fs,
                           is_annotation=False)


def test_channels_are_mapped_by_label_and_mg_becomes_g():
    sigs = [_sig("ACC_X", "mg"), _sig("ACC_Y", "mg"), _sig("ACC_Z", "mg"), _sig("GyroX", "rad/s"),
            _sig("GyroY", "rad/s"), _sig("GyroZ", "rad/s"), _sig("SpO2", "%", 1.0)]
    ch = map_channels(sigs)
    assert ch["acc_y"].index == 1 and ch["acc_y"].scale == 1e-3
    assert ch["gyro_z"].scale == pytest.approx(180 / np.pi)
    assert ch["spo2"].index == 6


def test_missing_imu_axis_is_a_permanent_error_naming_the_labels():
    with pytest.raises(PermanentError, match="gyro_z"):
        map_channels([_sig("Accel X", "g"), _sig("Accel Y", "g"), _sig("Accel Z", "g"),
                      _sig("Gyro X", "deg/s"), _sig("Gyro Y", "deg/s")])


def test_breathing_rate_of_a_noisy_0_3_hz_jaw_signal_is_18_per_minute():
    fs, dur = 25.0, 600
    t = np.arange(int(fs * dur)) / fs
    rng = np.random.default_rng(0)
    wave = 0.4 * np.sin(2 * np.pi * 0.3 * t)
    acc = np.stack([np.full_like(t, -0.5), np.full_like(t, 0.0), np.full_like(t, 0.85)])
    acc += 0.001 * rng.standard_normal(acc.shape)
    gyro = np.stack([0.3 * wave, wave, 0.1 * wave]) + 0.1 * rng.standard_normal((3, t.size))
    d = derive(acc, gyro, fs)
    rate, regularity = breathing_rate(d["breath_gyro"], dur // 30)
    assert np.all(np.abs(rate[1:-1] - 18.0) <= 0.5)
    assert np.all(regularity[1:-1] > 0.5)


def test_start_offset_is_seconds_from_noon_modulo_a_day():
    assert start_offset_s(22, 30, 0) == 37800
    assert start_offset_s(1, 0, 0) == 46800
    assert start_offset_s(12, 0, 0) == 0


def test_prepare_writes_npz_and_meta_aligned_to_the_header_start(tmp_path):
    night = synth_night(tmp_path / "n", seed=3, hours=1.0, ahi=10)
    meta = prepare_sunrise(night.sunrise, tmp_path / "prep", chunk_seconds=120)
    assert json.loads((tmp_path / "prep" / "meta.json").read_text()) == meta
    assert meta["start_offset_s"] == 37800 + night.sunrise_offset_s
    assert meta["n_epochs"] == int(night.sunrise_duration_s // 30)
    z = np.load(tmp_path / "prep" / "prepped.npz")
    assert z["activity_g"].shape == (int(night.sunrise_duration_s * 10),)
    assert z["quality"].shape == (int(night.sunrise_duration_s),)
    assert np.nanmedian(z["spo2"]) > 90
    # Chunked processing with margins gives the same signals as one big chunk.
    prepare_sunrise(night.sunrise, tmp_path / "prep1", chunk_seconds=100000)
    z1 = np.load(tmp_path / "prep1" / "prepped.npz")
    np.testing.assert_allclose(z["breath_gyro"], z1["breath_gyro"], atol=2e-3)
    np.testing.assert_allclose(z["mandible_angle_deg"], z1["mandible_angle_deg"], atol=1e-2)


def test_a_non_edf_file_is_a_permanent_error(tmp_path):
    p = tmp_path / "x.edf"
    p.write_bytes(b"hello")
    with pytest.raises(PermanentError):
        prepare_sunrise(p, tmp_path / "out")


def test_an_edf_plus_d_gap_keeps_true_time_is_marked_invalid_and_is_named_in_meta(tmp_path):
    """Issue 24 defect 1: after a 20-min EDF+D gap every later second stays at its true time
    (the same derived signals as the uncut recording), the gap seconds carry the gap bit and
    meta.json names the gap."""
    from sunrise_cli.synth import cut_gap
    from sunrise_night.quality import GAP

    night = synth_night(tmp_path / "n", seed=5, hours=1.5, ahi=10)
    whole = prepare_sunrise(night.sunrise, tmp_path / "whole", chunk_seconds=300)
    cut_gap(night.sunrise, 1200, 1200)
    meta = prepare_sunrise(night.sunrise, tmp_path / "cut", chunk_seconds=300)
    assert meta["discontinuous"] is True
    assert meta["gaps"] == [{"onset_s": 1200.0, "duration_s": 1200.0}]
    assert meta["duration_s"] == whole["duration_s"] and meta["n_epochs"] == whole["n_epochs"]
    assert meta["recorded_s"] == whole["duration_s"] - 1200
    z, z0 = np.load(tmp_path / "cut" / "prepped.npz"), np.load(tmp_path / "whole" / "prepped.npz")
    assert z["quality"].shape == z0["quality"].shape
    gap = (z["quality"] & GAP) > 0
    assert gap[1200:2400].all() and not gap[:1200].any() and not gap[2400:].any()
    assert np.isnan(z["spo2"][1200:2400]).all()
    # Two minutes after the gap (filter settling), signals sit where the uncut ones do.
    after = slice(2520 * 10, (int(whole["duration_s"]) - 60) * 10)
    np.testing.assert_allclose(z["mandible_angle_deg"][after], z0["mandible_angle_deg"][after],
                               atol=0.05)
    np.testing.assert_allclose(z["activity_dps"][after], z0["activity_dps"][after], atol=1e-3)
    np.testing.assert_array_equal(z["spo2"][2400:], z0["spo2"][2400:])
