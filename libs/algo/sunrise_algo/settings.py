"""Settings of the sunalgo stage and of what trains its models: the shared
``sunrise_common.settings.Settings`` plus the model store and the active algorithm.

The variables keep their names (``SUNRISE_MODEL_VERSION``, ``SUNRISE_MODELS_DIR``,
``SUNRISE_ALGORITHM``, ``SUNRISE_ALGORITHM_URL``, ``SUNRISE_ALGORITHM_TIMEOUT_S``,
``SUNRISE_ALGORITHM_RETRIES``): the class has the base's ``SUNRISE_`` prefix. The other services
read the base class only (issue 25, item 3).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from sunrise_common.settings import Settings


class AlgorithmSettings(Settings):
    """:class:`~sunrise_common.settings.Settings` plus sunalgo's model store and algorithm
    (docs/algorithms.md)."""

    # The model version sunalgo scores with when an event names none (None: the plug-in's default),
    # and the model store (None: DATA_DIR/models).
    model_version: str | None = None
    models_dir: Path | None = None
    # sunalgo's algorithm (docs/algorithms.md): the active plug-in (an entry point of the
    # "sunrise.algorithms" group), or an external algorithm service at algorithm_url that the
    # stage calls with signed references to the prepared night.
    algorithm: str = Field("sunalgo", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    algorithm_url: str | None = None
    algorithm_timeout_s: float = Field(120.0, gt=0, le=3600)
    algorithm_retries: int = Field(3, ge=0, le=10)

    @classmethod
    def of(cls, settings: Settings) -> AlgorithmSettings:
        """``settings`` as the stage's settings: itself when it already is, else its values
        (those given explicitly) with the algorithm's own from the environment."""
        if isinstance(settings, cls):
            return settings
        return cls(**{name: getattr(settings, name) for name in settings.model_fields_set})

    def model_store(self) -> Path:
        """Where trained sunalgo models and the ACTIVE.json pointer live."""
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"


@lru_cache(maxsize=1)
def get_algorithm_settings() -> AlgorithmSettings:
    """The stage's settings from the environment, read once per process."""
    return AlgorithmSettings()
