"""The CLI's settings: it drives the local stack (``DevStackSettings``) and trains, activates and
reports on sunalgo's models (``AlgorithmSettings``), so it reads both; the variables are theirs."""

from __future__ import annotations

from sunrise_algo.settings import AlgorithmSettings
from sunrise_devstack.settings import DevStackSettings


class CliSettings(DevStackSettings, AlgorithmSettings):
    """The dev stack's settings and the sunalgo stage's, from one environment."""
