"""Per-epoch features: the night's activity floor is measured on valid seconds only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sunrise_algo.builtin.features import (activity_floor, breath_cycles, breath_variability, compute_features,
                                           swallow_like)
from sunrise_algo.builtin.respiration import detect_events
from sunrise_algo.builtin.model import load_model
from sunrise_cli.synth import cut_gap, synth_night
from sunrise_night.prepare import prepare_sunrise


def _prepared(path):
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "prepped.npz") as z:
        return {k: z[k] for k in z.files}, meta


@pytest.fixture(scope="module")
def zero_filled(tmp_path_factory):
    """A 2-h night prepared whole and with 20 min zero-filled (a dropout padded with zeros)."""
    root = tmp_path_factory.mktemp("zero")
    night = synth_night(root / "n", seed=24, hours=2.0, ahi=30)
    prepare_sunrise(night.sunrise, root / "whole")
    cut_gap(night.sunrise, 1800, 1200, zero_fill=True)
    prepare_sunrise(night.sunrise, root / "zero")
    return _prepared(root / "whole"), _prepared(root / "zero")


def test_a_zero_filled_stretch_does_not_collapse_the_activity_floor(zero_filled):
    """Issue 24 defect 2: on main the floor fell to ~0 (every second became movement)."""
    (a0, m0), (a1, m1) = zero_filled
    assert ((a1["quality"][1800:3000]) != 0).all()  # prep marks the zeros invalid
    f0 = compute_features(a0, m0)["act_floor_dps"][0]
    f1 = compute_features(a1, m1)["act_floor_dps"][0]
    assert f1 == pytest.approx(f0, rel=0.1)


def test_a_zero_filled_stretch_leaves_the_events_of_the_rest_of_the_night(zero_filled):
    (a0, m0), (a1, m1) = zero_filled
    params = load_model(None).respiratory
    sleep = np.ones(m0["n_epochs"], dtype=bool)
    outside = lambda evs: [e for e in evs if not 1700 <= e.onset_s < 3100]  # noqa: E731
    n0 = len(outside(detect_events(a0, m0, sleep, params)))
    n1 = len(outside(detect_events(a1, m1, sleep, params)))
    assert n0 >= 10 and n1 >= 0.9 * n0


def test_the_floor_ignores_invalid_seconds_and_refuses_when_none_is_valid():
    x = np.r_[np.zeros(500), np.full(500, 0.3)]
    valid = np.r_[np.zeros(500, bool), np.ones(500, bool)]
    assert activity_floor(x, valid) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="valid second"):
        activity_floor(x, np.zeros(1000, bool))


# Issue 24 defect 4 (still wake): breath-to-breath variability and swallow-like transients,
# each checked on a constructed signal whose answer is known.

FS = 10.0


def _breaths_with(periods, amps, fs=FS):
    """A breathing-band trace made of one sine cycle per breath (peak at a quarter period)."""
    return np.concatenate([a * np.sin(2 * np.pi * np.arange(int(round(p * fs))) / (p * fs))
                           for p, a in zip(periods, amps)])


def test_breath_cycles_finds_each_breath_with_its_period_and_peak_to_trough_amplitude():
    periods = np.array([4.0, 5.0, 4.0, 6.0, 5.0, 4.0, 5.0])
    amps = np.array([1.0, 2.0, 1.0, 1.5, 1.0, 2.0, 1.0])
    t, a = breath_cycles(_breaths_with(periods, amps), FS)
    assert t.size == periods.size
    # Peak k sits a quarter of breath k after its onset: intervals mix neighbouring periods.
    onsets = np.r_[0, np.cumsum(periods)[:-1]]
    assert np.allclose(t, onsets + periods / 4, atol=0.15)
    # Peak-to-trough: this breath's peak over the previous breath's trough.
    assert np.allclose(a, amps[1:] + amps[:-1], rtol=0.02)


def test_breath_variability_is_the_cv_of_periods_and_amplitudes_in_the_window():
    # 0.25 Hz breathing for 6 min, then the same with alternating 3-s/5-s breaths and
    # alternating 0.5/1.5 amplitudes.
    regular = _breaths_with(np.full(90, 4.0), np.ones(90))
    periods = np.tile([3.0, 5.0], 45)
    irregular = _breaths_with(periods, np.tile([0.5, 1.5], 45))
    x = np.concatenate([regular, irregular])
    g = np.stack([x, 0.5 * x, np.zeros_like(x)])  # any mounting: PC1 is the breathing axis
    n_epochs = x.size // int(30 * FS)
    period_cv, amp_cv = breath_variability(g, n_epochs, FS)
    assert np.all(np.isnan(period_cv[:1]))  # the first window runs off the start
    assert np.nanmax(period_cv[1:10]) < 0.02 and np.nanmax(amp_cv[1:10]) < 0.02
    inner = slice(14, n_epochs - 1)
    # Peak-to-peak intervals of alternating 3/5-s sines: 3/4*3 + 5/4 = 3.5 and 4.5 s (3.4/4.6
    # once the peaks fall on 10-Hz samples), so the CV is 0.5/4 = 0.125 (0.6/4 = 0.15) over an
    # even number of intervals, a little less over an odd one.
    assert ((period_cv[inner] > 0.095) & (period_cv[inner] < 0.155)).all()
    # Peak-to-trough amplitudes are all 0.5 + 1.5 = 2: the alternation cancels out.
    assert np.nanmax(amp_cv[inner]) < 0.02


def test_breath_variability_sees_random_breath_to_breath_jitter():
    rng = np.random.default_rng(3)
    periods = 4.0 * (1 + 0.2 * rng.standard_normal(400)).clip(0.5)
    amps = np.exp(0.3 * rng.standard_normal(400))
    x = _breaths_with(periods, amps)
    n_epochs = x.size // int(30 * FS)
    period_cv, amp_cv = breath_variability(np.stack([x, x, x]), n_epochs, FS)
    # Interval = 3/4 of one breath + 1/4 of the next: CV ~0.2 x sqrt(0.75^2 + 0.25^2) = 0.16.
    assert 0.12 < np.nanmedian(period_cv) < 0.22
    # Peak-to-trough spans two half-breaths: independent jitter shows at ~0.3 / sqrt(2) = 0.21.
    assert 0.14 < np.nanmedian(amp_cv) < 0.28
    # The same trace without jitter reads ~0 on both.
    y = _breaths_with(np.full(400, 4.0), np.ones(400))
    assert np.nanmax(breath_variability(np.stack([y, y, y]), y.size // 300, FS)[0]) < 0.02


def test_noise_ripples_and_missing_samples_give_no_breath_statistics():
    flat = np.zeros((3, 3000))
    assert np.isnan(breath_variability(flat, 10, FS)[0]).all()
    x = _breaths_with(np.full(75, 4.0), np.ones(75))
    x[1000:1010] = np.nan
    period_cv, _ = breath_variability(np.stack([x, x, x]), x.size // 300, FS)
    assert np.isnan(period_cv[3]) and np.isfinite(period_cv[6])


def test_swallow_like_counts_short_isolated_bursts_only():
    floor = 0.2
    act = np.full(120, 0.2)
    act[10] = 3.0          # 1-s swallow-like transient
    act[30:32] = 2.0       # 2-s transient
    act[50:56] = 3.0       # 6-s movement: too long
    act[80] = 3.0          # short, but next to restless movement
    act[82:84] = 0.8       # active (> 2.5 x floor) shortly after
    act[100] = 0.9         # above the active line, below 5 x floor: not a swallow
    starts = np.flatnonzero(swallow_like(act, floor))
    assert starts.tolist() == [10, 30]


def test_compute_features_counts_swallows_per_epoch_and_gives_breath_variability(zero_filled):
    (a0, m0), _ = zero_filled
    f = compute_features(a0, m0)
    n = m0["n_epochs"]
    for name in ("br_period_cv", "br_cycle_amp_cv", "swallow_n"):
        assert f[name].shape == (n,)
    assert np.isfinite(f["br_period_cv"]).mean() > 0.9
    assert (f["swallow_n"] >= 0).all() and f["swallow_n"].max() <= 30
