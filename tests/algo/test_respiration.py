"""Respiratory events: the arousal path does not confirm chance candidates."""

from __future__ import annotations

import json

import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL
from sunalgo.run import run_sunalgo
from sunrise_cli.synth import synth_night, write_truth_labels
from sunrise_night.prepare import prepare_sunrise

SEEDS = (2024500, 2024501, 2024502)  # not the fit (7000-) nor the choice (9100-) batch


@pytest.fixture(scope="module")
def event_free_nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("free")
    out = []
    for seed in SEEDS:
        d = root / str(seed)
        night = synth_night(d, seed=seed, hours=6.0, ahi=0.0)
        assert night.events == []
        prepare_sunrise(night.sunrise, d / "prep")
        out.append((d, write_truth_labels(night, d / "psg")))
    return out


def test_event_free_nights_give_at_most_half_an_event_per_hour_of_sleep(event_free_nights):
    """Issue 24 defect 5: on main the arousal path confirmed ~1.7 chance events/h (mostly REM
    twitches at the end of a chance effort rise), a bias at the 5/h diagnostic cut-off."""
    n_events, tst_h = 0, 0.0
    for d, psg in event_free_nights:
        s = run_sunalgo(d / "prep", psg, d / "out", model_version=DEFAULT_MODEL)
        n_events += s["n_events"]
        tst_h += s["TST"] / 60
        assert json.loads((d / "out" / "scores.json").read_text())["scores"]["AHI"] < 1.5
    assert n_events / tst_h <= 0.5


@pytest.mark.parametrize("with_spo2", [True, False], ids=["oximetry", "no-oximetry"])
def test_central_apneas_of_cheyne_stokes_breathing_are_found_and_typed_central(tmp_path,
                                                                               with_spo2):
    """Issue 24 defect 6: against a lower-percentile baseline that is itself apneic in periodic
    breathing, most Cheyne-Stokes apneas were missed or typed obstructive (on main without
    oximetry: 9 of 60 found central)."""
    from sunrise_cli.synth import SynthSettings

    night = synth_night(tmp_path / "n", seed=2024600, hours=4.0, ahi=5.0, with_spo2=with_spo2,
                        settings=SynthSettings(periodic_breathing_min=90.0))
    prepare_sunrise(night.sunrise, tmp_path / "prep")
    run_sunalgo(tmp_path / "prep", write_truth_labels(night, tmp_path / "psg"), tmp_path / "out",
                model_version=DEFAULT_MODEL)
    central = json.loads((tmp_path / "out" / "agreement.json").read_text())["events"]["psg"][
        "central_apnea"]
    assert central["n"] >= 30
    assert central["sensitivity_typed"] >= 0.7


# --- Constructed signals (issue 24 defect 6): steady breathing with one injected change. ---

FS = 25.0  # Hz, the prepared breathing-band gyroscope rate


def _night(amplitude: "np.ndarray", spo2: "np.ndarray", seed: int = 2024700) -> tuple[dict, dict]:
    """Prepared arrays of a still sleeper breathing at 0.25 Hz whose per-second breathing-band
    amplitude (deg/s) is ``amplitude``; SpO2 (%) per second is ``spo2``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = amplitude.size
    t = np.arange(int(n * FS)) / FS
    amp = np.repeat(amplitude, int(FS))
    breath = amp * np.sin(2 * np.pi * 0.25 * t)
    gyro = np.stack([breath, 0.3 * breath, 0.1 * breath]) + rng.normal(0, 0.01, (3, t.size))
    arrays = {"breath_gyro": gyro,
              "mandible_angle_deg": 30.0 + rng.normal(0, 0.05, t.size),
              "activity_dps": 0.2 + np.abs(rng.normal(0, 0.02, t.size)),
              "quality": np.zeros(n), "spo2": spo2}
    return arrays, {"fs_derived": FS}


def _params(**over):
    from sunrise_algo.builtin.model import load_model

    return {**load_model(DEFAULT_MODEL).respiratory, **over}


def test_a_central_apnea_of_eleven_seconds_is_found_with_its_duration():
    """A 10-12 s central apnea stays under the 30 % drop threshold of the smoothed effort for
    only 6-9 s (smoothing and breath cycles); its duration is measured from the fall to the
    recovery (AASM), so it is found (on main it was dropped by the 10-s rule)."""
    import numpy as np

    from sunrise_algo.builtin.respiration import detect_events

    n = 600
    amplitude = np.full(n, 1.0)
    # 11 s from the first reduced breath to the first full one: breathing fades over ~2 s,
    # stops (no central drive, no effort on the jaw) and resumes over ~2 s.
    amplitude[300:311] = np.concatenate([[0.6, 0.3], np.full(7, 0.05), [0.3, 0.6]])
    spo2 = np.full(n, 96.0)
    spo2[320:331] -= np.linspace(0, 4, 11)  # its own fall, nadir 20 s after the end
    arrays, meta = _night(amplitude, spo2)
    sleep = np.ones(n // 30, dtype=bool)
    found = [e for e in detect_events(arrays, meta, sleep, _params())
             if e.type == "central_event"]
    assert len(found) == 1
    assert 295 <= found[0].onset_s <= 302 and found[0].duration_s >= 10
    legacy = _params(central_extent_ratio=None)
    assert not [e for e in detect_events(arrays, meta, sleep, legacy)
                if e.type == "central_event"]


def test_a_desaturation_already_under_way_at_onset_does_not_confirm_an_event():
    """An effort dip right after an earlier event sits in that event's desaturation; SpO2
    lags the lungs, so the fall belongs to the earlier event and confirms nothing. The same
    dip followed by its own fall is confirmed."""
    import numpy as np

    from sunrise_algo.builtin.respiration import detect_events

    n = 600
    amplitude = np.full(n, 1.0)
    amplitude[300:318] = 0.5  # an 18-s dip to half the breathing amplitude (not apnea-like)
    sleep = np.ones(n // 30, dtype=bool)
    earlier = np.full(n, 96.0)
    earlier[285:305] -= np.linspace(0, 5, 20)  # falling since 15 s before the onset
    earlier[305:320] = np.linspace(91, 96, 15)
    own = np.full(n, 96.0)
    own[318:338] -= np.linspace(0, 5, 20)  # falls after the onset, nadir 20 s after the end
    for spo2, expected in ((earlier, 0), (own, 1)):
        arrays, meta = _night(amplitude, spo2)
        found = [e for e in detect_events(arrays, meta, sleep, _params())
                 if e.type == "central_event"]
        assert len(found) == expected, (expected, found)
    arrays, meta = _night(amplitude, earlier)
    legacy = _params(desat_after_onset=None)
    assert [e for e in detect_events(arrays, meta, sleep, legacy) if e.type == "central_event"]


def test_the_fall_after_onset_ignores_a_fall_that_began_before_it():
    import numpy as np

    from sunrise_algo.builtin.respiration import _fall_after_onset

    recovering = np.array([91.0, 92, 94, 96, 96, 95, 94])
    assert _fall_after_onset(recovering) == 2.0  # 96 -> 94 after the onset, not 96 -> 91
    assert _fall_after_onset(np.array([np.nan, np.nan])) is None


# --- Typed parameters (issue 25 item 4). ---

def test_every_packaged_artifact_gives_typed_respiratory_parameters():
    from sunrise_algo.builtin.model import MODEL_VERSIONS, load_model
    from sunrise_algo.builtin.respiration import RespiratoryParams

    for version in MODEL_VERSIONS:
        p = RespiratoryParams.from_artifact(load_model(version).respiratory)
        assert p.per_night == (version[-1] != "1"), version
        assert p.min_duration_s == 10


@pytest.mark.parametrize("change, message", [
    ({"surprise": 1}, "unknown respiratory parameters: ['surprise']"),
    ({"obstructive_ratio_z": None}, "missing respiratory parameters: ['obstructive_ratio_z']"),
    ({"normalise": "weekly"}, "'normalise' must be absent or 'per_night'"),
])
def test_respiratory_parameters_name_what_is_wrong(change, message):
    from sunrise_algo.builtin.respiration import RespiratoryParams

    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RespiratoryParams.from_artifact(_params(**change))


def test_a_dip_just_before_an_event_does_not_borrow_that_events_desaturation():
    """The SpO2 fall that follows a second effort dip (circulation delay) belongs to it: the
    first dip, 25 s earlier, is not confirmed by it; on main it was (the 45-s window reached
    the second dip's nadir)."""
    import numpy as np

    from sunrise_algo.builtin.respiration import detect_events

    n = 600
    amplitude = np.full(n, 1.0)
    amplitude[303:315] = 0.5  # a chance dip, no desaturation of its own
    amplitude[330:350] = 0.5  # the next dip, 15 s later, followed by its own fall
    spo2 = np.full(n, 96.0)
    spo2[352:362] -= np.linspace(0, 5, 10)  # starts 22 s after the second onset
    spo2[362:377] = np.linspace(91, 96, 15)
    arrays, meta = _night(amplitude, spo2)
    sleep = np.ones(n // 30, dtype=bool)
    found = [e for e in detect_events(arrays, meta, sleep, _params())
             if e.type == "central_event"]
    assert len(found) == 1 and 325 <= found[0].onset_s <= 332
    legacy = _params(desat_to_latest_event=None)
    assert len([e for e in detect_events(arrays, meta, sleep, legacy)
                if e.type == "central_event"]) == 2


def test_clustered_dips_each_keep_their_own_desaturation():
    """Three effort dips 35 s apart, the second and third each followed by their own fall
    (15 s after their onset, the circulation delay): the second is confirmed by its own 4-point
    fall although the third's 6-point fall lies inside its 45-s window; the first, with no fall
    of its own, is not. On main the second kept none (the window's largest fall, the third's,
    was given away whole) and only the third was scored."""
    import numpy as np

    from sunrise_algo.builtin.respiration import detect_events

    n = 600
    amplitude = np.full(n, 1.0)
    for onset in (200, 235, 270):
        amplitude[onset:onset + 15] = 0.5
    spo2 = np.full(n, 96.0)
    for start, depth in ((250, 4.0), (285, 6.0)):
        spo2[start:start + 10] = 96 - np.linspace(0, depth, 10)
        spo2[start + 10:start + 22] = np.linspace(96 - depth, 96, 12)
    arrays, meta = _night(amplitude, spo2)
    sleep = np.ones(n // 30, dtype=bool)
    found = sorted((e.onset_s, e.desaturation_pct) for e in detect_events(arrays, meta, sleep, _params())
                   if e.type == "central_event")
    assert [round(o / 10) for o, _ in found] == [23, 27]  # the second and third dips
    assert [d for _, d in found] == [4.0, 6.0]
