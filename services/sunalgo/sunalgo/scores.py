"""Clinical sleep scores from a 30-s hypnogram and scored events (science.md §3).

One function, :func:`sleep_scores`, is used identically for sunalgo's predictions and for PSG
labels. Conventions (AASM; field names and edge cases as YASA's ``sleep_statistics``):

Stages: ``W``, ``N1``, ``N2``, ``N3``, ``REM``; ``S`` = sleep without a stage (sleep/wake-only
predictions); ``UNS`` = unscored/artefact/movement (neither sleep nor wake).

* TRT (= YASA TIB): whole hypnogram; crop it to lights-off..lights-on first.
* Sleep onset (SO): first sleep epoch (AASM: any sleep stage). SOL = SO - start.
* SPT: SO .. last sleep epoch, inclusive. WASO: ``W`` epochs within SPT.
* TST: sleep epochs (N1+N2+N3+REM+S) within SPT; UNS is excluded (YASA >= 0.5).
* SE = TST / TRT x 100; SME = TST / SPT x 100.
* Stage minutes (W, N1, ...): counted over the whole hypnogram (YASA's function API); stage
  percentages are of TST.
* ``Lat_REM``: first REM epoch from the start of the recording (YASA); ``REM_latency``: from
  sleep onset (AASM) = Lat_REM - SOL. None when there is no REM or no staging.
* Event indices per hour of TST: AHI = apneas + hypopneas (+ MM events), RDI = AHI + RERAs,
  ORDI = obstructive apneas + mixed apneas + hypopneas + RERAs + MM obstructive events
  (hypopneas without a type count as obstructive, as in MM-device ORDIs), CAI = central
  apneas + MM central events. ODI = desaturations (>= 3 % as given) per hour of TST, None
  when no oximetry. Only events starting inside the hypnogram count.
* OSA severity from AHI: <5 normal, 5-<15 mild, 15-<30 moderate, >=30 severe.

All durations are minutes; None marks an undefined value (no sleep, no REM, no oximetry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SLEEP_STAGES = ("N1", "N2", "N3", "REM", "S")
KNOWN = ("W", *SLEEP_STAGES, "UNS")
APNEAS = ("obstructive_apnea", "central_apnea", "mixed_apnea", "apnea")
MM_EVENTS = ("obstructive_event", "central_event")
OBSTRUCTIVE = ("obstructive_apnea", "mixed_apnea", "hypopnea", "rera", "obstructive_event")
CENTRAL = ("central_apnea", "central_event")


def _event_tuple(ev) -> tuple[str, float, float]:
    if isinstance(ev, dict):
        return str(ev["type"]), float(ev["onset_s"]), float(ev.get("duration_s") or 0.0)
    t, o, d = ev[:3]
    return str(t), float(o), float(d or 0.0)


def severity(ahi: float | None) -> str | None:
    """AASM severity class of an AHI (events/h)."""
    if ahi is None:
        return None
    if ahi < 5:
        return "normal"
    if ahi < 15:
        return "mild"
    if ahi < 30:
        return "moderate"
    return "severe"


def sleep_scores(
    stages: Sequence[str],
    epoch_s: float = 30.0,
    events: Iterable | None = None,
    desaturations: Iterable | None = None,
) -> dict:
    """Scores of one night.

    Parameters
    ----------
    stages : sequence of str
        One stage per epoch (``W``, ``N1``, ``N2``, ``N3``, ``REM``, ``S``, ``UNS``), from
        lights-off.
    epoch_s : float
        Epoch length, seconds (30).
    events : iterable, optional
        ``(type, onset_s, duration_s)`` tuples or dicts with those keys, onsets from the start
        of the hypnogram; types as in ``sunrise_common.labels.canonical.EVENT_TYPES`` plus the
        MM types ``obstructive_event`` / ``central_event``. Events of type ``desaturation`` are
        used for the ODI.
    desaturations : iterable, optional
        Extra desaturation events (same forms). Giving it (even empty) says oximetry exists.

    Returns
    -------
    dict
        See the module docstring for the keys.
    """
    st = np.asarray([str(s) for s in stages], dtype=object)
    bad = sorted(set(st.tolist()) - set(KNOWN))
    if bad:
        raise ValueError(f"unknown stage labels {bad}; expected {KNOWN}")
    to_min = epoch_s / 60.0
    n = st.size
    is_sleep = np.isin(st, SLEEP_STAGES)
    sleep_idx = np.flatnonzero(is_sleep)
    out: dict = {"epoch_s": epoch_s, "n_epochs": int(n), "TRT": n * to_min, "TIB": n * to_min}
    if sleep_idx.size:
        first, last = int(sleep_idx[0]), int(sleep_idx[-1])
        spt = st[first : last + 1]
        out["SPT"] = spt.size * to_min
        out["WASO"] = float(np.sum(spt == "W")) * to_min
        out["TST"] = float(np.sum(np.isin(spt, SLEEP_STAGES))) * to_min
        out["SOL"] = first * to_min
        out["SE"] = 100.0 * out["TST"] / out["TRT"]
        out["SME"] = 100.0 * out["TST"] / out["SPT"]
    else:
        out.update(SPT=0.0, WASO=0.0, TST=0.0, SOL=None, SE=0.0 if n else None, SME=None)
    staged = bool(np.isin(st, ("N1", "N2", "N3", "REM")).any())
    out["staged"] = staged
    for stage in ("W", "N1", "N2", "N3", "REM", "S", "UNS"):
        out[stage] = float(np.sum(st == stage)) * to_min
    out["NREM"] = out["N1"] + out["N2"] + out["N3"]
    tst = out["TST"]
    for stage in ("N1", "N2", "N3", "REM", "NREM"):
        out[f"%{stage}"] = (100.0 * out[stage] / tst) if (tst > 0 and staged) else None
    for stage in ("N1", "N2", "N3", "REM"):
        idx = np.flatnonzero(st == stage)
        out[f"Lat_{stage}"] = idx[0] * to_min if idx.size else None
    out["REM_latency"] = (out["Lat_REM"] - out["SOL"]
                          if out["Lat_REM"] is not None and out["SOL"] is not None else None)

    evs = [_event_tuple(e) for e in (events or ())]
    trt_s = n * epoch_s
    evs = [e for e in evs if 0 <= e[1] < trt_s]
    counts: dict[str, int] = {}
    for t, _, _ in evs:
        counts[t] = counts.get(t, 0) + 1
    out["event_counts"] = counts
    n_apnea = sum(counts.get(t, 0) for t in APNEAS)
    n_hyp = counts.get("hypopnea", 0)
    n_mm = sum(counts.get(t, 0) for t in MM_EVENTS)
    n_rera = counts.get("rera", 0)
    hours = tst / 60.0

    def per_hour(k: int) -> float | None:
        return k / hours if hours > 0 else None

    out["AHI"] = per_hour(n_apnea + n_hyp + n_mm)
    out["RDI"] = per_hour(n_apnea + n_hyp + n_mm + n_rera)
    out["ORDI"] = per_hour(sum(counts.get(t, 0) for t in OBSTRUCTIVE))
    out["CAI"] = per_hour(sum(counts.get(t, 0) for t in CENTRAL))
    out["severity"] = severity(out["AHI"])
    desat = [e for e in evs if e[0] == "desaturation"]
    if desaturations is not None:
        desat += [e for e in (_event_tuple(d) for d in desaturations) if 0 <= e[1] < trt_s]
    has_ox = desaturations is not None or bool(desat)
    out["ODI"] = per_hour(len(desat)) if has_ox else None
    return out
