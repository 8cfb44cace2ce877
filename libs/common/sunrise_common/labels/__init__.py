"""Sleep labels: detection, parsing into the canonical AASM model, and anonymisation.

Every format is one module registered in ``registry.FORMATS`` (see docs/label-formats.md);
``canonical`` defines the vocabulary, ``limits`` the bounds on every file.
"""

from . import registry
from .canonical import EVENT_TYPES, STAGES, UNSCORED, LabelEvent, Hypnogram, LabelSet, map_event, map_stage
from .errors import LabelError
from .registry import HEAD_BYTES, AnonymisedLabel, Format, by_kind, detect

registry._load()  # noqa: SLF001 - the format modules import registry.Format, so fill it last

from .anonymise import anonymise_label_file, parse_labels  # noqa: E402
from .detect import detect_label_kind  # noqa: E402

# ``from .detect import`` bound the submodule ``detect`` here; the public name is the function.
detect = registry.detect  # noqa: F811
LABEL_KINDS = registry.KINDS
FORMATS = registry.FORMATS

__all__ = [
    "EVENT_TYPES",
    "FORMATS",
    "HEAD_BYTES",
    "LABEL_KINDS",
    "STAGES",
    "UNSCORED",
    "AnonymisedLabel",
    "LabelEvent",
    "Format",
    "Hypnogram",
    "LabelError",
    "LabelSet",
    "anonymise_label_file",
    "by_kind",
    "detect",
    "detect_label_kind",
    "map_event",
    "map_stage",
    "parse_labels",
]
