"""The EDF layer's immutable records (sunrise_common.edf._record) behave as frozen dataclasses did."""

from __future__ import annotations

import copy
import datetime as dt
import pickle

import pytest

from sunrise_common.edf import AnonymisationReport, Annotation, Tal
from sunrise_common.edf._record import FrozenInstanceError, Record
from sunrise_common.edf.header import PatientFields, SignalHeader


def _signal(**changes) -> SignalHeader:
    values = dict(label="EEG C3-M2", transducer="AgAgCl electrode", physical_dimension="uV", physical_min=-200.0,
                  physical_max=200.0, digital_min=-32768, digital_max=32767, prefiltering="HP:0.3Hz", samples_per_record=256,
                  reserved="", record_duration=1.0, is_annotation=False)
    return SignalHeader(**{**values, **changes})


def test_fields_are_set_by_keyword_or_position_with_their_defaults():
    tal = Tal(b"+1", None, (b"",))
    assert (tal.onset, tal.duration, tal.texts) == (b"+1", None, (b"",)) and tal.is_timekeeping
    assert Tal(onset=b"+1", duration=None, texts=(b"",)) == tal
    report = AnonymisationReport(None, None, 2020, 30.0, 1, "EDF", None, 0, 0, 100, ("EEG",))
    assert (report.suspect_transducers, report.copy_method, report.blanked_fields) == ((), "stream", ())
    with pytest.raises(TypeError):
        Tal(b"+1", None)
    with pytest.raises(TypeError):
        Tal(b"+1", None, (), extra=1)
    assert SignalHeader._fields[-2:] == ("record_duration", "is_annotation") and Tal.__match_args__ == ("onset", "duration", "texts")


def test_equality_and_hash_are_by_value_and_class():
    a, b = _signal(), _signal()
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != _signal(label="EEG C4-M1") and a != _signal(record_duration=2.0)  # a field hidden from repr still counts
    assert Annotation(1.0, None, "x") != Tal(1.0, None, "x")
    assert (Annotation(1.0, None, "x") == (1.0, None, "x")) is False


def test_repr_leaves_out_the_hidden_fields():
    assert repr(Annotation(1.5, None, "Hypopnea")) == "Annotation(onset=1.5, duration=None, text='Hypopnea')"
    assert "record_duration" not in repr(_signal()) and "label='EEG C3-M2'" in repr(_signal())
    report = AnonymisationReport(dt.datetime(1951, 3, 4, 22, 0), None, 1951, 30.0, 1, "EDF", None, 0, 0, 100, ("EEG",))
    assert "1951, 3, 4" not in repr(report) and "start=" not in repr(report) and "year=1951" in repr(report)


def test_fields_cannot_be_assigned_or_deleted():
    p = PatientFields("MCH-0234567", "F", None, "Haagse_Harry", "")
    with pytest.raises(FrozenInstanceError):
        p.name = "X"
    with pytest.raises(AttributeError):
        del p.name
    with pytest.raises(AttributeError):
        p.other = 1
    assert p.name == "Haagse_Harry"


def test_replace_copy_and_pickle_give_equal_records():
    s = _signal()
    changed = s.replace(transducer="")
    assert changed.transducer == "" and changed.label == s.label and s.transducer == "AgAgCl electrode"
    assert type(changed) is SignalHeader
    assert pickle.loads(pickle.dumps(s)) == s and copy.copy(s) == s and copy.deepcopy(s) == s


def test_a_field_without_default_after_one_with_a_default_is_refused():
    with pytest.raises(TypeError):
        class Bad(Record):  # noqa: F841
            a: int = 1
            b: int



def test_a_subclass_keeps_the_fields_of_its_record_first():
    class Base(Record):
        a: int
        b: int = 2

    class Child(Base):
        c: int = 3

    assert Child._fields == ("a", "b", "c") and Child(1) == Child(1, 2, 3) and Child(1, c=4).c == 4
    assert repr(Child(1)) == "test_a_subclass_keeps_the_fields_of_its_record_first.<locals>.Child(a=1, b=2, c=3)"
