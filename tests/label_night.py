"""The night every label-format example describes (tests/data/corpus/labels/formats/), and a PSG
of it: the examples score 240 epochs of 30 s from 2023-11-18 23:10:00 (``MASTER_TRUTH.json``), so
a PSG starting then gives the label tables a recording to land on.

The truth files speak the examples' own vocabulary (``R``, ``?``, ``apnea_obstructive``,
``arousal_respiratory``...); :func:`canonical_stage` and :func:`canonical_event` map it onto the
pipeline's (``sunrise_common.labels.canonical``) so tables and truth can be compared.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
from edfio import Edf, EdfAnnotation, EdfSignal, Recording

from tests.conftest import CORPUS

FORMATS = CORPUS / "labels" / "formats"
MASTER = json.loads((FORMATS / "MASTER_TRUTH.json").read_text())
START = datetime.fromisoformat(MASTER["true_recording_start"])  # 2023-11-18 23:10:00
N_EPOCHS = len(MASTER["stages"])  # 240
PSG_S = N_EPOCHS * 30  # 7200 s: the examples' recording

_STAGE = {"R": "REM", "?": "UNS"}
_EVENT = {
    "apnea_obstructive": "obstructive_apnea",
    "apnea_central": "central_apnea",
    "apnea_mixed": "mixed_apnea",
    "arousal_respiratory": "arousal",
    "arousal_spontaneous": "arousal",
    "limb_movement_left": "limb_movement",
    "limb_movement_right": "limb_movement",
}


def canonical_stage(stage: str) -> str:
    """A truth stage (``W N1 N2 N3 R ?``) as the pipeline's canonical stage."""
    return _STAGE.get(stage, stage)


def canonical_event(etype: str) -> str:
    """A truth event type as the pipeline's canonical event type (side and cause are finer than
    the canonical vocabulary: both limb sides are ``limb_movement``, every arousal ``arousal``)."""
    return _EVENT.get(etype, etype)


def psg_edf(path: Path, *, start: datetime = START, seconds: int = PSG_S, rate: int = 64,
            annotations: list[tuple[float, float | None, str]] = ()) -> Path:
    """A one-channel EEG recording (EDF+ when ``annotations`` are given) of ``seconds`` s from
    ``start``, with a patient name, birth date and hospital in its header (personal data the
    anonymiser must remove)."""
    x = np.random.default_rng(1).normal(0.0, 20.0, seconds * rate)
    sig = EdfSignal(x, rate, label="EEG C3-M2", physical_dimension="uV", physical_range=(-500.0, 500.0))
    from edfio import Patient
    edf = Edf([sig], patient=Patient(code="MRN-4711", sex="F", birthdate=datetime(1961, 3, 9).date(),
                                     name="Jane_Example"),
              recording=Recording(startdate=start.date(), hospital_administration_code="StMaryHospital"),
              starttime=start.time(), data_record_duration=1,
              annotations=[EdfAnnotation(o, d, t) for o, d, t in annotations] or None)
    edf.write(path)
    return path
