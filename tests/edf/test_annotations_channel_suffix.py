"""Scoring texts with a channel after ``@@`` (MNE's EDF export, HMC scorings): the marker survives
anonymisation; the suffix only when it is plainly a channel label (issue 23)."""

from __future__ import annotations

import io

import pytest
from edfio import Edf, EdfAnnotation

from sunrise_common.edf import anonymise_edf, read_annotations, read_header
from sunrise_common.edf.annotations import is_allowed, is_channel_label, kept_text


@pytest.mark.parametrize("label", ["EEG F4-A1", "C4:M1", "E1-M2", "EEG Fpz-Cz", "EOG LOC-M2", "SpO2", "Chin 2"])
def test_a_channel_label_suffix_is_kept_whole(label):
    assert is_channel_label(label)
    assert is_allowed(f"Lights off@@{label}")
    assert kept_text(f"Lights off@@{label}".encode()) == f"Lights off@@{label}".encode()


@pytest.mark.parametrize("suffix", ["Jane Doe", "Liz", "Doe1", "", "EEG F4-A1@@x", "tech: Smith, 23.09.2020"])
def test_any_other_suffix_is_cut_and_the_marker_kept(suffix):
    assert not is_channel_label(suffix)
    assert not is_allowed(f"Lights off@@{suffix}")
    assert kept_text(f"Lights off@@{suffix}".encode()) == b"Lights off"


def test_a_text_outside_the_vocabulary_is_dropped_whatever_its_suffix():
    assert kept_text(b"Jane Doe@@EEG F4-A1") is None
    assert kept_text(b"Lights off - tech Jane Doe") is None


def test_anonymising_an_hmc_style_scoring_keeps_its_lights_markers(tmp_path):
    path = tmp_path / "SN001_sleepscoring.edf"
    Edf([], annotations=[EdfAnnotation(0, 30, "Sleep stage W"), EdfAnnotation(130, None, "Lights off@@EEG F4-A1"),
                         EdfAnnotation(6930, None, "Lights on@@Jane Doe")]).write(path)
    out = io.BytesIO()
    with open(path, "rb") as f:
        anonymise_edf(f, out, path.stat().st_size)
    (tmp_path / "anon.edf").write_bytes(out.getvalue())
    texts = [(a.onset, a.text) for a in read_annotations(tmp_path / "anon.edf", read_header(tmp_path / "anon.edf"))]
    assert texts == [(0.0, "Sleep stage W"), (130.0, "Lights off@@EEG F4-A1"), (6930.0, "Lights on")]
    assert b"Jane" not in out.getvalue()
