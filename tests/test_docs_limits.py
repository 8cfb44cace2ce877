"""docs/limits.md shows every input bound with the value the code has (one value per limit, no
"pending merge" column): the EDF header limits, the record reader's block, psg_prep's plan limits
and the label-file limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from psg_prep import limits as prep_limits
from sunrise_common.edf import header, reader
from sunrise_common.labels import common as label_common
from sunrise_common.labels.limits import LabelLimits
from sunrise_common.labels.registry import HEAD_BYTES

DOC = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text()


def shown(name: str, value: float) -> str:
    """How docs/limits.md writes ``value``: bytes in MiB/KiB where whole, rates in Hz, seconds in s."""
    if name.lower().endswith("_bytes") and value % (1 << 20) == 0:
        return f"{int(value) >> 20} MiB"
    if name.lower().endswith("_chars") and value % 1024 == 0:
        return f"{int(value) >> 10} KiB"
    if name.endswith("_HZ"):
        return f"{value:,.0f} Hz"
    if name.endswith("_S"):
        return f"{value:,.0f} s"
    return f"{int(value):,}"


CODE = {
    **header.LIMITS,
    "MAX_BLOCK_BYTES": reader.MAX_BLOCK_BYTES,
    **{f"psg_prep {n}": getattr(prep_limits, n)
       for n in ("MAX_SAMPLE_RATE_HZ", "MAX_CHUNK_SAMPLES", "MAX_FIR_TAPS", "MAX_OUTPUT_SAMPLES")},
    **LabelLimits().model_dump(),
    "HEAD_BYTES": HEAD_BYTES,
}


@pytest.mark.parametrize("name", sorted(CODE))
def test_the_limits_page_shows_each_limit_with_the_value_in_the_code(name: str):
    symbol = name.removeprefix("psg_prep ")
    # The value, maybe a unit word ("2,000,000 taps"), then the name in backquotes.
    assert re.search(rf"{re.escape(shown(symbol, CODE[name]))}( [a-z]+)? \(`{symbol}`", DOC), (symbol, CODE[name])


def test_the_limits_page_has_no_pending_or_on_main_columns_left():
    for stale in ("pending merge", "value on main", "after the merge"):
        assert stale not in DOC


def test_the_label_span_and_overlap_bounds_are_the_code_s():
    assert label_common.MAX_SPAN_S == 72 * 3600 and "72 h (`MAX_SPAN_S`" in DOC
    assert f"{label_common.MAX_FILL_FACTOR} × the epochs of 72 h (`MAX_FILL_FACTOR`" in DOC
