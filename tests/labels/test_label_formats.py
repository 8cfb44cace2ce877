"""Every example of tests/data/corpus/labels/formats/ reads to its truth JSON, before and after
anonymisation: stages per 30-s epoch, events within 0.5 s (type, onset, duration, SpO2 baseline
and nadir where the truth gives them), lights off/on within 0.5 s.

The truth's epoch 0 is the true recording start (2023-11-18 23:10:00). A file with a start
(date or time of day) is placed by it; a file without one starts at the PSG's start (epoch 0).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from sunrise_common.labels import FORMATS, LabelSet, detect
from sunrise_common.labels.registry import HEAD_BYTES
from tests.conftest import CORPUS

FORMATS_DIR = CORPUS / "labels" / "formats"
TRUTHS = sorted(FORMATS_DIR.rglob("*.truth.json"))

# Truth vocabulary -> canonical vocabulary (canonical.py).
TRUTH_STAGE = {"W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "R": "REM", "?": "UNS"}
TRUTH_EVENT = {
    "apnea_obstructive": "obstructive_apnea",
    "apnea_central": "central_apnea",
    "apnea_mixed": "mixed_apnea",
    "hypopnea": "hypopnea",
    "desaturation": "desaturation",
    "rera": "rera",
    "arousal_respiratory": "arousal",
    "arousal_spontaneous": "arousal",
    "limb_movement_left": "limb_movement",
    "limb_movement_right": "limb_movement",
}
EXPECTED_KIND = {
    "nsrr_xml": "nsrr_xml",
    "nsrr_sro_xml": "nsrr_xml",
    "profusion_xml": "profusion_xml",
    "remlogic_txt": "remlogic_txt",
    "alice_rml": "alice_rml",
    "sandman_txt": "sandman_txt",
    "visbrain_hyp": None,  # two formats in one directory: by file below
    "one_per_line": "stage_per_line",
    "bids_events": "bids_events",
    "luna_annot": None,
    "mne_annotations": None,
    "respironics_csv": None,
}
EXPECTED_BY_FILE = {
    "night.hyp": "elan_hyp",
    "night_stage-duration.txt": "visbrain_stage_duration",
    "night.annot": "luna_annot",
    "night.eannot": "stage_per_line",
    "night-annot.txt": "mne_annotations_txt",
    "night-annot.csv": "mne_annotations_csv",
    "study-events.csv": "respironics_events_csv",
    "study-stages.csv": "respironics_stages_csv",
}

# Files whose desaturations carry SpO2 nadir (and baseline): the parser must not lose them.
SPO2_FILES = {
    "shhs-like-nsrr.xml", "sof-like-sro.xml", "study-profusion.xml", "alice-study.rml", "study-events.csv",
    "night.annot", "sub-01_ses-01_task-sleep_events.tsv",
}


def _truth_id(p: Path) -> str:
    return p.name.removesuffix(".truth.json")


def _delta_s(ls: LabelSet, true_start: datetime, anonymised: bool) -> float:
    """Seconds from the true recording start to the label file's own start (by time of day for an
    anonymised file: its date was shifted)."""
    if ls.start is not None and not anonymised:
        return (ls.start - true_start).total_seconds()
    if ls.start_time is not None:
        t = ls.start_time
        d = (t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6) - (
            true_start.hour * 3600 + true_start.minute * 60 + true_start.second
        )
        return (d + 43200) % 86400 - 43200
    return 0.0


def _check(ls: LabelSet, truth: dict, anonymised: bool = False) -> None:
    true_start = datetime.fromisoformat(truth["true_recording_start"])
    delta = _delta_s(ls, true_start, anonymised)
    carries = truth["carries"]
    if carries["stages"]:
        hyp = ls.hypnogram
        assert hyp is not None, "no hypnogram"
        assert hyp.epoch_s == 30
        first = (hyp.onset_s + delta) / 30.0
        assert abs(first) < 1e-6, f"epoch 0 at {first} epochs from the recording start"
        assert hyp.stages == [TRUTH_STAGE[s] for s in truth["stages"]]
    if carries["events"]:
        want = [e for e in truth["events"]]
        got = list(ls.events)
        assert len(got) == len(want), f"{len(got)} events, truth {len(want)}"
        for w in want:
            match = [
                e
                for e in got
                if e.type == TRUTH_EVENT[w["type"]]
                and abs(e.onset_s + delta - w["onset_s"]) <= 0.5
                and abs(e.duration_s - w["duration_s"]) <= 0.5
            ]
            assert match, f"no event for truth {w}"
            e = match[0]
            if "spo2_nadir" in w and e.nadir is not None:
                assert abs(e.nadir - w["spo2_nadir"]) < 0.01
            if "spo2_baseline" in w and e.baseline is not None:
                assert abs(e.baseline - w["spo2_baseline"]) < 0.01
            if e.stage is not None and "stage_at_onset" in w:  # the file's own stage column
                assert e.stage == TRUTH_STAGE[w["stage_at_onset"]], w
            got.remove(e)
        spo2 = [w for w in want if "spo2_nadir" in w]
        if spo2 and truth["file"] in SPO2_FILES:
            with_nadir = [e for e in ls.events if e.type == "desaturation" and e.nadir is not None]
            assert len(with_nadir) == len(spo2), "SpO2 nadir lost"
    if carries["lights"]:
        assert ls.lights_off_s is not None and abs(ls.lights_off_s + delta - truth["lights_off_s"]) <= 0.5
        assert ls.lights_on_s is not None and abs(ls.lights_on_s + delta - truth["lights_on_s"]) <= 0.5


@pytest.mark.parametrize("truth_path", TRUTHS, ids=_truth_id)
def test_each_example_reads_to_its_truth_before_and_after_anonymisation(truth_path: Path) -> None:
    truth = json.loads(truth_path.read_text())
    path = truth_path.with_name(_truth_id(truth_path))
    data = path.read_bytes()
    fmt = detect(data[:HEAD_BYTES], path.name)
    kind = EXPECTED_BY_FILE.get(path.name) or EXPECTED_KIND[truth_path.relative_to(FORMATS_DIR).parts[0]]
    assert fmt.kind == kind
    _check(fmt.parse(data), truth)
    anon = fmt.anonymise(data)
    assert detect(anon.data[:HEAD_BYTES], f"renamed.{anon.extension}").kind == kind
    _check(fmt.parse(anon.data), truth, anonymised=True)
    if anon.start is not None:  # the original start, for pairing, is the true one
        assert anon.start == datetime.fromisoformat(truth["true_recording_start"])


def test_there_are_examples_for_every_directory() -> None:
    dirs = {p.relative_to(FORMATS_DIR).parts[0] for p in TRUTHS}
    assert dirs == set(EXPECTED_KIND)
    assert len(TRUTHS) == 18


def test_every_registered_format_documents_itself() -> None:
    for f in FORMATS:
        assert f.title and f.producer and f.extensions and f.reads and f.anonymised, f.kind
