"""Synthetic paired nights (Sunrise chin IMU + PSG + DOMINO labels) with known, injected truth.

The generator is a written physiological model, independent of the detector in ``sunalgo``
(the model is documented in ``docs/science.md`` §1; the numbers below are its parameters).

Time base
---------
All truth is relative to the **PSG start** (lights-off): the hypnogram is one stage per 30-s epoch
from the PSG start, events are ``(type, onset_s, duration_s)`` from the PSG start. The Sunrise
recording starts ``sunrise_offset_s`` seconds later (a few minutes: the sensor is put on after the
PSG montage) and stops a few minutes after the PSG, so alignment is exercised.

Physiological model (summary; see docs/science.md)
--------------------------------------------------
* Hypnogram: sleep-onset latency (log-normal, median 14 min), NREM/REM cycles of ~90 min with
  N3 concentrated in the first cycles and REM lengthening in later ones, brief awakenings
  (Poisson, ~1.2/h, 0.5-3 min), occasional longer WASO bouts, final wake before lights-on.
* Jaw IMU at 25 Hz (``IMU_FS``). Head orientation = body-position roll + neck pitch; the mandible
  adds a pitch angle made of a posture term (relaxation in sleep, jaw drop during events), the
  breathing-band movement (per-stage breathing rate within 0.15-0.60 Hz; amplitude larger and
  more stable in N3, variable in REM, irregular in wake) and movement. Accelerometer (g) = gravity
  projected on the sensor axes + linear movement acceleration + noise; gyroscope (deg/s) = the
  angular rates of the same angles + noise + bias.
* Obstructive events (obstructive apnea, obstructive-type hypopnea, second half of mixed apnea):
  breathing-band amplitude raised (effort against the closed airway) and a mandible drop of
  1-5 degrees for 10-60 s. Central apnea: amplitude lowered to 0-15 % with a small passive drop.
  Events end with an arousal that usually carries a brief movement; SpO2 falls 3.5-6 % with the
  nadir ~20 s after the event end.
* Wake: frequent irregular movement bursts (talking, swallowing, repositioning); ~30 % of wake
  bouts are "quiet wake" with few bursts, which is what makes sleep/wake hard for any
  movement-based method.
* Breath-to-breath variability (each breath its own period and depth; Tobin et al. 1988 for
  wake) and spontaneous swallows (a ~1-s jaw closure; per-stage rates from Bulmer et al. 2021
  and Sato & Nakashima 2006), issue 24: the constants ``_B2B_*`` and ``_SWALLOW_*`` below.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import signal as sps

from sunrise_common.identity import time_of_day_offset_s

EPOCH_S = 30
IMU_FS = 25  # Hz, Sunrise accelerometer and gyroscope
SPO2_FS = 1  # Hz

STAGE_CODES = ("W", "N1", "N2", "N3", "REM")
_W, _N1, _N2, _N3, _REM = range(5)

# Per-stage model parameters, indexed by stage code above.
# Breathing rate multiplier of the night's base rate, and its slow variability (relative SD).
_RATE_MULT = np.array([1.10, 1.03, 1.00, 0.95, 1.06])
_RATE_SD = np.array([0.15, 0.06, 0.04, 0.02, 0.10])
# Breathing-band mandible pitch amplitude (degrees) and its slow variability (log SD).
_AMP_DEG = np.array([0.22, 0.28, 0.33, 0.45, 0.28])
_AMP_SD = np.array([0.25, 0.20, 0.12, 0.05, 0.35])
# Breath-to-breath (cycle-by-cycle) variability on top of the slow drifts above: relative SD of
# each breath's period and of its amplitude. Wake: quiet resting wakefulness has a
# breath-to-breath CV of respiratory frequency of 20.8 +- 11.5 % and of tidal volume of
# 33 +- 15 % (Tobin et al. 1988, J Appl Physiol 65:309, 65 healthy awake subjects, 15-min
# recordings); with the slow parts (15 % rate, 0.25 log-SD amplitude) the wake totals are
# ~21 % and ~35 %. Sleep: NREM breathing is regular and its breath-to-breath fluctuations lose
# the correlations they have in wake and REM (Kantelhardt et al. 2003, Physica A 319:447;
# Rostig et al. 2005, Sleep 28:411), REM is as variable as wake; irregular breathing marks
# wakefulness (Ayappa et al. 2009, Sleep 32:99; Bulow 1963). The sleep values are this model's
# assumption in that order (no per-stage CV figure was found in the sources read), not
# measurements.
_B2B_PERIOD_CV = np.array([0.15, 0.08, 0.05, 0.03, 0.12])
_B2B_AMP_CV = np.array([0.25, 0.15, 0.10, 0.06, 0.20])
# Spontaneous swallows per minute. Wake: 0.21/min (healthy older) to 0.98/min (healthy
# younger), review of 19 studies (Bulmer et al. 2021, Gerontol Geriatr Med 7:23337214211041801);
# each night draws its own wake rate in that range. Sleep, per stage, from EMG-scored swallows
# in healthy adults (Sato & Nakashima 2006, Ann Otol Rhinol Laryngol 115:334): N1 7.2/h,
# N2 2.0/h, N3 "little" (0.2-0.5/h in Sato et al. 2011, Acta Otolaryngol 131:190; 0.3 here),
# REM 2.7/h. The wake entry below is a placeholder replaced by the night's draw.
_SWALLOW_WAKE_PER_MIN = (0.21, 0.98)
_SWALLOW_PER_MIN = np.array([np.nan, 7.2 / 60, 2.0 / 60, 0.3 / 60, 2.7 / 60])
# A swallow closes the jaw briefly: mandible pitch excursion (deg, towards closing) and
# duration (s) of the oropharyngeal phase, ~1 s. Assumed values (no chin-IMU measurement of
# swallows was found); the amplitude is of the order of the mandibular movements of breathing
# effort and arousal that jaw sensors record.
_SWALLOW_DEG = (0.5, 2.0)
_SWALLOW_S = (0.6, 1.2)
# Mandible posture offset (degrees of jaw opening) from muscle relaxation.
_POSTURE_DEG = np.array([0.0, 0.4, 0.7, 0.9, 1.3])

DOMINO_STAGE = {"W": "Wake", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "REM"}
DOMINO_EVENT = {
    "obstructive_apnea": "Obstructive Apnea",
    "central_apnea": "Central Apnea",
    "mixed_apnea": "Mixed Apnea",
    "hypopnea": "Hypopnea",
}
PATIENT_NAME = "Jane_Synthetic"
BIRTHDATE = date(1961, 3, 12)


@dataclass(frozen=True)
class SynthSettings:
    """The generator's physiological and sensor settings (defaults = the documented model).

    The robustness suite (``science/``) shifts these to generate nights the detector was not
    tuned on. They belong to the generator only: ``sunalgo`` and ``sunrise_prep`` never import
    this module (``tests/science/test_generator_isolation.py``), so a detector cannot read the
    injected ranges.

    Attributes
    ----------
    gyro_noise_dps : float
        White-noise SD of each gyroscope axis, deg/s (0.08).
    breathing_rate_mult : float
        Multiplies the night's base breathing rate (U(0.22, 0.30) Hz) and its clipping range
        (0.16-0.58 Hz); 0.7 puts most sleep breathing below the 0.15 Hz edge of the MM band.
    event_duration_s : tuple[float, float] or None
        Uniform event durations (s) instead of the default log-normal (medians 16-24 s).
    event_duration_mult : float
        Multiplies the log-normal medians and the 60-s upper clip.
    obstructive_effort : tuple[float, float]
        Breathing-band MM multiplier of obstructive apneas (1.8-3.0).
    hypopnea_effort : tuple[float, float]
        Breathing-band MM multiplier of obstructive hypopneas (1.4-2.0).
    obstructive_drop_deg, hypopnea_drop_deg : tuple[float, float]
        Mandible drop during obstructive apneas (2-5 deg) and hypopneas (1-3 deg).
    hypopnea_desat_pct : tuple[float, float]
        SpO2 fall of hypopneas, percentage points (3.5-5.0).
    hypopnea_arousal_p : float
        Probability that a hypopnea ends with an arousal (0.5).
    wake_block_min : float
        Minutes of wake forced in the middle of the sleep period (0 = none).
    sensor_off_min : float
        Minutes during which the sensor lies off the chin (on a bedside table: fixed
        orientation, no breathing, no movement; taken off and put back with a movement burst);
        0 = worn all night. Placed in the middle of the forced wake block when there is one
        (taken off while awake), else in the middle of the sleep period (falls off asleep).
    periodic_breathing_min : float
        Minutes of Cheyne-Stokes breathing in NREM sleep from the first NREM stretch after a
        third of the night, resumed in the next NREM stretches (0 = none): cycles of 45-90 s (Cheyne-Stokes cycle length 45-90 s,
        AASM Manual v2.6 rule VII.2 needs >= 40 s; typically ~60 s in heart failure, Naughton
        2016), each a central apnea of 10-30 s followed by crescendo-decrescendo breathing
        peaking at 1.3-1.8 x the stage's amplitude. The apneas are truth events.
    desat_pct : tuple[float, float] or None
        SpO2 fall of every event type, percentage points (None: the per-type defaults,
        obstructive apnea 4-6, hypopnea ``hypopnea_desat_pct``, central 3.5-5.5, mixed 4-6).
        The widened condition uses 2-8. Sources: desaturation slopes average 0.26 points per
        second (SLEEP 2023 abstract cited under ``nadir_delay_s``), i.e. ~2.5 points for a
        10-s fall to ~8 for a 30-s one; across patients the lowest SpO2 falls 0.18-0.28
        points per second of the longest apnea (Zhou et al. 2026, Front Physiol,
        doi:10.3389/fphys.2025.1691994, 1716 OSA patients: a between-patient regression,
        not a per-event rate); desaturations below the 3 % AASM criterion are common (Koch
        et al. 2017, Sleep 40:zsx152: breathing disturbances without hypoxia).
    nadir_delay_s : tuple[float, float]
        Delay of the SpO2 nadir after the event end, s (default 20-20; the widened condition
        10-40). Sources: the 3 % desaturation begins ~20 s after airflow stops (IOS Press,
        ebooks.iospress.nl/publication/9299: ten PSG patients, lung-to-finger circulation
        time); oximeter averaging adds 0-10 s (Vagedes et al. 2024, Nat Sci Sleep 16:1131;
        3 s most often); desaturations last 20 +/- 1 s, longer in REM (27 s) than NREM
        (19 s) (SLEEP 2023 abstract "Effect of OSA severity, sleep stage and position on
        patterns of oximetric desaturations and resaturations"). The 10-s lower end is
        ours (short circulation time, beat-to-beat oximeter); no source gives a range.
    arousal_offset_s : tuple[float, float]
        Where the arousal movement starts relative to the event end, s (default 0-0; widened
        -5 to +15). Source: EEG arousals follow apneas and hypopneas by 2.2-2.9 s on average
        (respiratory arousal latency, 127 patients, 20,510 apneas and 21,227 hypopneas; the
        authors searched -10 to +20 s around the end; SLEEP abstract, synapsesocial.com
        paper 6a002147c8f74e3340f9c1e9), and arousal may come before or after airway opening
        (Younes 2004, Am J Respir Crit Care Med 169:623). A range: 90 % of hypopnea-
        associated EEG arousals start from 6 s before to 14 s after the event end, of apnea-
        associated ones from 4 s before to 9 s after (Zitting et al. 2023, J Clin Sleep Med,
        11,400 scored PSGs); -5..+15 matches it.
    breathing_base_hz, breathing_clip_hz : tuple[float, float]
        The night's base breathing rate range and the clip of the instantaneous rate, Hz
        (defaults 0.22-0.30 and 0.16-0.58), both multiplied by ``breathing_rate_mult``. The
        widened condition uses the adult range of the literature, 10-30 breaths/min =
        0.17-0.50 Hz, for the base rate (12-20/min at rest and in sleep for adults, 12-28/min
        at 65-80 years, 10-30/min above 80: Sleep Foundation, "Sleep respiratory rate",
        summarising the clinical ranges) and clips the instantaneous rate only at 0.10-0.70 Hz:
        a guard on the tails of the per-stage breath-to-breath variability, not a sourced
        range (no source found gives extremes of the instantaneous adult rate); a clip equal
        to the base range held 21 % of wake and 14 % of REM seconds at the clip.
    still_wake : {None, "wake_breathing", "sleep_breathing"}
        Makes the forced wake block still: no movement bursts and no restless micro-movement.
        ``"wake_breathing"`` keeps wake's breathing physiology and swallows there (slow rate
        variability 15 % vs 4 % in N2 and amplitude log-SD 0.25 vs 0.12, breath-to-breath
        period/amplitude CV 0.15/0.25 vs 0.05/0.10, totals ~21 %/~35 % as Tobin et al. 1988
        measured awake; swallows at the night's wake rate, 0.21-0.98/min, Bulmer et al. 2021;
        shallower 0.22 vs 0.33 deg, an assumption without a source: quiet wake breathing is
        more irregular and variable than NREM breathing, Bulow 1963, Douglas et al. 1982);
        ``"sleep_breathing"`` gives the block N2 breathing and N2's swallow rate (2/h, Sato &
        Nakashima 2006), an awakening identical to sleep in every signal (the limit of any
        chin sensor).
    drift_1f_dps : float
        SD (deg/s) of a 1/f (pink) drift added to every gyroscope axis (0 = none): sensor
        bias instability and temperature drift of MEMS gyroscopes.
    """

    gyro_noise_dps: float = 0.08
    breathing_rate_mult: float = 1.0
    event_duration_s: tuple[float, float] | None = None
    event_duration_mult: float = 1.0
    obstructive_effort: tuple[float, float] = (1.8, 3.0)
    hypopnea_effort: tuple[float, float] = (1.4, 2.0)
    obstructive_drop_deg: tuple[float, float] = (2.0, 5.0)
    hypopnea_drop_deg: tuple[float, float] = (1.0, 3.0)
    hypopnea_desat_pct: tuple[float, float] = (3.5, 5.0)
    hypopnea_arousal_p: float = 0.5
    wake_block_min: float = 0.0
    sensor_off_min: float = 0.0
    periodic_breathing_min: float = 0.0
    desat_pct: tuple[float, float] | None = None
    nadir_delay_s: tuple[float, float] = (20.0, 20.0)
    arousal_offset_s: tuple[float, float] = (0.0, 0.0)
    breathing_base_hz: tuple[float, float] = (0.22, 0.30)
    breathing_clip_hz: tuple[float, float] = (0.16, 0.58)
    still_wake: str | None = None
    drift_1f_dps: float = 0.0

    def __post_init__(self) -> None:
        if self.gyro_noise_dps < 0 or self.breathing_rate_mult <= 0:
            raise ValueError(f"bad noise/rate settings: {self.gyro_noise_dps}, "
                             f"{self.breathing_rate_mult}")
        if self.event_duration_s is not None and not 0 < self.event_duration_s[0] <= \
                self.event_duration_s[1]:
            raise ValueError(f"event_duration_s must be (lo, hi) with 0 < lo <= hi, got "
                             f"{self.event_duration_s}")
        if self.sensor_off_min < 0 or (self.wake_block_min and self.sensor_off_min
                                        > self.wake_block_min):
            raise ValueError(f"sensor_off_min must be >= 0 and fit in the wake block, got "
                             f"{self.sensor_off_min}")
        if not 0.0 <= self.hypopnea_arousal_p <= 1.0 or self.wake_block_min < 0:
            raise ValueError(f"bad arousal/wake settings: {self.hypopnea_arousal_p}, "
                             f"{self.wake_block_min}")


DEFAULT_SETTINGS = SynthSettings()


@dataclass
class SynthNight:
    """Paths of one synthetic night and its injected truth.

    Attributes
    ----------
    sunrise, psg : Path
        Sunrise EDF+ (6 IMU channels at 25 Hz, optional SpO2/pulse at 1 Hz) and PSG EDF.
    labels : list[Path]
        DOMINO text exports: sleep profile, flow events, arousals, SpO2 desaturations.
    hypnogram : list[str]
        True stage per 30-s epoch from the PSG start (W, N1, N2, N3, REM).
    events : list[tuple[str, float, float]]
        True respiratory events ``(type, onset_s, duration_s)`` from the PSG start; types are
        ``obstructive_apnea``, ``central_apnea``, ``mixed_apnea``, ``hypopnea``.
    tst_min, rdi : float
        True total sleep time (minutes) and events per hour of TST.
    sunrise_offset_s : float
        Sunrise start minus PSG start, seconds.
    """

    sunrise: Path
    psg: Path
    labels: list[Path]
    truth: Path
    hypnogram: list[str]
    events: list[tuple[str, float, float]]
    desaturations: list[tuple[float, float, float]]
    tst_min: float
    rdi: float
    sunrise_offset_s: float
    sunrise_duration_s: float
    psg_duration_s: float
    params: dict = field(default_factory=dict)

    @property
    def ahi(self) -> float:
        """True events per hour of TST: an AHI (the generator makes no RERAs; ``rdi`` is the
        same number under its historical name)."""
        return self.rdi


# --------------------------------------------------------------------------------------------
# Hypnogram
# --------------------------------------------------------------------------------------------


def generate_hypnogram(rng: np.random.Generator, n_epochs: int) -> np.ndarray:
    """Stage codes (0=W, 1=N1, 2=N2, 3=N3, 4=REM) for ``n_epochs`` 30-s epochs."""
    per_min = 60 // EPOCH_S
    hyp = np.full(n_epochs, _W, dtype=np.int8)
    sol = int(np.clip(rng.lognormal(math.log(14), 0.5), 4, 60) * per_min)
    final_wake = int(rng.uniform(4, 20) * per_min)
    end = max(sol + 2, n_epochs - final_wake)
    i = sol
    cycle = 0
    while i < end:
        length = int(np.clip(rng.normal(90, 10), 70, 115) * per_min)
        n1 = int(rng.integers(1, 4)) if cycle == 0 else int(rng.integers(0, 2))
        n3 = int(max(0.0, rng.normal(38 - 14 * cycle, 6)) * per_min)
        rem = int(np.clip(rng.normal(6 + 9 * cycle, 4), 2, 45) * per_min)
        n2a = int(max(8.0, rng.normal(22, 5)) * per_min)
        n2b = max(0, length - n1 - n2a - n3 - rem)
        for code, dur in ((_N1, n1), (_N2, n2a), (_N3, n3), (_N2, n2b), (_REM, rem)):
            j = min(end, i + dur)
            hyp[i:j] = code
            i = j
        cycle += 1
    # Brief awakenings (0.5-3 min) and occasional long WASO bouts, each followed by N1.
    sleep_min = (end - sol) / per_min
    n_brief = rng.poisson(1.2 * sleep_min / 60)
    n_long = rng.poisson(0.15 * sleep_min / 60)
    for dur_range, count in (((1, 7), n_brief), ((10, 40), n_long)):
        for _ in range(count):
            at = int(rng.integers(sol + 4, max(sol + 5, end - 4)))
            dur = int(rng.integers(*dur_range))
            hyp[at : min(end, at + dur)] = _W
            if at + dur < end:
                hyp[at + dur] = _N1
    return hyp


def _insert_wake_block(hyp: np.ndarray, minutes: float) -> tuple[int, int] | None:
    """Force ``minutes`` of wake centred in the sleep period (in place), followed by N1;
    returns the block's epochs ``(first, end)``."""
    sleep = np.flatnonzero(hyp != _W)
    if sleep.size == 0:
        return None
    n = int(round(minutes * 60 / EPOCH_S))
    mid = (int(sleep[0]) + int(sleep[-1])) // 2
    a = max(int(sleep[0]) + 1, mid - n // 2)
    b = min(hyp.size, a + n)
    hyp[a:b] = _W
    if b < sleep[-1]:
        hyp[b] = _N1
    return a, b


def _sensor_off(hyp: np.ndarray, cfg: SynthSettings) -> tuple[int, int]:
    """Seconds from the PSG start ``(start, end)`` of the sensor-off interval: centred in the
    forced wake block when there is one, else in the sleep period."""
    n = int(round(cfg.sensor_off_min * 60))
    # The same centre as _insert_wake_block's (which keeps the sleep period's ends).
    sleep = np.flatnonzero(hyp != _W)
    mid = ((int(sleep[0]) + int(sleep[-1])) // 2 if sleep.size else hyp.size // 2) * EPOCH_S
    return mid - n // 2, mid - n // 2 + n


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass
class _Event:
    type: str
    onset: float
    duration: float
    amp_mult: float  # breathing-band multiplier (jaw effort)
    flow_mult: float  # airflow multiplier (PSG nasal pressure)
    drop_deg: float  # mandible drop
    desat: float  # SpO2 fall, percentage points
    arousal: bool
    arousal_move: float  # movement intensity at the arousal (0 = none)
    nadir_delay: float = 20.0  # SpO2 nadir after the event end, s
    arousal_offset: float = 0.0  # arousal movement start relative to the event end, s


def _place_events(
    rng: np.random.Generator,
    hyp: np.ndarray,
    ahi: float,
    obstructive_fraction: float,
    cfg: SynthSettings = DEFAULT_SETTINGS,
) -> list[_Event]:
    sleep_sec = np.repeat(hyp != _W, EPOCH_S)
    tst_h = sleep_sec.sum() / 3600
    n_target = int(rng.poisson(ahi * tst_h)) if ahi > 0 else 0
    # REM and supine-ish light sleep carry more events; N3 fewer.
    weight = np.repeat(np.array([0.0, 1.0, 1.0, 0.4, 1.6])[hyp], EPOCH_S).astype(float)
    taken = np.zeros(sleep_sec.size, dtype=bool)
    events: list[_Event] = []
    cdf = np.cumsum(weight)
    if n_target == 0 or cdf[-1] <= 0:
        return events
    attempts = 0
    while len(events) < n_target and attempts < n_target * 40:
        attempts += 1
        obstructive = rng.random() < obstructive_fraction
        if obstructive:
            etype = "obstructive_apnea" if rng.random() < 0.4 else "hypopnea"
        else:
            etype = "central_apnea" if rng.random() < 0.85 else "mixed_apnea"
        median = {"obstructive_apnea": 22, "hypopnea": 20, "central_apnea": 16, "mixed_apnea": 24}
        if cfg.event_duration_s is not None:
            dur = float(rng.uniform(*cfg.event_duration_s))
        else:
            m = cfg.event_duration_mult
            dur = float(np.clip(rng.lognormal(math.log(median[etype] * m), 0.35), 10.5, 60 * m))
        onset = float(np.searchsorted(cdf, rng.uniform(0, cdf[-1]))) + rng.uniform(0, 1)
        a, b = int(onset), int(math.ceil(onset + dur))
        # Events live inside sleep with >= 15 s of recovery breathing around them.
        lo, hi = max(0, a - 15), min(sleep_sec.size, b + 15)
        if b + 1 >= sleep_sec.size or not sleep_sec[a:b].all() or taken[lo:hi].any():
            continue
        taken[a:b] = True
        if etype == "obstructive_apnea":
            ev = _Event(etype, onset, dur, rng.uniform(*cfg.obstructive_effort),
                        rng.uniform(0.0, 0.08), rng.uniform(*cfg.obstructive_drop_deg),
                        rng.uniform(4.0, 6.0), rng.random() < 0.8, 0.0)
        elif etype == "hypopnea":
            ev = _Event(etype, onset, dur, rng.uniform(*cfg.hypopnea_effort),
                        rng.uniform(0.35, 0.6), rng.uniform(*cfg.hypopnea_drop_deg),
                        rng.uniform(*cfg.hypopnea_desat_pct),
                        rng.random() < cfg.hypopnea_arousal_p, 0.0)
        elif etype == "central_apnea":
            ev = _Event(etype, onset, dur, rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.08),
                        rng.uniform(0.3, 1.2), rng.uniform(3.5, 5.5), rng.random() < 0.3, 0.0)
        else:
            ev = _Event(etype, onset, dur, 2.0, rng.uniform(0.0, 0.08),
                        rng.uniform(2.0, 4.0), rng.uniform(4.0, 6.0), rng.random() < 0.7, 0.0)
        ev.onset = round(ev.onset, 3)
        ev.duration = round(ev.duration, 3)
        if ev.arousal:
            ev.arousal_move = float(rng.uniform(0.3, 1.5)) if rng.random() < 0.7 else 0.0
        # Widened ranges draw extra numbers only when set, so default nights stay identical.
        if cfg.desat_pct is not None:
            ev.desat = float(rng.uniform(*cfg.desat_pct))
        if cfg.nadir_delay_s != (20.0, 20.0):
            ev.nadir_delay = float(rng.uniform(*cfg.nadir_delay_s))
        if cfg.arousal_offset_s != (0.0, 0.0):
            ev.arousal_offset = float(rng.uniform(*cfg.arousal_offset_s))
        events.append(ev)
    events.sort(key=lambda e: e.onset)
    return events


def _periodic_breathing(rng: np.random.Generator, hyp: np.ndarray, events: list[_Event],
                        cfg: SynthSettings) -> tuple[list[_Event], list[tuple[int, int, float]]]:
    """Cheyne-Stokes stretch (see ``SynthSettings.periodic_breathing_min``): the events list
    without the events inside the stretch plus its central apneas, and the crescendo-
    decrescendo hyperpneas ``(start_s, end_s, peak multiplier)``."""
    sleep_sec = np.repeat((hyp != _W) & (hyp != _REM), EPOCH_S)
    start = int(np.argmax(sleep_sec[sleep_sec.size // 3 :])) + sleep_sec.size // 3
    budget = int(cfg.periodic_breathing_min * 60)  # seconds of periodic breathing wanted
    t = start
    apneas, hyperpneas = [], []
    while budget > 0 and t < sleep_sec.size:
        apnea = float(rng.uniform(10.5, 30.0))
        cycle = float(rng.uniform(45.0, 90.0))
        a, b = t, t + int(math.ceil(apnea))
        c = t + int(cycle)
        if c >= sleep_sec.size:
            break
        if not sleep_sec[a:c].all():
            # Periodic breathing is a NREM pattern: resume at the next NREM stretch.
            later = np.flatnonzero(sleep_sec[c:])
            if not later.size:
                break
            t = c + int(later[0]) + EPOCH_S
            continue
        budget -= c - a
        apneas.append(_Event("central_apnea", float(a), round(apnea, 3), rng.uniform(0.0, 0.15),
                             rng.uniform(0.0, 0.08), rng.uniform(0.3, 1.2), rng.uniform(3.5, 5.5),
                             rng.random() < 0.3, 0.0))
        hyperpneas.append((b, c, float(rng.uniform(1.3, 1.8))))
        t = c
    if not apneas:
        return events, []
    spans = [(ap.onset - 15, hy[1] + 15) for ap, hy in zip(apneas, hyperpneas)]
    kept = [e for e in events
            if not any(e.onset < hi and e.onset + e.duration > lo for lo, hi in spans)]
    return sorted(kept + apneas, key=lambda e: e.onset), hyperpneas


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------


def _ar1(rng: np.random.Generator, n: int, tau_s: float) -> np.ndarray:
    """Unit-variance AR(1) process at 1 Hz with time constant ``tau_s`` (vectorised via lfilter)."""
    a = math.exp(-1.0 / tau_s)
    x = sps.lfilter([math.sqrt(1 - a * a)], [1, -a], rng.standard_normal(n))
    return x


def _boxes(n: int, starts: np.ndarray, lengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-Hz array with ``values`` on [start, start+length) (maximum where boxes overlap)."""
    out = np.zeros(n)
    for s, ln, v in zip(starts.astype(int), lengths.astype(int), values):
        if 0 <= s < n:
            seg = out[s : min(n, s + max(1, ln))]
            np.maximum(seg, v, out=seg)
    return out


def _smooth_steps(x: np.ndarray, ramp_s: int = 3) -> np.ndarray:
    """Soften 1-Hz step changes into linear ramps of ``ramp_s`` seconds."""
    k = np.ones(ramp_s) / ramp_s
    return np.convolve(np.pad(x, (ramp_s // 2, ramp_s - 1 - ramp_s // 2), mode="edge"), k, "valid")


@dataclass
class _Physiology:
    """1-Hz control signals of a night, over the union of both recordings (from the PSG start)."""

    stage: np.ndarray
    rate_hz: np.ndarray
    amp_deg: np.ndarray
    amp_mult: np.ndarray
    flow_mult: np.ndarray
    effort_mult: np.ndarray
    posture_deg: np.ndarray
    roll_deg: np.ndarray
    move: np.ndarray
    spo2: np.ndarray
    pulse: np.ndarray
    breath_t: np.ndarray | None = None  # breath onsets (s from the PSG start)
    breath_amp: np.ndarray | None = None  # per-breath amplitude multiplier
    swallow_t: np.ndarray | None = None  # swallow onsets (s)
    swallow_deg: np.ndarray | None = None  # jaw-closing excursion of each swallow (deg)
    swallow_s: np.ndarray | None = None  # duration of each swallow (s)


def _breaths(rng: np.random.Generator, rate_hz: np.ndarray, stage: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Breath onsets (s) and per-breath amplitude multipliers: each breath lasts 1/rate at its
    onset times (1 + ``_B2B_PERIOD_CV`` x N(0, 1)), its amplitude is log-normal with SD
    ``_B2B_AMP_CV`` (mean 1), both of the stage at the breath's onset."""
    n = rate_hz.size
    mean_period = 1.0 / float(np.mean(rate_hz))
    k_max = int(n / mean_period * 1.6) + 16
    z_p = rng.standard_normal(k_max)
    z_a = rng.standard_normal(k_max + 1)
    onsets = np.empty(k_max)
    t, k = 0.0, 0
    while t < n and k < k_max:
        i = min(n - 1, int(t))
        onsets[k] = t
        t += max(0.4, 1.0 + _B2B_PERIOD_CV[stage[i]] * z_p[k]) / rate_hz[i]
        k += 1
    onsets = np.append(onsets[:k], t)
    cv = _B2B_AMP_CV[stage[np.minimum(n - 1, onsets.astype(int))]]
    return onsets, np.exp(cv * z_a[: onsets.size] - cv * cv / 2)


def _swallows(rng: np.random.Generator, stage: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swallow onsets (s), excursions (deg) and durations (s): Poisson at the stage's rate
    (``_SWALLOW_PER_MIN``; wake at the night's own rate in ``_SWALLOW_WAKE_PER_MIN``)."""
    per_min = _SWALLOW_PER_MIN.copy()
    per_min[_W] = rng.uniform(*_SWALLOW_WAKE_PER_MIN)
    t = np.flatnonzero(rng.random(stage.size) < per_min[stage] / 60.0).astype(float)
    t += rng.random(t.size)
    return t, rng.uniform(*_SWALLOW_DEG, t.size), rng.uniform(*_SWALLOW_S, t.size)


@dataclass
class _EventEffects:
    """1-Hz multipliers and offsets the scored events (and Cheyne-Stokes cycles) impose, and the
    arousal movements they end with (start s, length s, magnitude)."""

    amp_mult: np.ndarray
    flow_mult: np.ndarray
    effort_mult: np.ndarray
    drop: np.ndarray  # mandible drop, deg
    spo2_drop: np.ndarray  # SpO2 fall, percentage points
    move_starts: list = field(default_factory=list)
    move_len: list = field(default_factory=list)
    move_val: list = field(default_factory=list)


def _stages(hyp: np.ndarray, n_sec: int, cfg: SynthSettings, still: tuple[int, int] | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per-second true stage and breathing stage (N2 over a still wake block made identical to
    sleep, else the true stage)."""
    stage = np.repeat(hyp, EPOCH_S)
    stage = np.concatenate([stage, np.full(max(0, n_sec - stage.size), _W, dtype=np.int8)])[:n_sec]
    true_stage = stage
    if still is not None and cfg.still_wake == "sleep_breathing":
        stage = stage.copy()  # breathing (rate, amplitude, posture) as in N2
        stage[still[0] * EPOCH_S : still[1] * EPOCH_S] = _N2
    return true_stage, stage


def _breathing(rng: np.random.Generator, stage: np.ndarray, n_sec: int, cfg: SynthSettings
               ) -> tuple[np.ndarray, np.ndarray]:
    """1-Hz breathing rate (Hz) and amplitude (deg) of the stage, with slow AR(1) variability."""
    m = cfg.breathing_rate_mult
    base_rate = rng.uniform(*cfg.breathing_base_hz) * m
    rate = base_rate * _RATE_MULT[stage] * (1 + _RATE_SD[stage] * _ar1(rng, n_sec, 40))
    rate = np.clip(rate, cfg.breathing_clip_hz[0] * m, cfg.breathing_clip_hz[1] * m)
    amp_night = rng.lognormal(0.0, 0.2)
    amp = amp_night * _AMP_DEG[stage] * np.exp(_AMP_SD[stage] * _ar1(rng, n_sec, 20))
    return rate, amp


def _event_effects(rng: np.random.Generator, events: list[_Event], n_sec: int) -> _EventEffects:
    """What each event does to breathing, effort, the mandible and SpO2, second by second."""
    fx = _EventEffects(np.ones(n_sec), np.ones(n_sec), np.ones(n_sec), np.zeros(n_sec),
                       np.zeros(n_sec))
    amp_mult, flow_mult, effort_mult, drop = fx.amp_mult, fx.flow_mult, fx.effort_mult, fx.drop
    for ev in events:
        a, b = int(round(ev.onset)), int(round(ev.onset + ev.duration))
        if ev.type == "mixed_apnea":
            mid = a + int(0.4 * (b - a))
            amp_mult[a:mid] = 0.1
            amp_mult[mid:b] = ev.amp_mult
            effort_mult[a:mid] = 0.05
            effort_mult[mid:b] = 1.5
            drop[mid:b] = ev.drop_deg
        else:
            amp_mult[a:b] = ev.amp_mult
            effort_mult[a:b] = 0.05 if ev.type == "central_apnea" else 1.4
            drop[a:b] = ev.drop_deg
        flow_mult[a:b] = ev.flow_mult
        # Recovery breaths after the event: a few larger breaths.
        amp_mult[b : b + 8] = np.maximum(amp_mult[b : b + 8], 1.5)
        flow_mult[b : b + 8] = 1.6
        # Desaturation: fall from onset + delay to the nadir at end + delay (delay 20 s by
        # default, ``nadir_delay_s``), recover over ~15 s.
        nd = int(round(ev.nadir_delay))
        t = np.arange(a + nd, min(n_sec, b + nd + 16))
        shape = np.where(t <= b + nd, (t - a - nd) / max(1, b - a), 1 - (t - b - nd) / 15)
        np.maximum.at(fx.spo2_drop, t, ev.desat * np.clip(shape, 0, 1))
        if ev.arousal and ev.arousal_move > 0:
            fx.move_starts.append(b + int(round(ev.arousal_offset)))
            fx.move_len.append(rng.integers(3, 10))
            fx.move_val.append(ev.arousal_move)
    return fx


def _cheyne_stokes(fx: _EventEffects, hyperpneas: list[tuple[int, int, float]]) -> None:
    """Crescendo-decrescendo ventilation between the periodic central apneas (in place)."""
    for a, b, peak in hyperpneas:
        hump = np.sin(np.pi * (np.arange(b - a) + 0.5) / max(1, b - a))
        fx.amp_mult[a:b] = 0.3 + (peak - 0.3) * hump
        fx.flow_mult[a:b] = 0.3 + (peak - 0.3) * hump


def _movement(rng: np.random.Generator, stage: np.ndarray, n_sec: int, fx: _EventEffects,
              cfg: SynthSettings, still: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """1-Hz movement magnitude and the per-second wake mask: bursts frequent in wake (quiet-wake
    bouts have few), rare in sleep, REM twitches, the events' arousal movements."""
    wake = stage == _W
    bout_id = np.cumsum(np.diff(wake.astype(int), prepend=0) == 1)
    quiet_bout = rng.random(bout_id.max() + 2) < 0.3
    burst_rate = np.select(
        [wake & quiet_bout[bout_id], wake, stage == _REM, stage == _N1],
        [0.4 / 60, 3.5 / 60, 0.3 / 60, 0.5 / 60],
        default=0.15 / 60,
    )
    starts = np.flatnonzero(rng.random(n_sec) < burst_rate)
    lengths = rng.integers(1, 10, starts.size)
    values = rng.lognormal(math.log(0.8), 0.6, starts.size) * np.where(wake[starts], 1.0, 0.5)
    twitch = (stage == _REM) & (rng.random(n_sec) < 2.0 / 60)
    move = _boxes(n_sec, np.concatenate([starts, fx.move_starts]),
                  np.concatenate([lengths, fx.move_len]), np.concatenate([values, fx.move_val]))
    move = np.maximum(move, twitch * 0.08)
    # Restless micro-movement (jaw tone, small swallows) while awake, absent in quiet wake.
    move = np.maximum(move, np.where(wake, np.where(quiet_bout[bout_id], 0.004, 0.03), 0.0))
    if still is not None and cfg.still_wake:
        move[still[0] * EPOCH_S : still[1] * EPOCH_S] = 0.0  # lying still, awake
    return move, wake


def _head_roll(rng: np.random.Generator, move: np.ndarray, n_sec: int) -> np.ndarray:
    """Body position (head roll, deg): changes happen during movement bursts, mostly awake."""
    roll = np.zeros(n_sec)
    current = rng.choice([0.0, -65.0, 65.0])
    big = np.flatnonzero(move > 0.8)
    change_at = big[rng.random(big.size) < 0.04]
    last = 0
    for c in change_at:
        roll[last:c] = current
        current = rng.choice([0.0, -65.0, 65.0, 25.0, -25.0]) + rng.normal(0, 6)
        last = c
    roll[last:] = current
    return roll


def _oximetry(rng: np.random.Generator, stage: np.ndarray, wake: np.ndarray,
              spo2_drop: np.ndarray, n_sec: int) -> tuple[np.ndarray, np.ndarray]:
    """1-Hz SpO2 (%) and pulse (bpm): the night's baseline, slow drift, the events' falls."""
    baseline_spo2 = rng.uniform(94.5, 97.5)
    spo2 = baseline_spo2 + 0.4 * _ar1(rng, n_sec, 300) - spo2_drop - 0.5 * (stage == _REM)
    pulse = rng.uniform(55, 70) + 6 * wake + 3 * (stage == _REM) + 2 * _ar1(rng, n_sec, 60)
    pulse = pulse + 8 * np.convolve(spo2_drop > 0, np.ones(10) / 10, "same")
    return spo2, pulse


def _physiology(
    rng: np.random.Generator, hyp: np.ndarray, events: list[_Event], n_sec: int,
    cfg: SynthSettings = DEFAULT_SETTINGS, hyperpneas: list[tuple[int, int, float]] = (),
    still: tuple[int, int] | None = None,
) -> _Physiology:
    """The night's 1-Hz control signals from its hypnogram, events and Cheyne-Stokes cycles."""
    # The steps draw from ``rng`` in this order; changing it changes every night.
    true_stage, stage = _stages(hyp, n_sec, cfg, still)
    rate, amp = _breathing(rng, stage, n_sec, cfg)
    fx = _event_effects(rng, events, n_sec)
    _cheyne_stokes(fx, hyperpneas)
    move, wake = _movement(rng, stage, n_sec, fx, cfg, still)
    roll = _head_roll(rng, move, n_sec)
    posture = _smooth_steps(_POSTURE_DEG[stage] + fx.drop, 3) + 0.15 * _ar1(rng, n_sec, 120)
    spo2, pulse = _oximetry(rng, stage, wake, fx.spo2_drop, n_sec)
    # Breath-to-breath variability and swallows from their own stream (spawned, so the draws
    # above stay what they were): ``stage`` is the breathing stage (N2 in a still wake block
    # made identical to sleep, whose swallows are then N2's too).
    own = rng.spawn(1)[0]
    breath_t, breath_amp = _breaths(own, rate, stage)
    sw_t, sw_deg, sw_s = _swallows(own, stage)
    return _Physiology(true_stage, rate, amp, _smooth_steps(fx.amp_mult, 3),
                       _smooth_steps(fx.flow_mult, 3), _smooth_steps(fx.effort_mult, 3), posture,
                       _smooth_steps(roll, 4), move, spo2, pulse, breath_t, breath_amp, sw_t,
                       sw_deg, sw_s)


def _upsample(x: np.ndarray, fs: int) -> np.ndarray:
    """1-Hz control signal to ``fs`` Hz by linear interpolation (sample k at t = k/fs)."""
    t = np.arange(x.size * fs) / fs
    return np.interp(t, np.arange(x.size), x)


def _band_noise(rng: np.random.Generator, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    sos = sps.butter(2, [lo, hi], btype="band", fs=fs, output="sos")
    x = sps.sosfilt(sos, rng.standard_normal(n))
    return x / (x.std() + 1e-12)


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-SD 1/f noise (power ~ 1/f, shaped in the frequency domain)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / (x.std() + 1e-12)


def _breath_phase(ph: _Physiology, fs: int, start_s: int, n: int) -> np.ndarray:
    """Breathing phase (rad) at ``fs`` for [start, start + n/fs): 2 pi per breath, advancing
    evenly within each breath of ``ph.breath_t``."""
    t = start_s + np.arange(n) / fs
    return 2 * np.pi * np.interp(t, ph.breath_t, np.arange(ph.breath_t.size))


def _breath_amp(ph: _Physiology, fs: int, start_s: int, n: int) -> np.ndarray:
    """Per-breath amplitude multiplier at ``fs``, interpolated between breath centres."""
    t = start_s + np.arange(n) / fs
    centres = (ph.breath_t[:-1] + ph.breath_t[1:]) / 2
    return np.interp(t, centres, ph.breath_amp[: centres.size])


def _swallow_angle(ph: _Physiology, fs: int, start_s: int, n: int) -> np.ndarray:
    """Jaw-closing excursion of the swallows (deg, negative = closing), raised-cosine pulses."""
    out = np.zeros(n)
    for t0, deg, dur in zip(ph.swallow_t, ph.swallow_deg, ph.swallow_s):
        a = int(round((t0 - start_s) * fs))
        m = int(round(dur * fs))
        if a + m <= 0 or a >= n:
            continue
        pulse = -deg * 0.5 * (1 - np.cos(2 * np.pi * np.arange(m) / m))
        lo, hi = max(0, a), min(n, a + m)
        out[lo:hi] += pulse[lo - a : hi - a]
    return out


def _imu(
    rng: np.random.Generator, ph: _Physiology, start_s: int, dur_s: int,
    gyro_noise_dps: float = DEFAULT_SETTINGS.gyro_noise_dps,
    off: tuple[int, int] | None = None, drift_1f_dps: float = 0.0,
) -> dict[str, np.ndarray]:
    """Sunrise IMU (accelerometer in g, gyroscope in deg/s) at ``IMU_FS`` for [start, start+dur).

    ``off``: seconds (from the PSG start) during which the sensor lies on a table: gravity in
    a fixed orientation, sensor noise and gyroscope bias only.
    """
    fs = IMU_FS
    n = dur_s * fs
    sl = slice(start_s, start_s + dur_s + 1)

    def up(x: np.ndarray) -> np.ndarray:
        return _upsample(np.append(x[sl], x[sl][-1:]), fs)[:n]

    phase = _breath_phase(ph, fs, start_s, n)
    breath = np.sin(phase) + 0.25 * np.sin(2 * phase + 0.5)
    amp = up(ph.amp_deg * ph.amp_mult) * _breath_amp(ph, fs, start_s, n)
    move = up(ph.move)
    # Mandible pitch (deg): posture + breathing + swallows + slow non-respiratory
    # micro-movement + movement.
    theta = up(ph.posture_deg) + amp * breath + _swallow_angle(ph, fs, start_s, n)
    theta += 0.04 * _band_noise(rng, n, fs, 0.05, 1.0)
    mv = [_band_noise(rng, n, fs, 0.4, 6.0) for _ in range(3)]
    theta += 3.0 * move * mv[0]
    roll = up(ph.roll_deg) + 3.0 * move * mv[1] + 0.1 * amp * breath
    yaw = 3.0 * move * mv[2]
    alpha0 = rng.uniform(20, 45)  # head pitch (neck flexion + sensor mounting), degrees
    a = np.deg2rad(alpha0 + theta)
    r = np.deg2rad(roll)
    lin = [0.04 * move * _band_noise(rng, n, fs, 1.0, 10.0) for _ in range(3)]
    acc = [
        -np.sin(a) + lin[0],
        np.cos(a) * np.sin(r) + lin[1],
        np.cos(a) * np.cos(r) + lin[2],
    ]
    acc = [x + 0.0015 * rng.standard_normal(n) for x in acc]
    gyro = [
        np.gradient(roll) * fs,
        np.gradient(theta) * fs,
        np.gradient(yaw) * fs,
    ]
    if off is not None:
        a0, b0 = (max(0, (t - start_s) * fs) for t in off)
        table = np.deg2rad(rng.uniform(-10, 10, 2))  # lying roughly flat, a little tilted
        still = (np.sin(table[0]), np.cos(table[0]) * np.sin(table[1]),
                 np.cos(table[0]) * np.cos(table[1]))
        for k in range(3):
            acc[k][a0:b0] = still[k] + 0.0015 * rng.standard_normal(max(0, min(n, b0) - a0))
            gyro[k][a0:b0] = 0.0
    bias = rng.normal(0, 0.3, 3)
    gyro = [g + b + gyro_noise_dps * rng.standard_normal(n) for g, b in zip(gyro, bias)]
    if drift_1f_dps > 0:
        gyro = [g + drift_1f_dps * _pink(rng, n) for g in gyro]
    return {
        "Accel X": acc[0], "Accel Y": acc[1], "Accel Z": acc[2],
        "Gyro X": gyro[0], "Gyro Y": gyro[1], "Gyro Z": gyro[2],
    }


def _psg_signals(
    rng: np.random.Generator, ph: _Physiology, dur_s: int
) -> list[tuple[str, str, int, np.ndarray, tuple[float, float]]]:
    """Plausible PSG channels for psg_prep (content is illustrative, not a staging model)."""
    st = ph.stage[:dur_s]
    out = []
    # EEG C4-A1, 100 Hz (uV): alpha in wake, theta in N1/REM, spindles in N2, delta in N3.
    fs = 100
    n = dur_s * fs
    t = np.arange(n) / fs
    s100 = np.repeat(st, fs)
    alpha = np.where(s100 == _W, 20.0, 3.0) * np.sin(2 * np.pi * 10 * t)
    theta = np.where((s100 == _N1) | (s100 == _REM), 15.0, 4.0) * np.sin(2 * np.pi * 5.5 * t)
    delta = np.select([s100 == _N3, s100 == _N2], [70.0, 20.0], 5.0) * np.sin(2 * np.pi * 1.1 * t)
    spindle = np.where(s100 == _N2, 10.0, 0.0) * np.sin(2 * np.pi * 13 * t) * (
        np.sin(2 * np.pi * 0.05 * t) > 0.9)
    eeg = alpha + theta + delta + spindle + 8 * rng.standard_normal(n)
    out.append(("EEG C4-A1", "uV", fs, eeg, (-500.0, 500.0)))
    # EOG and chin EMG, 50 Hz (uV).
    fs = 50
    n = dur_s * fs
    s50 = np.repeat(st, fs)
    eog = np.where((s50 == _REM) | (s50 == _W), 60.0, 10.0) * _band_noise(rng, n, fs, 0.3, 3)
    out.append(("EOG E1-M2", "uV", fs, eog, (-500.0, 500.0)))
    emg_amp = np.select([s50 == _W, s50 == _REM], [20.0, 2.0], 8.0) + 40 * np.repeat(
        ph.move[:dur_s], fs)
    out.append(("EMG Chin", "uV", fs, emg_amp * rng.standard_normal(n), (-500.0, 500.0)))
    # Nasal pressure flow and effort belts, 25 Hz (arbitrary units).
    fs = 25
    n = dur_s * fs
    phase = _breath_phase(ph, fs, 0, n)
    flow = _upsample(ph.flow_mult[: dur_s + 1], fs)[:n] * _breath_amp(ph, fs, 0, n) * np.sin(phase)
    out.append(("Flow", "a.u.", fs, flow + 0.03 * rng.standard_normal(n), (-5.0, 5.0)))
    eff = _upsample(ph.effort_mult[: dur_s + 1], fs)[:n]
    paradox = np.where(eff > 1.2, np.pi * 0.8, 0.0)
    out.append(("Thorax", "a.u.", fs, eff * np.sin(phase), (-5.0, 5.0)))
    out.append(("Abdomen", "a.u.", fs, eff * np.sin(phase + paradox), (-5.0, 5.0)))
    spo2 = np.round(np.clip(ph.spo2[:dur_s] + 0.3 * rng.standard_normal(dur_s), 50, 100))
    out.append(("SpO2", "%", 1, spo2, (0.0, 100.0)))
    return out


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------


def _write_edf(path: Path, channels: Iterable[tuple[str, str, float, np.ndarray, tuple[float, float]]], start: datetime,
               code: str, equipment: str, annotations: Iterable[tuple[float, float | None, str]] = ()) -> None:
    import edfio  # CLI dependency; the services never import it

    signals = [
        # Sensors saturate at their range: clip like the hardware does.
        edfio.EdfSignal(np.clip(np.asarray(data, dtype=np.float64), *rng_), fs, label=label,
                        physical_dimension=unit, physical_range=rng_)
        for label, unit, fs, data, rng_ in channels
    ]
    edf = edfio.Edf(
        signals,
        patient=edfio.Patient(code=code, sex="F", birthdate=BIRTHDATE, name=PATIENT_NAME),
        recording=edfio.Recording(startdate=start.date(), hospital_administration_code="LAB-7",
                                  investigator_technician_code="Tech_Smith",
                                  equipment_code=equipment),
        starttime=start.time(),
        data_record_duration=1.0,
        annotations=[edfio.EdfAnnotation(*a) for a in annotations] or None,
    )
    edf.write(path)


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M:%S,") + f"{t.microsecond // 1000:03d}"


def _domino_header(signal_id: str, start: datetime, unit: str, kind: str,
                   events_list: str | None = None, rate: str | None = None) -> list[str]:
    lines = [f"Signal ID: {signal_id}", f"Start Time: {start.strftime('%d.%m.%Y %H:%M:%S')}",
             f"Unit: {unit}", f"Signal Type: {kind}"]
    if events_list:
        lines.append(f"Events list: {events_list}")
    if rate:
        lines.append(f"Rate: {rate}")
    return [*lines, ""]


def _write_domino_events(path: Path, signal_id: str, start: datetime,
                         rows: list[tuple[float, float, str]]) -> None:
    lines = _domino_header(signal_id, start, "s", "Impuls")
    for onset, dur, label in rows:
        a = start + timedelta(seconds=onset)
        b = start + timedelta(seconds=onset + dur)
        lines.append(f"{_clock(a)}-{_clock(b)}; {int(round(dur))};{label}")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="latin-1")


def write_domino_labels(out_dir: Path, stem: str, start: datetime, hypnogram: list[str],
                        events: list[tuple[str, float, float]],
                        arousals: list[tuple[float, float]] = (),
                        desaturations: list[tuple[float, float, float]] = ()) -> list[Path]:
    """Write DOMINO text exports (sleep profile, flow events, arousals, SpO2 events).

    The sleep profile uses the older time-only layout (``22:30:00,000; Wake``), rolling over
    midnight, one row per 30-s epoch from ``start``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = _domino_header("SchlafProfil\\profil", start, "", "Discret",
                           "N4,N3,N2,N1,REM,Wake,Movement", "30 s")
    for i, stage in enumerate(hypnogram):
        lines.append(f"{_clock(start + timedelta(seconds=EPOCH_S * i))}; {DOMINO_STAGE[stage]}")
    profile = out_dir / f"Sleep profile - {stem}.txt"
    profile.write_text("\r\n".join(lines) + "\r\n", encoding="latin-1")
    flow = out_dir / f"Flow Events - {stem}.txt"
    _write_domino_events(flow, "FlowD\\flow", start,
                         [(o, d, DOMINO_EVENT[t]) for t, o, d in events])
    paths = [profile, flow]
    if arousals:
        p = out_dir / f"Classification Arousals - {stem}.txt"
        _write_domino_events(p, "KorrelationMA\\MAK", start,
                             [(o, d, "Respiratory Arousal (EEG)") for o, d in arousals])
        paths.append(p)
    if desaturations:
        p = out_dir / f"SpO2 Events - {stem}.txt"
        _write_domino_events(p, "SpO2\\desat", start,
                             [(o, d, "Desaturation") for o, d, _ in desaturations])
        paths.append(p)
    return paths


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def synth_night(
    out_dir: Path,
    *,
    seed: int,
    hours: float = 8.0,
    ahi: float = 15.0,
    obstructive_fraction: float = 0.8,
    with_spo2: bool = True,
    start: datetime = datetime(2024, 3, 5, 22, 30),
    settings: SynthSettings = DEFAULT_SETTINGS,
) -> SynthNight:
    """Generate one paired night into ``out_dir`` (created) and return its paths and truth.

    Parameters
    ----------
    seed : int
        Random seed; the same seed gives byte-identical files.
    hours : float
        PSG duration (lights-off to lights-on), hours.
    ahi : float
        Target event rate per hour of true TST (the realised count is Poisson around it).
    obstructive_fraction : float
        Probability that an event is obstructive-type (obstructive apnea or hypopnea) rather
        than central-type (central or mixed apnea).
    with_spo2 : bool
        Whether the Sunrise EDF+ carries SpO2 and pulse (1 Hz).
    settings : SynthSettings
        Physiological and sensor settings; the defaults are the model of docs/science.md §1.
        With the defaults the output is identical to what it was before settings existed.
    """
    if hours <= 0.25:
        raise ValueError(f"hours must be > 0.25, got {hours}")
    if not 0.0 <= obstructive_fraction <= 1.0:
        raise ValueError(f"obstructive_fraction must be in [0, 1], got {obstructive_fraction}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    psg_dur = int(round(hours * 3600 / EPOCH_S)) * EPOCH_S
    n_epochs = psg_dur // EPOCH_S
    hyp = generate_hypnogram(rng, n_epochs)
    block = _insert_wake_block(hyp, settings.wake_block_min) if settings.wake_block_min > 0 \
        else None
    events = _place_events(rng, hyp, ahi, obstructive_fraction, settings)
    hyperpneas: list[tuple[int, int, float]] = []
    if settings.periodic_breathing_min > 0:
        events, hyperpneas = _periodic_breathing(rng, hyp, events, settings)
    offset = int(rng.integers(60, 301))
    sunrise_dur = psg_dur - offset + int(rng.integers(60, 301))
    n_sec = max(psg_dur, offset + sunrise_dur) + 2
    hyp_full = np.concatenate([hyp, np.full(n_sec // EPOCH_S + 1 - hyp.size, _W, np.int8)])
    ph = _physiology(rng, hyp_full, events, n_sec, settings, hyperpneas,
                     block if settings.still_wake else None)
    off = _sensor_off(hyp, settings) if settings.sensor_off_min > 0 else None
    if off is not None:
        for t in off:  # taking the sensor off and putting it back: a movement burst
            ph.move[max(0, t - 4) : t + 4] = np.maximum(ph.move[max(0, t - 4) : t + 4], 1.2)

    code = f"SYN-{seed:04d}"
    imu = _imu(rng, ph, offset, sunrise_dur, settings.gyro_noise_dps, off, settings.drift_1f_dps)
    channels = [(label, "g" if label.startswith("Accel") else "deg/s", IMU_FS, data,
                 (-4.0, 4.0) if label.startswith("Accel") else (-500.0, 500.0))
                for label, data in imu.items()]
    if with_spo2:
        sp = ph.spo2[offset : offset + sunrise_dur] + 0.3 * rng.standard_normal(sunrise_dur)
        channels.append(("SpO2", "%", SPO2_FS, np.round(np.clip(sp, 50, 100)), (0.0, 100.0)))
        channels.append(("Pulse", "bpm", SPO2_FS,
                         np.round(ph.pulse[offset : offset + sunrise_dur]), (0.0, 250.0)))
    sunrise_start = start + timedelta(seconds=offset)
    sunrise_path = out_dir / "sunrise.edf"
    _write_edf(sunrise_path, channels, sunrise_start, code, "SunriseSim",
               annotations=[(0.0, None, "Sensor on - Tech_Smith, patient Jane_Synthetic")])
    psg_path = out_dir / "psg.edf"
    _write_edf(psg_path, _psg_signals(rng, ph, psg_dur), start, code, "SunriseSim")

    stages = [STAGE_CODES[s] for s in hyp]
    truth_events = [(e.type, e.onset, e.duration) for e in events]
    arousals = [(round(e.onset + e.duration, 3), 5.0) for e in events if e.arousal]
    desats = [(round(e.onset + e.nadir_delay, 3), round(e.duration, 3), round(e.desat, 2))
              for e in events if e.onset + e.duration + e.nadir_delay < psg_dur]
    labels = write_domino_labels(out_dir / "labels", code, start, stages, truth_events,
                                 arousals, desats)
    tst_min = float(np.sum(hyp != _W)) * EPOCH_S / 60
    rdi = len(events) / (tst_min / 60) if tst_min > 0 else 0.0
    params = {"seed": seed, "hours": hours, "ahi": ahi, "obstructive_fraction": obstructive_fraction,
              "with_spo2": with_spo2, "start": start.isoformat(), "imu_fs": IMU_FS,
              "settings": asdict(settings), "sensor_off_s": list(off) if off else None}
    night = SynthNight(sunrise_path, psg_path, labels, out_dir / "truth.json", stages,
                       truth_events, desats, tst_min, rdi, float(offset), float(sunrise_dur),
                       float(psg_dur), params)
    truth = {k: v for k, v in asdict(night).items() if k not in ("sunrise", "psg", "labels", "truth")}
    truth["files"] = {"sunrise": sunrise_path.name, "psg": psg_path.name,
                      "labels": [str(p.relative_to(out_dir)) for p in labels]}
    night.truth.write_text(json.dumps(truth, indent=1))
    return night


def synth_batch(out_dir: Path, n: int, seed: int, *, hours: float = 8.0,
                with_spo2: bool = True, settings: SynthSettings = DEFAULT_SETTINGS,
                obstructive_fraction: float | None = None) -> list[SynthNight]:
    """``n`` nights with varied severity (AHI spread over 0-60, mixed obstructive fractions).

    Night ``i`` goes to ``out_dir/night-{i:03d}`` with seed ``seed * 1000 + i``.
    ``obstructive_fraction`` fixes the fraction for every night (default: U(0.5, 1.0) each).
    """
    rng = np.random.default_rng(seed)
    ahis = np.linspace(0, 60, n) if n > 1 else np.array([15.0])
    rng.shuffle(ahis)
    nights = []
    for i in range(n):
        nights.append(synth_night(
            Path(out_dir) / f"night-{i:03d}", seed=seed * 1000 + i, hours=hours,
            ahi=float(ahis[i]), obstructive_fraction=float(rng.uniform(0.5, 1.0))
            if obstructive_fraction is None else obstructive_fraction,
            with_spo2=with_spo2, settings=settings))
    return nights


def cut_gap(path: Path, onset_s: float, duration_s: float, *, zero_fill: bool = False) -> None:
    """Make an EDF+C recording lose ``[onset_s, onset_s + duration_s)`` (seconds from its start).

    ``zero_fill=False``: the records are dropped and the file becomes **EDF+D**; every remaining
    record keeps its time-keeping TAL, i.e. its true onset (a device that stops recording while
    the sensor is off and resumes later). ``zero_fill=True``: the records stay and every ordinary
    signal reads physical 0 there (a device that pads a dropout with zeros). Whole records only
    (``onset_s`` and ``duration_s`` are rounded to records). The file is rewritten in place.
    """
    from sunrise_common.edf import read_header

    path = Path(path)
    header = read_header(path)
    if header.plus != "C":
        raise ValueError(f"cut_gap needs an EDF+C file, got plus={header.plus}")
    rd = header.record_duration
    r0, n = int(round(onset_s / rd)), int(round(duration_s / rd))
    if not (0 < r0 and n > 0 and r0 + n < header.n_records):
        raise ValueError(f"gap records {r0}..{r0 + n} must lie inside 1..{header.n_records - 1}")
    raw = bytearray(path.read_bytes())
    hb, rb = header.header_bytes, header.record_bytes
    if zero_fill:
        for i in header.ordinary_indices:
            sig = header.signals[i]
            digital = int(np.clip(round(-sig.offset / sig.gain), sig.digital_min, sig.digital_max))
            block = np.full(sig.samples_per_record, digital, dtype="<i2").tobytes()
            sl = header.signal_slice(i)
            for r in range(r0, r0 + n):
                base = hb + r * rb
                raw[base + sl.start : base + sl.stop] = block
        path.write_bytes(bytes(raw))
        return
    data = raw[hb : hb + r0 * rb] + raw[hb + (r0 + n) * rb : hb + header.n_records * rb]
    head = bytearray(raw[:hb])
    head[192:236] = b"EDF+D".ljust(44)
    head[236:244] = str(header.n_records - n).encode().ljust(8)
    path.write_bytes(bytes(head) + bytes(data))


def write_truth_labels(night: SynthNight, out_dir: Path) -> Path:
    """Write the injected truth in psg_prep's output layout (a stand-in, named as such).

    ``meta.json`` (``start_offset_s``, ``duration_s``, ``epoch_s``, ``n_epochs``, ``source``),
    ``hypnogram.csv`` (``epoch,onset_s,stage``) and ``events.csv``
    (``type,onset_s,duration_s,channel,nadir,label``), onsets from the PSG start. Lets sunalgo
    be scored against the generator's truth without going through psg_prep.
    """
    import csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.fromisoformat(night.params["start"])
    offset = time_of_day_offset_s(start.hour, start.minute, start.second)
    meta = {"kind": "psg", "source": "synth-truth", "start_offset_s": float(offset),
            "duration_s": night.psg_duration_s, "epoch_s": EPOCH_S,
            "n_epochs": len(night.hypnogram)}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    with (out_dir / "hypnogram.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "onset_s", "stage"])
        for i, s in enumerate(night.hypnogram):
            w.writerow([i, i * EPOCH_S, s])
    with (out_dir / "events.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "onset_s", "duration_s", "channel", "nadir", "label"])
        for t, o, d in night.events:
            w.writerow([t, o, d, "Flow", "", DOMINO_EVENT[t]])
        for o, d, drop in night.desaturations:
            w.writerow(["desaturation", o, d, "SpO2", "", f"Desaturation {drop:.1f}%"])
    return out_dir
