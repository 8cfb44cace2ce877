"""Sleep labels: detection, parsing into the canonical AASM model, and anonymisation.

Kinds: DOMINO text exports (sleep profile, flow events, arousals, generic, other), EDF+/BDF+
annotation files (Sleep-EDF hypnograms) and NSRR XML. See ``canonical`` for the vocabulary.
"""

from .anonymise import AnonymisedLabel, anonymise_label_file, parse_labels
from .canonical import EVENT_TYPES, STAGES, UNSCORED, LabelEvent, Hypnogram, LabelSet, map_event, map_stage
from .detect import HEAD_BYTES, LABEL_KINDS, detect_label_kind
from .errors import LabelError

__all__ = [
    "EVENT_TYPES",
    "HEAD_BYTES",
    "LABEL_KINDS",
    "STAGES",
    "UNSCORED",
    "AnonymisedLabel",
    "LabelEvent",
    "Hypnogram",
    "LabelError",
    "LabelSet",
    "anonymise_label_file",
    "detect_label_kind",
    "map_event",
    "map_stage",
    "parse_labels",
]
