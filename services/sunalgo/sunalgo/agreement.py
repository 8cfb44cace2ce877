"""Agreement between sunalgo and the PSG reference, and the aligned training rows.

Alignment: both recordings carry ``start_offset_s`` (seconds from the night's noon anchor to
their start). Sunrise epoch k (30 s from the Sunrise start) is matched to the PSG epoch that
contains its midpoint, ``t = sunrise_offset - psg_offset + 30 k + 15`` seconds after the PSG
start. Sunrise epochs outside the PSG scoring window (the hypnogram epochs inside the recording
and lights-off..lights-on, ``sunalgo.run.psg_window``) get ``UNS`` and are left out of every
agreement figure (and of training); the score differences compare both sides over that window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sunrise_common.agreement import cohen_kappa
from sunrise_common.identity import wrap_offset_s

SLEEP = ("N1", "N2", "N3", "REM", "S")


def _midpoints_in_psg_time(n_epochs: int, sunrise_offset_s: float, psg_offset_s: float,
                           epoch_s: float) -> np.ndarray:
    """Midpoint of each Sunrise epoch in seconds from the PSG start (offsets wrapped to +-12 h)."""
    delta = wrap_offset_s(sunrise_offset_s - psg_offset_s)
    return delta + np.arange(n_epochs) * epoch_s + epoch_s / 2


def window_epochs(n_epochs: int, sunrise_offset_s: float, psg_offset_s: float,
                  start_s: float | None, end_s: float | None, epoch_s: float = 30.0) -> np.ndarray:
    """Boolean mask of the Sunrise epochs whose midpoint lies in the PSG scoring window
    [``start_s``, ``end_s``) (seconds from the PSG start; None = an empty window)."""
    if start_s is None or end_s is None:
        return np.zeros(n_epochs, dtype=bool)
    mid = _midpoints_in_psg_time(n_epochs, sunrise_offset_s, psg_offset_s, epoch_s)
    return (mid >= start_s) & (mid < end_s)


def align_psg_stages(n_epochs: int, sunrise_offset_s: float, psg_offset_s: float,
                     psg_onsets_s: Sequence[float], psg_stages: Sequence[str],
                     epoch_s: float = 30.0) -> list[str]:
    """PSG stage for each Sunrise epoch (``UNS`` where the PSG has no label).

    Give it the PSG epochs of the scoring window only (``sunalgo.run.psg_window``): Sunrise
    epochs outside that window then get ``UNS`` and drop out of agreement and training.
    """
    onsets = np.asarray(psg_onsets_s, dtype=np.float64)
    stages = list(psg_stages)
    mid = _midpoints_in_psg_time(n_epochs, sunrise_offset_s, psg_offset_s, epoch_s)
    j = np.searchsorted(onsets, mid, side="right") - 1
    ok = (j >= 0) & (mid < onsets[np.clip(j, 0, None)] + epoch_s) if onsets.size else j < -1
    return [stages[i] if good else "UNS" for i, good in zip(j, ok)]


def to_sleep_wake(stages: Sequence[str]) -> np.ndarray:
    """'W' -> 'W', any sleep stage -> 'S', anything else -> 'UNS' (object array)."""
    st = np.asarray(stages, dtype=object)
    return np.where(st == "W", "W", np.where(np.isin(st, SLEEP), "S", "UNS"))


def confusion(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """Rows = truth, columns = prediction, in ``labels`` order."""
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    return [[int(np.sum((t == a) & (p == b))) for b in labels] for a in labels]


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def agreement(pred_stages: Sequence[str], psg_aligned: Sequence[str], pred_scores: dict,
              psg_scores: dict) -> dict:
    """Epoch agreement (sleep/wake; stages if both sides have them) and score differences.

    ``pred_scores`` and ``psg_scores`` must cover the same span (the PSG scoring window, see
    ``sunalgo.run``). Score differences are prediction minus PSG (minutes for TST, SOL, WASO;
    % for SE; events/h for indices).
    """
    truth_sw = to_sleep_wake(psg_aligned)
    pred_sw = to_sleep_wake(pred_stages)
    keep = (truth_sw != "UNS") & (pred_sw != "UNS")
    t, p = truth_sw[keep], pred_sw[keep]
    out: dict = {"n_epochs_compared": int(keep.sum()),
                 "n_epochs_unscored": int((~keep).sum())}
    if t.size:
        out["accuracy_sw"] = float(np.mean(t == p))
        out["kappa_sw"] = cohen_kappa(t, p)
        out["confusion_sw"] = {"labels": ["W", "S"], "matrix": confusion(t, p, ["W", "S"])}
        n_s, n_w = int(np.sum(t == "S")), int(np.sum(t == "W"))
        out["sensitivity_sleep"] = float(np.sum((t == "S") & (p == "S")) / n_s) if n_s else None
        out["specificity_wake"] = float(np.sum((t == "W") & (p == "W")) / n_w) if n_w else None
    staged = set(pred_stages) & {"N1", "N2", "N3", "REM"}
    if staged:
        ts = np.asarray(psg_aligned, dtype=object)[keep]
        ps = np.asarray(pred_stages, dtype=object)[keep]
        out["accuracy_stage"] = float(np.mean(ts == ps))
        out["kappa_stage"] = cohen_kappa(ts, ps)
    for key in ("TST", "SOL", "WASO", "SE", "AHI", "RDI", "ORDI", "ODI"):
        out[f"{key}_diff"] = _diff(pred_scores.get(key), psg_scores.get(key))
        out[f"{key}_pred"] = pred_scores.get(key)
        out[f"{key}_psg"] = psg_scores.get(key)
    return out


#: PSG event type -> the class an MM event can show (MM cannot tell apneas from hypopneas:
#: ``obstructive_event`` covers obstructive/mixed apneas and hypopneas).
PSG_EVENT_CLASS = {"obstructive_apnea": "obstructive_event", "mixed_apnea": "obstructive_event",
                   "hypopnea": "obstructive_event", "central_apnea": "central_event"}
EVENT_TYPES_SCORED = ("obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea")


def event_agreement(pred_events: Sequence[tuple], psg_events: Sequence[tuple]) -> dict:
    """Event-level agreement (issue 24). Both lists hold ``(type, onset_s, duration_s, ...)`` on
    the same time base; an event matches when the two intervals overlap.

    Per PSG type (obstructive/central/mixed apnea, hypopnea): ``n``, ``sensitivity`` (share
    overlapped by any sunalgo event) and ``sensitivity_typed`` (by an event of its class,
    :data:`PSG_EVENT_CLASS`). Per sunalgo type: ``n``, ``ppv`` (share overlapping any PSG event
    of those types) and ``ppv_typed`` (one of its class). None where ``n`` is 0.
    """
    psg = [(str(t), float(o), float(o) + float(d)) for t, o, d, *_ in psg_events
           if str(t) in EVENT_TYPES_SCORED]
    pred = [(str(t), float(o), float(o) + float(d)) for t, o, d, *_ in pred_events]

    def hits(a: float, b: float, others: list, cls: str | None, of_pred: bool) -> tuple[bool, bool]:
        any_hit = typed = False
        for t, c, d in others:
            if c < b and a < d:
                any_hit = True
                typed = typed or (PSG_EVENT_CLASS.get(t) == cls if of_pred else t == cls)
        return any_hit, typed

    out: dict = {"psg": {}, "pred": {}, "match": "intervals overlap"}
    for etype in EVENT_TYPES_SCORED:
        mine = [e for e in psg if e[0] == etype]
        h = [hits(a, b, pred, PSG_EVENT_CLASS[etype], False) for _, a, b in mine]
        out["psg"][etype] = {"n": len(mine),
                             "sensitivity": (sum(x for x, _ in h) / len(h)) if h else None,
                             "sensitivity_typed": (sum(y for _, y in h) / len(h)) if h else None}
    for etype in ("obstructive_event", "central_event"):
        mine = [e for e in pred if e[0] == etype]
        h = [hits(a, b, psg, etype, True) for _, a, b in mine]
        out["pred"][etype] = {"n": len(mine), "ppv": (sum(x for x, _ in h) / len(h)) if h else None,
                              "ppv_typed": (sum(y for _, y in h) / len(h)) if h else None}
    return out


def training_rows(features: dict[str, np.ndarray], feature_names: Sequence[str],
                  psg_aligned: Sequence[str]) -> list[dict]:
    """One row per Sunrise epoch: epoch, onset_s, features, ``psg_stage`` and ``psg_sleep``.

    ``psg_sleep`` is 1 for sleep, 0 for wake, empty for unscored epochs (kept, marked UNS).
    """
    sw = to_sleep_wake(psg_aligned)
    rows = []
    for i, stage in enumerate(psg_aligned):
        row = {"epoch": int(features["epoch"][i]), "onset_s": float(features["onset_s"][i])}
        row.update({n: float(features[n][i]) for n in feature_names})
        row["psg_stage"] = stage
        row["psg_sleep"] = "" if sw[i] == "UNS" else int(sw[i] == "S")
        rows.append(row)
    return rows
