"""Shared fixtures of the sunalgo tests: one prepared synthetic night with its truth labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from sunrise_cli.synth import synth_night, write_truth_labels
from sunrise_night.prepare import prepare_sunrise


@pytest.fixture(scope="module")
def one_hour_night(tmp_path_factory) -> Path:
    """A 1-h synthetic night (seed 5, AHI 20): ``root/prep`` (sunrise_prep) and ``root/psg`` (its truth)."""
    root = tmp_path_factory.mktemp("night")
    night = synth_night(root / "n", seed=5, hours=1.0, ahi=20.0)
    prepare_sunrise(night.sunrise, root / "prep")
    write_truth_labels(night, root / "psg")
    return root
