"""The one JSON sanitiser (sunrise_common.jsonsafe) against the standard library's encoder."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sunrise_common.jsonsafe import json_safe

NUMPY_SCALARS = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 255).map(np.uint8),
    st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
    st.floats(width=32, allow_nan=True, allow_infinity=True).map(np.float32),
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), NUMPY_SCALARS,
                   st.lists(st.floats(), max_size=4).map(np.array), st.lists(st.integers(-9, 9), max_size=4).map(np.array))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)


def reference(value):
    """What the standard encoder writes (numpy taken apart by hand), read back with NaN and
    the infinities as null."""
    def default(obj):
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return obj.item()  # a numpy scalar
    return json.loads(json.dumps(value, default=default), parse_constant=lambda _: None)


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_json_safe_equals_the_standard_encoder_read_back_with_nan_as_null(value):
    safe = json_safe(value)
    assert safe == reference(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe  # strict JSON, no NaN token


def test_types_become_plain_python():
    @dataclass
    class Span:
        onset_s: np.float64
        stage: str

    out = json_safe({"n": np.int64(3), "ok": np.bool_(True), "spans": (Span(np.float64(1.5), "N2"),),
                     "x": np.array([[1.0, np.inf]], dtype=np.float32)})
    assert out == {"n": 3, "ok": True, "spans": [{"onset_s": 1.5, "stage": "N2"}], "x": [[1.0, None]]}
    assert [type(v) for v in (out["n"], out["ok"], out["spans"][0]["onset_s"], out["x"][0][0])] == [int, bool, float, float]
    assert json_safe(float("-inf")) is None and json_safe(-0.0) == 0.0 and math.copysign(1, json_safe(-0.0)) == -1
