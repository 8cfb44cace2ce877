"""``make science`` in its CI size: the suite runs end to end and its table has every condition
with both models (the full table with >= 10 nights per condition is SCIENCE.md)."""

from __future__ import annotations

import json

import pytest

from sunrise_algo.builtin.model import DEFAULT_MODEL
from science.conditions import CONDITIONS
from science.run import BASELINE, OLDEST, PREVIOUS, main


@pytest.mark.slow
def test_quick_robustness_suite_reports_every_condition_for_both_models(tmp_path):
    out, rows = tmp_path / "SCIENCE.quick.md", tmp_path / "rows.json"
    assert main(["--quick", "--out", str(out), "--json", str(rows)]) == 0
    text = out.read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| condition | shift"))
    table = []
    for line in lines[start:]:  # the main table ends at its first non-table line
        if not line.startswith("|"):
            break
        if not line.startswith("|---"):
            table.append(line)
    names = [line.split("|")[1].strip() for line in table[1:]]
    assert names == [c.name for c in CONDITIONS]
    assert DEFAULT_MODEL in table[0] and BASELINE in table[0] and PREVIOUS in table[0]
    data = json.loads(rows.read_text())
    assert len(data["nights"]) == 2 * len(CONDITIONS)
    for night in data["nights"]:
        assert set(night["models"]) == {DEFAULT_MODEL, BASELINE, PREVIOUS, OLDEST}
        for m in night["models"].values():
            assert 0.0 <= m["accuracy"] <= 1.0
    # A condition that misses is marked and explained, never dropped.
    for name, res in data["results"].items():
        for version, s in res["summary"].items():
            if s["misses"]:
                assert f"**{name}**, {version}: misses" in text
