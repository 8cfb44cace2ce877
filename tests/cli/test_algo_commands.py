"""``sunrise algo``: the example nights and the conformance check as a team runs it (defaults)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sunrise_cli.algo_commands import EXAMPLE_NIGHTS, example_nights
from sunrise_cli.main import app


def test_algo_check_with_the_default_night_count_checks_the_builtin_on_every_example_night(tmp_path):
    report = tmp_path / "report.txt"
    result = CliRunner().invoke(app, ["algo", "check", "sunalgo", "--report", str(report)])
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert f"nights: {len(EXAMPLE_NIGHTS)};" in text
    assert text.rstrip().endswith("PASSED")


def test_the_example_night_meant_without_oximetry_is_prepared_without_spo2(tmp_path):
    # The kit shows a plug-in a night without a pulse oximeter: the generator's parameter for it
    # is with_spo2, and the prepared night must say it has no SpO2.
    without = [i for i, params in enumerate(EXAMPLE_NIGHTS) if params.get("with_spo2") is False]
    assert without, "no example night without oximetry"
    nights = example_nights(tmp_path, max(without) + 1)
    for i in without:
        meta = json.loads((nights[i][1] / "meta.json").read_text())
        assert meta["has_spo2"] is False
