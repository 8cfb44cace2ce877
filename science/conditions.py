"""The robustness conditions (issue 12): shifted generator settings, one ``Condition`` each.

Every condition is a :class:`sunrise_cli.synth.SynthSettings` plus night length, oximetry and
event mix. Only the generator reads these; the detector (``sunalgo``, ``sunrise_prep``) sees the
EDF files alone. The gyroscope noise multiples refer to the generator's default (0.08 deg/s per
axis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sunrise_cli.synth import DEFAULT_SETTINGS, SynthSettings

_NOISE = DEFAULT_SETTINGS.gyro_noise_dps


@dataclass(frozen=True)
class Condition:
    """One row of the robustness table.

    Attributes
    ----------
    name : str
        Short identifier (table row).
    description : str
        What is shifted, in the generator's terms.
    settings : SynthSettings
        Generator settings of the condition.
    hours : float
        PSG duration (lights-off to lights-on), hours.
    with_spo2 : bool
        Whether the Sunrise recording carries oximetry.
    obstructive_fraction : float
        Probability that an event is obstructive-type.
    ahi : float or None
        Fixed target AHI of every night (None: spread over 5-45/h); 0 = event-free nights,
        where false events per hour of sleep are the figure.
    gap : {None, "zero", "edfplus_d"}
        20 minutes in the middle of the Sunrise recording lost: zero-filled, or cut out as an
        EDF+D gap (``sunrise_cli.synth.cut_gap``).
    wake_target : bool
        The condition carries still wake with wake's breathing physiology: wake specificity
        must reach 0.65 (the published jaw-sensor figure, Senny 2012, Chakar 2017).
    """

    name: str
    description: str
    settings: SynthSettings = field(default_factory=SynthSettings)
    hours: float = 8.0
    with_spo2: bool = True
    obstructive_fraction: float = 0.8
    ahi: float | None = None
    gap: str | None = None
    wake_target: bool = False


CONDITIONS: tuple[Condition, ...] = (
    Condition("default", "the generator's documented model (reference row)"),
    Condition("gyro_noise_x2", f"gyroscope noise x2 ({2 * _NOISE:.2f} deg/s per axis)",
              SynthSettings(gyro_noise_dps=2 * _NOISE)),
    Condition("gyro_noise_x3", f"gyroscope noise x3 ({3 * _NOISE:.2f} deg/s per axis)",
              SynthSettings(gyro_noise_dps=3 * _NOISE)),
    Condition("gyro_noise_x5", f"gyroscope noise x5 ({5 * _NOISE:.2f} deg/s per axis)",
              SynthSettings(gyro_noise_dps=5 * _NOISE)),
    Condition("breathing_x0.7", "breathing rate x0.7 (base 0.15-0.21 Hz)",
              SynthSettings(breathing_rate_mult=0.7)),
    Condition("breathing_x1.6", "breathing rate x1.6 (base 0.35-0.48 Hz)",
              SynthSettings(breathing_rate_mult=1.6)),
    Condition("events_10-12s", "event durations uniform 10-12 s",
              SynthSettings(event_duration_s=(10.0, 12.0))),
    Condition("events_x1.8", "event durations x1.8 (medians 29-43 s, up to 108 s)",
              SynthSettings(event_duration_mult=1.8)),
    Condition("weak_obstructive", "obstructive effort x1.15-1.45, jaw drop 0.5-1.2 deg",
              SynthSettings(obstructive_effort=(1.15, 1.45), hypopnea_effort=(1.15, 1.45),
                            obstructive_drop_deg=(0.5, 1.2), hypopnea_drop_deg=(0.5, 1.2))),
    Condition("arousal_hypopneas", "every hypopnea ends in an arousal, desaturation 1-2.8 %",
              SynthSettings(hypopnea_desat_pct=(1.0, 2.8), hypopnea_arousal_p=1.0)),
    Condition("no_oximetry", "Sunrise recording without SpO2/pulse", with_spo2=False),
    Condition("wake_60min", "60 min of wake forced mid-night",
              SynthSettings(wake_block_min=60.0)),
    Condition("night_2h", "2-h recording", hours=2.0),
    Condition("night_12h", "12-h recording", hours=12.0),
    Condition("all_central", "every event central-type (central or mixed apnea)",
              obstructive_fraction=0.0),
    # Issue 24: recordings as they really come.
    Condition("gap_zero_20min", "20 min mid-recording zero-filled (dropout padded with 0)",
              gap="zero"),
    Condition("gap_edfplus_d_20min", "20 min mid-recording cut out as an EDF+D gap",
              gap="edfplus_d"),
    Condition("sensor_off_asleep", "sensor on the bedside table for 20 min while asleep",
              SynthSettings(sensor_off_min=20.0)),
    Condition("sensor_off_awake", "sensor off for 20 min inside a 40-min awakening",
              SynthSettings(wake_block_min=40.0, sensor_off_min=20.0)),
    Condition("still_wake_60min", "60 min of wake without any movement, wake's breathing "
              "(irregular, variable, shallower)",
              SynthSettings(wake_block_min=60.0, still_wake="wake_breathing"), wake_target=True),
    Condition("still_wake_as_sleep_60min", "60 min of wake without movement and with N2 "
              "breathing: identical to sleep in every signal (the limit)",
              SynthSettings(wake_block_min=60.0, still_wake="sleep_breathing")),
    Condition("drift_1f_moderate", "1/f gyroscope drift, SD 0.3 deg/s per axis",
              SynthSettings(drift_1f_dps=0.3)),
    Condition("drift_1f_strong", "1/f gyroscope drift, SD 1.0 deg/s per axis",
              SynthSettings(drift_1f_dps=1.0)),
    Condition("cheyne_stokes", "90 min of Cheyne-Stokes breathing (central apneas every "
              "45-90 s), target AHI 10 besides", SynthSettings(periodic_breathing_min=90.0),
              ahi=10.0),
    Condition("cheyne_stokes_no_oximetry", "cheyne_stokes without SpO2/pulse",
              SynthSettings(periodic_breathing_min=90.0), ahi=10.0, with_spo2=False),
    Condition("event_free", "no respiratory event (AHI 0)", ahi=0.0),
    Condition("widened_ranges", "desaturations 2-8 %, nadir 10-40 s after the end, arousal "
              "movement -5..+15 s around the end, base breathing rate 0.17-0.50 Hz (10-30/min, "
              "the adult range; sources: SynthSettings), breath-to-breath rate clipped only at "
              "0.10-0.70 Hz (a guard wider than the default 0.16-0.58 Hz and than the "
              "detector's 0.15-0.60 Hz band)",
              SynthSettings(desat_pct=(2.0, 8.0), nadir_delay_s=(10.0, 40.0),
                            arousal_offset_s=(-5.0, 15.0), breathing_base_hz=(0.17, 0.50),
                            breathing_clip_hz=(0.10, 0.70))),
)
