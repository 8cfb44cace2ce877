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

TYPE_CHECKING = False  # not typing's, whose import costs more than a header parse
if TYPE_CHECKING:
    from sunrise_common.edf.reader import Chunk, iter_chunks, read_annotations, read_record_onsets, read_start_offset

# The reader needs numpy, whose import costs as much as copying 100 MB; header parsing and the
# anonymiser do not, so its names are imported on first use (PEP 562) and a process that only
# anonymises plain EDF files never loads numpy.
_READER_NAMES = frozenset({"Chunk", "iter_chunks", "read_annotations", "read_record_onsets", "read_start_offset"})


def __getattr__(name: str) -> object:
    if name in _READER_NAMES:
        from sunrise_common.edf import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
