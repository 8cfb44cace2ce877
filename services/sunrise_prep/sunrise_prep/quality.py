"""Per-second signal-quality mask of the jaw IMU.

A second is **bad** when any of:

* ``clipped``: an accelerometer or gyroscope sample sits at the channel's physical min/max
  (sensor saturation);
* ``flat``: every accelerometer axis has a standard deviation below 0.1 mg over the second
  (stuck sensor, or a disconnected channel padded with constants);
* ``off``: the mean acceleration magnitude is outside 0.5-1.5 g (a sensor at rest or worn
  always reads ~1 g; anything else is a dropout or a decoding fault);
* ``gap`` (set by ``prepare``): an EDF+D gap, the second was not recorded.
"""

from __future__ import annotations

import numpy as np

CLIPPED, FLAT, OFF = 1, 2, 4
#: EDF+D gap: the second was not recorded (set by ``prepare``, not by ``quality_mask``).
GAP = 8
QUALITY_UNIT = "bitmask (1 clipped, 2 flat, 4 off, 8 gap: not recorded)"
FLAT_G = 1e-4
MAG_RANGE_G = (0.5, 1.5)


def quality_mask(acc: np.ndarray, gyro: np.ndarray, fs: float,
                 acc_limits: np.ndarray, gyro_limits: np.ndarray) -> np.ndarray:
    """Bit mask per whole second (uint8): 1 clipped, 2 flat, 4 off; 0 = good.

    ``acc_limits``/``gyro_limits``: shape (3, 2) physical (min, max) per axis in g / deg/s.
    Samples beyond the last whole second are ignored.
    """
    n_sec = int(acc.shape[1] // fs)
    if n_sec == 0:
        return np.zeros(0, dtype=np.uint8)
    k = int(round(fs))
    a = acc[:, : n_sec * k].reshape(3, n_sec, k)
    g = gyro[:, : n_sec * k].reshape(3, n_sec, k)
    eps_a = 1e-6 + 1e-4 * np.abs(acc_limits).max()
    eps_g = 1e-6 + 1e-4 * np.abs(gyro_limits).max()
    clipped = ((a <= acc_limits[:, :1, None] + eps_a) | (a >= acc_limits[:, 1:, None] - eps_a)
               | (g <= gyro_limits[:, :1, None] + eps_g)
               | (g >= gyro_limits[:, 1:, None] - eps_g)).any(axis=(0, 2))
    flat = (a.std(axis=2) < FLAT_G).all(axis=0)
    mag = np.sqrt((a.mean(axis=2) ** 2).sum(axis=0))
    off = (mag < MAG_RANGE_G[0]) | (mag > MAG_RANGE_G[1])
    return (clipped * 1 + flat * 2 + off * 4).astype(np.uint8)
