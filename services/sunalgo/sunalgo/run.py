"""One sunalgo run: prepared Sunrise night (+ optional prepared PSG) -> results folder.

Writes ``features.csv``, ``predictions.csv``, ``events.csv``, ``scores.json`` and, when the PSG
folder holds labels, ``training_rows.csv`` and ``agreement.json``. Pure function on folders:
the handler moves bytes between buckets and these folders.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from sunalgo.agreement import agreement, align_psg_stages, training_rows
from sunalgo.features import FEATURE_NAMES, compute_features
from sunalgo.model import load_model
from sunalgo.respiration import desaturations, detect_events
from sunalgo.scores import sleep_scores

EPOCH_S = 30.0


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.6g}"
    return str(v)


def _write_csv(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([_fmt(v) for v in row])


def read_psg(psg_dir: Path) -> dict | None:
    """Read psg_prep outputs (``meta.json``, ``hypnogram.csv``, ``events.csv``); None if absent."""
    psg_dir = Path(psg_dir)
    meta_p, hyp_p = psg_dir / "meta.json", psg_dir / "hypnogram.csv"
    if not meta_p.is_file() or not hyp_p.is_file():
        return None
    meta = json.loads(meta_p.read_text())
    with hyp_p.open(newline="") as f:
        hyp = list(csv.DictReader(f))
    if not hyp:
        return None
    events = []
    ev_p = psg_dir / "events.csv"
    if ev_p.is_file():
        with ev_p.open(newline="") as f:
            events = [(r["type"], float(r["onset_s"]), float(r.get("duration_s") or 0.0))
                      for r in csv.DictReader(f)]
    return {
        "meta": meta,
        "onsets": [float(r["onset_s"]) for r in hyp],
        "stages": [r["stage"] for r in hyp],
        "events": events,
        "epoch_s": float(meta.get("epoch_s", EPOCH_S)),
    }


def psg_scores_from(psg: dict) -> dict:
    """Scores of the PSG labels with the same function as the predictions."""
    t0 = psg["onsets"][0]
    events = [(t, o - t0, d) for t, o, d in psg["events"]]
    has_desat = any(t == "desaturation" for t, _, _ in events)
    return sleep_scores(psg["stages"], psg["epoch_s"], events=events,
                        desaturations=[] if has_desat else None)


def run_sunalgo(sunrise_dir: Path, psg_dir: Path | None, out_dir: Path, *,
                model_version: str | None = None, model_dir: Path | None = None) -> dict:
    """Run sunalgo on a ``sunrise_prep`` folder (and a ``psg_prep`` folder) into ``out_dir``.

    Returns a summary: algo_version, n_epochs, TST (min), RDI (events/h), and the sleep/wake
    accuracy when PSG labels exist.
    """
    sunrise_dir, out_dir = Path(sunrise_dir), Path(out_dir)
    meta = json.loads((sunrise_dir / "meta.json").read_text())
    with np.load(sunrise_dir / "prepped.npz") as z:
        arrays = {k: z[k] for k in z.files}
    model = load_model(model_version, model_dir=model_dir)
    feats = compute_features(arrays, meta)
    n = int(meta["n_epochs"])
    wake = model.predict_wake(feats)
    stages = ["W" if w else "S" for w in wake]
    events = detect_events(arrays, meta, ~wake, model.respiratory, EPOCH_S)
    has_spo2 = bool(meta.get("has_spo2")) and "spo2" in arrays
    sleep_sec = np.repeat(~wake, int(EPOCH_S))
    desats = desaturations(arrays.get("spo2"), 3.0, sleep_sec) if has_spo2 else None
    ev_tuples = [(e.type, e.onset_s, e.duration_s) for e in events]
    scores = sleep_scores(stages, EPOCH_S, events=ev_tuples, desaturations=desats)

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "features.csv", ["epoch", "onset_s", *FEATURE_NAMES],
               zip(feats["epoch"], feats["onset_s"], *(feats[k] for k in FEATURE_NAMES)))
    flags = {t: np.zeros(n, dtype=int) for t in ("obstructive_event", "central_event")}
    for e in events:
        a = int(e.onset_s // EPOCH_S)
        b = int(math.ceil((e.onset_s + e.duration_s) / EPOCH_S))
        flags[e.type][a : min(n, b)] = 1
    p_wake = model.wake_probability(feats)
    _write_csv(out_dir / "predictions.csv",
               ["epoch", "onset_s", "sleep_wake", "stage", "p_wake", "obstructive_event",
                "central_event"],
               ((i, i * EPOCH_S, "W" if wake[i] else "S", stages[i],
                 float(p_wake[i]) if p_wake is not None else float("nan"),
                 flags["obstructive_event"][i], flags["central_event"][i]) for i in range(n)))
    _write_csv(out_dir / "events.csv",
               ["type", "onset_s", "duration_s", "effort_ratio", "jaw_shift_deg",
                "desaturation_pct"],
               ((e.type, e.onset_s, e.duration_s, e.effort_ratio, e.jaw_shift_deg,
                 float("nan") if e.desaturation_pct is None else e.desaturation_pct)
                for e in events))

    result = {"algo_version": model.algo_version, "model_version": model.version,
              "prep_version": meta.get("prep_version"), "epoch_s": EPOCH_S, "n_epochs": n,
              "has_spo2": has_spo2, "scores": scores}
    summary = {"algo_version": model.algo_version, "n_epochs": n, "TST": scores["TST"],
               "RDI": scores["RDI"], "AHI": scores["AHI"], "n_events": len(events)}
    psg = read_psg(psg_dir) if psg_dir is not None else None
    if psg is not None and psg["meta"].get("start_offset_s") is None:
        # psg_prep could not read the PSG's start time: its labels cannot be placed on the Sunrise
        # timeline, so no training rows and no agreement (scores from the labels alone still hold).
        result["psg_scores"] = psg_scores_from(psg)
        result["warnings"] = ["PSG start time unknown: no training rows or agreement for this night"]
    elif psg is not None:
        psg_sc = psg_scores_from(psg)
        result["psg_scores"] = psg_sc
        aligned = align_psg_stages(n, float(meta["start_offset_s"]),
                                   float(psg["meta"]["start_offset_s"]), psg["onsets"],
                                   psg["stages"], psg["epoch_s"])
        agr = agreement(stages, aligned, scores, psg_sc)
        agr["algo_version"] = model.algo_version
        (out_dir / "agreement.json").write_text(json.dumps(_clean(agr), indent=1))
        rows = training_rows(feats, FEATURE_NAMES, aligned)
        header = ["epoch", "onset_s", *FEATURE_NAMES, "psg_stage", "psg_sleep"]
        _write_csv(out_dir / "training_rows.csv", header, ([r[h] for h in header] for r in rows))
        summary.update(accuracy_sw=agr.get("accuracy_sw"), kappa_sw=agr.get("kappa_sw"),
                       TST_psg=psg_sc["TST"], RDI_psg=psg_sc["RDI"])
    (out_dir / "scores.json").write_text(json.dumps(_clean(result), indent=1))
    return _clean(summary)
