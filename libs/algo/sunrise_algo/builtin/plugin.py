"""The built-in algorithm as the reference plug-in of ``sunrise_algo`` (entry point ``sunalgo``).

Features (``features``), the versioned sleep/wake model (``model``), the respiratory event detector
and the oximetry desaturations (``respiration``), returned through the same interface as any other
plug-in: the stage has no special path for it. The entry point is declared by this library
(libs/algo/pyproject.toml), so the CLI's ``sunrise algo`` finds the plug-in without the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sunrise_algo.interface import Algorithm, AlgorithmError, AlgorithmOutput, FeatureColumn, PreparedNight
from sunrise_algo.builtin.features import FEATURES, compute_features, invalid_epochs
from sunrise_algo.builtin.model import ALGO_VERSION, DEFAULT_MODEL, MODEL_VERSIONS, ModelError, load_model
from sunrise_algo.builtin.respiration import RDI_RULES, desaturations, detect_events, rdi_rule

NAME, VERSION = ALGO_VERSION.split("-", 1)  # "sunalgo-1.0": results stay where they were
#: How this algorithm counts desaturations (scores.json / agreement.json ``ODI_criterion``).
ODI_CRITERION = ("fall >= 3 % below the maximum of the preceding 120 s, >= 3 s "
                 "(sunrise_algo.builtin.respiration.desaturations)")


def _values(x: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(x, dtype=np.float64)]


class Builtin(Algorithm):
    """Chin-movement features, a logistic (or Oakley-rule) sleep/wake model and MM respiratory events."""

    name = NAME
    version = VERSION
    # Trained by `sunrise train` without --algorithm (logistic regression on the gold rows, in the
    # CLI); fit() is the way for other plug-ins.
    trainable = False
    default_model = DEFAULT_MODEL

    def packaged_models(self) -> set[str]:
        return set(MODEL_VERSIONS)

    def run(self, night: PreparedNight, *, model_version: str, model_dir: Path | None = None) -> AlgorithmOutput:
        try:
            model = load_model(model_version, model_dir=model_dir)
        except ModelError as exc:
            raise AlgorithmError("unknown_model", str(exc), permanent=True) from exc
        arrays, meta = dict(night.signals), dict(night.meta)
        feats = compute_features(arrays, meta)
        wake = model.predict_wake(feats)
        epoch_s = night.epoch_s
        # Not recorded / sensor not worn (issue 24): neither sleep nor wake, out of every index.
        invalid = invalid_epochs(arrays.get("quality"), night.n_epochs)
        asleep = ~wake & ~invalid
        events = detect_events(arrays, meta, asleep, model.respiratory, epoch_s)
        has_spo2 = bool(meta.get("has_spo2")) and "spo2" in arrays
        desats = (desaturations(arrays.get("spo2"), 3.0, np.repeat(asleep, int(epoch_s))) if has_spo2 else [])
        p_wake = model.wake_probability(feats)
        rule = rdi_rule(model.respiratory, has_spo2)
        scored = ["obstructive_event", "central_event"] + (["desaturation"] if has_spo2 else [])
        return AlgorithmOutput(
            features=[FeatureColumn(name=f.name, unit=f.unit, description=f.description, values=_values(feats[f.name])) for f in FEATURES],
            predictions={"sleep_wake": ["UNS" if bad else "W" if w else "S" for w, bad in zip(wake, invalid)],
                         "p_wake": None if p_wake is None else _values(p_wake)},
            events=[{"type": e.type, "onset_s": e.onset_s, "duration_s": e.duration_s,
                     "attributes": {"effort_ratio": e.effort_ratio, "jaw_shift_deg": e.jaw_shift_deg,
                                    "desaturation_pct": e.desaturation_pct, "confirmed_by": e.confirmed_by}}
                    for e in events]
            + [{"type": "desaturation", "onset_s": o, "duration_s": d, "attributes": {"drop_pct": drop}}
               for o, d, drop in desats],
            event_types_scored=scored,
            scores={"RDI_rule": RDI_RULES[rule], "RDI_rule_key": rule,
                    "RDI_flag": None if has_spo2 else "no_oximetry",
                    "ODI_criterion": ODI_CRITERION if has_spo2 else None},
        )

    def fit(self, features: Mapping[str, np.ndarray], sleep: np.ndarray, *, version: str) -> dict:
        raise NotImplementedError("the built-in model is trained by `sunrise train` (logistic regression on the gold rows)")
