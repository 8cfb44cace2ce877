"""The third-party-written EDF+ of the personal-data scan (reliability.privacy.personal_edf):
it really carries personal data where the scan says, and what ingest's anonymiser leaves of it."""

from __future__ import annotations

import pytest

from reliability.privacy import PERSONAL_EDF_NEEDLES, SIGNAL_FIELD_NEEDLES, personal_edf
from sunrise_common.edf.anonymise import anonymise_edf


@pytest.fixture
def edf_pair(tmp_path):
    src = personal_edf(tmp_path / "Mueller Zofia PSG 2021-03-12.edf")
    dst = tmp_path / "anonymised.edf"
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        anonymise_edf(fin, fout, src.stat().st_size)
    return src.read_bytes(), dst.read_bytes()


def test_the_written_edf_carries_personal_data_in_its_header_and_annotations(edf_pair):
    raw, _ = edf_pair
    header, annotations = raw[:256], raw
    for needle in (b"MRN4471902", b"Mueller_Zofia", b"12-MAR-1961", b"Bahnhofstrasse", b"12-MAR-2021",
                   b"HOSP-ZH-77", b"Dr_Keller", b"Somno-XY-42", b"12.03.21"):
        assert needle in header, needle
    for needle in (b"Zofia Mueller", b"+41 79 555 01 23", b"MRN4471902 born"):
        assert needle in annotations, needle
    for needle in SIGNAL_FIELD_NEEDLES:
        assert needle in raw[256:], needle


def test_ingest_removes_the_personal_data_of_the_patient_recording_fields_and_annotations(edf_pair):
    _, anonymised = edf_pair
    assert [n for n in PERSONAL_EDF_NEEDLES if n in anonymised] == []


def test_names_typed_in_transducer_or_prefiltering_fields_do_not_leave_raw(edf_pair):
    # the transducer/prefiltering allowlist of anonymise.py blanks "AgCl Huber_Anna" and "HP:0.1Hz Brunner_Lea"
    _, anonymised = edf_pair
    assert [n for n in SIGNAL_FIELD_NEEDLES if n in anonymised] == []
