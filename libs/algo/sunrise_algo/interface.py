"""The algorithm interface of the sunalgo stage (``INTERFACE_VERSION`` 1).

A plug-in receives one :class:`PreparedNight` — the ``sunrise_prep`` outputs of one night: the
10-Hz derived jaw-movement signals, the 1-Hz quality mask (and SpO2/pulse when recorded), the
per-epoch breathing rate, on the Sunrise recording's true time base (time 0 = recording start,
EDF+D gaps already marked invalid in ``quality``) and the night's metadata. It never sees the PSG:
the reference is used by the pipeline for agreement and training rows only, after the plug-in ran.

It returns an :class:`AlgorithmOutput`: per-epoch features (named, with units), per-epoch
predictions (sleep/wake, optionally a stage, optionally P(wake)), scored events (type, onset,
duration, numeric attributes) and extra scores. The canonical clinical scores (TST, SE, WASO,
AHI, ODI, ... with the names and units of ``sunrise_algo.scores``) are computed by the pipeline from
the predictions and events, with the same function it applies to the PSG's labels, so both sides
of an agreement are computed alike; a plug-in's own extra scores are namespaced
``"{plugin name}.{key}"``.

Epochs are 30 s from the Sunrise recording start; epoch ``i`` covers ``[30 i, 30 (i + 1))`` s.
docs/algorithms.md documents the interface with a complete example.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

INTERFACE_VERSION = "1"
EPOCH_S = 30.0

#: Stage codes of a prediction (``S`` = sleep without a stage, ``UNS`` = not scored: no valid signal).
STAGES = ("W", "N1", "N2", "N3", "REM", "S", "UNS")
#: Event types a plug-in may score (those ``sunrise_algo.scores`` counts; ``desaturation`` feeds the ODI).
EVENT_TYPES = ("obstructive_event", "central_event", "obstructive_apnea", "central_apnea", "mixed_apnea",
               "hypopnea", "rera", "arousal", "desaturation")
#: Score keys any plug-in may set without a namespace: how its respiratory index was confirmed and
#: how it counts desaturations.
SHARED_SCORE_KEYS = ("RDI_rule", "RDI_rule_key", "RDI_flag", "ODI_criterion")
NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")
FEATURE_PATTERN = re.compile(r"\A[A-Za-z][A-Za-z0-9_]{0,63}\Z")
# A string attribute or score is a code, never free text (it could carry personal data).
CODE_PATTERN = re.compile(r"\A[A-Za-z0-9_.:+ -]{0,64}\Z")

Number = float | int | None


class AlgorithmError(Exception):
    """A plug-in's failure. ``permanent``: this night cannot be scored (bad input for this
    algorithm: recorded as the night's reason, not retried); otherwise the run is retried."""

    def __init__(self, reason: str, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.permanent = permanent


class FeatureColumn(BaseModel):
    """One per-epoch feature: ``values[i]`` belongs to epoch ``i`` (None = not computable there)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    unit: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:+/% -]{1,32}$")
    values: list[float | None]
    description: str = Field("", max_length=200)


class Predictions(BaseModel):
    """Per-epoch predictions; every list has one entry per epoch of the night."""

    model_config = ConfigDict(extra="forbid")
    sleep_wake: list[Literal["S", "W", "UNS"]]
    stage: list[Literal["W", "N1", "N2", "N3", "REM", "S", "UNS"]] | None = None
    p_wake: list[float | None] | None = None

    @field_validator("p_wake")
    @classmethod
    def _probabilities(cls, v: list[float | None] | None) -> list[float | None] | None:
        if v is not None and any(p is not None and not 0.0 <= p <= 1.0 for p in v):
            raise ValueError("p_wake values must lie in [0, 1]")
        return v


class ScoredEvent(BaseModel):
    """A scored event; onset in s from the Sunrise recording start, duration in s."""

    model_config = ConfigDict(extra="forbid")
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    onset_s: float = Field(ge=0.0)
    duration_s: float = Field(ge=0.0, le=3600.0)
    attributes: dict[str, float | int | str | None] = {}

    @field_validator("attributes")
    @classmethod
    def _codes_only(cls, v: dict) -> dict:
        for key, value in v.items():
            if not FEATURE_PATTERN.match(key):
                raise ValueError(f"attribute name of {len(key)} characters is not an identifier")
            if isinstance(value, str) and not CODE_PATTERN.match(value):
                raise ValueError(f"attribute {key} is not a code (letters, digits, _.:+- and spaces, <= 64)")
        return v


class AlgorithmOutput(BaseModel):
    """What a plug-in returns for one night."""

    model_config = ConfigDict(extra="forbid")
    interface_version: Literal["1"] = INTERFACE_VERSION
    features: list[FeatureColumn]
    predictions: Predictions
    events: list[ScoredEvent] = []
    #: Event types this algorithm scores at all: without any, the pipeline reports no event
    #: index (None, not 0) for the night.
    event_types_scored: list[Literal[EVENT_TYPES]] = []  # type: ignore[valid-type]
    scores: dict[str, float | int | str | None] = {}

    def feature_arrays(self) -> dict[str, np.ndarray]:
        """The features as float64 arrays (None -> NaN)."""
        return {f.name: np.array([np.nan if v is None else v for v in f.values], dtype=np.float64)
                for f in self.features}

    def stages(self) -> list[str]:
        """The per-epoch stage, or the sleep/wake prediction when no stage is predicted."""
        return list(self.predictions.stage or self.predictions.sleep_wake)


@dataclass(frozen=True)
class PreparedNight:
    """One prepared Sunrise night: the only input of a plug-in.

    ``signals`` are the ``prepped.npz`` arrays of ``sunrise_prep`` (read-only; units in
    ``meta["units"]``, rates in ``meta["fs_derived"]`` (10 Hz) and ``meta["fs_slow"]`` (1 Hz));
    ``reference`` holds signed URLs of the night's prepared objects when the pipeline runs an
    external algorithm service (``meta_url``, ``signals_url``).
    """

    night_id: str
    meta: Mapping[str, Any]
    signals: Mapping[str, np.ndarray]
    reference: Mapping[str, str] = field(default_factory=dict)

    @property
    def n_epochs(self) -> int:
        return int(self.meta["n_epochs"])

    @property
    def epoch_s(self) -> float:
        return float(self.meta.get("epoch_s", EPOCH_S))

    @property
    def duration_s(self) -> float:
        return float(self.meta["duration_s"])

    @classmethod
    def from_files(cls, night_id: str, meta_json: bytes, signals_npz: Path | Any,
                   reference: Mapping[str, str] | None = None) -> PreparedNight:
        """Build from ``meta.json`` bytes and a ``prepped.npz`` path or file object."""
        meta = json.loads(meta_json)
        with np.load(signals_npz, allow_pickle=False) as z:
            signals = {k: z[k] for k in z.files}
        for array in signals.values():
            array.setflags(write=False)
        return cls(night_id=night_id, meta=meta, signals=signals, reference=dict(reference or {}))

    @classmethod
    def from_folder(cls, night_id: str, folder: Path, reference: Mapping[str, str] | None = None) -> PreparedNight:
        """Build from a ``sunrise_prep`` output folder (``meta.json`` + ``prepped.npz``)."""
        folder = Path(folder)
        return cls.from_files(night_id, (folder / "meta.json").read_bytes(), folder / "prepped.npz", reference)


class Algorithm(ABC):
    """A sunalgo plug-in. Subclass it, register the class under the ``sunrise.algorithms`` entry
    point group, and the stage, the CLI and the conformance kit find it by ``name``.

    ``algo_version`` (in every result path and lineage column) is
    ``{name}-{version}+{model_version}``: two plug-ins, or two models of one, sit side by side.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    interface_version: ClassVar[str] = INTERFACE_VERSION
    #: True when :meth:`fit` turns gold-layer training rows into a model artifact.
    trainable: ClassVar[bool] = False
    #: The model used when none is named.
    default_model: ClassVar[str] = "default"

    def algo_version(self, model_version: str) -> str:
        return f"{self.name}-{self.version}+{model_version}"

    def packaged_models(self) -> set[str]:
        """Model versions shipped with the plug-in (no artifact in the model store needed)."""
        return {self.default_model}

    @abstractmethod
    def run(self, night: PreparedNight, *, model_version: str, model_dir: Path | None = None) -> AlgorithmOutput:
        """Score one night with one model version (a packaged one, or ``model_dir/{version}.json``)."""

    def fit(self, features: Mapping[str, np.ndarray], sleep: np.ndarray, *, version: str) -> dict:
        """A model artifact (JSON-able dict with ``version`` and ``algorithm`` = :attr:`name`) fitted on
        training rows: ``features[name][i]`` and ``sleep[i]`` (True = the PSG scored sleep) for
        the rows of the training subjects. The split by subject is the pipeline's."""
        raise NotImplementedError(f"{self.name} is not trainable")

    def predict_rows(self, features: Mapping[str, np.ndarray], artifact: Mapping[str, Any]) -> np.ndarray:
        """Wake (True) per training row under ``artifact``: how ``sunrise train`` measures a fitted model
        on the held-out subjects. Required when :attr:`trainable`."""
        raise NotImplementedError(f"{self.name} is not trainable")


def check_lengths(output: AlgorithmOutput, n_epochs: int) -> list[str]:
    """What is wrong with the per-epoch shape of ``output`` for a night of ``n_epochs`` (empty: nothing)."""
    problems = []
    p = output.predictions
    for label, seq in (("predictions.sleep_wake", p.sleep_wake), ("predictions.stage", p.stage),
                       ("predictions.p_wake", p.p_wake)):
        if seq is not None and len(seq) != n_epochs:
            problems.append(f"{label} has {len(seq)} entries for {n_epochs} epochs")
    for f in output.features:
        if len(f.values) != n_epochs:
            problems.append(f"feature {f.name} has {len(f.values)} values for {n_epochs} epochs")
    names = [f.name for f in output.features]
    if len(set(names)) != len(names):
        problems.append("feature names repeat")
    return problems


def check_scores(output: AlgorithmOutput, plugin: str, canonical: Sequence[str]) -> list[str]:
    """Score keys that are neither canonical, shared nor namespaced ``{plugin}.``; string scores that are not codes."""
    problems = []
    for key, value in output.scores.items():
        if key not in canonical and key not in SHARED_SCORE_KEYS and not key.startswith(f"{plugin}."):
            problems.append(f"score key of {len(key)} characters is not namespaced '{plugin}.'")
        if isinstance(value, str) and len(value) > 200:
            problems.append(f"score {key} is a string of {len(value)} characters (> 200)")
    return problems
