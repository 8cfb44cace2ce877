"""Close the loop: fit a sleep/wake model on sunalgo training rows and export it as JSON.

The exported artifact has the format ``sunrise_algo.builtin.model`` loads with numpy only (logistic
regression: feature names with context suffixes, standardisation mean/scale, coefficients,
intercept, threshold); the respiratory thresholds are copied from the base model. Training never
replaces the active model: :func:`activate_model` is a separate, explicit step.

Stages are not trained: the chin IMU features here carry no honest information to separate
N1/N2/N3/REM on synthetic data, so only sleep/wake is fitted.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from sunrise_algo.builtin.model import design_matrix, load_model
from sunrise_common.agreement import cohen_kappa
from sunrise_common.dataset import SPLITS, subject_splits

if TYPE_CHECKING:
    from sunrise_algo.interface import Algorithm
    from sunrise_common.service import Context
    from sunrise_common.settings import Settings

#: Design-matrix columns of the trained model (see ``sunrise_algo.builtin.model.context_column``).
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
    """Feature columns and the PSG sleep label (1 sleep, 0 wake, -1 unscored) of one night: a
    ``training_rows.csv`` of a results folder or a part of the dataset's ``training_rows`` table
    (``.parquet``, see ``sunrise_common.dataset``; null features become NaN)."""
    if Path(path).suffix == ".parquet":
        return _read_part_rows(Path(path))
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    skip = {"psg_stage", "psg_sleep", SUBJECT_COLUMN}
    cols = {k: np.array([float(r[k]) if r[k] != "" else np.nan for r in rows])
            for k in rows[0] if k not in skip}
    label = np.array([int(r["psg_sleep"]) if r["psg_sleep"] != "" else -1 for r in rows])
    return cols, label


def _read_part_rows(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    import pyarrow.parquet as pq

    from sunrise_common import dataset as ds

    skip = {n for n, *_ in ds.LINEAGE_COLUMNS} | {"psg_stage", "psg_sleep"}
    names = [n for n in pq.read_schema(path).names if n not in skip]
    t = ds.read_part(path, [*names, "psg_sleep"])
    if not t.num_rows:
        raise ValueError(f"{path} has no rows")
    cols = {n: t.column(n).to_numpy(zero_copy_only=False).astype(float) for n in names}
    label = t.column("psg_sleep").fill_null(-1).to_numpy(zero_copy_only=False).astype(int)
    return cols, label


def night_of(path: Path) -> tuple[str, str]:
    """(night label, subject) of a training-rows file, for the splits.

    A dataset part names both in its lineage; a CSV named ``{night_id}.csv`` (as the results
    bucket's rows used to be collected) gives the subject pseudonym of its night id; any other CSV
    must carry a ``subject`` column with one value (issue 24: making every such file its own
    subject put 3 nights of one person in train and the 4th in test). Raises ``ValueError``
    for a CSV with neither, or with more than one subject."""
    path = Path(path)
    if path.suffix == ".parquet":
        from sunrise_common import dataset as ds

        lineage = ds.read_part_info(path).lineage
        return lineage.night_id, lineage.subject_pseudonym
    if _NIGHT_ID.match(path.stem):
        return path.stem, path.stem.rsplit("-n", 1)[0]
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        subjects = {(r.get(SUBJECT_COLUMN) or "").strip() for r in reader}
        has_column = SUBJECT_COLUMN in (reader.fieldnames or ())
    if not has_column or "" in subjects or len(subjects) != 1:
        raise ValueError(
            f"{path.name}: a training-rows CSV not named by its night id needs a "
            f"'{SUBJECT_COLUMN}' column holding one subject for every row (found "
            f"{'no column' if not has_column else f'{len(subjects)} distinct values, empty included'}"
            "): without it nights of one person could land in train and test")
    # The whole path names the night: results folders all name their file training_rows.csv.
    return str(path), subjects.pop()


#: Column of a training-rows CSV naming its subject (any pseudonym; one value per file).
SUBJECT_COLUMN = "subject"


_NIGHT_ID = re.compile(r"\As[a-z2-7]{12}-n[a-z2-7]{8}\Z")


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
    """P(wake) of a :func:`fit_logistic` result on a design matrix (as ``sunrise_algo.builtin.model``)."""
    mean, scale = np.asarray(fit["mean"]), np.asarray(fit["scale"])
    z = (np.where(np.isfinite(x), x, mean) - mean) / scale @ np.asarray(fit["coef"])
    return 1 / (1 + np.exp(-(z + fit["intercept"])))


def _split_nights(paths: list[Path], seed: int, holdout_fraction: float,
                  validation_fraction: float) -> tuple[list[tuple[str, str]], list[str]]:
    """(night, subject) of each file and the split each lands in, whole subjects per split."""
    nights = [night_of(p) for p in paths]
    by_subject = subject_splits([s for _, s in nights], seed=seed, test_fraction=max(holdout_fraction, 0.0),
                                validation_fraction=validation_fraction)
    split_of = [by_subject[s] for _, s in nights]
    if holdout_fraction > 0 and "test" not in split_of:
        raise ValueError(f"a held-out night needs a second subject: the {len(paths)} nights are all of one subject "
                         "(nights of one person never go to two splits)")
    return nights, split_of


@dataclass
class _Epochs:
    """Design-matrix blocks (one per night, scored epochs only) and their wake truth, per split;
    ``test_base`` holds the base model's wake predictions on the test epochs."""

    train_x: list[np.ndarray] = field(default_factory=list)
    train_y: list[np.ndarray] = field(default_factory=list)
    test_x: list[np.ndarray] = field(default_factory=list)
    test_y: list[np.ndarray] = field(default_factory=list)
    test_base: list[np.ndarray] = field(default_factory=list)
    val_x: list[np.ndarray] = field(default_factory=list)
    val_y: list[np.ndarray] = field(default_factory=list)


def _epochs(paths: list[Path], split_of: list[str], features: list[str], base) -> _Epochs:
    """Read every night's training rows into the split it belongs to."""
    ep = _Epochs()
    for p, split in zip(paths, split_of):
        cols, label = read_training_rows(p)
        x = design_matrix(cols, features)
        keep = label >= 0
        if split == "test":
            ep.test_x.append(x[keep])
            ep.test_y.append(label[keep] == 0)
            ep.test_base.append(base.predict_wake(cols)[keep])
        elif split == "validation":
            ep.val_x.append(x[keep])
            ep.val_y.append(label[keep] == 0)
        else:
            ep.train_x.append(x[keep])
            ep.train_y.append(label[keep] == 0)
    return ep


def _spec(version: str, base_version: str, base, nights: list[tuple[str, str]], split_of: list[str],
          seed: int, holdout_fraction: float, validation_fraction: float, features: list[str],
          fit: dict, threshold: float) -> dict:
    """The model artifact (without its held-out metrics)."""
    return {
        "version": version,
        "description": "Logistic-regression sleep/wake trained by sunrise_cli.train on sunalgo "
                       "training rows; respiratory rules copied from " + base_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "trained_on": [n for (n, _), sp in zip(nights, split_of) if sp == "train"],
        "held_out": [n for (n, _), sp in zip(nights, split_of) if sp == "test"],
        "splits": {"by": "subject_pseudonym", "seed": seed, "test_fraction": holdout_fraction,
                   "validation_fraction": validation_fraction,
                   "nights": {sp: [n for (n, _), s in zip(nights, split_of) if s == sp] for sp in SPLITS},
                   "subjects": {sp: sorted({subj for (_, subj), s in zip(nights, split_of) if s == sp})
                                for sp in SPLITS}},
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


def _split_metrics(ep: _Epochs, fit: dict, threshold: float, split_of: list[str], base_version: str,
                   n_train_epochs: int) -> dict:
    """Held-out metrics of the new and the base model on the same epochs, split sizes, and the
    validation metrics when there is a validation split."""
    metrics = {"model": None, "baseline": None}
    if ep.test_x:
        hyy = np.concatenate(ep.test_y)
        p_wake = wake_probability(fit, np.concatenate(ep.test_x))
        metrics = {"model": _metrics(hyy, p_wake >= threshold),
                   "baseline": _metrics(hyy, np.concatenate(ep.test_base))}
    metrics |= {
        "base_version": base_version,
        "n_train_nights": split_of.count("train"),
        "n_heldout_nights": split_of.count("test"),
        "n_validation_nights": split_of.count("validation"),
        "n_train_epochs": n_train_epochs,
    }
    if ep.val_x:
        vyy = np.concatenate(ep.val_y)
        metrics["validation"] = _metrics(vyy, wake_probability(fit, np.concatenate(ep.val_x)) >= threshold)
    return metrics


def train_model(training_rows: list[Path], out_dir: Path, *, version: str, seed: int = 0,
                holdout_fraction: float = 0.25, base_version: str = "baseline-1",
                features: list[str] | None = None, threshold: float = 0.5,
                validation_fraction: float = 0.0) -> dict:
    """Fit logistic regression for wake vs sleep on per-night training rows.

    Nights (files) are split by subject (``sunrise_common.dataset.subject_splits``: every night
    of a subject lands in the same split, see :func:`night_of`) into train, validation
    (``validation_fraction`` of the subjects, none by default) and held-out test sets
    (``holdout_fraction``, at least one subject each when there are >= 2; ``holdout_fraction=0``
    fits on every night and reports no held-out metrics). The splits are recorded in the
    artifact (``splits``: nights and subjects per split, seed, fractions). ``features`` defaults
    to ``TRAIN_FEATURES``; an epoch is wake when ``P(wake) >= threshold``. Returns a dict with the
    artifact path and the held-out (test) metrics of the new model and of the base model on the
    same epochs, and the validation metrics when there is a validation split.
    """
    paths = [Path(p) for p in training_rows]
    if len(paths) < MIN_TRAINING_NIGHTS:
        raise TooFewNights(len(paths))
    if not version or "/" in version:
        raise ValueError(f"bad model version {version!r}")
    features = list(features or TRAIN_FEATURES)
    nights, split_of = _split_nights(paths, seed, holdout_fraction, validation_fraction)
    base = load_model(base_version)
    ep = _epochs(paths, split_of, features, base)
    y = np.concatenate(ep.train_y)
    fit = fit_logistic(np.concatenate(ep.train_x), y)
    spec = _spec(version, base_version, base, nights, split_of, seed, holdout_fraction, validation_fraction,
                 features, fit, threshold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / f"{version}.json"
    # Validate through the loader the service uses before reporting success.
    artifact.write_text(json.dumps(spec, indent=1))
    model = load_model(version, model_dir=out_dir)
    metrics = _split_metrics(ep, fit, threshold, split_of, base_version, int(y.size))
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
    from sunrise_algo import registry

    plugin, version = registry.resolve(version, model_dir)
    if plugin.name == registry.BUILTIN:
        version = load_model(version, model_dir=model_dir).version  # the artifact must load
    pointer_path = Path(pointer_path)
    pointer_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer_path.with_suffix(pointer_path.suffix + ".tmp")
    tmp.write_text(json.dumps({"active": version, "algorithm": plugin.name, "algo_version": plugin.algo_version(version),
                               "model_dir": str(model_dir) if model_dir else None,
                               "activated": datetime.now(timezone.utc).isoformat(
                                   timespec="seconds")}, indent=1))
    tmp.replace(pointer_path)
    return pointer_path


def _result_runs(settings: Settings) -> Iterator[tuple[Context, str, str, str, str, float | None]]:
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


def collect_training_rows(settings: Settings, folder: Path, plugin: str = "sunalgo") -> list[Path]:
    """The newest part of each night in the dataset's ``training_rows`` table
    (``sunrise_common.dataset``; ``sunrise dataset build`` backfills it from older results), as
    local Parquet files: the results bucket's own files on the embedded backend, a mirror in
    ``folder`` elsewhere. The rows' features and PSG labels do not depend on the model that scored
    the night, so each night counts once whatever versions scored it."""
    from sunrise_common.dataset import TRAINING_ROWS
    from sunrise_common.service import Context

    from sunrise_cli.dataset import open_dataset

    parts = open_dataset(Context.from_settings(settings), Path(folder)).latest(TRAINING_ROWS)
    # Each plug-in trains on its own features: the rows its runs wrote (algo_version "{plugin}-{version}+...").
    return [p.path for p in parts if p.algo_version.startswith(f"{plugin}-")]


def collect_result_folders(settings: Settings, folder: Path, algo_versions: list[str] | None = None) -> list[Path]:
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


def train_plugin(plugin: Algorithm, training_rows: list[Path], out_dir: Path, *, version: str, seed: int = 0,
                 holdout_fraction: float = 0.25) -> dict:
    """Train a plug-in that declares itself trainable (``sunrise_algo.interface.Algorithm.fit``).

    The split by subject is the pipeline's (:func:`sunrise_common.dataset.subject_splits`, as for the
    built-in model): the plug-in's ``fit`` sees the training subjects' rows only, and the held-out
    subjects' rows measure the artifact with the plug-in's ``predict_rows``. The artifact is written
    to ``out_dir/{version}.json`` with its ``algorithm`` named, so a run asking for ``version`` finds
    its plug-in (``sunrise_algo.registry.resolve``)."""
    if not plugin.trainable:
        raise ValueError(f"the plug-in {plugin.name} does not declare itself trainable")
    paths = [Path(p) for p in training_rows]
    if len(paths) < MIN_TRAINING_NIGHTS:
        raise TooFewNights(len(paths))
    if not version or "/" in version:
        raise ValueError(f"bad model version {version!r}")
    nights = [night_of(p) for p in paths]
    by_subject = subject_splits([s for _, s in nights], seed=seed, test_fraction=holdout_fraction)
    split_of = [by_subject[s] for _, s in nights]
    if holdout_fraction > 0 and "test" not in split_of:
        raise ValueError(f"a held-out night needs a second subject: the {len(paths)} nights are all of one subject")
    columns: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "test": []}
    labels: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for p, split in zip(paths, split_of):
        cols, label = read_training_rows(p)
        keep = label >= 0
        group = "test" if split == "test" else "train"
        columns[group].append({k: np.asarray(v)[keep] for k, v in cols.items()})
        labels[group].append(label[keep] == 1)

    def stacked(group: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        names = set.intersection(*(set(c) for c in columns[group]))
        return ({n: np.concatenate([c[n] for c in columns[group]]) for n in names}, np.concatenate(labels[group]))

    x, sleep = stacked("train")
    artifact = plugin.fit(x, sleep, version=version)
    artifact.update(algorithm=plugin.name, version=version,
                    splits={"by": "subject_pseudonym", "seed": seed, "test_fraction": holdout_fraction,
                            "nights": {sp: [n for (n, _), s in zip(nights, split_of) if s == sp] for sp in SPLITS}})
    metrics: dict = {"n_train_nights": split_of.count("train"), "n_heldout_nights": split_of.count("test")}
    if columns["test"]:
        hx, hsleep = stacked("test")
        wake = np.asarray(plugin.predict_rows(hx, artifact), dtype=bool)
        metrics["accuracy"] = float(np.mean(wake == ~hsleep)) if hsleep.size else None
    artifact["metrics"] = metrics
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{version}.json"
    path.write_text(json.dumps(artifact, indent=1))
    return {"artifact": path, "metrics": metrics}
