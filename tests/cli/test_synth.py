"""The generator's quiet-wake physiology (issue 24): breath-to-breath variability and swallows
within the ranges its docstrings cite (cli/sunrise_cli/synth.py, docs/science.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

from sunrise_cli import synth
from sunrise_cli.synth import SynthSettings, _physiology


def _stage_night(stage: int, hours: float, seed: int, cfg: SynthSettings = SynthSettings(),
                 still=None):
    n_epochs = int(hours * 120)
    hyp = np.full(n_epochs + 2, stage, dtype=np.int8)
    return _physiology(np.random.default_rng(seed), hyp, [], n_epochs * 30, cfg, (), still)


def _windowed_cv(t: np.ndarray, x: np.ndarray, window_s: float = 900.0) -> np.ndarray:
    """CV of ``x`` (one value per breath starting at ``t``) in consecutive 15-min windows, as
    Tobin et al. 1988 computed it over 15-min recordings."""
    out = []
    for a in np.arange(0, t[-1] - window_s, window_s):
        v = x[(t >= a) & (t < a + window_s)]
        out.append(v.std() / v.mean())
    return np.array(out)


@pytest.fixture(scope="module")
def wake_and_n2():
    return _stage_night(synth._W, 3.0, 11), _stage_night(synth._N2, 3.0, 11)


def test_quiet_wake_breath_to_breath_variability_matches_tobin_1988(wake_and_n2):
    """Awake at rest: CV of respiratory frequency 20.8 +- 11.5 %, of tidal volume 33 +- 15 %."""
    w, _ = wake_and_n2
    periods = np.diff(w.breath_t)
    t = w.breath_t[:-1]
    period_cv = np.median(_windowed_cv(t, periods))
    assert 0.208 - 0.115 <= period_cv <= 0.208 + 0.115
    amp = w.amp_deg[t.astype(int)] * w.breath_amp[:-1]
    amp_cv = np.median(_windowed_cv(t, amp))
    assert 0.33 - 0.15 <= amp_cv <= 0.33 + 0.15


def test_each_breath_jitters_by_the_documented_per_stage_cv(wake_and_n2):
    for ph, stage in zip(wake_and_n2, (synth._W, synth._N2)):
        t = ph.breath_t[:-1]
        # Period x the slow rate at its onset - 1 is the breath's own jitter.
        rel = np.diff(ph.breath_t) * ph.rate_hz[t.astype(int)] - 1
        assert rel.std() == pytest.approx(synth._B2B_PERIOD_CV[stage], rel=0.1)
        assert np.log(ph.breath_amp).std() == pytest.approx(synth._B2B_AMP_CV[stage], rel=0.1)


def test_nrem_breathing_is_more_regular_than_quiet_wake(wake_and_n2):
    w, n2 = wake_and_n2
    cv = [np.median(_windowed_cv(p.breath_t[:-1], np.diff(p.breath_t))) for p in (w, n2)]
    assert cv[1] < 0.5 * cv[0]


def test_wake_swallows_come_at_0_21_to_0_98_per_minute_and_sleep_swallows_rarely():
    """Bulmer et al. 2021 (awake, healthy older to younger); Sato & Nakashima 2006 (sleep)."""
    rates = []
    for seed in range(8):
        ph = _stage_night(synth._W, 1.0, 100 + seed)
        rates.append(ph.swallow_t.size / 60.0)
    rates = np.array(rates)
    assert rates.min() > 0.21 * 0.6 and rates.max() < 0.98 * 1.4
    assert rates.std() > 0.05  # each night draws its own rate
    n2 = _stage_night(synth._N2, 8.0, 7)
    n3 = _stage_night(synth._N3, 8.0, 7)
    n2_per_h = n2.swallow_t.size / 8.0
    assert abs(n2_per_h - 2.0) <= 1.0, n2_per_h  # Sato & Nakashima 2006: 2.0 +- 0.7 per hour in N2
    assert n3.swallow_t.size / 8.0 < 1.0
    assert ((n2.swallow_deg >= 0.5) & (n2.swallow_deg <= 2.0)).all()
    assert ((n2.swallow_s >= 0.6) & (n2.swallow_s <= 1.2)).all()


def test_still_wake_keeps_wake_breathing_and_swallows_unless_made_identical_to_sleep():
    still = (0, 240)  # the whole 2-h night is a still wake block
    for kind, wake_like in (("wake_breathing", True), ("sleep_breathing", False)):
        cfg = SynthSettings(wake_block_min=60.0, still_wake=kind)
        ph = _stage_night(synth._W, 2.0, 21, cfg, still)
        assert ph.move.max() == 0.0  # no movement at all
        rel = np.diff(ph.breath_t) * ph.rate_hz[ph.breath_t[:-1].astype(int)] - 1
        per_h = ph.swallow_t.size / 2.0
        if wake_like:
            assert rel.std() == pytest.approx(synth._B2B_PERIOD_CV[synth._W], rel=0.15)
            assert per_h > 0.21 * 60 * 0.6
        else:
            assert rel.std() == pytest.approx(synth._B2B_PERIOD_CV[synth._N2], rel=0.15)
            assert per_h < 5.0
