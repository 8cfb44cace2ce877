"""Shared synthetic batch for the science tests: generated, prepared and scored once per session.

``scored_batch`` is scored with the packaged default model (``sunrise_algo.builtin.model.DEFAULT_MODEL``),
``baseline_batch`` with the rule baseline ``baseline-1`` on the same prepared nights. The batch
(seed 2024) is the TEST batch: no model or threshold is fitted on it (the packaged models were
fitted on the development batch, seed 7; see scripts/fit_default_model.py).

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
from sunrise_night.prepare import prepare_sunrise

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


@pytest.fixture(scope="session")
def baseline_batch(scored_batch) -> list[dict]:
    out = []
    for b in scored_batch:
        d = b["dir"]
        summary = run_sunalgo(d / "prep", d / "truth_psg", d / "results-baseline-1",
                              model_version="baseline-1")
        agr = json.loads((d / "results-baseline-1" / "agreement.json").read_text())
        out.append({**b, "summary": summary, "agreement": agr})
    return out


def with_subject(src: Path, dest: Path, subject: str) -> Path:
    """A copy of a training_rows.csv with a ``subject`` column (sunrise_cli.train needs it)."""
    lines = src.read_text().splitlines()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join([lines[0] + ",subject"] + [f"{x},{subject}" for x in lines[1:]]) + "\n")
    return dest


def rows_of(batch: list[dict]) -> list[Path]:
    """Each synthetic night is its own person: its seed names the subject."""
    return [with_subject(b["dir"] / "results" / "training_rows.csv",
                         b["dir"] / "rows" / "training_rows.csv", f"synth-{b['night'].params['seed']}")
            for b in batch]
