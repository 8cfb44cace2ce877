"""prepare_psg's events.csv: the stage at each event, where the label file gives it."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
from edfio import Edf, EdfSignal, Recording

from psg_prep.prepare import prepare_psg
from tests.conftest import CORPUS

DOMINO = CORPUS / "labels" / "domino" / "rbdtector_test1"

# The newer DOMINO layout: a date on every row, the stage at the event after the label.
FLOW_WITH_STAGES = (
    "Signal ID: FlowD\\flow\r\n"
    "Start Time: 30.05.2024 23:00:00\r\n"
    "Unit: s\r\n"
    "Signal Type: Impuls\r\n"
    "\r\n"
    "30.05.2024 23:01:00,000-23:01:20,000; 20;Obstructive Apnea; N2\r\n"
    "30.05.2024 23:03:00,000-23:03:15,500; 16;Hypopnea; Wake\r\n"
    "30.05.2024 23:05:00,000-23:05:12,000; 12;Central Apnea; REM\r\n"
)


def write_psg(path: Path, start: datetime, seconds: int) -> Path:
    """A one-channel EEG EDF (100 Hz, 1-s records) starting at ``start``."""
    x = np.random.default_rng(0).normal(0.0, 20.0, seconds * 100)
    sig = EdfSignal(x, 100, label="EEG C3-M2", physical_dimension="uV", physical_range=(-500.0, 500.0))
    Edf([sig], recording=Recording(startdate=start.date()), starttime=start.time(), data_record_duration=1).write(path)
    return path


def read_events(out: Path) -> list[dict[str, str]]:
    with (out / "events.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_events_csv_carries_the_stage_domino_exports_as_its_last_column(tmp_path):
    psg = write_psg(tmp_path / "psg.edf", datetime(2024, 5, 30, 23, 0, 0), 600)
    labels = tmp_path / "Flow Events - x.txt"
    labels.write_bytes(FLOW_WITH_STAGES.encode("cp1252"))
    prepare_psg(psg, [labels], tmp_path / "out")
    header = (tmp_path / "out" / "events.csv").read_text().splitlines()[0]
    assert header.split(",")[-1] == "stage"
    events = read_events(tmp_path / "out")
    assert [(e["type"], e["onset_s"], e["stage"]) for e in events] == [
        ("obstructive_apnea", "60.000", "N2"), ("hypopnea", "180.000", "W"), ("central_apnea", "300.000", "REM")]


def test_events_without_a_stage_in_the_file_have_an_empty_stage(tmp_path):
    psg = write_psg(tmp_path / "psg.edf", datetime(2020, 9, 23, 1, 0, 0), 600)
    prepare_psg(psg, [DOMINO / "Flow Events - test1 Unbekannt.txt"], tmp_path / "out")
    events = read_events(tmp_path / "out")
    assert len(events) == 14
    assert {e["stage"] for e in events} == {""}
