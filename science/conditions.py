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
    """

    name: str
    description: str
    settings: SynthSettings = field(default_factory=SynthSettings)
    hours: float = 8.0
    with_spo2: bool = True
    obstructive_fraction: float = 0.8


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
)
