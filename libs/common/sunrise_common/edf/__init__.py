"""EDF / EDF+ / BDF handling: strict headers, chunked reading, streaming anonymisation."""

from sunrise_common.edf.annotations import KEEP_VOCABULARY, Annotation, Tal, encode_tals, is_allowed, parse_tals
from sunrise_common.edf.anonymise import AnonymisationReport, anonymise_edf, anonymised_header
from sunrise_common.edf.errors import REASONS, EdfError
from sunrise_common.edf.header import (
    EdfHeader,
    PatientFields,
    RecordingFields,
    SignalHeader,
    parse_header,
    parse_header_bytes,
    read_header,
)
from sunrise_common.edf.reader import Chunk, iter_chunks, read_annotations, read_record_onsets, read_start_offset

__all__ = [
    "KEEP_VOCABULARY",
    "REASONS",
    "Annotation",
    "AnonymisationReport",
    "Chunk",
    "EdfError",
    "EdfHeader",
    "PatientFields",
    "RecordingFields",
    "SignalHeader",
    "Tal",
    "anonymise_edf",
    "anonymised_header",
    "encode_tals",
    "is_allowed",
    "iter_chunks",
    "parse_header",
    "parse_header_bytes",
    "parse_tals",
    "read_annotations",
    "read_header",
    "read_record_onsets",
    "read_start_offset",
]
