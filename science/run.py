"""``make science``: the robustness table -> SCIENCE.md.

    python -m science.run [--nights 10] [--quick] [--only NAME ...] [--out SCIENCE.md]

For every condition of ``science.conditions`` the same nights (seeds ``SEED0 + j``, AHI spread
over 5-45/h unless the condition fixes it) are generated with the condition's settings,
prepared by ``sunrise_prep`` and scored by ``sunalgo`` with the default model, its rule
baseline and the previous defaults, against the injected truth (``write_truth_labels``).

Truth is taken over the Sunrise epochs the device scores (issue 24): an epoch the device marks
``UNS`` (not recorded, sensor not worn) is left out of both sides, and how many minutes that
was is a column, so that excluding time can never pass for accuracy.

Batches (issue 24: fit on one, choose on a second, report on a third):

* fit: ``synth_batch(seed=7)`` = seeds 7000-7011 (scripts/fit_default_model.py);
* choice: seeds 9100-9199 (the version-3 arousal rule and the defect-6 trials were read
  there; tests use 2024xxx);
* report: ``SEED0`` = 240000.. here, generated for this table only, never looked at while
  designing.

Targets per condition: accuracy >= 0.90, median |TST error| <= 15 min, median |AHI error|
<= 5/h; event sensitivity and PPV >= 0.80 for a type with >= 20 events in the condition;
<= 0.5 false events per hour of sleep on event-free nights; wake specificity >= 0.65 on still
wake with wake's breathing. Misses stay in the table, marked.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from science.conditions import CONDITIONS, Condition

SEED0 = 240_000
BATCHES = {"fit": "seeds 7000-7011 (synth_batch seed 7)", "choice": "seeds 9100-9199",
           "report": f"seeds {SEED0}.. (this table)"}
TARGETS = {"accuracy": 0.90, "tst_abs_min": 15.0, "ahi_abs_per_h": 5.0, "event": 0.80,
           "event_min_n": 20, "false_per_h": 0.5, "wake_spec": 0.65}
#: The rule baseline of the same detector, and the previous defaults.
BASELINE = "baseline-4"
PREVIOUS = "logistic-3"
OLDEST = "logistic-1"
QUICK_HOURS = 3.0
GAP_S = 1200
PSG_TYPES = ("obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea")
PRED_TYPES = ("obstructive_event", "central_event")


def _truth_on_device_epochs(night, stages: list[str]) -> tuple[float, float, np.ndarray]:
    """(true TST min, true AHI /h) over the Sunrise epochs the device scored (not ``UNS``), and
    the true sleep flag of each Sunrise epoch."""
    hyp = night.hypnogram
    k = np.arange(len(stages))
    j = ((k * 30 + 15 + night.sunrise_offset_s) // 30).astype(int)
    in_psg = j < len(hyp)
    true_sleep = np.array([in_psg[i] and hyp[j[i]] != "W" for i in k])
    scored = np.array([s != "UNS" for s in stages]) & in_psg
    tst = float(np.sum(true_sleep & scored)) * 0.5
    n_ev = 0
    for _, onset, _ in night.events:
        e = int((onset - night.sunrise_offset_s) // 30)
        if 0 <= e < len(stages) and scored[e] and true_sleep[e]:
            n_ev += 1
    return tst, (n_ev / (tst / 60) if tst > 0 else 0.0), true_sleep


def night_metrics(cond: Condition, j: int, n_nights: int, work: Path,
                  models: tuple[str, ...]) -> dict:
    """Generate, prepare and score night ``j`` of ``cond``; one metrics dict per model."""
    from sunalgo.run import run_sunalgo
    from sunrise_cli.synth import cut_gap, synth_night, write_truth_labels
    from sunrise_night.prepare import prepare_sunrise

    if cond.ahi is not None:
        ahi = cond.ahi
    else:
        ahi = float(np.linspace(5, 45, n_nights)[j]) if n_nights > 1 else 20.0
    d = work / cond.name / f"night-{j:02d}"
    night = synth_night(d, seed=SEED0 + j, hours=cond.hours, ahi=ahi,
                        obstructive_fraction=cond.obstructive_fraction,
                        with_spo2=cond.with_spo2, settings=cond.settings)
    if cond.gap:
        mid = int(night.sunrise_duration_s // 2)
        cut_gap(night.sunrise, mid - GAP_S // 2, GAP_S, zero_fill=cond.gap == "zero")
    t0 = time.perf_counter()
    prepare_sunrise(night.sunrise, d / "prep")
    prep_s = time.perf_counter() - t0
    psg = write_truth_labels(night, d / "truth")
    out = {"condition": cond.name, "night": j, "seed": SEED0 + j, "ahi_target": ahi,
           "tst_true_psg": night.tst_min, "ahi_true_psg": night.ahi, "prep_s": prep_s,
           "models": {}}
    for version in models:
        t0 = time.perf_counter()
        od = d / f"out-{version}"
        s = run_sunalgo(d / "prep", psg, od, model_version=version)
        algo_s = time.perf_counter() - t0
        scores = json.loads((od / "scores.json").read_text())["scores"]
        agr = json.loads((od / "agreement.json").read_text())
        with (od / "predictions.csv").open(newline="") as f:
            stages = [r["stage"] for r in csv.DictReader(f)]
        tst_true, ahi_true, true_sleep = _truth_on_device_epochs(night, stages)
        scored = np.array([x != "UNS" for x in stages])
        cm = (agr.get("confusion_sw") or {}).get("matrix") or [[0, 0], [0, 0]]
        out["models"][version] = {
            "accuracy": s["accuracy_sw"], "tst": s["TST"], "ahi": s["AHI"],
            "tst_true": tst_true, "ahi_true": ahi_true,
            "tst_err": s["TST"] - tst_true,
            "ahi_err": (s["AHI"] - ahi_true) if s["AHI"] is not None else float("nan"),
            "uns_min": float(np.sum(~scored)) * 0.5,
            "wake_n": int(cm[0][0] + cm[0][1]), "wake_hit": int(cm[0][0]),
            "events": agr.get("events"), "n_events": s["n_events"],
            "rdi_rule": scores.get("RDI_rule"), "algo_s": algo_s}
    shutil.rmtree(d, ignore_errors=True)
    return out


def _p90(x: list[float]) -> float:
    x = [v for v in x if np.isfinite(v)]
    return float(np.percentile(x, 90)) if x else float("nan")


def _severity_agreement(pred: list[float], true: list[float]) -> dict[str, float | None]:
    """Share of nights on the same side of each cut-off (5, 15, 30 events/h)."""
    out = {}
    for t in (5.0, 15.0, 30.0):
        pairs = [(p >= t, q >= t) for p, q in zip(pred, true) if np.isfinite(p) and np.isfinite(q)]
        out[f"{t:g}"] = float(np.mean([a == b for a, b in pairs])) if pairs else None
    return out


def summarise(rows: list[dict], version: str, cond: Condition | None = None) -> dict:
    """Medians, 90th percentiles and pooled figures over the nights of one condition for one
    model, and which targets are missed."""
    m = [r["models"][version] for r in rows]
    acc = float(np.median([x["accuracy"] for x in m]))
    tst_abs = [abs(x["tst_err"]) for x in m]
    ahi_abs = [abs(x["ahi_err"]) for x in m]
    tst = float(np.median(tst_abs))
    ahi = float(np.median(ahi_abs)) if np.isfinite(ahi_abs).all() else float("nan")
    wake_n = sum(x["wake_n"] for x in m)
    wake_spec = sum(x["wake_hit"] for x in m) / wake_n if wake_n else float("nan")
    ev: dict[str, dict] = {}
    for side, metric, types in (("psg", "sensitivity", PSG_TYPES), ("pred", "ppv", PRED_TYPES)):
        for t in types:
            n = hits = 0.0
            for x in m:
                e = ((x.get("events") or {}).get(side) or {}).get(t) or {}
                if e.get(metric) is not None:
                    n += e["n"]
                    hits += e[metric] * e["n"]
            ev[t] = {"n": int(n), "value": hits / n if n else None, "metric": metric}
    tst_h = sum(x["tst"] for x in m) / 60
    false_h = (sum(x["n_events"] for x in m) / tst_h if tst_h > 0 else float("nan")) \
        if cond is not None and cond.ahi == 0 else None
    misses = []
    if not acc >= TARGETS["accuracy"]:
        misses.append("accuracy")
    if not tst <= TARGETS["tst_abs_min"]:
        misses.append("TST")
    if not ahi <= TARGETS["ahi_abs_per_h"]:
        misses.append("AHI")
    # Targets where the condition has >= 20 true events of the type (for a PPV: of the MM
    # type's class; on event-free nights false events/h is the figure, not a PPV).
    n_true = {t: ev[t]["n"] for t in PSG_TYPES}
    n_true["obstructive_event"] = sum(ev[t]["n"] for t in ("obstructive_apnea", "mixed_apnea",
                                                           "hypopnea"))
    n_true["central_event"] = ev["central_apnea"]["n"]
    for t, e in ev.items():
        if n_true[t] >= TARGETS["event_min_n"] and not (e["value"] or 0) >= TARGETS["event"]:
            misses.append(f"{e['metric']} {t}")
    if false_h is not None and not false_h <= TARGETS["false_per_h"]:
        misses.append("false events/h")
    if cond is not None and cond.wake_target and not wake_spec >= TARGETS["wake_spec"]:
        misses.append("wake specificity")
    return {"accuracy": acc, "tst_abs": tst, "tst_bias": float(np.median([x["tst_err"] for x in m])),
            "ahi_abs": ahi, "ahi_bias": float(np.median([x["ahi_err"] for x in m])),
            "tst_p90": _p90(tst_abs), "ahi_p90": _p90(ahi_abs), "wake_spec": wake_spec,
            "uns_min": float(np.median([x["uns_min"] for x in m])),
            "events": ev, "false_per_h": false_h,
            "severity": _severity_agreement([x["ahi"] if x["ahi"] is not None else np.nan
                                             for x in m], [x["ahi_true"] for x in m]),
            "rdi_rules": sorted({str(x["rdi_rule"]) for x in m}), "misses": misses}


def _fmt(v, fmt: str) -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def _header_lines(meta: dict) -> list[str]:
    """Title, provenance, batches, what the nights are, targets and the main table's head."""
    models = meta["models"]
    return [
        "# SCIENCE: robustness of the detectors and sleep/wake models on shifted synthetic nights",
        "",
        f"Written by `{meta['command']}` on {meta['date']} ({meta['machine']}), commit "
        f"`{meta['commit']}` (plus the working tree of that run), in {meta['elapsed_s']:.0f} s. "
        "Every figure is measured on **synthetic** nights (`sunrise_cli.synth`) against their "
        "injected truth; none is a claim about real patients (published envelopes for Sunrise vs "
        "PSG beside ours: docs/science.md §7)." + (f" {meta['rerendered']}"
                                                   if meta.get("rerendered") else ""),
        "",
        "**Batches** (issue 24: fit on one, choose on a second, report on a third): the models' "
        f"sleep/wake was fitted on the *fit* batch ({BATCHES['fit']}); the version-3 arousal rule "
        f"and the trials for central events in periodic breathing were chosen on the *choice* "
        f"batch ({BATCHES['choice']}); **every figure below is from the *report* batch** "
        f"({meta.get('seeds', BATCHES['report'])}), generated for this table and not looked at "
        "while designing. The unit tests use seeds 2024xxx.",
        "",
        f"{meta['nights']} nights per condition, 8-h nights unless stated, target AHI spread over "
        "5-45/h unless stated, obstructive fraction 0.8 unless stated. Truth is counted over the "
        "Sunrise epochs the device scores: epochs it marks UNS (not recorded, sensor not worn) "
        "leave both sides, and their minutes are a column (UNS) so that excluded time is seen. "
        "The predicted index is an **AHI** (no RERA detector) against the true AHI. Models: "
        f"**{models[0]}** (the packaged default), **{models[1]}** (its rule baseline: Oakley on "
        "floor-relative activity counts, same respiratory detector), "
        + ", ".join(f"**{m}**" for m in models[2:]) + " (previous defaults, for comparison). "
        f"Targets: accuracy >= {TARGETS['accuracy']}, median |TST error| <= "
        f"{TARGETS['tst_abs_min']:g} min, median |AHI error| <= {TARGETS['ahi_abs_per_h']:g}/h; "
        f"event sensitivity and PPV >= {TARGETS['event']} for a type with >= "
        f"{TARGETS['event_min_n']} events; <= {TARGETS['false_per_h']} false events/h on "
        f"event-free nights; wake specificity >= {TARGETS['wake_spec']} on still wake with "
        "wake's breathing. **✗** = target missed.",
        "",
        "Cells: accuracy / median |TST error| min / median |AHI error| per h.",
        "",
        "| condition | shift | h | " + " | ".join(models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]


def _main_rows(results: dict, models: list[str]) -> list[str]:
    """One row per condition (accuracy / |TST error| / |AHI error| per model), then the count of
    conditions with a miss."""
    lines = []
    for name, res in results.items():
        row = [name, res["description"], f"{res['hours']:g}"]
        for version in models:
            s = res["summary"][version]
            mark = lambda v, f, key: (f"**{_fmt(v, f)} ✗**" if key in s["misses"]  # noqa: E731
                                      else _fmt(v, f))
            row.append(" / ".join([mark(s["accuracy"], ".3f", "accuracy"),
                                   mark(s["tst_abs"], ".1f", "TST"),
                                   mark(s["ahi_abs"], ".2f", "AHI")]))
        lines.append("| " + " | ".join(row) + " |")
    n_miss = {v: sum(bool(r["summary"][v]["misses"]) for r in results.values()) for v in models}
    lines += ["", "Conditions with a miss (any target): " + ", ".join(
        f"{v} {n_miss[v]} of {len(results)}" for v in models) + ".", ""]
    return lines


def _further_columns(results: dict, version: str) -> list[str]:
    """The p90, wake specificity, UNS, false events/h, severity and per-type event table of one
    model."""
    lines = [f"### Further columns, {version}", "",
             "p90 = 90th percentile over nights of |error|; wake spec. = true wake epochs "
             "scored wake (pooled); UNS = median minutes the device left unscored; false/h "
             "= detected events per hour of predicted sleep on event-free nights; severity "
             "= share of nights on the same side of 5 / 15 / 30 per h; event columns: "
             "sensitivity per true type (any MM event overlapping; n) and PPV per MM type "
             "(overlapping any true event; n).", "",
             "| condition | p90 TST | p90 AHI | wake spec. | UNS min | false/h | severity "
             "5/15/30 | sens. obstr. apnea | sens. central apnea | sens. mixed apnea | "
             "sens. hypopnea | PPV obstr. event | PPV central event |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        s = res["summary"][version]

        def ev(t: str) -> str:
            e = s["events"][t]
            txt = f"{_fmt(e['value'], '.2f')} ({e['n']})"
            return f"**{txt} ✗**" if f"{e['metric']} {t}" in s["misses"] else txt
        sev = " / ".join(_fmt(v, ".1f") for v in s["severity"].values())
        fh = _fmt(s["false_per_h"], ".2f") if s["false_per_h"] is not None else "–"
        if "false events/h" in s["misses"]:
            fh = f"**{fh} ✗**"
        ws = _fmt(s["wake_spec"], ".2f")
        if "wake specificity" in s["misses"]:
            ws = f"**{ws} ✗**"
        lines.append(f"| {name} | {_fmt(s['tst_p90'], '.1f')} | {_fmt(s['ahi_p90'], '.2f')} | "
                     f"{ws} | {_fmt(s['uns_min'], '.1f')} | {fh} | {sev} | "
                     + " | ".join(ev(t) for t in (*PSG_TYPES, *PRED_TYPES)) + " |")
    lines.append("")
    return lines


def _bias_and_rules(results: dict, models: list[str]) -> list[str]:
    """Signed median biases per model and how the default model confirmed events."""
    lines = ["Signed median biases (prediction - truth), TST min / AHI per h:", "",
             "| condition | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{res['summary'][v]['tst_bias']:+.1f} / {res['summary'][v]['ahi_bias']:+.2f}"
            for v in models) + " |")
    lines += ["", "How events were confirmed (default model): "]
    for name, res in results.items():
        lines.append(f"- {name}: " + "; ".join(res["summary"][models[0]]["rdi_rules"]))
    return lines


def _misses(results: dict, models: list[str], reasons: dict[str, str]) -> list[str]:
    """Every (condition, model) with a miss and its recorded reason; "none" if there is none."""
    lines = ["", "## Misses and why", ""]
    any_miss = False
    for name, res in results.items():
        for version in models:
            misses = res["summary"][version]["misses"]
            if misses:
                any_miss = True
                why = reasons.get(f"{name}/{version}") or reasons.get(name) or (
                    _EVENTS if all(m.startswith(("sensitivity ", "ppv ")) for m in misses)
                    else "not analysed (no reason recorded in science/run.py REASONS)")
                lines.append(f"- **{name}**, {version}: misses {', '.join(misses)}. {why}")
    if not any_miss:
        lines.append("- none")
    return lines


def render(results: dict, meta: dict, reasons: dict[str, str]) -> str:
    """SCIENCE.md text: header, batches, the side-by-side table, the extra columns, misses with
    reasons, timing."""
    models = meta["models"]
    lines = _header_lines(meta) + _main_rows(results, models)
    for version in models[:2]:
        lines += _further_columns(results, version)
    lines += _bias_and_rules(results, models) + _misses(results, models, reasons)
    lines += ["", "## Timing", "",
              f"sunrise_prep median {meta['prep_s_median']:.2f} s per night, sunalgo median "
              f"{meta['algo_s_median']:.2f} s per night and model (all conditions, "
              f"{meta['workers']} worker processes on a shared machine).", ""]
    return "\n".join(lines)


#: Why a condition misses, from reading nights of the choice batch or earlier runs (kept with
#: the figures they explain); never from tuning on the report batch.
_NOISE_WHY = (
    "TST over-estimated by about 20 min, the same at x2, x3 and x5: the wake cue that the "
    "floor-relative activity threshold (2.5 x the night's floor) catches at default noise is a "
    "restless jaw micro-movement lying between 1x and 2x the default sensor noise; any extra "
    "noise lifts the floor above it and only movement bursts, which no noise level hides, "
    "remain (read on seeds 9001-9003 for issue 12; not re-tuned here)."
)
_STILL_WAKE = (
    "Wake detection rests on chin movement (logistic-3: weight 5.98 on floor-relative activity "
    "vs <= 0.62 on every breathing feature; baseline-3: activity only): an awakening without "
    "movement is scored sleep even though its breathing is irregular. logistic-4 (issue 24 "
    "defect 4) adds a still-epoch model on breath-to-breath variability and swallows, fitted "
    "on nights with still wake (docs/science.md §8.4)."
)
_CSB = (
    "Version 3 judges central apneas also against the largest breaths of the preceding 2 min "
    "(AASM baseline for unstable breathing; choice batch 9170-9173: 45 of 52 Cheyne-Stokes "
    "apneas typed central vs 28 in version 2). Without oximetry, central hypopnea-like drops "
    "still need an arousal, and obstructive-type MM events are not confirmed at all; the "
    "crescendo breaths of periodic breathing are not recognised as such. Not read night by "
    "night on the report batch."
)
_EVENTS = (
    "Event-level figures (sensitivity per true type, PPV per MM type, intervals overlapping). "
    "Central events were the weak part of the detector (issue 24 defect 6); version 4 times "
    "a central event from the fall to the recovery and credits a desaturation only to the "
    "latest event begun before the fall (docs/science.md §8.4.2; chosen on choice seeds "
    "9100-9103). Left, read there: false central events at chance effort dips between "
    "clustered obstructive events, recovery breaths after central apneas typed obstructive, "
    "and hypopneas whose arousal carries no chin movement; not read night by night on the "
    "report batch."
)
REASONS: dict[str, str] = {
    **{f"gyro_noise_x{k}/{v}": _NOISE_WHY for k in (2, 3, 5)
       for v in ("logistic-3", "baseline-4", "logistic-2")},
    **{f"still_wake_60min/{v}": _STILL_WAKE for v in ("logistic-3", "baseline-4", "logistic-2",
                                                       "logistic-1")},
    "still_wake_as_sleep_60min": "The limit of any chin sensor, by construction: an awakening "
    "with sleep's breathing and no movement is identical to sleep in every signal the Sunrise "
    "records; no model can score it wake. Reported, not hidden.",
    "cheyne_stokes": _CSB, "cheyne_stokes_no_oximetry": _CSB,
    **{f"{c}/logistic-1": "logistic-1's absolute thresholds and weights were fitted before the "
       "25 Hz resampling fix (commit dd3feca) and it is kept unrefitted, for comparison only; "
       "not read night by night for this condition."
       for c in ("wake_60min", "all_central", "gap_zero_20min", "gap_edfplus_d_20min",
                 "sensor_off_asleep", "sensor_off_awake", "drift_1f_moderate",
                 "drift_1f_strong", "event_free", "widened_ranges", "night_12h", "default")},
    "event_free/logistic-2": "Version 2's arousal path counts >= 2 scattered seconds of "
    "movement at the end of a candidate: REM twitches confirm chance candidates (issue 24 "
    "defect 5; version 3 needs one contiguous >= 4 s burst, see logistic-3's row).",
    **{f"drift_1f_{k}/{v}": "Observed, not read night by night: TST over-estimated by ~18 min "
       "as in the gyroscope-noise rows (likely the same mechanism: the raised activity floor "
       "hides wake's micro-movement); 1/f drift also puts power into the breathing band, so "
       "the fall of effort in a central apnea is masked and central-apnea sensitivity falls "
       "with the drift's strength (choice seeds 9100-9103, strong drift: 0.09 before and 0.36 "
       "after version 3's central rules)."
       for k in ("moderate", "strong") for v in ("logistic-3", "baseline-4", "logistic-2")},
    "drift_1f_strong/logistic-4": "Not read night by night. TST under-estimated (sleep scored "
    "wake): 1 deg/s of 1/f drift puts power into the breathing band, which reads as irregular "
    "breathing; logistic-4 takes its breathing features relative to the night's median, which "
    "cancels a night-wide lift but not the drift's slow wandering within the night. On the "
    "choice batch (seeds 9180-9185, 6 h) the median was -5.0 min; on the report batch it is "
    "worse than logistic-3's +17.8 (not re-tuned after reading it). Central-apnea sensitivity "
    "falls as for the other models, which is most of the AHI miss.",
    **{f"events_10-12s/{v}": "After 5-s smoothing the effort drop of a 10-12 s central apnea "
       "has a core shorter than 10 s: most are missed (read on seeds 9001-9003 for issue 12)."
       for v in ("logistic-3", "logistic-2")},
    **{f"events_10-12s/{v}": "Version 4 measures a central event from the fall to the "
       "recovery (docs/science.md §8.4.2), which finds most 10-12 s central apneas (choice "
       "seeds 9100-9103: 0.43 -> 0.67); the shortest, whose smoothed fall barely crosses the "
       "30 % drop, are still missed, and 10-12 s obstructive events have a short core too."
       for v in ("logistic-4", "baseline-4")},
    "breathing_x0.7/logistic-1": "Sleep breathing leaves the 0.15-0.60 Hz band: the rate sticks "
    "at the band edge and spectral regularity falls, which logistic-1's weights read as wake.",
    "events_10-12s/logistic-1": "After 5-s smoothing a 10-12 s effort rise stays above the "
    "absolute 1.3x / 0.8 deg thresholds for < 10 s (no hysteresis in the -1 rules).",
    "events_x1.8/logistic-1": "Long events (up to 108 s) are split at breath-to-breath dips and "
    "capped at 90 s; the irregular breathing of long-event clusters reads as wake (TST).",
    "weak_obstructive/logistic-1": "Effort x1.15-1.45 and jaw drops of 0.5-1.2 deg sit under the "
    "absolute 1.3x / 0.8 deg thresholds.",
    "arousal_hypopneas/logistic-1": "The -1 rules have only the 3 % desaturation path of AASM 1A; "
    "hypopneas confirmed by an arousal alone are not counted.",
    "no_oximetry/logistic-1": "Without oximetry the -1 rules drop every hypopnea-like central "
    "event and confirm nothing.",
}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(conditions: list[Condition], n_nights: int, work: Path, workers: int,
        models: tuple[str, ...]) -> tuple[dict, list[dict]]:
    """Every night of every condition; returns per-condition summaries and the per-night rows."""
    jobs = [(c, j) for c in conditions for j in range(n_nights)]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(night_metrics, c, j, n_nights, work, models) for c, j in jobs]
        for k, f in enumerate(futures, 1):
            rows.append(f.result())
            r = rows[-1]
            print(f"[{k}/{len(jobs)}] {r['condition']} night {r['night']}: " + "; ".join(
                f"{v} acc {m['accuracy']:.3f} TST {m['tst_err']:+.1f} AHI {m['ahi_err']:+.2f}"
                for v, m in r["models"].items()), flush=True)
    results = {}
    for c in conditions:
        mine = [r for r in rows if r["condition"] == c.name]
        results[c.name] = {"description": c.description, "hours": c.hours,
                           "settings": asdict(c.settings), "with_spo2": c.with_spo2,
                           "obstructive_fraction": c.obstructive_fraction,
                           "summary": {v: summarise(mine, v, c) for v in models}}
    return results, rows


def main(argv: list[str] | None = None) -> int:
    from sunrise_algo.builtin.model import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description="Robustness suite -> SCIENCE.md")
    ap.add_argument("--nights", type=int, default=10, help="nights per condition (>= 10 for "
                    "the published table)")
    ap.add_argument("--quick", action="store_true", help=f"CI size: 2 nights per condition, "
                    f"nights shortened to {QUICK_HOURS:g} h except the 12-h condition")
    ap.add_argument("--only", nargs="*", default=None, help="condition names (default: all)")
    ap.add_argument("--out", type=Path, default=Path("SCIENCE.md"), help="report path")
    ap.add_argument("--json", type=Path, default=None, help="also write per-night rows here")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: temporary)")
    ap.add_argument("--render", type=Path, default=None, help="re-write the report from a "
                    "--json file of an earlier run (no nights are generated)")
    args = ap.parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text())
        results = data["results"]
        if data.get("nights"):  # recompute the summaries (targets, columns) from the nights
            by_name = {c.name: c for c in CONDITIONS}
            for name, res in results.items():
                mine = [r for r in data["nights"] if r["condition"] == name]
                res["summary"] = {v: summarise(mine, v, by_name.get(name))
                                  for v in data["meta"]["models"]}
        data["meta"]["rerendered"] = (
            f"Re-rendered on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} at "
            f"commit `{_git_commit()}` by `python -m science.run --render` from that run's "
            "per-night rows (summaries and targets recomputed; no night generated again).")
        args.out.write_text(render(results, data["meta"], REASONS))
        print(f"wrote {args.out} from {args.render}")
        return 0
    conditions = [c for c in CONDITIONS if args.only is None or c.name in args.only]
    if args.only and len(conditions) != len(args.only):
        known = [c.name for c in CONDITIONS]
        raise SystemExit(f"unknown condition in {args.only}; known: {known}")
    n = args.nights
    if args.quick:
        n = 2
        conditions = [c if c.name == "night_12h" else replace(c, hours=min(c.hours, QUICK_HOURS))
                      for c in conditions]
    work = args.work or Path(tempfile.mkdtemp(prefix="science-"))
    models = (DEFAULT_MODEL, BASELINE, PREVIOUS, OLDEST)
    t0 = time.perf_counter()
    commit = _git_commit()  # the code that runs, not whatever HEAD is when it ends
    try:
        results, rows = run(conditions, n, work, args.workers, models)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    meta = {"command": "python -m science.run " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "commit": commit, "elapsed_s": time.perf_counter() - t0, "nights": n,
            "seeds": f"seeds {SEED0}..{SEED0 + n - 1}",
            "models": models, "workers": args.workers,
            "prep_s_median": float(np.median([r["prep_s"] for r in rows])),
            "algo_s_median": float(np.median([m["algo_s"] for r in rows
                                              for m in r["models"].values()]))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, meta, REASONS))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results, "nights": rows},
                                        indent=1, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
