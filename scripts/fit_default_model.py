"""Fit the packaged default sleep/wake model ``logistic-2`` on the DEVELOPMENT batch only.

logistic-2 replaces logistic-1 (still packaged, fitted by this script's earlier version): its
activity features are relative to each night's activity floor (``act_*_rel``), and it carries
baseline-2's per-night respiratory rules with the AASM 1A arousal path.

    cd /work/main && uv run python scripts/fit_default_model.py [--work DIR]

Steps (docs/science.md §4):

1. Generate the development batch: ``synth_batch(seed=7, n=12, hours=4)``, the batch the
   baseline thresholds were chosen on. The test batch of tests/science (seed 2024) is never
   generated or read here.
2. ``prepare_sunrise`` + ``run_sunalgo`` against the injected truth (``write_truth_labels``)
   give one ``training_rows.csv`` per night (features do not depend on the model).
3. Decision threshold: leave-one-night-out over the 12 development nights (fit on 11, predict
   the 12th), then the threshold in [0.30, 0.70] whose median signed TST error over the 12
   out-of-night predictions is closest to 0 (ties: closest to 0.5).
4. Final fit on all 12 nights with ``sunrise_cli.train.train_model`` (``holdout_fraction=0``),
   written to ``libs/algo/sunrise_algo/builtin/models/logistic-2.json`` with ``fitted_on`` and the
   development-batch numbers (out-of-night and in-sample, and baseline-2 on the same nights).

Takes ~30 s on 2 cores. Deterministic (seeded generator, lbfgs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sunrise_algo.builtin.model import design_matrix
from sunalgo.run import run_sunalgo
from sunrise_algo.scores import sleep_scores
from sunrise_cli.synth import synth_batch, write_truth_labels
from sunrise_cli.train import fit_logistic, read_training_rows, train_model, wake_probability
from sunrise_night.prepare import prepare_sunrise

VERSION = "logistic-2"
BASE = "baseline-2"  # respiratory rules and the comparison row
DEV_SEED, DEV_NIGHTS, DEV_HOURS = 7, 12, 4.0
TEST_SEED = 2024  # recorded in fitted_on as the batch *not* used
MODELS_DIR = Path(__file__).resolve().parents[1] / "libs/algo/sunrise_algo/builtin/models"

#: Design-matrix columns and why (quiet wake = lying still awake, the weak spot of activity).
FEATURES = [
    # Movement relative to the night's activity floor: the Oakley-weighted count of active
    # seconds (baseline-2's score), its 4.5-min context and the log of the mean activity in
    # floor units. Separates active wake whatever the sensor's noise.
    "act_count_rel@oakley",
    "act_count_rel@mean9",
    "act_mean_rel@log",
    # Breathing-rate variability: wake breathing is irregular, NREM breathing regular.
    "br_rate_dev_bpm@mean5",
    # Breathing-amplitude variability (CV of 5-s amplitudes within the epoch).
    "br_amp_cv@mean5",
    # Spectral regularity of breathing (peak power / band power): low when irregular.
    "br_regularity@mean5",
    # Breathing amplitude and rate relative to the night's median (person/placement scale
    # removed): wake breathing is shallower at the chin and a little faster than sleep.
    "br_amp_dps@nightlog@mean5",
    "br_rate_bpm@nightlog@mean5",
]
THRESHOLDS = np.round(np.arange(0.30, 0.701, 0.01), 2)


def _night_scores(p_wake: np.ndarray, label: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sleep/wake accuracy on scored epochs and predicted TST (min) of one night."""
    wake = p_wake >= threshold
    keep = label >= 0
    acc = float(np.mean(wake[keep] == (label[keep] == 0)))
    tst = sleep_scores(["W" if w else "S" for w in wake], 30.0)["TST"]
    return acc, tst


def _summary(acc, tst_err, rdi_err=None) -> dict:
    acc, tst_err = np.asarray(acc), np.asarray(tst_err)
    out = {"accuracy_median": round(float(np.median(acc)), 4),
           "accuracy_min": round(float(acc.min()), 4),
           "tst_abs_error_median_min": round(float(np.median(np.abs(tst_err))), 2),
           "tst_error_median_min": round(float(np.median(tst_err)), 2),
           "tst_abs_error_mean_min": round(float(np.mean(np.abs(tst_err))), 2)}
    if rdi_err is not None:
        out["rdi_abs_error_median_per_h"] = round(float(np.median(np.abs(rdi_err))), 2)
    return out


@dataclass
class _DevBatch:
    """The development nights, their training-row files and baseline-2's scores of each."""

    nights: list = field(default_factory=list)  # sunrise_cli.synth.SynthNight
    rows: list[Path] = field(default_factory=list)
    base: list[dict] = field(default_factory=list)


def _dev_batch(work: Path) -> _DevBatch:
    """Steps 1-2: generate the development batch, prepare it and score it with baseline-2; one
    ``training_rows.csv`` per night (with a subject column) under ``work/rows``."""
    rows_dir = work / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    dev = _DevBatch()
    for night in synth_batch(work / "dev", DEV_NIGHTS, DEV_SEED, hours=DEV_HOURS):
        d = night.sunrise.parent
        prepare_sunrise(night.sunrise, d / "prep")
        psg = write_truth_labels(night, d / "truth_psg")
        s = run_sunalgo(d / "prep", psg, d / f"results-{BASE}", model_version=BASE)
        dev.base.append(s)
        dest = rows_dir / f"dev-s{DEV_SEED}-{d.name}.csv"
        # Each synthetic night is its own person (sunrise_cli.train needs the subject column).
        lines = (d / f"results-{BASE}" / "training_rows.csv").read_text().splitlines()
        dest.write_text("\n".join([lines[0] + ",subject"]
                                  + [f"{x},synth-{night.params['seed']}" for x in lines[1:]]) + "\n")
        dev.rows.append(dest)
        dev.nights.append(night)
    print(f"development batch: {len(dev.nights)} nights of {DEV_HOURS:g} h (seed {DEV_SEED}) in {work}")
    return dev


def _threshold(dev: _DevBatch) -> tuple[float, dict]:
    """Step 3: leave-one-night-out probabilities, then the threshold zeroing the median TST
    bias; the threshold and its out-of-night summary."""
    data = [read_training_rows(p) for p in dev.rows]
    xs = [design_matrix(cols, FEATURES) for cols, _ in data]
    oof = []
    for i in range(len(data)):
        x = np.concatenate([xs[j][data[j][1] >= 0] for j in range(len(data)) if j != i])
        y = np.concatenate([data[j][1][data[j][1] >= 0] == 0 for j in range(len(data)) if j != i])
        oof.append(wake_probability(fit_logistic(x, y), xs[i]))
    truth_tst = np.array([n.tst_min for n in dev.nights])
    table = []
    for th in THRESHOLDS:
        res = [_night_scores(p, lab, th) for p, (_, lab) in zip(oof, data)]
        err = np.array([t for _, t in res]) - truth_tst
        table.append((abs(float(np.median(err))), abs(th - 0.5), float(th), res, err))
    _, _, threshold, res_oof, err_oof = min(table, key=lambda r: (r[0], r[1]))
    cv = _summary([a for a, _ in res_oof], err_oof)
    print(f"threshold {threshold:.2f} (leave-one-night-out on the development batch): {cv}")
    return threshold, cv


def _final_fit(dev: _DevBatch, threshold: float) -> tuple[dict, dict, list[dict]]:
    """Step 4: fit on every development night through ``train_model``; its result, model spec
    and in-sample scores on the development nights (as the tests score)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train_model(dev.rows, Path(tmp), version=VERSION, holdout_fraction=0.0,
                             base_version=BASE, features=FEATURES, threshold=threshold)
        spec = json.loads(Path(result["artifact"]).read_text())
        fin = [run_sunalgo(n.sunrise.parent / "prep", n.sunrise.parent / "truth_psg",
                           n.sunrise.parent / "results-final", model_version=VERSION,
                           model_dir=Path(tmp)) for n in dev.nights]
    return result, spec, fin


def _describe(spec: dict, result: dict, dev: _DevBatch, cv: dict, fin: list[dict]) -> None:
    """Write the description, ``fitted_on`` and the development-batch numbers into ``spec``."""
    nights, base = dev.nights, dev.base
    truth_tst = np.array([n.tst_min for n in nights])
    rdi_truth = np.array([n.rdi for n in nights])
    today = datetime.now(timezone.utc).date().isoformat()
    spec["description"] = (
        "Logistic-regression sleep/wake on chin activity (relative to the night's activity "
        "floor) and breathing-regularity features (quiet wake: irregular, shallower, faster "
        "breathing); per-night respiratory rules of baseline-2 (AASM 1A arousal path). "
        "Fitted on synthetic nights (sunrise_cli.synth), not on real PSG.")
    spec["created"] = today
    spec["fitted_on"] = {
        "summary": (f"synthetic development batch synth_batch(seed={DEV_SEED}, n={DEV_NIGHTS}, "
                    f"hours={DEV_HOURS:g}) against the injected truth; threshold chosen by "
                    "leave-one-night-out on the same batch (median TST bias closest to 0); the "
                    f"test batch (seed {TEST_SEED}) was not used; not validated on real data"),
        "seeds": {"batch": DEV_SEED, "nights": [n.params["seed"] for n in nights]},
        "n_nights": len(nights), "hours": DEV_HOURS,
        "n_epochs": result["metrics"]["n_train_epochs"],
        "date": today,
        "features": FEATURES,
        "script": "scripts/fit_default_model.py",
        "trainer": "sunrise_cli.train.train_model (holdout_fraction=0), sklearn LogisticRegression C=1",
        "threshold_rule": "median signed TST error of leave-one-night-out predictions closest to 0 "
                          f"over thresholds {THRESHOLDS[0]:.2f}-{THRESHOLDS[-1]:.2f}",
    }
    spec.pop("trained_on", None)
    spec.pop("held_out", None)
    spec.pop("heldout_metrics", None)
    spec["development_metrics"] = {
        "leave_one_night_out": cv,
        "final_in_sample": _summary([s["accuracy_sw"] for s in fin],
                                    np.array([s["TST"] for s in fin]) - truth_tst,
                                    np.array([s["AHI"] for s in fin]) - rdi_truth),
        BASE: _summary([s["accuracy_sw"] for s in base],
                       np.array([s["TST"] for s in base]) - truth_tst,
                       np.array([s["AHI"] for s in base]) - rdi_truth),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=MODELS_DIR, help=f"where {VERSION}.json goes")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fit-default-"))
    dev = _dev_batch(work)
    threshold, cv = _threshold(dev)
    result, spec, fin = _final_fit(dev, threshold)
    _describe(spec, result, dev, cv, fin)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{VERSION}.json"
    out.write_text(json.dumps(spec, indent=1) + "\n")
    print(json.dumps(spec["development_metrics"], indent=1))
    print(f"wrote {out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
