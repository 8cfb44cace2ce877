"""Labels checked against their PSG (issue 23): a hypnogram whose scored epochs mostly fall
outside the recording is ``label_misaligned`` (with the offset found) and gives no training rows;
one that covers less than half of its PSG is a warning recorded with the night."""

from __future__ import annotations

import csv
from pathlib import Path

from psg_prep.prepare import prepare_psg
from tests.label_night import FORMATS, psg_edf

NSRR_XML = FORMATS / "nsrr_xml" / "shhs-like-nsrr.xml"  # 240 epochs (232 scored) from 23:10:00


def xml_starting(path: Path, clock: str) -> Path:
    path.write_bytes(NSRR_XML.read_bytes().replace(b"00.00.00 23.10.00", b"00.00.00 " + clock.encode()))
    return path


def test_labels_starting_four_hours_after_their_psg_are_misaligned_with_the_offset_found(tmp_path):
    psg = psg_edf(tmp_path / "psg.edf")  # 23:10-01:10
    meta = prepare_psg(psg, [xml_starting(tmp_path / "l.xml", "03.10.00")], tmp_path / "out")
    assert meta["labels"]["misaligned"] == {"reason": "label_misaligned", "offset_s": 14400.0,
                                            "scored_epochs": 232, "scored_in_recording": 0}
    assert any(w.startswith("label_misaligned: 0 of 232 scored epochs") for w in meta["warnings"])
    with (tmp_path / "out" / "hypnogram.csv").open(newline="") as f:
        assert {r["in_recording"] for r in csv.DictReader(f)} == {"0"}  # the table is kept, marked


def test_labels_half_outside_their_psg_are_aligned_when_most_scored_epochs_are_inside(tmp_path):
    psg = psg_edf(tmp_path / "psg.edf")
    meta = prepare_psg(psg, [xml_starting(tmp_path / "l.xml", "23.50.00")], tmp_path / "out")  # 40 min late
    assert meta["labels"]["misaligned"] is None
    assert meta["labels"]["coverage"]["scored_in_recording"] == 160  # of 232 scored: over half


def test_a_hypnogram_covering_less_than_half_its_psg_is_a_warning_not_a_failure(tmp_path):
    psg = psg_edf(tmp_path / "psg.edf", seconds=5 * 3600, rate=8)  # 5 h; the labels score 2 h
    meta = prepare_psg(psg, [NSRR_XML], tmp_path / "out")
    assert meta["labels"]["misaligned"] is None
    assert meta["labels"]["coverage"] == {"scored_epochs": 232, "scored_in_recording": 232,
                                          "recording_epochs": 600, "fraction": 0.3867}
    assert "the hypnogram covers 39 % of its PSG (232 scored of 600 recording epochs)" in meta["warnings"]
