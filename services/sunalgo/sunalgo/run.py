"""One sunalgo run: prepared Sunrise night (+ optional prepared PSG) -> a plug-in -> results folder.

Writes ``features.csv``, ``predictions.csv``, ``events.csv``, ``scores.json`` and, when the PSG
folder holds labels, ``training_rows.csv`` and ``agreement.json``. Pure function on folders:
the handler moves bytes between buckets and these folders.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sunrise_algo.builtin.plugin import Builtin
from sunrise_algo.interface import (EVENT_TYPES, Algorithm, AlgorithmError, AlgorithmOutput, PreparedNight,
                                    check_lengths, check_scores)
from sunrise_algo.scores import CANONICAL_SCORES, sleep_scores
from sunrise_common.errors import PermanentError, TransientError
from sunrise_common.identity import wrap_offset_s
from sunrise_common.jsonsafe import json_safe

from sunalgo.agreement import (agreement, align_psg_stages, event_agreement, training_rows,
                               window_epochs)

EPOCH_S = 30.0
#: How the PSG side's desaturations were counted (scores.json / agreement.json ``ODI_criterion``).
PSG_ODI_CRITERION = "every desaturation the PSG export lists (its criterion is not in the export)"


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.6g}"
    return str(v)


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([_fmt(v) for v in row])


# Lights markers as scoring software and PSG systems write them (NSRR XML "Lights Off" /
# "Lights On" events, EDF+ annotations, DOMINO markers such as "Licht aus"; the COsleep BDF in the
# corpus spells it "Ligths-Off#1"). The parsers keep them as type ``other`` with the text in
# ``label``, so they reach events.csv unchanged.
_WORD = r"(?<![a-z]){}(?![a-z])"  # a whole word, "_" and "-" counting as separators
LIGHTS_OFF = re.compile("|".join(_WORD.format(p) for p in (r"(?:lights?|ligths?)[\W_]*(?:off|out)",
                                                           r"licht[\W_]*aus")), re.IGNORECASE)
LIGHTS_ON = re.compile("|".join(_WORD.format(p) for p in (r"(?:lights?|ligths?)[\W_]*on",
                                                          r"licht[\W_]*(?:an|ein)")), re.IGNORECASE)


def read_psg(psg_dir: Path) -> dict | None:
    """Read psg_prep outputs (``meta.json``, ``hypnogram.csv``, ``events.csv``); None if absent.

    Returns a dict with ``meta``, ``onsets`` (s from the PSG start), ``stages``,
    ``in_recording`` (one bool per epoch, None when the column is absent), ``events``
    (``(type, onset_s, duration_s, stage)``; stage "" when events.csv has no ``stage`` column
    or leaves it empty), ``markers`` (``(label, onset_s)`` of every event, for lights markers)
    and ``epoch_s``.
    """
    psg_dir = Path(psg_dir)
    meta_p, hyp_p = psg_dir / "meta.json", psg_dir / "hypnogram.csv"
    if not meta_p.is_file() or not hyp_p.is_file():
        return None
    meta = json.loads(meta_p.read_text())
    with hyp_p.open(newline="") as f:
        hyp = list(csv.DictReader(f))
    if not hyp:
        return None
    events, markers = [], []
    ev_p = psg_dir / "events.csv"
    if ev_p.is_file():
        with ev_p.open(newline="") as f:
            for r in csv.DictReader(f):
                onset = float(r["onset_s"])
                events.append((r["type"], onset, float(r.get("duration_s") or 0.0),
                               (r.get("stage") or "").strip()))
                markers.append((r.get("label") or "", onset))
    in_rec = ([r["in_recording"].strip() == "1" for r in hyp]
              if "in_recording" in hyp[0] and hyp[0]["in_recording"] is not None else None)
    return {
        "meta": meta,
        "onsets": [float(r["onset_s"]) for r in hyp],
        "stages": [r["stage"] for r in hyp],
        "in_recording": in_rec,
        "events": events,
        "markers": markers,
        "epoch_s": float(meta.get("epoch_s", EPOCH_S)),
    }


def _lights(markers: list[tuple[str, float]]) -> tuple[float | None, float | None]:
    """(lights-off, lights-on) in s from the PSG start: the first lights-off marker and the last
    lights-on marker after it (a lights-on mid-night, e.g. a bathroom visit, is followed by
    another lights-off and does not end the night)."""
    offs = sorted(t for label, t in markers if LIGHTS_OFF.search(label))
    off = offs[0] if offs else None
    ons = sorted(t for label, t in markers if LIGHTS_ON.search(label) and (off is None or t > off))
    return off, (ons[-1] if ons else None)


def label_misaligned(meta: dict) -> dict | None:
    """psg_prep's ``labels.misaligned`` record (``reason``, ``offset_s``, epoch counts), or None."""
    labels = meta.get("labels")
    return labels.get("misaligned") if isinstance(labels, dict) else None


def psg_window(psg: dict) -> dict:
    """The PSG labels cropped to the scoring window (science.md §3.1: TRT = lights-off..lights-on).

    The window is the span of hypnogram epochs that lie in the recording (psg_prep's
    ``in_recording``; recomputed from ``meta.duration_s`` when the column is absent) and,
    when the labels carry lights markers, whose midpoint lies in [lights-off, lights-on).
    Without a recording (labels prepared before their PSG: ``duration_s`` is null) the whole
    label file is the window. Epochs inside the window that are not in the recording (EDF+D
    gaps) become ``UNS``: no signal was recorded there. Lights markers are read from the label
    files' events only: psg_prep does not carry the PSG signal file's own EDF+ annotations
    (reading them would take a second pass over the recording), so a marker there is not applied.

    Returns
    -------
    dict
        ``onsets`` / ``stages`` (the window's epochs; onsets in s from the PSG start),
        ``events`` (those starting in the window, onsets in s from the window start, with
        their exported stage), and ``window``: ``basis`` (``recording``, ``recording+lights``,
        ``labels``, ``labels+lights``), ``start_s`` / ``end_s`` (s from the PSG start),
        ``n_epochs``, ``n_label_epochs``, ``gap_epochs``, ``lights_off_s``, ``lights_on_s``.
    """
    epoch_s = psg["epoch_s"]
    onsets = np.asarray(psg["onsets"], dtype=np.float64)
    stages = np.asarray(psg["stages"], dtype=object)
    duration = psg["meta"].get("duration_s")
    if duration is None:
        basis, in_rec = "labels", np.ones(onsets.size, dtype=bool)
    elif psg.get("in_recording") is not None:
        basis, in_rec = "recording", np.asarray(psg["in_recording"], dtype=bool)
    else:
        basis, in_rec = "recording", (onsets >= 0) & (onsets < float(duration))
    off, on = _lights(psg.get("markers", []))
    keep = in_rec.copy()
    if off is not None or on is not None:
        basis += "+lights"
        mid = onsets + epoch_s / 2
        keep &= (mid >= (off if off is not None else -np.inf)) & (mid < (on if on is not None else np.inf))
    idx = np.flatnonzero(keep)
    window = {"basis": basis, "lights_off_s": off, "lights_on_s": on,
              "n_label_epochs": int(onsets.size)}
    if not idx.size:
        window.update(start_s=None, end_s=None, n_epochs=0, gap_epochs=0)
        return {"onsets": [], "stages": [], "events": [], "window": window}
    a, b = int(idx[0]), int(idx[-1]) + 1
    st = np.where(in_rec[a:b], stages[a:b], "UNS")
    start, end = float(onsets[a]), float(onsets[b - 1] + epoch_s)
    window.update(start_s=start, end_s=end, n_epochs=b - a, gap_epochs=int((~in_rec[a:b]).sum()))
    events = [(t, o - start, d, s) for t, o, d, s in psg["events"] if start <= o < end]
    return {"onsets": onsets[a:b].tolist(), "stages": st.tolist(), "events": events,
            "window": window}


def psg_scores_from(psg: dict, win: dict | None = None) -> dict:
    """Scores of the PSG labels over :func:`psg_window` (``win``, computed when not given),
    with the same function as the predictions; the window used is under ``window``."""
    win = psg_window(psg) if win is None else win
    has_desat = any(t == "desaturation" for t, *_ in psg["events"])
    scores = sleep_scores(win["stages"], psg["epoch_s"], events=win["events"],
                          desaturations=[] if has_desat else None)
    # The PSG's desaturations are counted as exported; their criterion (3 % or 4 %, AASM 1A
    # or 1B) is the scoring software's and is not in the export (issue 24: recorded, so that
    # an ODI difference is never read as one criterion against itself).
    scores["ODI_criterion"] = PSG_ODI_CRITERION if has_desat else None
    scores["window"] = win["window"]
    return scores


def run_algorithm(algorithm: Algorithm, night: PreparedNight, model_version: str,
                  model_dir: Path | None) -> AlgorithmOutput:
    """Run a plug-in and check what the pipeline relies on (one entry per epoch, namespaced
    scores); a plug-in's permanent failure or a malformed output is the night's permanent reason."""
    try:
        output = algorithm.run(night, model_version=model_version, model_dir=model_dir)
    except AlgorithmError as exc:
        if exc.permanent:
            raise PermanentError(f"algorithm_{exc.reason}"[:64], f"{algorithm.name}: {exc}") from exc
        raise TransientError(f"algorithm_{exc.reason}"[:64], f"{algorithm.name}: {exc}") from exc
    if not isinstance(output, AlgorithmOutput):
        raise PermanentError("algorithm_bad_output", f"{algorithm.name} returned {type(output).__name__}, "
                             "not an AlgorithmOutput")
    problems = check_lengths(output, night.n_epochs) + check_scores(output, algorithm.name, tuple(CANONICAL_SCORES))
    if problems:
        raise PermanentError("algorithm_bad_output", f"{algorithm.name}: " + "; ".join(problems[:5]))
    return output


def run_sunalgo(sunrise_dir: Path, psg_dir: Path | None, out_dir: Path, *,
                model_version: str | None = None, model_dir: Path | None = None,
                algorithm: Algorithm | None = None, night_id: str = "night",
                reference: dict[str, str] | None = None) -> dict:
    """Run a plug-in (the built-in one by default) on a ``sunrise_prep`` folder (and a
    ``psg_prep`` folder) into ``out_dir``.

    The plug-in gives features, predictions, events and extra scores; the canonical scores are
    computed here from its predictions and events with :func:`sunrise_algo.scores.sleep_scores`, the
    function applied to the PSG's labels. Returns a summary: algo_version, n_epochs, TST (min),
    AHI (events/h; ``RDI`` is None unless the plug-in scores RERAs), and the sleep/wake accuracy
    when PSG labels exist.
    """
    sunrise_dir, out_dir = Path(sunrise_dir), Path(out_dir)
    if algorithm is None:
        algorithm = Builtin()
        model_version = model_version or algorithm.default_model
    elif model_version is None:
        model_version = algorithm.default_model
    night = PreparedNight.from_folder(night_id, sunrise_dir, reference)
    meta = dict(night.meta)
    n = night.n_epochs
    output = run_algorithm(algorithm, night, model_version, model_dir)
    algo_version = algorithm.algo_version(model_version)
    feats = output.feature_arrays()
    feature_names = [f.name for f in output.features]
    feats["epoch"] = np.arange(n)
    feats["onset_s"] = np.arange(n) * EPOCH_S
    scored = _canonical_scores(output)
    scores = scored.scores

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_tables(out_dir, output, feats, feature_names, scored, n)

    has_spo2 = bool(meta.get("has_spo2")) and "spo2" in night.signals
    result = {"algo_version": algo_version, "algorithm": algorithm.name,
              "algorithm_version": algorithm.version, "interface_version": output.interface_version,
              "model_version": model_version,
              "prep_version": meta.get("prep_version"), "epoch_s": EPOCH_S, "n_epochs": n,
              "has_spo2": has_spo2, "scores": scores,
              "features": [{"name": f.name, "unit": f.unit, "description": f.description} for f in output.features]}
    summary = {"algo_version": algo_version, "n_epochs": n, "TST": scores["TST"],
               "RDI": scores["RDI"], "AHI": scores["AHI"], "n_events": len(scored.events),
               "RDI_rule": scores.get("RDI_rule_key")}
    psg = read_psg(psg_dir) if psg_dir is not None else None
    if psg is not None:
        _compare_with_psg(psg, meta, n, scored, feats, feature_names, algo_version, out_dir, result, summary)
    (out_dir / "scores.json").write_text(json.dumps(json_safe(result), indent=1))
    return json_safe(summary)


@dataclass(frozen=True)
class _Scored:
    """A plug-in's output as the canonical scores see it."""

    stages: list[str]  # one stage code per 30-s epoch
    events: list  # the plug-in's events, desaturations excepted
    ev_tuples: list[tuple[str, float, float]]  # (type, onset s, duration s) of ``events``
    desats: list[tuple[float, float, float | None]] | None  # (onset s, duration s, drop %); None: not scored
    scored: set[str]  # the event types the plug-in looked for
    respiratory: set[str]  # ``scored`` less desaturations
    scores: dict  # sleep_scores of the predictions and events, with the plug-in's own scores


def _canonical_scores(output: AlgorithmOutput) -> _Scored:
    """The canonical scores (:func:`sunrise_algo.scores.sleep_scores`, as applied to the PSG's labels)
    of a plug-in's predictions and events, with the plug-in's extra scores."""
    stages = output.stages()
    scored = set(output.event_types_scored)
    events = [e for e in output.events if e.type != "desaturation"]
    ev_tuples = [(e.type, e.onset_s, e.duration_s) for e in events]
    desats = ([(e.onset_s, e.duration_s, e.attributes.get("drop_pct")) for e in output.events
               if e.type == "desaturation"] if "desaturation" in scored else None)
    respiratory = scored - {"desaturation"}
    scores = sleep_scores(stages, EPOCH_S, events=ev_tuples if respiratory else None, desaturations=desats,
                          reras_scored="rera" in scored)
    scores.update(output.scores)
    # How each side's desaturations were counted: the plug-in names its criterion (issue 24).
    scores["ODI_criterion"] = output.scores.get("ODI_criterion") if desats is not None else None
    return _Scored(stages, events, ev_tuples, desats, scored, respiratory, scores)


def _write_tables(out_dir: Path, output: AlgorithmOutput, feats: dict, feature_names: list[str], scored: _Scored,
                  n: int) -> None:
    """features.csv, predictions.csv (with one 0/1 column per scored respiratory event type) and events.csv."""
    _write_csv(out_dir / "features.csv", ["epoch", "onset_s", *feature_names],
               zip(feats["epoch"], feats["onset_s"], *(feats[k] for k in feature_names)))
    stages, events = scored.stages, scored.events
    flag_types = [t for t in EVENT_TYPES if t in scored.respiratory]
    flags = {t: np.zeros(n, dtype=int) for t in flag_types}
    for e in events:
        if e.type not in flags:
            continue
        a = int(e.onset_s // EPOCH_S)
        b = int(math.ceil((e.onset_s + e.duration_s) / EPOCH_S))
        flags[e.type][a : min(n, b)] = 1
    p_wake = output.predictions.p_wake
    sleep_wake = output.predictions.sleep_wake
    _write_csv(out_dir / "predictions.csv",
               ["epoch", "onset_s", "sleep_wake", "stage", "p_wake", *flag_types],
               ((i, i * EPOCH_S, sleep_wake[i], stages[i],
                 float("nan") if p_wake is None or p_wake[i] is None else float(p_wake[i]),
                 *(flags[t][i] for t in flag_types)) for i in range(n)))
    attributes = list(dict.fromkeys(k for e in events for k in e.attributes))
    _write_csv(out_dir / "events.csv", ["type", "onset_s", "duration_s", *attributes],
               ((e.type, e.onset_s, e.duration_s,
                 *(float("nan") if e.attributes.get(k) is None else e.attributes[k] for k in attributes))
                for e in events))


def _compare_with_psg(psg: dict, meta: dict, n: int, scored: _Scored, feats: dict, feature_names: list[str],
                      algo_version: str, out_dir: Path, result: dict, summary: dict) -> None:
    """The PSG's scores into ``result``; when its labels can be placed on the Sunrise timeline,
    agreement.json, training_rows.csv and the agreement figures in ``summary`` (``n``: Sunrise epochs)."""
    win = psg_window(psg)
    psg_sc = psg_scores_from(psg, win)
    result["psg_scores"] = psg_sc
    result["psg_window"] = win["window"]
    if not win["window"]["n_epochs"]:
        result.setdefault("warnings", []).append(
            f"no PSG label epoch lies in the scoring window ({win['window']['basis']}): "
            "the reference scores are empty")
    if psg["meta"].get("start_offset_s") is None:
        # psg_prep could not read the PSG's start time: its labels cannot be placed on the Sunrise
        # timeline, so no training rows and no agreement (scores from the labels alone still hold).
        result.setdefault("warnings", []).append(
            "PSG start time unknown: no training rows or agreement for this night")
        return
    mis = label_misaligned(psg["meta"])
    if mis is not None:
        # Fewer than half the scored epochs lie in the PSG (psg_prep's check): the labels belong
        # elsewhere in time, and rows made from them would teach the model wrong stages.
        result["label_misaligned"] = mis
        result.setdefault("warnings", []).append(
            f"label_misaligned: {mis.get('scored_in_recording')} of {mis.get('scored_epochs')} scored epochs lie in "
            f"the PSG (offset {mis.get('offset_s')} s): no training rows or agreement for this night")
        return
    stages, ev_tuples, desats = scored.stages, scored.ev_tuples, scored.desats
    s_off, p_off = float(meta["start_offset_s"]), float(psg["meta"]["start_offset_s"])
    # Only the PSG's scoring window is compared and trained on: Sunrise epochs outside it get
    # UNS, and the predicted scores compared with the PSG's are those of the same span.
    aligned = align_psg_stages(n, s_off, p_off, win["onsets"], win["stages"], psg["epoch_s"])
    in_win = np.flatnonzero(window_epochs(n, s_off, p_off, win["window"]["start_s"],
                                          win["window"]["end_s"], EPOCH_S))
    a, b = (int(in_win[0]), int(in_win[-1]) + 1) if in_win.size else (0, 0)
    t0, t1 = a * EPOCH_S, b * EPOCH_S
    pred_win = sleep_scores(
        stages[a:b], EPOCH_S,
        events=[(t, o - t0, d) for t, o, d in ev_tuples if t0 <= o < t1],
        desaturations=None if desats is None else
        [(o - t0, d) for o, d, *_ in desats if t0 <= o < t1], reras_scored="rera" in scored.scored)
    agr = agreement(stages, aligned, pred_win, psg_sc)
    agr["algo_version"] = algo_version
    agr["window"] = {**win["window"], "sunrise_epochs": [a, b]}
    # Event level (issue 24): PSG events of the window moved to the Sunrise time base.
    shift = wrap_offset_s(p_off - s_off) + (win["window"]["start_s"] or 0.0)
    # True events starting in epochs the device left unscored (not recorded, not worn)
    # are out of its figures, as they are out of its indices; their number is kept.
    psg_ev = [(t, o + shift, d) for t, o, d, _ in win["events"]]
    psg_scored = [e for e in psg_ev if 0 <= int(e[1] // EPOCH_S) < n
                  and stages[int(e[1] // EPOCH_S)] != "UNS"]
    agr["events"] = event_agreement([(t, o, d) for t, o, d in ev_tuples if t0 <= o < t1],
                                    psg_scored)
    agr["events"]["n_psg_events_unscored_epochs"] = len(psg_ev) - len(psg_scored)
    agr["ODI_criterion_pred"] = scored.scores["ODI_criterion"]
    agr["ODI_criterion_psg"] = psg_sc.get("ODI_criterion")
    (out_dir / "agreement.json").write_text(json.dumps(json_safe(agr), indent=1))
    rows = training_rows(feats, feature_names, aligned)
    header = ["epoch", "onset_s", *feature_names, "psg_stage", "psg_sleep"]
    _write_csv(out_dir / "training_rows.csv", header, ([r[h] for h in header] for r in rows))
    summary.update(accuracy_sw=agr.get("accuracy_sw"), kappa_sw=agr.get("kappa_sw"),
                   TST_psg=psg_sc["TST"], RDI_psg=psg_sc["RDI"], AHI_psg=psg_sc["AHI"])
