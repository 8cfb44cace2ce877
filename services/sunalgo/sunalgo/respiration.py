"""Respiratory-event detection on jaw movement (MM), following the physiology (science.md §1.2,
§2.2): obstructive events *raise* breathing-band jaw-movement amplitude (effort against a closed
airway) together with a mandible drop; central events *lower* it.

All signals are reduced to 1 Hz (time 0 = Sunrise start):

* ``effort``: breathing-band gyroscope amplitude, sqrt(2) x RMS of the 3-axis magnitude,
  smoothed over ``smooth_s`` seconds (deg/s);
* ``position``: mean mandible angle (deg);
* baselines over the preceding ``baseline_s`` seconds (120 s, the AASM pre-event baseline
  window): for obstructive events the ``obstructive_baseline_pct`` percentile of effort and
  position (robust to earlier raised-effort/jaw-drop events in a cluster, in the spirit of
  "excluding already-flagged events"), for central events the median effort.

Rules (all thresholds in the model artifact, ``respiratory`` section):

* obstructive: effort / baseline >= ``obstructive_ratio`` **and** position - baseline >=
  ``obstructive_drop_deg`` for >= ``min_duration_s`` (10 s);
* central: effort / baseline <= ``central_ratio`` (30 % drop) for >= 10 s; apnea-like when the
  median ratio over the event is <= ``apnea_ratio`` (>= 90 % drop);
* only in predicted sleep, outside movement (1-s gyroscope activity > ``movement_dps``) and
  with good signal quality; gaps <= ``merge_gap_s`` are bridged; events are capped at
  ``max_duration_s``;
* SpO2 confirmation (when oximetry exists and ``require_desaturation``): a fall of
  >= ``desaturation_pct`` points from the highest value in the ``desat_baseline_s`` before onset to the
  lowest value between onset and ``desat_window_s`` after the end. Apnea-like central events
  need no confirmation (AASM apneas do not); without oximetry, hypopnea-like central events are
  not scored, because natural REM amplitude variation alone cannot be told apart from them.

Per-night normalisation (artifacts whose ``respiratory`` section has ``normalise:
"per_night"``, i.e. baseline-2 and logistic-2; the earlier artifacts keep the absolute rules
above so their outputs do not change under the same version):

* movement: 1-s gyroscope activity > ``movement_floor_mult`` x the night's activity floor
  (``sunalgo.features.activity_floor``) instead of a fixed ``movement_dps``;
* central: effort / the lower-percentile baseline (as for obstructive events), so the normal
  breathing between clustered obstructive events (raised effort) does not read as a drop;
* obstructive: log(effort / baseline) and position - baseline, each compared with its own
  distribution over the night's scorable sleep seconds: the core of an event exceeds the
  night's median by ``obstructive_ratio_z`` / ``obstructive_drop_z`` robust SDs (MAD x 1.4826)
  of that distribution, and the event extends while both stay above ``extent_fraction`` of
  those margins (hysteresis: smoothing shortens a 10-12 s event's above-threshold core below
  10 s, but not its extent). Weak effort rises or small jaw drops are thus judged against how
  much this night's breathing and jaw position wander, not against the generator's ranges;
* hypopnea confirmation, AASM rule 1A (science.md §2.2): a >= ``desaturation_pct`` fall
  **or** an arousal, seen on the chin as a movement burst (1-s activity > ``arousal_floor_mult``
  x the floor for >= ``arousal_min_s`` s) from ``arousal_pre_s`` before to ``arousal_window_s``
  after the event end (arousal movement at event termination is the published MM marker of
  arousal; arousals without movement are not seen). Without oximetry, obstructive-type events
  stay unconfirmed and hypopnea-like central events need the arousal; the index is flagged
  (``RDI_RULES``, ``scores.json`` ``RDI_rule``). With ``arousal_rule: "burst"`` (version-3
  artifacts, issue 24) the arousal must be one contiguous run of >= ``arousal_min_s`` seconds
  (AASM arousals last >= 3 s) instead of that many scattered seconds: on event-free nights
  scattered REM twitches confirmed ~1.9 chance candidates per hour of sleep. With
  ``central_baseline_pct`` (version 3, issue 24 defect 6) a central apnea is also judged
  against the largest breaths of the preceding 2 min (AASM's baseline for unstable
  breathing, ``_largest_breaths_ratio``): median ratio <= ``largest_breaths_apnea_ratio``.

Output types: ``obstructive_event`` and ``central_event`` (MM cannot separate apneas from
hypopneas; the split between them needs airflow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from sunalgo.features import activity_floor

#: How the respiratory index was confirmed, written to scores.json as ``RDI_rule``.
RDI_RULES = {
    "desat_only": "AASM 1A 3 % desaturation path only (no arousal path in this model's rules)",
    "desat_or_arousal": "AASM 1A: >= 3 % desaturation or an arousal (chin movement at event end)",
    "no_oximetry": "NO OXIMETRY: obstructive-type MM events unconfirmed (MM cannot tell "
                   "apneas from hypopneas); central hypopnea-like events need an arousal (chin "
                   "movement at event end); not an AASM 1A index",
    "no_oximetry_legacy": "NO OXIMETRY: obstructive-type MM events unconfirmed; central "
                          "hypopnea-like events not scored; not an AASM 1A index",
}


@dataclass
class RespEvent:
    """One detected event; times in seconds from the Sunrise start, ``confirmed_by`` one of
    ``desaturation``, ``arousal``, ``apnea`` (no confirmation needed) or ``none``."""

    type: str
    onset_s: float
    duration_s: float
    effort_ratio: float
    jaw_shift_deg: float
    desaturation_pct: float | None
    confirmed_by: str = "desaturation"


def rdi_rule(params: dict, has_spo2: bool) -> str:
    """Key of ``RDI_RULES`` describing how events of ``params`` were confirmed."""
    arousal = params.get("normalise") == "per_night"
    if has_spo2:
        return "desat_or_arousal" if arousal else "desat_only"
    return "no_oximetry" if arousal else "no_oximetry_legacy"


def _centre_sd(x: np.ndarray) -> tuple[float, float]:
    """Median and robust SD (MAD x 1.4826, ``scipy.stats.median_abs_deviation``) of the finite
    values: the night's own wander of effort or jaw position."""
    x = x[np.isfinite(x)]
    if not x.size:
        return float("nan"), float("nan")
    return float(np.median(x)), float(median_abs_deviation(x, scale="normal"))


def _per_night_masks(obs_ratio: np.ndarray, shift: np.ndarray, ok: np.ndarray, params: dict,
                     gap: int, central_ratio: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Obstructive (hysteresis on effort rise and jaw drop, in units of the night's own wander)
    and central (effort drop) candidate masks per second, and the seconds whose rise and drop
    reach ``arousal_core_z_mult`` x the core margins (the evidence an arousal-only obstructive
    event must show, version 3); see the module docstring."""
    central = _central_candidates(obs_ratio, central_ratio, params, gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log(np.where(obs_ratio > 0, obs_ratio, np.nan))
    ref = ok & np.isfinite(log_r)
    none = np.zeros(obs_ratio.size, dtype=bool)
    if ref.sum() < 60:  # under a minute of scorable sleep: nothing to normalise against
        return none, central, none
    r_med, r_sd = _centre_sd(log_r[ref])
    p_med, p_sd = _centre_sd(shift[ref])
    if not (r_sd > 0 and p_sd > 0):
        # No wander to measure a rise against (a flat or quantised jaw signal): a zero margin
        # would make half the night's seconds "obstructive". Report none instead.
        return none, central, none
    r_m = float(params["obstructive_ratio_z"]) * r_sd
    p_m = float(params["obstructive_drop_z"]) * p_sd
    frac = float(params["extent_fraction"])
    core = (log_r >= r_med + r_m) & (shift >= p_med + p_m)
    extent = (log_r >= r_med + frac * r_m) & (shift >= p_med + frac * p_m)
    k = float(params.get("arousal_core_z_mult", 1.0))
    strong = (log_r >= r_med + k * r_m) & (shift >= p_med + k * p_m)
    return _hysteresis(_bridge(core, gap), _bridge(extent, gap)), central, strong


def _largest_breaths_ratio(effort: np.ndarray, low_base: np.ndarray, exclude: np.ndarray,
                           base_w: int, params: dict) -> np.ndarray:
    """Effort / the largest breaths of the preceding ``base_w`` s (version 3, issue 24
    defect 6).

    AASM Manual v2.6 (respiratory rule 3): without stable breathing, the pre-event baseline is
    the mean amplitude of the three largest breaths in the 2 min before onset. Here the
    ``central_baseline_pct`` percentile of smoothed effort over the 2 min, with moving or
    invalid seconds first replaced by the lower-percentile baseline: movement leaks into the
    breathing band, and left in it made the next 2 min look "apneic" (0.9-1.4 false events/h
    on event-free nights of the choice batch; 0.12/h once replaced). In Cheyne-Stokes
    breathing the lower-percentile baseline is itself apneic, so central apneas did not read
    as drops against it.
    """
    clean = np.where(exclude, low_base, effort)
    big = trailing_percentile(clean, base_w, float(params["central_baseline_pct"]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(big > 0, effort / big, 1.0)


def _central_candidates(ratio: np.ndarray, central_ratio: np.ndarray | None, params: dict,
                        gap: int) -> np.ndarray:
    """Central (effort drop) candidate seconds: effort / baseline <= ``central_ratio``, or
    (version 3) <= ``largest_breaths_apnea_ratio`` against the largest breaths, extended to
    ``central_extent_ratio`` when the artifact sets it (:func:`_central_extent`)."""
    drop = ratio <= params["central_ratio"]
    if central_ratio is not None:  # version 3: apneas against the largest breaths too
        drop |= central_ratio <= params["largest_breaths_apnea_ratio"]
    central = _bridge(drop, gap)
    if params.get("central_extent_ratio") is not None:
        central = _central_extent(central, ratio, float(params["central_extent_ratio"]), gap)
    return central


def _central_extent(core: np.ndarray, ratio: np.ndarray, extent_ratio: float,
                    gap: int) -> np.ndarray:
    """A central drop's extent: the seconds around its core whose effort stays below
    ``extent_ratio`` x the baseline (hysteresis, version 3, issue 24 defect 6).

    AASM Manual v2.6 (respiratory rule 3) times an apnea from the first breath clearly
    reduced to the first breath that approaches baseline, not by how long the signal stays
    below the detection threshold. On the chin, central apneas show an abrupt *fall* of
    mandibular-movement amplitude (no central drive, no effort: Martinot et al. 2017, Front
    Neurol 8:353; Pepin et al. 2022, Nat Sci Sleep 14:635: median MM amplitude 0.60 in central
    apneas against larger amplitudes in normal breathing and obstructive events). The smoothed
    effort crosses the 30 % drop threshold a few seconds after that fall starts and leaves it a
    few seconds before breathing resumes, so a 10-12 s central apnea showed only 6-9 s below
    the threshold and was dropped by the 10-s rule (choice batch 9100-9103: 31 of 33 missed
    central apneas of the all-central nights). Measuring the duration on the extent
    (``extent_ratio``, e.g. 0.85: half the detection margin, as ``extent_fraction`` does for
    obstructive events) restores it.
    """
    extent = _bridge(core | (ratio <= extent_ratio), gap)
    return _hysteresis(core, extent)


def _fall_after_onset(post: np.ndarray) -> float | None:
    """Largest SpO2 fall (points) that happens after the event onset: the largest drop from
    a running maximum that starts at the onset (version 3, issue 24 defect 6).

    SpO2 at the finger lags the lungs by the circulation time, so the SpO2 of the first
    seconds of an event still shows pre-event oxygenation and an event's own desaturation
    falls from there to a nadir after the event end. Measuring from the highest value of the
    preceding 2 min instead let an event be "confirmed" by a fall already under way, i.e. by
    the desaturation of the event before it: on the choice batch (seeds 9100-9103) every one
    of the 22 false central events of the default nights was confirmed that way (3.5-6 point
    "falls" that began before its onset).
    """
    x = np.asarray(post, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    return float(np.max(np.maximum.accumulate(x) - x))


def _hysteresis(core: np.ndarray, extent: np.ndarray) -> np.ndarray:
    """Runs of ``extent`` that contain at least one ``core`` second."""
    labels, n = ndimage.label(extent)
    if n == 0:
        return np.zeros_like(extent)
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(labels[core & extent])] = True
    keep[0] = False
    return keep[labels]


def _per_second(x: np.ndarray, fs: float, n_sec: int, fn=np.mean) -> np.ndarray:
    k = int(round(fs))
    x = np.asarray(x, dtype=np.float64)
    need = n_sec * k
    if x.shape[-1] < need:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - x.shape[-1])], mode="edge")
    return fn(x[..., :need].reshape(*x.shape[:-1], n_sec, k), axis=-1)


def trailing_percentile(x: np.ndarray, window: int, q: float = 50.0) -> np.ndarray:
    """``q``-th percentile of the ``window`` samples before each index (``x[t-window:t]``)."""
    centred = ndimage.percentile_filter(x, q, size=window, mode="nearest")
    out = np.empty_like(x)
    shift = window // 2
    out[shift:] = centred[: x.size - shift]
    out[:shift] = centred[0]
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def _bridge(mask: np.ndarray, gap: int) -> np.ndarray:
    if gap <= 0:
        return mask
    out = mask.copy()
    for a, b in _runs(~mask):
        if a > 0 and b < mask.size and b - a <= gap:
            out[a:b] = True
    return out


def detect_events(arrays: dict[str, np.ndarray], meta: dict, sleep_epochs: np.ndarray,
                  params: dict, epoch_s: float = 30.0) -> list[RespEvent]:
    """Detect respiratory events; ``sleep_epochs`` is a boolean per 30-s epoch (True = sleep)."""
    fs = float(meta["fs_derived"])
    n_sec = int(len(sleep_epochs) * epoch_s)
    if n_sec == 0:
        return []
    power = _per_second((np.asarray(arrays["breath_gyro"], np.float64) ** 2).sum(axis=0), fs,
                        n_sec)
    smooth = int(params["smooth_s"])
    effort = np.sqrt(2 * ndimage.uniform_filter1d(power, smooth, mode="nearest"))
    position = _per_second(arrays["mandible_angle_deg"], fs, n_sec)
    activity = _per_second(arrays["activity_dps"], fs, n_sec)
    base_w = int(params["baseline_s"])
    # Baselines robust to the events sought (science.md §2.2 excludes flagged events from the
    # baseline): in a cluster of obstructive events the preceding 2 min are partly raised effort
    # and dropped jaw, so their lower percentile is the pre-event level; for central drops the
    # median serves.
    q_obs = float(params["obstructive_baseline_pct"])
    obs_base = trailing_percentile(effort, base_w, q_obs)
    effort_base = trailing_percentile(effort, base_w, 50.0)
    pos_base = trailing_percentile(position, base_w, q_obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(effort_base > 0, effort / effort_base, 1.0)
        obs_ratio = np.where(obs_base > 0, effort / obs_base, 1.0)
    shift = position - pos_base

    quality = np.asarray(arrays.get("quality", np.zeros(n_sec)))[:n_sec]
    quality = np.pad(quality, (0, n_sec - quality.size), constant_values=1) == 0
    asleep = np.repeat(np.asarray(sleep_epochs, bool), int(epoch_s))[:n_sec]
    per_night = params.get("normalise") == "per_night"
    if per_night:
        floor = activity_floor(activity, quality)
        move_th = float(params["movement_floor_mult"]) * floor
        arousal_th = float(params["arousal_floor_mult"]) * floor
    else:
        move_th = float(params["movement_dps"])
    # Movement blanks its own seconds and a few around them (arousal, repositioning).
    moving = ndimage.binary_dilation(activity > move_th, iterations=2)
    ok = asleep & quality & ~moving
    central_ratio = None
    if params.get("central_baseline_pct") is not None:
        central_ratio = _largest_breaths_ratio(effort, obs_base, moving | ~quality, base_w,
                                               params)

    spo2 = arrays.get("spo2")
    has_spo2 = spo2 is not None and np.asarray(spo2).size and np.isfinite(spo2).mean() > 0.5
    if has_spo2:
        spo2 = np.asarray(spo2, dtype=np.float64)[:n_sec]
        spo2 = np.pad(spo2, (0, n_sec - spo2.size), constant_values=np.nan)

    def desaturation(a: int, b: int) -> float | None:
        if not has_spo2:
            return None
        pre = spo2[max(0, a - int(params["desat_baseline_s"])) : a + 1]
        post = spo2[a : min(n_sec, b + int(params["desat_window_s"]))]
        if not np.isfinite(pre).any() or not np.isfinite(post).any():
            return None
        if params.get("desat_after_onset"):
            return _fall_after_onset(post)
        return float(np.nanmax(pre) - np.nanmin(post))

    min_d = int(params["min_duration_s"])
    max_d = int(params["max_duration_s"])
    gap = int(params["merge_gap_s"])
    need_desat = bool(params["require_desaturation"]) and has_spo2
    events: list[RespEvent] = []
    if per_night:
        obstructive, central, strong = _per_night_masks(obs_ratio, shift, ok, params, gap,
                                                        central_ratio)
    else:
        obstructive = _bridge((obs_ratio >= params["obstructive_ratio"])
                              & (shift >= params["obstructive_drop_deg"]), gap)
        central = _bridge(ratio <= params["central_ratio"], gap)

    def arousal(a: int, b: int) -> bool:
        if not per_night:
            return False
        lo = max(0, b - int(params["arousal_pre_s"]))
        hi = min(n_sec, b + int(params["arousal_window_s"]))
        above = activity[lo:hi] > arousal_th
        if params.get("arousal_rule") != "burst":
            return int(np.sum(above)) >= int(params["arousal_min_s"])
        # Issue 24: an arousal is one sustained burst (AASM arousals last >= 3 s; 4 s chosen,
        # see the artifact), not scattered seconds: brief REM twitches, which recur all
        # through phasic REM, added up to "arousals" at the end of chance effort rises.
        return max((e - s for s, e in _runs(above)), default=0) >= int(params["arousal_min_s"])

    candidates = (
        ("obstructive_event", obstructive & ok),
        ("central_event", central & ok),
    )
    for etype, mask in candidates:
        for a, b in _runs(mask):
            if b - a < min_d:
                continue
            end = b  # the run's own end: an arousal terminates the event there, not at the cap
            b = min(b, a + max_d)
            r = float(np.median((obs_ratio if etype == "obstructive_event" or per_night
                                 else ratio)[a:b]))
            de = desaturation(a, b)
            apnea_like = etype == "central_event" and r <= params["apnea_ratio"]
            if etype == "central_event" and central_ratio is not None and not apnea_like:
                # Version 3: an apnea against the largest breaths of the 2 min before is one.
                r_big = float(np.median(central_ratio[a:b]))
                if r_big <= params["largest_breaths_apnea_ratio"]:
                    apnea_like, r = True, r_big
            how = "apnea" if apnea_like else "desaturation"
            if not apnea_like:
                desat_ok = de is not None and de >= params["desaturation_pct"]
                if per_night:
                    # AASM 1A: desaturation or arousal. Without oximetry an obstructive-type MM
                    # event stays unconfirmed (it may be an apnea, which needs no confirmation,
                    # and MM cannot tell); a hypopnea-like central one needs the arousal.
                    # Version 3: with oximetry a hypopnea-like central event needs its
                    # desaturation; REM breathing amplitude varies by itself, and with an
                    # arousal burst at a chance dip it confirmed ~0.1 false events/h.
                    central_by_arousal = not (has_spo2 and etype == "central_event"
                                              and params.get("central_arousal_no_oximetry_only"))
                    if not desat_ok:
                        # An obstructive candidate confirmed by an arousal alone must show a
                        # clear rise and drop (version 3): chance candidates of ordinary
                        # breathing wander met spontaneous movement arousals ~0.3/h.
                        clear = etype != "obstructive_event" or bool(strong[a:b].any())
                        if central_by_arousal and clear and arousal(a, end):
                            how = "arousal"
                        elif etype == "obstructive_event" and not has_spo2:
                            how = "none"
                        else:
                            continue
                else:
                    if etype == "central_event" and not has_spo2:
                        continue
                    if need_desat and not desat_ok:
                        continue
                    how = "desaturation" if desat_ok else "none"
            events.append(RespEvent(etype, float(a), float(b - a), r,
                                    float(np.median(shift[a:b])), de, how))
    events.sort(key=lambda e: e.onset_s)
    # Overlapping obstructive and central candidates: keep the first one.
    kept: list[RespEvent] = []
    for ev in events:
        if kept and ev.onset_s < kept[-1].onset_s + kept[-1].duration_s:
            continue
        kept.append(ev)
    return kept


def desaturations(spo2: np.ndarray | None, drop_pct: float = 3.0,
                  sleep_seconds: np.ndarray | None = None) -> list[tuple[float, float, float]]:
    """Oxygen desaturations (onset_s, duration_s, drop %) from a 1-Hz SpO2 trace.

    A desaturation is a fall of >= ``drop_pct`` points below the running baseline (the maximum
    of the preceding 120 s), lasting >= 3 s; it ends when SpO2 recovers to within 1 point of
    the fall's start. Only those starting in ``sleep_seconds`` (if given) are returned.
    """
    if spo2 is None or np.asarray(spo2).size == 0:
        return []
    x = np.asarray(spo2, dtype=np.float64)
    finite = np.isfinite(x)
    if finite.mean() < 0.5:
        return []
    x = np.where(finite, x, np.interp(np.arange(x.size), np.flatnonzero(finite), x[finite]))
    base = ndimage.maximum_filter1d(x, 120, origin=59, mode="nearest")  # max of x[t-119..t]
    below = x <= base - drop_pct
    out = []
    for a, b in _runs(below):
        if b - a < 3:
            continue
        if sleep_seconds is not None and not sleep_seconds[min(a, sleep_seconds.size - 1)]:
            continue
        out.append((float(a), float(b - a), float(base[a] - x[a:b].min())))
    return out
