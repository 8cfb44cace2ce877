"""Close the loop: fit a sleep/wake model on sunalgo training rows and export it as JSON.

The exported artifact has the format ``sunalgo.model`` loads with numpy only (logistic
regression: feature names with context suffixes, standardisation mean/scale, coefficients,
intercept, threshold); the respiratory thresholds are copied from the base model. Training never
replaces the active model: :func:`activate_model` is a separate, explicit step.

Stages are not trained: the chin IMU features here carry no honest information to separate
N1/N2/N3/REM on synthetic data, so only sleep/wake is fitted.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sunalgo.agreement import cohen_kappa
from sunalgo.model import design_matrix, load_model

#: Design-matrix columns of the trained model (see ``sunalgo.model.context_column``).
TRAIN_FEATURES = [
    "act_count@oakley",
    "act_count@mean9",
    "act_mean_dps@log",
    "act_max_dps@log",
    "br_regularity",
    "br_regularity@mean9",
    "br_amp_cv@mean5",
    "br_rate_dev_bpm@mean5",
    "br_amp_rel@mean5",
    "quality_frac",
]


#: Nights a model needs: at least one to fit on and one held out to measure it.
MIN_TRAINING_NIGHTS = 2


class TooFewNights(ValueError):
    """Fewer nights of training rows than :data:`MIN_TRAINING_NIGHTS`."""

    def __init__(self, found: int, needed: int = MIN_TRAINING_NIGHTS) -> None:
        self.found, self.needed = found, needed
        super().__init__(f"training needs at least {needed} nights with PSG labels (one to fit on, one held out "
                         f"to measure the model), found {found}")


def read_training_rows(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feature columns and the PSG sleep label (1 sleep, 0 wake, -1 unscored) of one night."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    skip = {"psg_stage", "psg_sleep"}
    cols = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])
            for k in rows[0] if k not in skip}
    label = np.array([int(r["psg_sleep"]) if r["psg_sleep"] != "" else -1 for r in rows])
    return cols, label


def _metrics(y_wake: np.ndarray, pred_wake: np.ndarray) -> dict:
    t = np.where(y_wake, "W", "S")
    p = np.where(pred_wake, "W", "S")
    return {"accuracy": float(np.mean(t == p)), "kappa": cohen_kappa(t, p), "n_epochs": int(t.size)}


def fit_logistic(x: np.ndarray, y_wake: np.ndarray, *, c: float = 1.0) -> dict:
    """Standardise ``x`` (NaN -> column mean) and fit logistic regression for wake.

    Returns the artifact fields ``mean``, ``scale``, ``coef``, ``intercept``.
    """
    from sklearn.linear_model import LogisticRegression

    mean = np.nanmean(x, axis=0)
    x = np.where(np.isfinite(x), x, mean)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit((x - mean) / scale, y_wake)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": clf.coef_[0].tolist(),
            "intercept": float(clf.intercept_[0])}


def wake_probability(fit: dict, x: np.ndarray) -> np.ndarray:
    """P(wake) of a :func:`fit_logistic` result on a design matrix (as ``sunalgo.model``)."""
    mean, scale = np.asarray(fit["mean"]), np.asarray(fit["scale"])
    z = (np.where(np.isfinite(x), x, mean) - mean) / scale @ np.asarray(fit["coef"])
    return 1 / (1 + np.exp(-(z + fit["intercept"])))


def train_model(training_rows: list[Path], out_dir: Path, *, version: str, seed: int = 0,
                holdout_fraction: float = 0.25, base_version: str = "baseline-1",
                features: list[str] | None = None, threshold: float = 0.5) -> dict:
    """Fit logistic regression for wake vs sleep on per-night training rows.

    Nights (files) are split into training and held-out sets (``holdout_fraction``, at least
    one night each when there are >= 2; ``holdout_fraction=0`` fits on every night and reports
    no held-out metrics). ``features`` defaults to ``TRAIN_FEATURES``; an epoch is wake when
    ``P(wake) >= threshold``. Returns a dict with the artifact path and the held-out metrics of
    the new model and of the base model on the same epochs.
    """
    paths = [Path(p) for p in training_rows]
    if len(paths) < MIN_TRAINING_NIGHTS:
        raise TooFewNights(len(paths))
    if not version or "/" in version:
        raise ValueError(f"bad model version {version!r}")
    features = list(features or TRAIN_FEATURES)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    if holdout_fraction <= 0:
        n_hold = 0
    else:
        n_hold = min(len(paths) - 1, max(1, int(round(holdout_fraction * len(paths)))))
    hold = set(order[:n_hold].tolist())
    base = load_model(base_version)

    xs, ys, hx, hy, hbase = [], [], [], [], []
    for i, p in enumerate(paths):
        cols, label = read_training_rows(p)
        x = design_matrix(cols, features)
        keep = label >= 0
        if i in hold:
            hx.append(x[keep])
            hy.append(label[keep] == 0)
            hbase.append(base.predict_wake(cols)[keep])
        else:
            xs.append(x[keep])
            ys.append(label[keep] == 0)
    x, y = np.concatenate(xs), np.concatenate(ys)
    fit = fit_logistic(x, y)
    spec = {
        "version": version,
        "description": "Logistic-regression sleep/wake trained by sunrise_cli.train on sunalgo "
                       "training rows; respiratory rules copied from " + base_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "trained_on": [p.parent.name + "/" + p.name for i, p in enumerate(paths) if i not in hold],
        "held_out": [p.parent.name + "/" + p.name for i, p in enumerate(paths) if i in hold],
        "sleep_wake": {
            "kind": "logistic",
            "target": "wake",
            "features": features,
            **fit,
            "threshold": float(threshold),
            "rescore": [],
        },
        "stages": None,
        "respiratory": base.respiratory,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / f"{version}.json"
    # Validate through the loader the service uses before reporting success.
    artifact.write_text(json.dumps(spec, indent=1))
    model = load_model(version, model_dir=out_dir)
    metrics = {"model": None, "baseline": None}
    if hx:
        hyy = np.concatenate(hy)
        p_wake = wake_probability(fit, np.concatenate(hx))
        metrics = {"model": _metrics(hyy, p_wake >= threshold),
                   "baseline": _metrics(hyy, np.concatenate(hbase))}
    metrics |= {
        "base_version": base_version,
        "n_train_nights": len(paths) - n_hold,
        "n_heldout_nights": n_hold,
        "n_train_epochs": int(y.size),
    }
    spec["heldout_metrics"] = metrics
    artifact.write_text(json.dumps(spec, indent=1))
    (out_dir / f"{version}.metrics.json").write_text(json.dumps(metrics, indent=1))
    return {"version": model.version, "algo_version": model.algo_version,
            "artifact": str(artifact), "metrics": metrics}


def activate_model(version: str, pointer_path: Path, *, model_dir: Path | None = None) -> Path:
    """Make ``version`` the active model by writing a small pointer file (JSON).

    The artifact must load (``model_dir`` first, then the packaged versions) before the pointer
    is replaced; the pointer is written atomically.
    """
    model = load_model(version, model_dir=model_dir)
    pointer_path = Path(pointer_path)
    pointer_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer_path.with_suffix(pointer_path.suffix + ".tmp")
    tmp.write_text(json.dumps({"active": model.version, "algo_version": model.algo_version,
                               "model_dir": str(model_dir) if model_dir else None,
                               "activated": datetime.now(timezone.utc).isoformat(
                                   timespec="seconds")}, indent=1))
    tmp.replace(pointer_path)
    return pointer_path


def _result_runs(settings):  # noqa: ANN001, ANN202 - Settings
    """(context, night id, stage, algo version, results prefix, finish time) of every finished
    sunalgo run with PSG labels: the plain ``sunalgo`` stage (the model active at the time) and
    each ``sunalgo:VERSION`` rerun. The algo version is the folder of the results prefix
    (``nights/{night}/{algo_version}/{input_key}/``)."""
    from sunrise_common.service import Context

    ctx = Context.from_settings(settings)
    for night_id, doc in ctx.state.list("nights"):
        for stage, st in doc.get("stages", {}).items():
            if stage != "sunalgo" and not stage.startswith("sunalgo:"):
                continue
            outputs = st.get("outputs") or {}
            prefix = outputs.get("prefix")
            if st.get("state") == "done" and prefix and outputs.get("with_psg"):
                parts = prefix.strip("/").split("/")
                version = parts[2] if len(parts) >= 4 else stage
                yield ctx, night_id, stage, version, prefix, st.get("finished_at")


def _matches(version: str, wanted: list[str] | None) -> bool:
    """``sunalgo-1.0+mine-1`` matches ``mine-1`` and itself."""
    return not wanted or version in wanted or version.rsplit("+", 1)[-1] in wanted


def collect_training_rows(settings, folder: Path) -> list[Path]:  # noqa: ANN001 - Settings
    """Download one ``training_rows.csv`` per night (its latest sunalgo run with PSG labels) from
    the results bucket into ``folder``. The rows' features and PSG labels do not depend on the
    model that scored the night."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    latest: dict[str, tuple] = {}
    for ctx, night_id, _stage, _version, prefix, finished in _result_runs(settings):
        if night_id not in latest or (finished or 0) > (latest[night_id][2] or 0):
            latest[night_id] = (ctx, prefix, finished)
    paths = []
    for night_id, (ctx, prefix, _) in sorted(latest.items()):
        dest = Path(folder) / f"{night_id}.csv"
        ctx.storage.download_to_file(settings.bucket("results"), prefix + "training_rows.csv", dest)
        paths.append(dest)
    return paths


def collect_result_folders(settings, folder: Path, algo_versions: list[str] | None = None) -> list[Path]:  # noqa: ANN001
    """Download each night's latest ``scores.json`` and ``agreement.json`` per algo version into
    ``folder/{algo_version}/{night}/`` (with a ``meta.json``: night id, stage, finish time in Unix
    seconds). ``algo_versions`` keeps only those versions (``mine-1`` or ``sunalgo-1.0+mine-1``)."""
    latest: dict[tuple[str, str], tuple] = {}
    for ctx, night_id, stage, version, prefix, finished in _result_runs(settings):
        if not _matches(version, algo_versions):
            continue
        key = (version, night_id)
        if key not in latest or (finished or 0) > (latest[key][3] or 0):
            latest[key] = (ctx, stage, prefix, finished)
    folders = []
    for (version, night_id), (ctx, stage, prefix, finished) in sorted(latest.items()):
        night_dir = Path(folder) / version / night_id
        night_dir.mkdir(parents=True, exist_ok=True)
        for name in ("scores.json", "agreement.json"):
            ctx.storage.download_to_file(settings.bucket("results"), prefix + name, night_dir / name)
        (night_dir / "meta.json").write_text(json.dumps(
            {"night_id": night_id, "stage": stage, "algo_version": version, "prefix": prefix, "finished_at": finished}))
        folders.append(night_dir)
    return folders
