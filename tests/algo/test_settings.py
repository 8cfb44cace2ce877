"""AlgorithmSettings: the model store and the active algorithm belong to the sunalgo stage (and
the CLI that trains its models), read from the same variables as before; the other services'
settings do not carry them (issue 25, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sunrise_algo.settings import AlgorithmSettings
from sunrise_common.settings import Settings

pytestmark = pytest.mark.usefixtures("no_sunrise_environment")  # settings read the environment

ALGO_ONLY = {name for name in AlgorithmSettings.model_fields if name not in Settings.model_fields}


def test_the_model_store_and_the_algorithm_are_the_stages_only():
    assert ALGO_ONLY == {"model_version", "models_dir", "algorithm", "algorithm_url", "algorithm_timeout_s",
                         "algorithm_retries"}
    assert not hasattr(Settings(), "model_store")


def test_the_stage_reads_the_same_variables_as_before(no_sunrise_environment, tmp_path):
    no_sunrise_environment.setenv("SUNRISE_MODELS_DIR", str(tmp_path / "models"))
    no_sunrise_environment.setenv("SUNRISE_ALGORITHM_URL", "http://127.0.0.1:9/")
    no_sunrise_environment.setenv("SUNRISE_ALGORITHM_RETRIES", "1")
    settings = AlgorithmSettings()
    assert settings.model_store() == tmp_path / "models"
    assert (settings.algorithm_url, settings.algorithm_retries) == ("http://127.0.0.1:9/", 1)


def test_the_model_store_defaults_to_the_data_dir():
    assert AlgorithmSettings(data_dir=Path("d")).model_store() == Path("d") / "models"


def test_base_settings_given_to_the_stage_keep_their_values_and_gain_the_stages(no_sunrise_environment, tmp_path):
    no_sunrise_environment.setenv("SUNRISE_MODEL_VERSION", "logistic-2")
    base = Settings(backend="embedded", data_dir=tmp_path, prefix="sunrise-x")
    stage = AlgorithmSettings.of(base)
    assert (stage.data_dir, stage.prefix, stage.model_version) == (tmp_path, "sunrise-x", "logistic-2")
    assert AlgorithmSettings.of(stage) is stage


def test_the_algorithms_bounds_still_hold():
    with pytest.raises(ValueError, match="algorithm_retries"):
        AlgorithmSettings(algorithm_retries=11)
    with pytest.raises(ValueError, match="algorithm"):
        AlgorithmSettings(algorithm="Not A Name")
