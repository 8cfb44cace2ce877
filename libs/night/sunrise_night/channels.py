"""Which EDF signal is which sensor channel, and how to bring it to physical units.

Roles: ``acc_x``, ``acc_y``, ``acc_z`` (accelerometer, g), ``gyro_x``, ``gyro_y``, ``gyro_z``
(gyroscope, deg/s), optional ``spo2`` (%) and ``pulse`` (beats/min). Labels are matched
case-insensitively; the axis is the last x/y/z letter of the label (``Accel X``, ``ACC_Y``,
``gyroZ``). Units are normalised: ``mg`` -> g, ``m/s2`` -> g, ``rad/s`` -> deg/s, ``mdps`` -> deg/s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sunrise_common.edf import SignalHeader
from sunrise_common.errors import PermanentError

IMU_ROLES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
OPTIONAL_ROLES = ("spo2", "pulse")
G = 9.80665  # m/s^2 per g

_ACC = re.compile(r"acc|accel", re.IGNORECASE)
_GYRO = re.compile(r"gyr", re.IGNORECASE)
_AXIS = re.compile(r"([xyz])[^a-z]*$", re.IGNORECASE)
_SPO2 = re.compile(r"spo2|sao2|sp02|oxy|\bsat", re.IGNORECASE)
_PULSE = re.compile(r"pulse|\bpr\b|\bhr\b|heart", re.IGNORECASE)

_ACC_SCALE = {"g": 1.0, "mg": 1e-3, "m/s2": 1 / G, "m/s^2": 1 / G, "m/s²": 1 / G, "": 1.0}
_GYRO_SCALE = {"deg/s": 1.0, "dps": 1.0, "°/s": 1.0, "mdps": 1e-3, "rad/s": 180 / math.pi, "": 1.0}


@dataclass(frozen=True)
class Channel:
    """One mapped signal: EDF index, original label and unit, and the scale to our unit."""

    role: str
    index: int
    label: str
    unit: str
    scale: float
    sample_rate: float


def _norm_unit(unit: str) -> str:
    return unit.strip().lower().replace(" ", "")


def map_channels(signals: Iterable[SignalHeader]) -> dict[str, Channel]:
    """Map EDF signal headers (``label``, ``physical_dimension``, ``sample_rate``) to roles.

    Raises
    ------
    PermanentError
        ``missing_imu_channel`` if any of the six IMU axes is absent, ``unknown_unit`` if a unit
        cannot be converted, ``mixed_imu_rates`` if the IMU axes have different rates.
    """
    found: dict[str, Channel] = {}
    for i, sig in enumerate(signals):
        if getattr(sig, "is_annotation", False):
            continue
        label = sig.label.strip()
        unit = _norm_unit(sig.physical_dimension)
        axis = _AXIS.search(label)
        if _GYRO.search(label) and axis:
            role, table = f"gyro_{axis.group(1).lower()}", _GYRO_SCALE
        elif _ACC.search(label) and axis:
            role, table = f"acc_{axis.group(1).lower()}", _ACC_SCALE
        elif _SPO2.search(label):
            role, table = "spo2", None
        elif _PULSE.search(label):
            role, table = "pulse", None
        else:
            continue
        if role in found:
            continue
        if table is not None and unit not in table:
            raise PermanentError(
                "unknown_unit", f"signal {i} {label!r} has unit {sig.physical_dimension!r}; "
                f"expected one of {sorted(k for k in table if k)}")
        scale = table[unit] if table is not None else 1.0
        found[role] = Channel(role, i, label, sig.physical_dimension.strip(), scale,
                              float(sig.sample_rate))
    missing = [r for r in IMU_ROLES if r not in found]
    if missing:
        labels = [s.label.strip() for s in signals]
        raise PermanentError("missing_imu_channel", f"no channel for {missing} among labels {labels}")
    rates = {found[r].sample_rate for r in IMU_ROLES}
    if len(rates) != 1:
        raise PermanentError("mixed_imu_rates", f"IMU axes have different rates {sorted(rates)} Hz")
    return found
