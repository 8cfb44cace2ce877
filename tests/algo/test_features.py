"""Per-epoch features: the night's activity floor is measured on valid seconds only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sunrise_algo.builtin.features import activity_floor, compute_features
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
