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
  (``sunrise_algo.builtin.features.activity_floor``) instead of a fixed ``movement_dps``;
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
  With ``central_extent_ratio`` a central event lasts from the fall to the recovery (its
  extent below that ratio, ``_central_extent``), and with ``desat_after_onset`` only a SpO2
  fall after the onset confirms an event (``_fall_after_onset``), and with
  ``desat_to_latest_event`` only the falls that begin before the next candidate's onset are
  the event's own; a fall that begins later belongs to that later event (``_own_fall``);
  version 4 (logistic-4, baseline-4), defect 6.

Parameters are typed by :class:`RespiratoryParams`; :func:`detect_events` runs named steps:
signals and baselines, candidates, confirmation, overlaps.

Output types: ``obstructive_event`` and ``central_event`` (MM cannot separate apneas from
hypopneas; the split between them needs airflow).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, Mapping

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from sunrise_algo.builtin.features import activity_floor

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


@dataclass(frozen=True)
class RespiratoryParams:
    """The detector's thresholds: the model artifact's ``respiratory`` section, typed (issue 25
    item 4). Durations in s, ratios of effort to its baseline, angles in deg, SpO2 in points.

    Common to every version: ``smooth_s``, ``baseline_s``, ``obstructive_baseline_pct``,
    ``central_ratio``, ``apnea_ratio``, ``min_duration_s``, ``max_duration_s``,
    ``merge_gap_s``, ``require_desaturation``, ``desaturation_pct``, ``desat_baseline_s``,
    ``desat_window_s``. Absolute rules (version 1): ``obstructive_ratio``,
    ``obstructive_drop_deg``, ``movement_dps``. Per-night rules (``normalise: "per_night"``,
    version 2 on): the z margins, ``extent_fraction``, the floor multiples and the arousal
    window. Version 3 (issue 24): the burst arousal rule, the largest-breaths baseline of
    central apneas, the central extent and the desaturation after onset. What each does: the
    module docstring.
    """

    smooth_s: int
    baseline_s: int
    obstructive_baseline_pct: float
    central_ratio: float
    apnea_ratio: float
    min_duration_s: int
    max_duration_s: int
    merge_gap_s: int
    require_desaturation: bool
    desaturation_pct: float
    desat_baseline_s: int
    desat_window_s: int
    # Absolute rules (version 1).
    obstructive_ratio: float | None = None
    obstructive_drop_deg: float | None = None
    movement_dps: float | None = None
    # Per-night rules (version 2 on).
    normalise: str | None = None
    obstructive_ratio_z: float | None = None
    obstructive_drop_z: float | None = None
    extent_fraction: float | None = None
    movement_floor_mult: float | None = None
    arousal_floor_mult: float | None = None
    arousal_min_s: int | None = None
    arousal_pre_s: int | None = None
    arousal_window_s: int | None = None
    # Version 3 (issue 24).
    arousal_rule: str | None = None
    central_arousal_no_oximetry_only: bool = False
    arousal_core_z_mult: float = 1.0
    central_baseline_pct: float | None = None
    largest_breaths_apnea_ratio: float | None = None
    central_extent_ratio: float | None = None
    desat_after_onset: bool = False
    desat_to_latest_event: bool = False

    _ABSOLUTE = ("obstructive_ratio", "obstructive_drop_deg", "movement_dps")
    _PER_NIGHT = ("obstructive_ratio_z", "obstructive_drop_z", "extent_fraction",
                  "movement_floor_mult", "arousal_floor_mult", "arousal_min_s", "arousal_pre_s",
                  "arousal_window_s")

    @property
    def per_night(self) -> bool:
        return self.normalise == "per_night"

    @classmethod
    def from_artifact(cls, section: Mapping[str, Any] | RespiratoryParams) -> RespiratoryParams:
        """Typed parameters from an artifact's ``respiratory`` section; ``ValueError`` names
        the unknown or missing keys (the artifact is ours or a trained one: keys only, never
        its values, go into the message)."""
        if isinstance(section, RespiratoryParams):
            return section
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown respiratory parameters: {unknown}")
        if section.get("normalise") not in (None, "per_night"):
            raise ValueError("respiratory 'normalise' must be absent or 'per_night'")
        required = [f.name for f in fields(cls) if f.default is MISSING]
        required += list(cls._PER_NIGHT if section.get("normalise") == "per_night"
                         else cls._ABSOLUTE)
        missing = [k for k in required if section.get(k) is None]
        if missing:
            raise ValueError(f"missing respiratory parameters: {missing}")
        values = {k: v for k, v in section.items() if v is not None}
        return cls(**values)


def rdi_rule(params: Mapping[str, Any] | RespiratoryParams, has_spo2: bool) -> str:
    """Key of ``RDI_RULES`` describing how events of ``params`` were confirmed."""
    arousal = RespiratoryParams.from_artifact(params).per_night
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


def _per_night_masks(obs_ratio: np.ndarray, shift: np.ndarray, ok: np.ndarray,
                     params: Mapping[str, Any] | RespiratoryParams, gap: int,
                     central_ratio: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Obstructive (hysteresis on effort rise and jaw drop, in units of the night's own wander)
    and central (effort drop) candidate masks per second, and the seconds whose rise and drop
    reach ``arousal_core_z_mult`` x the core margins (the evidence an arousal-only obstructive
    event must show, version 3); see the module docstring."""
    params = RespiratoryParams.from_artifact(params)
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
    r_m = float(params.obstructive_ratio_z) * r_sd
    p_m = float(params.obstructive_drop_z) * p_sd
    frac = float(params.extent_fraction)
    core = (log_r >= r_med + r_m) & (shift >= p_med + p_m)
    extent = (log_r >= r_med + frac * r_m) & (shift >= p_med + frac * p_m)
    k = float(params.arousal_core_z_mult)
    strong = (log_r >= r_med + k * r_m) & (shift >= p_med + k * p_m)
    return _hysteresis(_bridge(core, gap), _bridge(extent, gap)), central, strong


def _largest_breaths_ratio(effort: np.ndarray, low_base: np.ndarray, exclude: np.ndarray,
                           base_w: int, params: RespiratoryParams) -> np.ndarray:
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
    big = trailing_percentile(clean, base_w, float(params.central_baseline_pct))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(big > 0, effort / big, 1.0)


def _central_candidates(ratio: np.ndarray, central_ratio: np.ndarray | None,
                        params: RespiratoryParams, gap: int) -> np.ndarray:
    """Central (effort drop) candidate seconds: effort / baseline <= ``central_ratio``, or
    (version 3) <= ``largest_breaths_apnea_ratio`` against the largest breaths, extended to
    ``central_extent_ratio`` when the artifact sets it (:func:`_central_extent`)."""
    drop = ratio <= params.central_ratio
    if central_ratio is not None:  # version 3: apneas against the largest breaths too
        drop |= central_ratio <= params.largest_breaths_apnea_ratio
    central = _bridge(drop, gap)
    if params.central_extent_ratio is not None:
        central = _central_extent(central, ratio, float(params.central_extent_ratio), gap)
    return central


def _central_extent(core: np.ndarray, ratio: np.ndarray, extent_ratio: float,
                    gap: int) -> np.ndarray:
    """A central drop's extent: the seconds around its core whose effort stays below
    ``extent_ratio`` x the baseline (hysteresis, version 4, issue 24 defect 6).

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
    a running maximum that starts at the onset (version 4, issue 24 defect 6).

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


def _fall_start(post: np.ndarray) -> int | None:
    """Index in ``post`` where its largest fall after the onset (:func:`_fall_after_onset`)
    begins: the last second at the running maximum before the deepest point."""
    x = np.asarray(post, dtype=np.float64)
    if not np.isfinite(x).any():
        return None
    x = np.where(np.isfinite(x), x, -np.inf)
    top = np.maximum.accumulate(x)
    drop = np.where(np.isfinite(x), top - x, -np.inf)
    k = int(np.argmax(drop))
    return int(np.flatnonzero(x[: k + 1] == top[k])[-1])


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


@dataclass
class _Night:
    """Per-second signals of one night (time 0 = Sunrise start) and what is scorable."""

    n_sec: int
    effort: np.ndarray  # breathing-band amplitude, deg/s
    activity: np.ndarray  # gyroscope activity, deg/s
    obs_base: np.ndarray  # lower-percentile effort baseline, deg/s
    obs_ratio: np.ndarray  # effort / obs_base
    ratio: np.ndarray  # effort / median baseline (version 1 centrals)
    shift: np.ndarray  # mandible position - its lower-percentile baseline, deg
    quality: np.ndarray  # True = good signal
    moving: np.ndarray  # movement and the seconds around it
    ok: np.ndarray  # scorable: asleep, good signal, not moving
    arousal_th: float | None  # activity above which a second counts toward an arousal
    spo2: np.ndarray | None  # SpO2 %, NaN where missing; None without oximetry


def _signals(arrays: dict[str, np.ndarray], meta: dict, sleep_epochs: np.ndarray,
             p: RespiratoryParams, epoch_s: float, n_sec: int) -> _Night:
    """Step 1: effort, position, activity and SpO2 per second; the baselines (science.md
    §2.2: robust to the events sought); movement and what is scorable."""
    fs = float(meta["fs_derived"])
    power = _per_second((np.asarray(arrays["breath_gyro"], np.float64) ** 2).sum(axis=0), fs,
                        n_sec)
    effort = np.sqrt(2 * ndimage.uniform_filter1d(power, int(p.smooth_s), mode="nearest"))
    position = _per_second(arrays["mandible_angle_deg"], fs, n_sec)
    activity = _per_second(arrays["activity_dps"], fs, n_sec)
    base_w = int(p.baseline_s)
    # Baselines robust to the events sought (science.md §2.2 excludes flagged events from the
    # baseline): in a cluster of obstructive events the preceding 2 min are partly raised effort
    # and dropped jaw, so their lower percentile is the pre-event level; for central drops the
    # median serves.
    q_obs = float(p.obstructive_baseline_pct)
    obs_base = trailing_percentile(effort, base_w, q_obs)
    effort_base = trailing_percentile(effort, base_w, 50.0)
    pos_base = trailing_percentile(position, base_w, q_obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(effort_base > 0, effort / effort_base, 1.0)
        obs_ratio = np.where(obs_base > 0, effort / obs_base, 1.0)

    quality = np.asarray(arrays.get("quality", np.zeros(n_sec)))[:n_sec]
    quality = np.pad(quality, (0, n_sec - quality.size), constant_values=1) == 0
    asleep = np.repeat(np.asarray(sleep_epochs, bool), int(epoch_s))[:n_sec]
    arousal_th = None
    if p.per_night:
        floor = activity_floor(activity, quality)
        move_th = float(p.movement_floor_mult) * floor
        arousal_th = float(p.arousal_floor_mult) * floor
    else:
        move_th = float(p.movement_dps)
    # Movement blanks its own seconds and a few around them (arousal, repositioning).
    moving = ndimage.binary_dilation(activity > move_th, iterations=2)

    spo2 = arrays.get("spo2")
    has_spo2 = spo2 is not None and np.asarray(spo2).size and np.isfinite(spo2).mean() > 0.5
    if has_spo2:
        spo2 = np.asarray(spo2, dtype=np.float64)[:n_sec]
        spo2 = np.pad(spo2, (0, n_sec - spo2.size), constant_values=np.nan)
    return _Night(n_sec, effort, activity, obs_base, obs_ratio, ratio, position - pos_base, quality,
                  moving, asleep & quality & ~moving, arousal_th,
                  spo2 if has_spo2 else None)


def _candidates(night: _Night, p: RespiratoryParams
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Step 2: obstructive and central candidate seconds, the seconds of a clear rise and
    drop (per-night rules; None otherwise) and the effort / largest-breaths ratio (version 3;
    None otherwise)."""
    gap = int(p.merge_gap_s)
    central_ratio = None
    if p.central_baseline_pct is not None:
        central_ratio = _largest_breaths_ratio(night.effort, night.obs_base,
                                               night.moving | ~night.quality,
                                               int(p.baseline_s), p)
    if p.per_night:
        obstructive, central, strong = _per_night_masks(night.obs_ratio, night.shift, night.ok,
                                                        p, gap, central_ratio)
        return obstructive, central, strong, central_ratio
    obstructive = _bridge((night.obs_ratio >= p.obstructive_ratio)
                          & (night.shift >= p.obstructive_drop_deg), gap)
    central = _bridge(night.ratio <= p.central_ratio, gap)
    return obstructive, central, None, central_ratio


def _desaturation(night: _Night, p: RespiratoryParams, a: int, b: int) -> float | None:
    """SpO2 fall (points) attributed to the event ``[a, b)``; None without oximetry."""
    if night.spo2 is None:
        return None
    spo2 = night.spo2
    pre = spo2[max(0, a - int(p.desat_baseline_s)) : a + 1]
    post = spo2[a : min(night.n_sec, b + int(p.desat_window_s))]
    if not np.isfinite(pre).any() or not np.isfinite(post).any():
        return None
    if p.desat_after_onset:
        return _fall_after_onset(post)
    return float(np.nanmax(pre) - np.nanmin(post))


def _own_fall(night: _Night, p: RespiratoryParams, a: int, b: int,
              onsets: np.ndarray, de: float) -> float:
    """SpO2 fall (points) of the event ``[a, b)`` itself: the largest fall after its onset
    (:func:`_fall_after_onset`) among those that begin before the next candidate event's
    onset (version 4, issue 24 defect 6); a fall that begins later belongs to that later
    event. ``de`` is the fall :func:`_desaturation` measured; without ``desat_after_onset``
    (a combination no packaged artifact uses) it is kept, or set to 0 when the window's
    largest fall begins after a later onset, as before.

    SpO2 at the finger follows ventilation after the lung-to-finger circulation time (a 3 %
    fall begins ~20 s after airflow stops; oximeter averaging adds 0-10 s: sources in
    docs/science.md §8.4.1), so a fall is caused by the latest event that began before the
    fall did. Without this, an effort dip just before a real event borrowed that event's
    desaturation inside the 45-s window (choice batch 9100-9103: central-event PPV 0.75 ->
    0.88 on the default nights, obstructive-event PPV 0.62 -> 0.72 on all-central nights).
    A fall begins at the last second at the running maximum before its deepest point (as in
    :func:`_fall_start`). Only the falls that begin after a later onset are set aside, not the
    whole window: an event whose own fall precedes a later event's deeper one keeps its own
    (review of this rule: clustered dips 35 s apart lost their own 4-point falls).
    """
    post = np.asarray(night.spo2[a : min(night.n_sec, b + int(p.desat_window_s))],
                      dtype=np.float64)
    finite = np.isfinite(post)
    if not finite.any():
        return de
    later = onsets[onsets > a]
    limit = int(later.min()) - a if later.size else post.size
    x = np.where(finite, post, -np.inf)
    top = np.maximum.accumulate(x)
    # Start of the fall that reaches each second: the last second at the running maximum.
    idx = np.arange(x.size)
    start = np.maximum.accumulate(np.where(x == top, idx, 0))
    own = finite & np.isfinite(top) & (start < limit)
    if not p.desat_after_onset:
        k = _fall_start(post)
        return de if k is None or k < limit else 0.0
    return float(np.max((top - x)[own])) if own.any() else 0.0


def _arousal(night: _Night, p: RespiratoryParams, b: int) -> bool:
    """An arousal at the event end ``b``: chin movement from ``arousal_pre_s`` before to
    ``arousal_window_s`` after (per-night rules only)."""
    if not p.per_night:
        return False
    lo = max(0, b - int(p.arousal_pre_s))
    hi = min(night.n_sec, b + int(p.arousal_window_s))
    above = night.activity[lo:hi] > night.arousal_th
    if p.arousal_rule != "burst":
        return int(np.sum(above)) >= int(p.arousal_min_s)
    # Issue 24: an arousal is one sustained burst (AASM arousals last >= 3 s; 4 s chosen,
    # see the artifact), not scattered seconds: brief REM twitches, which recur all
    # through phasic REM, added up to "arousals" at the end of chance effort rises.
    return max((e - s for s, e in _runs(above)), default=0) >= int(p.arousal_min_s)


def _confirm_per_night(night: _Night, p: RespiratoryParams, etype: str, a: int, b: int,
                       end: int, de: float | None, strong: np.ndarray) -> str | None:
    """Step 3, per-night rules: how a non-apnea candidate is confirmed (``desaturation``,
    ``arousal``, ``none``) or None when it is not scored."""
    has_spo2 = night.spo2 is not None
    if de is not None and de >= p.desaturation_pct:
        return "desaturation"
    # AASM 1A: desaturation or arousal. Without oximetry an obstructive-type MM event stays
    # unconfirmed (it may be an apnea, which needs no confirmation, and MM cannot tell); a
    # hypopnea-like central one needs the arousal. Version 3: with oximetry a hypopnea-like
    # central event needs its desaturation; REM breathing amplitude varies by itself, and
    # with an arousal burst at a chance dip it confirmed ~0.1 false events/h.
    central_by_arousal = not (has_spo2 and etype == "central_event"
                              and p.central_arousal_no_oximetry_only)
    # An obstructive candidate confirmed by an arousal alone must show a clear rise and drop
    # (version 3): chance candidates of ordinary breathing wander met spontaneous movement
    # arousals ~0.3/h.
    clear = etype != "obstructive_event" or bool(strong[a:b].any())
    if central_by_arousal and clear and _arousal(night, p, end):
        return "arousal"
    if etype == "obstructive_event" and not has_spo2:
        return "none"
    return None


def _confirm_absolute(night: _Night, p: RespiratoryParams, etype: str,
                      de: float | None) -> str | None:
    """Step 3, absolute rules (version 1): desaturation where oximetry exists; central
    hypopnea-like events are not scored without it."""
    has_spo2 = night.spo2 is not None
    desat_ok = de is not None and de >= p.desaturation_pct
    if etype == "central_event" and not has_spo2:
        return None
    if bool(p.require_desaturation) and has_spo2 and not desat_ok:
        return None
    return "desaturation" if desat_ok else "none"


def _first_of_overlapping(events: list[RespEvent]) -> list[RespEvent]:
    """Step 4: overlapping obstructive and central candidates: keep the first one."""
    events = sorted(events, key=lambda e: e.onset_s)
    kept: list[RespEvent] = []
    for ev in events:
        if kept and ev.onset_s < kept[-1].onset_s + kept[-1].duration_s:
            continue
        kept.append(ev)
    return kept


def detect_events(arrays: dict[str, np.ndarray], meta: dict, sleep_epochs: np.ndarray,
                  params: Mapping[str, Any] | RespiratoryParams,
                  epoch_s: float = 30.0) -> list[RespEvent]:
    """Detect respiratory events; ``sleep_epochs`` is a boolean per 30-s epoch (True = sleep);
    ``params`` the artifact's ``respiratory`` section or :class:`RespiratoryParams`.

    Steps: per-second signals and baselines (:func:`_signals`), candidate seconds
    (:func:`_candidates`), typing and confirmation of each candidate run (apnea-like,
    :func:`_confirm_per_night` or :func:`_confirm_absolute`), then the first of overlapping
    events (:func:`_first_of_overlapping`).
    """
    p = RespiratoryParams.from_artifact(params)
    n_sec = int(len(sleep_epochs) * epoch_s)
    if n_sec == 0:
        return []
    night = _signals(arrays, meta, sleep_epochs, p, epoch_s, n_sec)
    obstructive, central, strong, central_ratio = _candidates(night, p)
    min_d, max_d = int(p.min_duration_s), int(p.max_duration_s)
    onsets = np.array(sorted(a for m in (obstructive & night.ok, central & night.ok)
                             for a, b in _runs(m) if b - a >= min_d))
    events: list[RespEvent] = []
    for etype, mask in (("obstructive_event", obstructive & night.ok),
                        ("central_event", central & night.ok)):
        for a, b in _runs(mask):
            if b - a < min_d:
                continue
            end = b  # the run's own end: an arousal terminates the event there, not at the cap
            b = min(b, a + max_d)
            r = float(np.median((night.obs_ratio if etype == "obstructive_event" or p.per_night
                                 else night.ratio)[a:b]))
            de = _desaturation(night, p, a, b)
            if de is not None and p.desat_to_latest_event:
                de = _own_fall(night, p, a, b, onsets, de)
            apnea_like = etype == "central_event" and r <= p.apnea_ratio
            if etype == "central_event" and central_ratio is not None and not apnea_like:
                # Version 3: an apnea against the largest breaths of the 2 min before is one.
                r_big = float(np.median(central_ratio[a:b]))
                if r_big <= p.largest_breaths_apnea_ratio:
                    apnea_like, r = True, r_big
            if apnea_like:
                how = "apnea"
            elif p.per_night:
                how = _confirm_per_night(night, p, etype, a, b, end, de, strong)
            else:
                how = _confirm_absolute(night, p, etype, de)
            if how is None:
                continue
            events.append(RespEvent(etype, float(a), float(b - a), r,
                                    float(np.median(night.shift[a:b])), de, how))
    return _first_of_overlapping(events)


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
