"""Shared synthetic batch for the science tests: generated, prepared and scored once per session.

The PSG side uses the generator's truth written in psg_prep's output layout
(``write_truth_labels``, a stand-in named as such) so that accuracy is measured against the
injected truth, not against another component's parsing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sunalgo.run import run_sunalgo
from sunrise_cli.synth import synth_batch, write_truth_labels
from sunrise_prep.prepare import prepare_sunrise

N_NIGHTS = 20
HOURS = 3.5
SEED = 2024


@pytest.fixture(scope="session")
def scored_batch(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("synth")
    out = []
    for night in synth_batch(root, N_NIGHTS, SEED, hours=HOURS):
        d = night.sunrise.parent
        prepare_sunrise(night.sunrise, d / "prep")
        psg = write_truth_labels(night, d / "truth_psg")
        summary = run_sunalgo(d / "prep", psg, d / "results")
        agr = json.loads((d / "results" / "agreement.json").read_text())
        out.append({"night": night, "dir": d, "summary": summary, "agreement": agr})
    return out


def rows_of(batch: list[dict]) -> list[Path]:
    return [b["dir"] / "results" / "training_rows.csv" for b in batch]
