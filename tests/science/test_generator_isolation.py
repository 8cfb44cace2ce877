"""The detector cannot read the generator's answer: sunalgo and sunrise_prep never import the
synthetic-night generator (or anything of the CLI), and the generator's settings shift the
signals they claim to shift."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from sunrise_cli.synth import SynthSettings, synth_night

ROOT = Path(__file__).resolve().parents[2]
# libs/algo/sunrise_algo: where the built-in detector moves (issue 25), checked there too.
DETECTOR_PACKAGES = (ROOT / "services/sunalgo/sunalgo", ROOT / "services/sunrise_prep/sunrise_prep",
                     ROOT / "libs/algo/sunrise_algo")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return names


@pytest.mark.parametrize("package", DETECTOR_PACKAGES, ids=lambda p: p.name)
def test_detector_packages_do_not_import_the_generator(package):
    files = sorted(package.rglob("*.py"))
    assert files, f"no sources under {package}"
    offenders = {str(f.relative_to(ROOT)): sorted(m for m in _imported_modules(f)
                                                 if m.split(".")[0] in ("sunrise_cli", "science")
                                                 or "synth" in m)
                 for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_isolation_scan_sees_a_generator_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from sunrise_cli.synth import SynthSettings\nimport numpy\n")
    assert "sunrise_cli.synth" in _imported_modules(bad)


def _gyro_noise_dps(path: Path) -> float:
    import edfio

    edf = edfio.read_edf(path)
    gx = next(s for s in edf.signals if s.label == "Gyro X").data
    # Noise floor: SD of the sample-to-sample difference / sqrt(2) in the stillest minute
    # (movement and breathing change slowly at 25 Hz; white noise does not).
    d = np.diff(gx)
    d = d[: d.size // 1500 * 1500].reshape(-1, 1500)
    return float(np.min(d.std(axis=1)) / np.sqrt(2))


def test_settings_shift_gyro_noise_and_force_a_wake_block(tmp_path):
    base = synth_night(tmp_path / "a", seed=4, hours=2.0, ahi=10)
    noisy = synth_night(tmp_path / "b", seed=4, hours=2.0, ahi=10,
                        settings=SynthSettings(gyro_noise_dps=0.4, wake_block_min=60))
    assert _gyro_noise_dps(base.sunrise) == pytest.approx(0.08, rel=0.15)
    assert _gyro_noise_dps(noisy.sunrise) == pytest.approx(0.40, rel=0.15)
    hyp = np.array(noisy.hypnogram)
    sleep = np.flatnonzero(hyp != "W")
    mid = hyp[sleep[0] + 1 : sleep[-1]]
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, mid == "W", 0])))[::2]
    assert runs.max() >= 120  # 60 min of 30-s epochs inside the sleep period
    assert noisy.params["settings"]["wake_block_min"] == 60


def test_settings_reject_impossible_values():
    with pytest.raises(ValueError, match="event_duration_s"):
        SynthSettings(event_duration_s=(12.0, 10.0))
    with pytest.raises(ValueError, match="noise"):
        SynthSettings(gyro_noise_dps=-1.0)
