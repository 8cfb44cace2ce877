"""The EDF layer's records are frozen dataclasses that keep personal data and raw bytes out of
their repr."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import pickle

import pytest

from sunrise_common.edf import AnonymisationReport, Annotation, parse_header
from sunrise_common.edf.header import PatientFields, SignalHeader

from tests.edf.malformed import build_edf


def _signal(**changes: object) -> SignalHeader:
    values = dict(label="EEG C3-M2", transducer="AgAgCl electrode", physical_dimension="uV", physical_min=-200.0,
                  physical_max=200.0, digital_min=-32768, digital_max=32767, prefiltering="HP:0.3Hz", samples_per_record=256,
                  reserved="", record_duration=1.0, is_annotation=False)
    return SignalHeader(**{**values, **changes})


def test_repr_leaves_out_the_original_start_and_the_raw_header_bytes():
    report = AnonymisationReport(dt.datetime(1951, 3, 4, 22, 0), None, 1951, 30.0, 1, "EDF", None, 0, 0, 100, ("EEG",))
    assert "1951, 3, 4" not in repr(report) and "start=" not in repr(report) and "year=1951" in repr(report)
    data = build_edf(n_records=1)
    header = parse_header(io.BytesIO(data), len(data))
    assert ", raw=" not in repr(header) and "file_size=" in repr(header) and "signals=" in repr(header)
    assert repr(Annotation(1.5, None, "Hypopnea")) == "Annotation(onset=1.5, duration=None, text='Hypopnea')"


def test_a_field_hidden_from_repr_still_counts_for_equality():
    assert _signal() == _signal() and _signal() != _signal(record_duration=2.0)


def test_fields_cannot_be_assigned_and_a_changed_copy_is_a_new_record():
    p = PatientFields("MCH-0234567", "F", None, "Haagse_Harry", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "X"  # type: ignore[misc]
    s = _signal()
    changed = dataclasses.replace(s, transducer="")
    assert changed.transducer == "" and s.transducer == "AgAgCl electrode" and pickle.loads(pickle.dumps(s)) == s
