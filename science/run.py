"""``make science``: the robustness table -> SCIENCE.md.

    python -m science.run [--nights 10] [--quick] [--only NAME ...] [--out SCIENCE.md]

For every condition of ``science.conditions`` the same nights (seeds ``SEED0 + j``, AHI spread
over 5-45/h) are generated with the condition's settings, prepared by ``sunrise_prep`` and
scored by ``sunalgo`` with the default model and with ``baseline-1``, against the injected truth
(``write_truth_labels``). Targets per condition, median over nights: sleep/wake accuracy
>= 0.90, |TST error| <= 15 min, |RDI error| <= 5 events/h. Misses stay in the table, marked.

The seeds are neither the development batch (7000-7011, what the models were fitted on) nor
the test batch of tests/science (2024000-2024019).
"""

from __future__ import annotations

import argparse
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

SEED0 = 50_000
TARGETS = {"accuracy": 0.90, "tst_abs_min": 15.0, "rdi_abs_per_h": 5.0}
#: The rule baseline of the same (per-night) detector, and the previous default (before issue 12).
BASELINE = "baseline-2"
PREVIOUS = "logistic-1"
QUICK_HOURS = 3.0


def night_metrics(cond: Condition, j: int, n_nights: int, work: Path,
                  models: tuple[str, ...]) -> dict:
    """Generate, prepare and score night ``j`` of ``cond``; one metrics dict per model."""
    from sunalgo.run import run_sunalgo
    from sunrise_cli.synth import synth_night, write_truth_labels
    from sunrise_prep.prepare import prepare_sunrise

    ahi = float(np.linspace(5, 45, n_nights)[j]) if n_nights > 1 else 20.0
    d = work / cond.name / f"night-{j:02d}"
    night = synth_night(d, seed=SEED0 + j, hours=cond.hours, ahi=ahi,
                        obstructive_fraction=cond.obstructive_fraction,
                        with_spo2=cond.with_spo2, settings=cond.settings)
    t0 = time.perf_counter()
    prepare_sunrise(night.sunrise, d / "prep")
    prep_s = time.perf_counter() - t0
    psg = write_truth_labels(night, d / "truth")
    out = {"condition": cond.name, "night": j, "seed": SEED0 + j, "ahi_target": ahi,
           "tst_true": night.tst_min, "rdi_true": night.ahi, "prep_s": prep_s, "models": {}}
    for version in models:
        t0 = time.perf_counter()
        s = run_sunalgo(d / "prep", psg, d / f"out-{version}", model_version=version)
        algo_s = time.perf_counter() - t0
        scores = json.loads((d / f"out-{version}" / "scores.json").read_text())["scores"]
        rdi = s["AHI"]  # no RERA detector: the predicted index is an AHI (issue 24)
        out["models"][version] = {
            "accuracy": s["accuracy_sw"], "tst": s["TST"], "rdi": rdi,
            "tst_err": s["TST"] - night.tst_min,
            "rdi_err": (rdi - night.ahi) if rdi is not None else float("nan"),
            "rdi_rule": scores.get("RDI_rule"), "algo_s": algo_s}
    shutil.rmtree(d, ignore_errors=True)
    return out


def summarise(rows: list[dict], version: str) -> dict:
    """Medians over the nights of one condition for one model, and which targets are missed."""
    m = [r["models"][version] for r in rows]
    acc = float(np.median([x["accuracy"] for x in m]))
    tst = float(np.median([abs(x["tst_err"]) for x in m]))
    rdi_abs = [abs(x["rdi_err"]) for x in m]
    rdi = float(np.median(rdi_abs)) if np.isfinite(rdi_abs).all() else float("nan")
    misses = []
    if not acc >= TARGETS["accuracy"]:
        misses.append("accuracy")
    if not tst <= TARGETS["tst_abs_min"]:
        misses.append("TST")
    if not rdi <= TARGETS["rdi_abs_per_h"]:
        misses.append("RDI")
    return {"accuracy": acc, "tst_abs": tst, "tst_bias": float(np.median([x["tst_err"] for x in m])),
            "rdi_abs": rdi, "rdi_bias": float(np.median([x["rdi_err"] for x in m])),
            "rdi_rules": sorted({str(x["rdi_rule"]) for x in m}), "misses": misses}


def _cell(value: float, fmt: str, missed: bool) -> str:
    text = format(value, fmt) if np.isfinite(value) else "n/a"
    return f"**{text} ✗**" if missed else text


def render(results: dict, meta: dict, reasons: dict[str, str]) -> str:
    """SCIENCE.md text: header, the side-by-side table, misses with reasons, timing."""
    models = meta["models"]
    lines = [
        "# SCIENCE: robustness of the detectors and sleep/wake models on shifted synthetic nights",
        "",
        f"Written by `{meta['command']}` on {meta['date']} ({meta['machine']}), commit "
        f"`{meta['commit']}` (plus the working tree of that run), in {meta['elapsed_s']:.0f} s. "
        "Every figure is measured on **synthetic** nights (`sunrise_cli.synth`) against their "
        "injected truth; none is a claim about real patients (published envelopes for Sunrise vs "
        "PSG: docs/science.md §7).",
        "",
        f"Same nights in every condition: seeds {SEED0}..{SEED0 + meta['nights'] - 1}, target "
        "AHI spread over 5-45/h, obstructive fraction 0.8 unless stated, "
        f"{meta['nights']} nights per condition, 8-h nights unless stated. Models: "
        f"**{models[0]}** (the packaged default), **{models[1]}** (its rule baseline: Oakley on "
        "floor-relative activity counts; both use the same per-night respiratory detector)"
        + (f", and **{models[2]}** (the previous default, absolute thresholds) for comparison"
           if len(models) > 2 else "") +
        f". Targets (median over nights): accuracy >= {TARGETS['accuracy']}, |TST error| <= "
        f"{TARGETS['tst_abs_min']:g} min, |RDI error| <= {TARGETS['rdi_abs_per_h']:g} events/h. "
        "**✗** = target missed. Cells: accuracy / |TST error| min / |RDI error| per h "
        "(medians; signed median biases in the per-model detail below).",
        "",
        "| condition | shift | h | " + " | ".join(models) + " | RDI rule |",
        "|---|---|---|" + "---|" * len(models) + "---|",
    ]
    for name, res in results.items():
        row = [name, res["description"], f"{res['hours']:g}"]
        for version in models:
            s = res["summary"][version]
            row.append(" / ".join([_cell(s["accuracy"], ".3f", "accuracy" in s["misses"]),
                                   _cell(s["tst_abs"], ".1f", "TST" in s["misses"]),
                                   _cell(s["rdi_abs"], ".2f", "RDI" in s["misses"])]))
        row.append(", ".join(res["summary"][models[0]]["rdi_rules"]))
        lines.append("| " + " | ".join(row) + " |")
    n_miss = {v: sum(bool(r["summary"][v]["misses"]) for r in results.values()) for v in models}
    lines += ["", "Conditions with a miss: " + ", ".join(
        f"{v} {n_miss[v]} of {len(results)}" for v in models) + ".", "",
        "Signed median biases (prediction - truth), TST min / RDI per h:", "",
        "| condition | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for name, res in results.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{res['summary'][v]['tst_bias']:+.1f} / {res['summary'][v]['rdi_bias']:+.2f}"
            for v in models) + " |")
    lines += ["", "## Misses and why", ""]
    any_miss = False
    for name, res in results.items():
        for version in models:
            misses = res["summary"][version]["misses"]
            if misses:
                any_miss = True
                why = reasons.get(f"{name}/{version}") or reasons.get(name) or \
                    "not analysed (no reason recorded in science/run.py REASONS)"
                lines.append(f"- **{name}**, {version}: misses {', '.join(misses)}. {why}")
    if not any_miss:
        lines.append("- none")
    lines += ["", "## Timing", "",
              f"sunrise_prep median {meta['prep_s_median']:.2f} s per night, sunalgo median "
              f"{meta['algo_s_median']:.2f} s per night and model (all conditions, "
              f"{meta['workers']} worker processes on a shared machine).", ""]
    return "\n".join(lines)


#: Why a condition misses, from reading its nights (kept with the figures they explain).
#: Mechanisms were read on separate nights (seeds 9001-9003), not by tuning on these.
_NOISE_WHY = (
    'TST over-estimated by a median {b} min, the same at x2, x3 and x5 (per-night errors '
    'equal within 1 min): the wake cue that the floor-relative activity threshold (2.5 x the '
    "night's floor) catches at default noise is a restless jaw micro-movement lying between "
    '1x and 2x the default sensor noise; any extra noise lifts the floor above it and only '
    'movement bursts, which no noise level hides, remain. The multiplier was chosen on the '
    'development batch at default noise and is not re-tuned on this table (before issue 12, '
    'logistic-1 at x5: every epoch wake, -406 min).'
)
REASONS: dict[str, str] = {
    **{f"gyro_noise_x2/{v}": _NOISE_WHY.format(b=b)
       for v, b in (("logistic-2", "+19"), ("baseline-2", "+18.5"))},
    **{f"gyro_noise_x{k}/{v}": "Same mechanism as gyro_noise_x2 (same nights, same errors)."
       for k in (3, 5) for v in ("logistic-2", "baseline-2")},
    **{f"{c}/logistic-1": "Not read night by night. logistic-1's absolute thresholds and weights "
       "were fitted before the 25 Hz resampling fix (commit dd3feca: the old FIR had its gain applied "
       "twice, so every breath and activity amplitude at the generator's 25 Hz came out 2x); with "
       "the true amplitudes its per-night TST errors widened here (median |TST error| "
       f"{was} -> {now} min) while logistic-2 and baseline-2, whose activity cues are relative to "
       "the night's own floor, did not move. logistic-1 is kept unrefitted, for comparison only."
       for c, was, now in (("wake_60min", "11.2", "15.5"), ("all_central", "12.2", "17.2"))},
    "breathing_x0.7/logistic-1": "Sleep breathing leaves the 0.15-0.60 Hz band: the rate sticks "
    "at the band edge and spectral regularity falls, which logistic-1's weights read as wake "
    "(logistic-2 has the same breathing features, but its floor-relative activity dominates).",
    "events_10-12s/logistic-1": "After 5-s smoothing a 10-12 s effort rise stays above the "
    "absolute 1.3x / 0.8 deg thresholds for < 10 s (no hysteresis in the -1 rules); 60 % of "
    "10-12 s central apneas are missed by every model (the effort drop's smoothed core is too short).",
    "events_x1.8/logistic-1": "Long events (up to 108 s) are split at breath-to-breath dips and "
    "capped at 90 s (+7.4/h); the irregular breathing of long-event clusters reads as wake (TST).",
    "weak_obstructive/logistic-1": "Effort x1.15-1.45 and jaw drops of 0.5-1.2 deg sit under the "
    "absolute 1.3x / 0.8 deg thresholds.",
    "arousal_hypopneas/logistic-1": "The -1 rules have only the 3 % desaturation path of AASM 1A; "
    "hypopneas confirmed by an arousal alone are not counted.",
    "no_oximetry/logistic-1": "Without oximetry the -1 rules drop every hypopnea-like central "
    "event and confirm nothing; the index is lower (now flagged 'NO OXIMETRY' in scores.json).",
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
                f"{v} acc {m['accuracy']:.3f} TST {m['tst_err']:+.1f} RDI {m['rdi_err']:+.2f}"
                for v, m in r["models"].items()), flush=True)
    results = {}
    for c in conditions:
        mine = [r for r in rows if r["condition"] == c.name]
        results[c.name] = {"description": c.description, "hours": c.hours,
                           "settings": asdict(c.settings), "with_spo2": c.with_spo2,
                           "obstructive_fraction": c.obstructive_fraction,
                           "summary": {v: summarise(mine, v) for v in models}}
    return results, rows


def main(argv: list[str] | None = None) -> int:
    from sunalgo.model import DEFAULT_MODEL

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
        args.out.write_text(render(data["results"], data["meta"], REASONS))
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
    models = (DEFAULT_MODEL, BASELINE, PREVIOUS)
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
