"""Detection that does not read the generator's answer (issue 12): the default model and its
per-night detector on nights generated with settings they were not fitted on.

The noise, arousal and oximetry tests fail with the previous default (logistic-1: absolute
thresholds, 3 % desaturation path only, no RDI flag) and pass with the per-night default
(checked by running them with ``DEFAULT_MODEL = "logistic-1"``). The slow-breathing test is a
guard only: logistic-1 passes it on these three nights (it misses on the suite's, SCIENCE.md).
Seeds 310-312 are neither the development batch (7000-7011), the test batch (2024xxx) nor the
robustness suite (50000+).
Targets are the issue's (accuracy >= 0.90, |TST error| <= 15 min, |RDI error| <= 5 /h).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sunrise_algo.builtin.features import activity_floor
from sunalgo.run import run_sunalgo
from sunrise_cli.synth import SynthSettings, synth_night, write_truth_labels
from sunrise_night.prepare import prepare_sunrise


SEEDS = (310, 311, 312)


def _score(tmp_path, seed: int, settings: SynthSettings, **kw) -> tuple[dict, dict, object]:
    d = tmp_path / str(seed)
    night = synth_night(d / "n", seed=seed, hours=3.0, ahi=kw.pop("ahi", 30.0),
                        settings=settings, **kw)
    prepare_sunrise(night.sunrise, d / "prep")
    summary = run_sunalgo(d / "prep", write_truth_labels(night, d / "psg"), d / "out")
    scores = json.loads((d / "out" / "scores.json").read_text())["scores"]
    return summary, scores, night


def _medians(tmp_path, settings: SynthSettings, **kw) -> tuple[float, float, float]:
    """Median accuracy, |TST error| (min) and |RDI error| (/h) over the three nights (the
    issue's targets are medians over nights)."""
    acc, tst, rdi = [], [], []
    for seed in SEEDS:
        s, _, night = _score(tmp_path, seed, settings, **dict(kw))
        acc.append(s["accuracy_sw"])
        tst.append(abs(s["TST"] - night.tst_min))
        rdi.append(abs(s["AHI"] - night.ahi))
    print(f"\n{settings}: accuracy {acc}, |TST err| {tst}, |RDI err| {np.round(rdi, 2)}")
    return float(np.median(acc)), float(np.median(tst)), float(np.median(rdi))


@pytest.fixture(scope="module")
def noise_x5(tmp_path_factory):
    return _medians(tmp_path_factory.mktemp("noise"), SynthSettings(gyro_noise_dps=0.40))


def test_five_times_the_gyroscope_noise_does_not_turn_sleep_into_wake(noise_x5):
    # logistic-1: every second "active" at 1 deg/s, accuracy ~0.2, TST off by > 100 min.
    acc, tst, _ = noise_x5
    assert acc >= 0.90
    assert tst <= 30.0


def test_five_times_the_gyroscope_noise_meets_the_tst_target(noise_x5):
    # Failed with logistic-3 (strict xfail: |TST error| 18.5, 0 and 17 min, the restless wake
    # micro-movement sinks under the raised floor); logistic-4 judges still epochs by breathing.
    assert noise_x5[1] <= 15.0


def test_breathing_thirty_percent_slower_keeps_tst(tmp_path):
    acc, tst, _ = _medians(tmp_path, SynthSettings(breathing_rate_mult=0.7))
    assert acc >= 0.90
    assert tst <= 15.0


@pytest.mark.xfail(strict=True, reason=(
    "issue 24 defect 6: a SpO2 fall must begin after the event onset to confirm it "
    "(circulation delay; docs/science.md §8.4.2). These hypopneas desaturate 1-2.8 % by "
    "construction, so the 3 % path confirmed some of them only with a fall that had begun "
    "before them; ~30 % of the generator's arousals carry no movement and are invisible on the "
    "chin (choice batch 9100-9103: 23 of 31 missed hypopneas had a clear candidate and no "
    "arousal movement). Median |AHI error| 7.3/h on these seeds (SCIENCE.md row "
    "arousal_hypopneas)."))
def test_hypopneas_confirmed_by_arousal_alone_keep_the_index_within_5_per_hour(tmp_path):
    # AASM 1A: >= 3 % desaturation OR an arousal. Every hypopnea here desaturates 1-2.8 %.
    settings = SynthSettings(hypopnea_desat_pct=(1.0, 2.8), hypopnea_arousal_p=1.0)
    _, rdi = _medians(tmp_path, settings, obstructive_fraction=1.0)[::2]
    assert rdi <= 5.0


def test_hypopneas_confirmed_by_arousal_alone_are_counted(tmp_path):
    # AASM 1A: >= 3 % desaturation OR an arousal. Every hypopnea here desaturates 1-2.8 %.
    settings = SynthSettings(hypopnea_desat_pct=(1.0, 2.8), hypopnea_arousal_p=1.0)
    _, scores, _ = _score(tmp_path / "one", SEEDS[0], settings, obstructive_fraction=1.0)
    assert "arousal" in scores["RDI_rule"]
    events = (tmp_path / "one" / str(SEEDS[0]) / "out" / "events.csv").read_text()
    assert sum(line.endswith(",arousal") for line in events.splitlines()) >= 10


def test_without_oximetry_the_index_is_flagged_not_silently_lower(tmp_path):
    s, scores, _ = _score(tmp_path, SEEDS[0], SynthSettings(), with_spo2=False)
    assert scores["RDI_flag"] == "no_oximetry"
    assert scores["RDI_rule"].startswith("NO OXIMETRY")
    assert s["RDI_rule"] == "no_oximetry"
    assert scores["ODI"] is None


def test_activity_floor_is_a_low_percentile_and_rejects_a_dead_sensor():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0.3, 0.02, 10_000))
    x[:500] = 50.0  # movement bursts do not move the floor
    assert activity_floor(x) == pytest.approx(np.percentile(x, 5.0))
    assert 0.25 < activity_floor(x) < 0.3
    with pytest.raises(ValueError, match="floor"):
        activity_floor(np.zeros(100))
    with pytest.raises(ValueError, match="no finite"):
        activity_floor(np.full(10, np.nan))


def test_a_jaw_signal_without_wander_gives_no_obstructive_candidates():
    """Per-night margins are multiples of the night's own spread (MAD): a flat or quantised jaw
    position has none, and a zero margin would turn every second at or above the median into an
    obstructive candidate. Such a night reports none instead."""
    from sunrise_algo.builtin.model import load_model
    from sunrise_algo.builtin.respiration import _per_night_masks

    params = load_model().respiratory
    n = 3600
    rng = np.random.default_rng(3)
    obs_ratio = np.exp(rng.normal(0.0, 0.2, n))  # effort wanders as usual
    shift = np.zeros(n)  # the jaw position never moves
    ok = np.ones(n, dtype=bool)
    obstructive, _, strong = _per_night_masks(obs_ratio, shift, ok, params, gap=3)
    assert not obstructive.any(), f"{int(obstructive.sum())} of {n} seconds flagged obstructive"
    assert not strong.any()
