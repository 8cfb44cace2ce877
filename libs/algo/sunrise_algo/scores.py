"""Clinical sleep scores from a 30-s hypnogram and scored events (science.md §3).

One function, :func:`sleep_scores`, is used identically for sunalgo's predictions and for PSG
labels. Conventions (AASM Manual v2.6; field names and edge cases as YASA 0.8.1's
``yasa.Hypnogram.sleep_statistics`` and ``yasa.sleep_statistics``, Vallat & Walker 2021):

Stages: ``W``, ``N1``, ``N2``, ``N3``, ``REM``; ``S`` = sleep without a stage (sleep/wake-only
predictions); ``UNS`` = unscored/artefact/movement (neither sleep nor wake; YASA ``UNS``/``ART``).

* TRT (= YASA TIB): the whole hypnogram given; the caller crops it to the scoring window
  (lights-off..lights-on, and never beyond the recording: see ``sunalgo.run.psg_window``).
* VRT (valid recording time): TRT minus the ``UNS`` epochs (for sunalgo: epochs not recorded
  or with the sensor not worn, issue 24; for a PSG: gaps and unscored epochs). Per-hour
  indices are per hour of TST, which never includes ``UNS``.
* Sleep onset (SO): first sleep epoch (AASM: any sleep stage). SOL = SO - start.
  ``SOL_5min`` (YASA): start of the first run of >= 5 min of consecutive sleep epochs (any
  sleep stage; a ``W`` or ``UNS`` epoch breaks the run; 5 min rounded up to whole epochs).
* SPT: SO .. last sleep epoch, inclusive. WASO: ``W`` epochs within SPT.
* TST: sleep epochs (N1+N2+N3+REM+S) within SPT; UNS is excluded (YASA >= 0.5).
* SE = TST / TRT x 100; SME = TST / SPT x 100.
* SFI (YASA's sleep fragmentation index): direct transitions from a sleep epoch to a ``W``
  epoch per hour of TST (a sleep -> UNS -> W sequence is not a transition, as in YASA).
* Stage minutes (W, N1, ...): counted over the whole hypnogram (YASA); ``WAKE`` repeats ``W``
  under YASA's name. Stage percentages are of TST.
* ``Lat_N1`` .. ``Lat_REM``: first epoch of the stage from the start of the hypnogram (YASA);
  ``REM_latency``: from sleep onset (AASM) = Lat_REM - SOL. None when there is no such stage.
* Event indices per hour of TST, counting only events that start in a sleep epoch (AASM: AHI
  and RDI are events *during sleep* per hour of sleep). The stage at an event is the one the
  scoring software exported with it when given (DOMINO does), else the hypnogram's stage of
  the epoch holding the event's onset; for sunalgo's own events that hypnogram is the
  predicted sleep/wake. AHI = apneas + hypopneas (+ MM events), RDI = AHI + RERAs,
  ORDI = obstructive apneas + mixed apneas + hypopneas + RERAs + MM obstructive events
  (hypopneas without a type count as obstructive, as in MM-device ORDIs), CAI = central
  apneas + MM central events. ODI = desaturations (>= 3 % as given) during sleep per hour of
  TST, None when no oximetry. Events starting outside the hypnogram are ignored.
  ``event_counts`` holds the events counted (in sleep), ``event_counts_not_sleep`` those that
  start in ``W`` or ``UNS`` and are therefore left out.
* OSA severity from AHI: <5 normal, 5-<15 mild, 15-<30 moderate, >=30 severe.

Undefined values are None (YASA's NaN): without sleep, SOL, SOL_5min, WASO, SME, SFI, stage
percentages and the event indices are None, while SPT and TST are 0 (YASA does the same).
All durations are minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SLEEP_STAGES = ("N1", "N2", "N3", "REM", "S")
KNOWN = ("W", *SLEEP_STAGES, "UNS")
APNEAS = ("obstructive_apnea", "central_apnea", "mixed_apnea", "apnea")
MM_EVENTS = ("obstructive_event", "central_event")
OBSTRUCTIVE = ("obstructive_apnea", "mixed_apnea", "hypopnea", "rera", "obstructive_event")
CENTRAL = ("central_apnea", "central_event")
PERSISTENT_SLEEP_MIN = 5.0  # YASA's SOL_5min


def _event_tuple(ev: dict[str, Any] | Sequence[Any]) -> tuple[str, float, float, str]:
    """``(type, onset_s, duration_s, stage)``; stage "" when the event carries none."""
    if isinstance(ev, dict):
        t, o, d, s = ev["type"], ev["onset_s"], ev.get("duration_s"), ev.get("stage")
    else:
        t, o, d = ev[:3]
        s = ev[3] if len(ev) > 3 else None
    return str(t), float(o), float(d or 0.0), "" if s is None else str(s).strip()


def _desat_tuple(d: dict[str, Any] | Sequence[Any]) -> tuple[str, float, float, str]:
    """A desaturation given as ``(onset_s, duration_s[, drop_pct])`` or a dict, as an event."""
    if isinstance(d, dict):
        return _event_tuple({"type": "desaturation", **d})
    return "desaturation", float(d[0]), float(d[1] or 0.0), ""


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


def _first_run(mask: np.ndarray, min_len: int) -> int | None:
    """Index where the first run of >= ``min_len`` consecutive True values starts."""
    if min_len <= 0 or mask.size < min_len:
        return None
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = np.flatnonzero(ends - starts >= min_len)
    return int(starts[long[0]]) if long.size else None


def sleep_scores(
    stages: Sequence[str],
    epoch_s: float = 30.0,
    events: Iterable | None = None,
    desaturations: Iterable | None = None,
    reras_scored: bool = True,
) -> dict:
    """Scores of one night.

    Parameters
    ----------
    stages : sequence of str
        One stage per epoch (``W``, ``N1``, ``N2``, ``N3``, ``REM``, ``S``, ``UNS``), from the
        start of the scoring window (lights-off).
    epoch_s : float
        Epoch length, seconds (30).
    events : iterable, optional
        ``(type, onset_s, duration_s[, stage])`` tuples or dicts with those keys, onsets in
        seconds from the start of the hypnogram; types as in
        ``sunrise_common.labels.canonical.EVENT_TYPES`` plus the MM types
        ``obstructive_event`` / ``central_event``. ``stage`` (a code of ``KNOWN``; "" or None
        when unknown) is the stage the scoring software gave the event; without it the
        hypnogram's stage at the onset is used. Events of type ``desaturation`` are used for
        the ODI.
    desaturations : iterable, optional
        Extra desaturations as ``(onset_s, duration_s[, drop_pct])`` tuples (the form
        ``sunrise_algo.builtin.respiration.desaturations`` returns) or dicts with ``onset_s``. Giving it
        (even empty) says oximetry exists.
    reras_scored : bool
        Whether RERAs were looked for. When not (sunalgo's predictions: there is no RERA
        detector), ``RDI`` is None rather than a copy of the AHI under another name (issue 24).

    Returns
    -------
    dict
        See the module docstring for the keys; durations in minutes, indices in events/h.

    Raises
    ------
    ValueError
        On a stage label (hypnogram or event) outside ``KNOWN``, or a non-positive epoch.
    """
    st = _validated_stages(stages, epoch_s)
    to_min = epoch_s / 60.0
    out: dict = {"epoch_s": epoch_s, "n_epochs": int(st.size), "TRT": st.size * to_min, "TIB": st.size * to_min,
                 "VRT": float(np.sum(st != "UNS")) * to_min}
    out.update(_sleep_period(st, to_min, trt=out["TRT"]))
    out.update(_stage_times(st, to_min, tst=out["TST"], sol=out["SOL"]))
    out.update(_respiratory_indices(st, epoch_s, out["TST"], events, desaturations, reras_scored=reras_scored))
    return out


def _validated_stages(stages: Sequence[str], epoch_s: float) -> np.ndarray:
    """The hypnogram as an object array of stage codes, every code in ``KNOWN``."""
    if not (math.isfinite(float(epoch_s)) and epoch_s > 0):
        raise ValueError(f"epoch_s must be a positive number of seconds, got {epoch_s!r}")
    st = np.asarray([str(s) for s in stages], dtype=object)
    bad = sorted(set(st.tolist()) - set(KNOWN))
    if bad:
        raise ValueError(f"unknown stage labels {bad}; expected {KNOWN}")
    return st


def _sleep_period(st: np.ndarray, to_min: float, *, trt: float) -> dict:
    """SPT, WASO, TST, SOL, SE, SME, SFI and SOL_5min (minutes, %, transitions/h of sleep)."""
    out: dict = {}
    n = st.size
    is_sleep = np.isin(st, SLEEP_STAGES)
    sleep_idx = np.flatnonzero(is_sleep)
    if sleep_idx.size:
        first, last = int(sleep_idx[0]), int(sleep_idx[-1])
        spt = st[first : last + 1]
        out["SPT"] = spt.size * to_min
        out["WASO"] = float(np.sum(spt == "W")) * to_min
        out["TST"] = float(np.sum(np.isin(spt, SLEEP_STAGES))) * to_min
        out["SOL"] = first * to_min
        out["SE"] = 100.0 * out["TST"] / trt
        out["SME"] = 100.0 * out["TST"] / out["SPT"]
        n_to_wake = int(np.count_nonzero(is_sleep[:-1] & (st[1:] == "W")))
        out["SFI"] = n_to_wake / (out["TST"] / 60.0)
    else:
        # No sleep: WASO (wake *after* sleep onset) has no onset to count from, so it is
        # undefined like SOL, not 0 (YASA returns NaN).
        out.update(SPT=0.0, WASO=None, TST=0.0, SOL=None, SE=0.0 if n else None, SME=None,
                   SFI=None)
    run_start = _first_run(is_sleep, int(math.ceil(PERSISTENT_SLEEP_MIN / to_min - 1e-9)))
    out["SOL_5min"] = None if run_start is None else run_start * to_min
    return out


def _stage_times(st: np.ndarray, to_min: float, *, tst: float, sol: float | None) -> dict:
    """Minutes and % of TST in each stage, stage latencies and the REM latency from sleep onset."""
    staged = bool(np.isin(st, ("N1", "N2", "N3", "REM")).any())
    out: dict = {"staged": staged}
    for stage in ("W", "N1", "N2", "N3", "REM", "S", "UNS"):
        out[stage] = float(np.sum(st == stage)) * to_min
    out["WAKE"] = out["W"]
    out["NREM"] = out["N1"] + out["N2"] + out["N3"]
    for stage in ("N1", "N2", "N3", "REM", "NREM"):
        out[f"%{stage}"] = (100.0 * out[stage] / tst) if (tst > 0 and staged) else None
    for stage in ("N1", "N2", "N3", "REM"):
        idx = np.flatnonzero(st == stage)
        out[f"Lat_{stage}"] = idx[0] * to_min if idx.size else None
    out["REM_latency"] = (out["Lat_REM"] - sol
                          if out["Lat_REM"] is not None and sol is not None else None)
    return out


def _in_sleep(ev: tuple[str, float, float, str], st: np.ndarray, epoch_s: float) -> bool:
    """The event happened in sleep: by the stage its scorer gave it, else the hypnogram's at its onset."""
    stage = ev[3] or str(st[int(ev[1] // epoch_s)])
    if stage not in KNOWN:
        raise ValueError(f"unknown stage {stage!r} at event {ev[0]} at {ev[1]:g} s; "
                         f"expected one of {KNOWN}")
    return stage in SLEEP_STAGES


def _respiratory_indices(st: np.ndarray, epoch_s: float, tst: float, events: Iterable | None,
                         desaturations: Iterable | None, *, reras_scored: bool) -> dict:
    """Event counts in and out of sleep, AHI, RDI, ORDI, CAI (events/h of TST), severity and ODI."""
    trt_s = st.size * epoch_s
    out: dict = {}
    evs = [e for e in (_event_tuple(e) for e in (events or ())) if 0 <= e[1] < trt_s]
    counts: dict[str, int] = {}
    excluded: dict[str, int] = {}
    desat: list[tuple[str, float, float, str]] = []
    for ev in evs:
        sleeping = _in_sleep(ev, st, epoch_s)
        if ev[0] == "desaturation":
            if sleeping:
                desat.append(ev)
        tally = counts if sleeping else excluded
        tally[ev[0]] = tally.get(ev[0], 0) + 1
    out["event_counts"] = counts
    out["event_counts_not_sleep"] = excluded
    n_apnea = sum(counts.get(t, 0) for t in APNEAS)
    n_hyp = counts.get("hypopnea", 0)
    n_mm = sum(counts.get(t, 0) for t in MM_EVENTS)
    n_rera = counts.get("rera", 0)
    hours = tst / 60.0

    def per_hour(k: int) -> float | None:
        return k / hours if hours > 0 else None

    out["AHI"] = per_hour(n_apnea + n_hyp + n_mm)
    out["RDI"] = per_hour(n_apnea + n_hyp + n_mm + n_rera) if reras_scored else None
    out["ORDI"] = per_hour(sum(counts.get(t, 0) for t in OBSTRUCTIVE))
    out["CAI"] = per_hour(sum(counts.get(t, 0) for t in CENTRAL))
    out["severity"] = severity(out["AHI"])
    has_ox = desaturations is not None or any(e[0] == "desaturation" for e in evs)
    if desaturations is not None:
        extra = [e for e in (_desat_tuple(d) for d in desaturations) if 0 <= e[1] < trt_s]
        desat += [e for e in extra if _in_sleep(e, st, epoch_s)]
    out["ODI"] = per_hour(len(desat)) if has_ox else None
    return out


#: The score names the pipeline computes itself (``sleep_scores`` over an empty night lists them):
#: a plug-in may not return one of these under its own name (``conformance.check_scores``).
CANONICAL_SCORES = frozenset(sleep_scores([], 30.0, events=[], desaturations=[]))
