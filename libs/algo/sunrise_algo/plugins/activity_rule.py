"""A small second plug-in: an actigraphy-style sleep/wake rule on chin activity.

The Oakley (Actiware) rule scores wrist activity counts with a weighted sum over +-4 epochs
(weights 1/25, 1/25, 1/5, 1/5, 2, 1/5, 1/5, 1/25, 1/25 for 30-s epochs; Oakley 1997, as used by
Philips Actiware) and calls an epoch wake when the sum exceeds a threshold. Here the count is the
chin's: per 30-s epoch, the mean of the 10-Hz gyroscope activity envelope (``activity_dps``,
deg/s) over the seconds the quality mask calls good, divided by the night's activity floor (the
5th percentile of those good seconds' 1-s means), so that the sensor's own noise level cancels.
Seconds the quality mask flags (clipped, flat, off-body, EDF+D gaps) count neither in the epoch
mean nor in the floor; an epoch with no good second is ``UNS``.

It scores sleep/wake only (no events: the pipeline then reports no event index, not zero). The
threshold is the model: ``default`` ships 4.0 (a weighted sum of ~4 relative-activity units, i.e.
about 1.5 x the floor sustained over the window; a round starting value, not fitted on any
evaluation batch) and :meth:`ActivityRule.fit` picks the threshold that maximises balanced
accuracy on the training subjects' gold rows (feature ``act_rule_sum``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sunrise_algo.interface import Algorithm, AlgorithmError, AlgorithmOutput, FeatureColumn, PreparedNight

OAKLEY_30S = np.array([1 / 25, 1 / 25, 1 / 5, 1 / 5, 2.0, 1 / 5, 1 / 5, 1 / 25, 1 / 25])
FLOOR_PCT = 5.0
DEFAULT_THRESHOLD = 4.0


def _values(x: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in x]


class ActivityRule(Algorithm):
    """Oakley-weighted relative chin activity, wake above a threshold."""

    name = "activity-rule"
    version = "1.0"
    trainable = True
    default_model = "default"

    def _threshold(self, model_version: str, model_dir: Path | None) -> float:
        if model_version == self.default_model:
            return DEFAULT_THRESHOLD
        path = Path(model_dir) / f"{model_version}.json" if model_dir is not None else None
        if path is None or not path.is_file():
            raise AlgorithmError("unknown_model", f"no {self.name} model {model_version!r}", permanent=True)
        spec = json.loads(path.read_text())
        if spec.get("algorithm") != self.name or not isinstance(spec.get("threshold"), (int, float)):
            raise AlgorithmError("unknown_model", f"model {model_version!r} is not an {self.name} artifact",
                                 permanent=True)
        return float(spec["threshold"])

    def run(self, night: PreparedNight, *, model_version: str, model_dir: Path | None = None) -> AlgorithmOutput:
        threshold = self._threshold(model_version, model_dir)
        n, epoch_s = night.n_epochs, night.epoch_s
        fs = float(night.meta["fs_derived"])
        act = np.asarray(night.signals["activity_dps"], dtype=np.float64)
        per_s = int(round(fs))
        n_s = min(act.size // per_s, int(n * epoch_s))
        act_1s = act[: n_s * per_s].reshape(n_s, per_s).mean(axis=1)
        quality = np.asarray(night.signals.get("quality", np.zeros(n_s)), dtype=np.int64)[:n_s]
        good = np.zeros(int(n * epoch_s), dtype=bool)
        good[: quality.size] = quality == 0
        good[n_s:] = False
        act_full = np.zeros(good.size)
        act_full[:n_s] = act_1s
        if not good.any():
            raise AlgorithmError("no_valid_signal", "the night has no second of good signal", permanent=True)
        floor = float(np.percentile(act_full[good], FLOOR_PCT))
        floor = max(floor, 1e-6)
        g = good.reshape(n, int(epoch_s))
        counts = g.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(counts > 0, (act_full.reshape(n, int(epoch_s)) * g).sum(axis=1) / counts / floor, np.nan)
        filled = np.where(np.isfinite(rel), rel, 0.0)
        c = len(OAKLEY_30S) // 2
        weighted = np.correlate(np.pad(filled, (c, c)), OAKLEY_30S, mode="valid")
        weighted = np.where(np.isfinite(rel), weighted, np.nan)
        sleep_wake = ["UNS" if not np.isfinite(w) else ("W" if w > threshold else "S") for w in weighted]
        return AlgorithmOutput(
            features=[FeatureColumn(name="act_rel", unit="1", values=_values(rel),
                                    description="mean gyroscope activity over good seconds / the night's floor"),
                      FeatureColumn(name="act_rule_sum", unit="1", values=_values(weighted),
                                    description="Oakley-weighted sum of act_rel over +-4 epochs"),
                      FeatureColumn(name="good_s", unit="s", values=[float(v) for v in counts],
                                    description="seconds of the epoch the quality mask calls good")],
            predictions={"sleep_wake": sleep_wake},
            scores={f"{self.name}.threshold": threshold, f"{self.name}.floor_dps": floor},
        )

    def predict_rows(self, features: Mapping[str, np.ndarray], artifact: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(features["act_rule_sum"], dtype=np.float64) > float(artifact["threshold"])

    def fit(self, features: Mapping[str, np.ndarray], sleep: np.ndarray, *, version: str) -> dict:
        x = np.asarray(features["act_rule_sum"], dtype=np.float64)
        y = np.asarray(sleep, dtype=bool)
        ok = np.isfinite(x)
        x, y = x[ok], y[ok]
        if not (y.any() and (~y).any()):
            raise ValueError("training rows need both sleep and wake epochs")
        candidates = np.unique(np.quantile(x, np.linspace(0.01, 0.99, 99)))
        best, best_score = DEFAULT_THRESHOLD, -1.0
        for t in candidates:
            wake_pred = x > t
            score = 0.5 * (np.mean(~wake_pred[y]) + np.mean(wake_pred[~y]))
            if score > best_score:
                best, best_score = float(t), float(score)
        return {"version": version, "algorithm": self.name, "algorithm_version": self.version,
                "threshold": best, "fitted_on": {"rows": int(x.size), "balanced_accuracy": best_score}}
