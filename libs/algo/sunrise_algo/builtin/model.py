"""Versioned sunalgo models: JSON artifacts (coefficients and thresholds, never pickles).

An artifact has a ``version``, a ``sleep_wake`` section and a ``respiratory`` section (the
thresholds of ``sunrise_algo.builtin.respiration``). Two sleep/wake kinds exist:

* ``oakley``: the Oakley/Actiware weighted-sum rule (science.md §2.1; for 30-s epochs weights
  1/25 at +-3..4 epochs, 1/5 at +-1..2, 2 at the centre) applied to a per-epoch activity feature,
  **sleep when the score <= threshold**, followed by optional Webster-style rescoring of short
  sleep runs after long wake. The rule was designed for wrist counts; on the chin its threshold
  is re-fitted (``fitted_on`` records on what).
* ``logistic``: logistic regression on standardised features (``mean``/``scale``/``coef``/
  ``intercept``), ``P(wake) >= threshold`` -> wake, as exported by ``sunrise_cli.train``.
  Optional ``still`` section (logistic-4, issue 24): a second logistic regression of the same
  form on breathing and swallowing features, fitted on the still epochs only (no movement:
  ``gate.feature <= gate.max``); where the gate holds, P(wake) is the larger of the two. Quiet
  wake has no movement, so a movement model cannot see it (docs/science.md §3).

Feature names may carry a context suffix computed here with numpy only: ``name@meanK`` (centred
rolling mean over K epochs), ``name@oakley`` (the Oakley weighted sum), ``name@log`` (log1p),
``name@nightlog`` (log of the ratio to the night's median); suffixes chain left to right.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

ALGO_VERSION = "sunalgo-1.0"
DEFAULT_MODEL = "logistic-4"
#: Versions shipped inside the package (``sunrise_algo/builtin/models/{version}.json``).
MODEL_VERSIONS = ("baseline-1", "logistic-1", "baseline-2", "logistic-2", "baseline-3", "logistic-3",
                  "baseline-4", "logistic-4")
OAKLEY_30S = np.array([1 / 25, 1 / 25, 1 / 5, 1 / 5, 2.0, 1 / 5, 1 / 5, 1 / 25, 1 / 25])


class ModelError(ValueError):
    """An unknown model version or a malformed artifact."""


def weighted_window(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i x[t + i - c]`` with the window centred (c = len(w)//2); edges padded with 0.

    Correlation, not convolution: ``weights[0]`` applies to the earliest epoch (convolution
    would mirror the kernel, the Cole-Kripke pitfall noted in science.md §2.1).
    """
    c = len(weights) // 2
    xp = np.pad(np.nan_to_num(np.asarray(x, np.float64)), (c, len(weights) - 1 - c))
    return np.correlate(xp, weights, mode="valid")


def _apply_context(x: np.ndarray, ctx: str, name: str) -> np.ndarray:
    if ctx == "oakley":
        return weighted_window(x, OAKLEY_30S)
    if ctx == "log":
        return np.log1p(np.maximum(x, 0))
    if ctx == "nightlog":
        # log of the ratio to the night's median: removes the person/placement scale of an
        # amplitude or rate (the night median is dominated by sleep, most of a night).
        good = np.isfinite(x) & (x > 0)
        if not good.any():
            return np.full_like(x, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(good, np.log(np.where(good, x, 1.0) / np.median(x[good])), np.nan)
    if ctx.startswith("mean"):
        k = int(ctx[4:])
        filled = np.where(np.isfinite(x), x, np.nanmean(x) if np.isfinite(x).any() else 0.0)
        return weighted_window(filled, np.ones(k) / k)
    raise ModelError(f"unknown context {ctx!r} in feature {name!r}")


def context_column(features: dict[str, np.ndarray], name: str) -> np.ndarray:
    """One design-matrix column: a feature, optionally with context suffixes applied left to
    right (``br_amp_dps@nightlog@mean5`` = rolling mean of the night-normalised log amplitude)."""
    base, *ctxs = name.split("@")
    if base not in features:
        raise ModelError(f"model needs feature {base!r}; have {sorted(features)}")
    x = np.asarray(features[base], dtype=np.float64)
    for ctx in ctxs:
        x = _apply_context(x, ctx, name)
    return x


def design_matrix(features: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Columns for ``names`` (shape (n_epochs, len(names))), NaN where a feature is missing."""
    return np.column_stack([context_column(features, n) for n in names])


def _rescore(wake: np.ndarray, rules: list[list[int]]) -> np.ndarray:
    """Webster-style: after >= a wake epochs, the next b sleep epochs become wake."""
    out = wake.copy()
    for min_wake, n_after in rules:
        run = 0
        pending = 0
        for i, w in enumerate(wake):
            if w:
                run += 1
                pending = 0
                continue
            if run >= min_wake:
                pending = n_after
            run = 0
            if pending > 0:
                out[i] = True
                pending -= 1
    return out


def _logistic(part: dict, features: dict[str, np.ndarray]) -> np.ndarray:
    """P(wake) of one logistic section (``features``/``mean``/``scale``/``coef``/``intercept``)."""
    x = design_matrix(features, part["features"])
    mean, scale = np.asarray(part["mean"]), np.asarray(part["scale"])
    x = np.where(np.isfinite(x), x, mean)
    z = (x - mean) / scale @ np.asarray(part["coef"]) + part["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Model:
    """A loaded artifact."""

    spec: dict

    @property
    def version(self) -> str:
        return self.spec["version"]

    @property
    def algo_version(self) -> str:
        return f"{ALGO_VERSION}+{self.version}"

    @property
    def respiratory(self) -> dict:
        return self.spec["respiratory"]

    def wake_probability(self, features: dict[str, np.ndarray]) -> np.ndarray | None:
        sw = self.spec["sleep_wake"]
        if sw["kind"] != "logistic":
            return None
        p = _logistic(sw, features)
        still = sw.get("still")
        if still:
            gate = context_column(features, still["gate"]["feature"]) <= still["gate"]["max"]
            p = np.where(gate, np.maximum(p, _logistic(still, features)), p)
        return p

    def predict_wake(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean per epoch: True = wake."""
        sw = self.spec["sleep_wake"]
        if sw["kind"] == "oakley":
            score = weighted_window(features[sw["feature"]], np.asarray(sw["weights"]))
            wake = score > sw["threshold"]
        elif sw["kind"] == "logistic":
            wake = self.wake_probability(features) >= sw["threshold"]
        else:
            raise ModelError(f"unknown sleep_wake kind {sw['kind']!r}")
        if sw.get("rescore"):
            wake = _rescore(wake, sw["rescore"])
        return wake


#: What a model version may look like: a name, never a path (no "/", no leading "." or "-").
VERSION_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_version(version: object) -> str:
    """``version`` if it matches :data:`VERSION_PATTERN`, else :class:`ModelError` (which quotes
    at most 40 characters of it)."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise ModelError(f"a model version is 1-64 characters of [A-Za-z0-9._-] starting with a letter or "
                         f"digit, got {repr(version)[:40]}")
    return version


def stored_versions(model_dir: Path | None) -> set[str]:
    """The trained models in the store: ``model_dir/{version}.json`` files with a valid name."""
    if model_dir is None or not Path(model_dir).is_dir():
        return set()
    return {p.stem for p in Path(model_dir).glob("*.json")
            if p.is_file() and p.stem != "ACTIVE" and VERSION_PATTERN.match(p.stem)}


def load_model(version: str | None = None, *, model_dir: Path | None = None) -> Model:
    """Load a model artifact by version.

    ``version`` must match :data:`VERSION_PATTERN` and be one of the store's models
    (``model_dir/{version}.json``, trained; looked up first) or the packaged ``MODEL_VERSIONS``:
    the file opened is always one the store lists, never a path built from what was asked.
    ``version=None`` means ``DEFAULT_MODEL``.
    """
    version = check_version(version or DEFAULT_MODEL)
    text = None
    if version in stored_versions(model_dir):
        text = (Path(model_dir) / f"{version}.json").read_text()
    elif version in MODEL_VERSIONS:
        text = resources.files("sunrise_algo.builtin").joinpath("models", f"{version}.json").read_text()
    if text is None:
        raise ModelError(f"unknown model version {version!r}; packaged: {MODEL_VERSIONS}, "
                         f"in the model store: {sorted(stored_versions(model_dir))[:20]}")
    spec = json.loads(text)
    for key in ("version", "sleep_wake", "respiratory"):
        if key not in spec:
            raise ModelError(f"model {version!r} lacks {key!r}")
    if spec["version"] != version:
        raise ModelError(f"artifact says version {spec['version']!r}, asked for {version!r}")
    return Model(spec)
