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

Output types: ``obstructive_event`` and ``central_event`` (MM cannot separate apneas from
hypopneas; the split between them needs airflow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class RespEvent:
    type: str
    onset_s: float
    duration_s: float
    effort_ratio: float
    jaw_shift_deg: float
    desaturation_pct: float | None


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
    # Movement blanks its own seconds and a few around them (arousal, repositioning).
    moving = ndimage.binary_dilation(activity > params["movement_dps"], iterations=2)
    ok = asleep & quality & ~moving

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
        return float(np.nanmax(pre) - np.nanmin(post))

    min_d = int(params["min_duration_s"])
    max_d = int(params["max_duration_s"])
    gap = int(params["merge_gap_s"])
    need_desat = bool(params["require_desaturation"]) and has_spo2
    events: list[RespEvent] = []
    candidates = (
        ("obstructive_event",
         _bridge((obs_ratio >= params["obstructive_ratio"])
                 & (shift >= params["obstructive_drop_deg"]), gap) & ok),
        ("central_event", _bridge(ratio <= params["central_ratio"], gap) & ok),
    )
    for etype, mask in candidates:
        for a, b in _runs(mask):
            if b - a < min_d:
                continue
            b = min(b, a + max_d)
            r = float(np.median((obs_ratio if etype == "obstructive_event" else ratio)[a:b]))
            de = desaturation(a, b)
            apnea_like = etype == "central_event" and r <= params["apnea_ratio"]
            if not apnea_like:
                if etype == "central_event" and not has_spo2:
                    continue
                if need_desat and (de is None or de < params["desaturation_pct"]):
                    continue
            events.append(RespEvent(etype, float(a), float(b - a), r,
                                    float(np.median(shift[a:b])), de))
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
