"""The quality mask: a sensor taken off (non-wear) is found, a worn one never is."""

from __future__ import annotations

import numpy as np
import pytest

from sunrise_cli.synth import SynthSettings, synth_night
from sunrise_night.prepare import prepare_sunrise
from sunrise_night.quality import NONWEAR


def _nonwear(tmp_path, seed, settings, **kw):
    night = synth_night(tmp_path / "n", seed=seed, hours=3.0, settings=settings, **kw)
    meta = prepare_sunrise(night.sunrise, tmp_path / "prep")
    with np.load(tmp_path / "prep" / "prepped.npz") as z:
        return night, meta, (z["quality"] & NONWEAR) > 0


@pytest.mark.parametrize("settings", [SynthSettings(sensor_off_min=20),
                                      SynthSettings(wake_block_min=40, sensor_off_min=20)],
                         ids=["off-while-asleep", "off-while-awake"])
def test_a_sensor_lying_on_a_table_for_20_min_is_non_wear(tmp_path, settings):
    """Issue 24 defect 3: on main the table was "good" signal (no bit at all)."""
    night, meta, nw = _nonwear(tmp_path, 31, settings)
    a, b = (int(t - night.sunrise_offset_s) for t in night.params["sensor_off_s"])
    found = np.flatnonzero(nw)
    assert abs(found[0] - a) <= 30 and abs(found[-1] + 1 - b) <= 30
    assert nw[a + 30 : b - 30].all() and nw.sum() <= (b - a) + 60
    assert meta["nonwear_s"] == nw.sum() and meta["valid_s"] <= meta["duration_s"] - (b - a) + 60


@pytest.mark.parametrize("kw", [{}, {"obstructive_fraction": 0.0, "ahi": 45,
                                     "settings": SynthSettings(event_duration_mult=1.8)}],
                         ids=["default", "long-central-apneas"])
def test_a_worn_sensor_is_never_non_wear_even_through_long_central_apneas(tmp_path, kw):
    settings = kw.pop("settings", SynthSettings())
    _, meta, nw = _nonwear(tmp_path, 32, settings, **kw)
    assert not nw.any() and meta["nonwear_s"] == 0
