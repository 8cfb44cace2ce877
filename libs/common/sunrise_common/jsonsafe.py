"""Values made of plain JSON types, for the JSON files the stages write (meta.json, scores.json).

One sanitiser for every service: numpy scalars and arrays become Python numbers and lists,
tuples lists, dataclasses dicts, and NaN or an infinity becomes ``null`` (strict JSON has no
NaN; ``json.dumps`` would write the bare word ``NaN``, which most JSON readers reject).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with plain JSON types only; anything else (strings, None, ...) is left as it is.

    >>> json_safe({"n": np.int64(3), "x": [np.float32(0.5), float("nan")], "a": np.arange(2)})
    {'n': 3, 'x': [0.5, None], 'a': [0, 1]}
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    return value
