"""The label-format registry: every scoring export Sunrise reads, one ``Format`` per kind.

Public API (ingest, psg_prep, the docs and the tests take the list from here)::

    FORMATS                      # tuple[Format, ...], in detection order
    KINDS                        # tuple[str, ...], the ``kind`` of every format (recorded in state)
    detect(head, name) -> Format # content first, the file name only breaks ties
    by_kind(kind) -> Format
    fmt.parse(data) -> LabelSet            # bounded; never an empty result (LabelError instead)
    fmt.anonymise(data) -> AnonymisedLabel # same format, personal fields gone, dates shifted

Adding a format is one module with ``FORMAT = Format(...)`` (or ``FORMATS``) plus its tests, and
one line in ``_MODULES`` below.

Detection: each format's ``sniff(head, name)`` answers ``2`` (the content is this format),
``1`` (the content fits and the file name has one of the format's extensions) or ``0``. The
highest answer wins, the earlier format on a tie. ``head`` is the first ``HEAD_BYTES`` bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time

from .canonical import LabelSet
from .errors import LabelError
from .limits import check_size, check_text

# How many leading bytes detection looks at: an EDF header with 60 signals, the preamble of a
# RemLogic export with its "Events Included" list, the root element of any XML export.
HEAD_BYTES = 16384


@dataclass
class AnonymisedLabel:
    """The anonymised bytes and what the caller needs for pairing.

    Attributes
    ----------
    data : bytes
        The anonymised file (same format; ``Format.parse`` reads it with identical relative times).
    start : datetime | None
        The ORIGINAL naive start, for pairing only; never written anywhere.
    kind : str
    extension : str
        Extension of the renamed object (``txt``, ``xml``, ``csv``...).
    warnings : list[str]
    start_time_only : bool
        True when the file has a time of day but no date (pair by time of day).
    start_time : datetime.time | None
        The ORIGINAL time of day of the start (also when the date is unknown), for pairing only.
    label_set : LabelSet | None
        The anonymised file as parsed (what psg_prep will read), for checks such as coverage.
    """

    data: bytes
    start: datetime | None
    kind: str
    extension: str
    warnings: list[str] = field(default_factory=list)
    start_time_only: bool = False
    start_time: time | None = None
    label_set: LabelSet | None = None


Sniff = Callable[[bytes, str], int]
Parse = Callable[[bytes], LabelSet]
Anonymise = Callable[[bytes], tuple[bytes, datetime | None]]


@dataclass(frozen=True)
class Format:
    """One label format.

    Attributes
    ----------
    kind : str
        Stable identifier recorded in state (``nsrr_xml``, ``remlogic_txt``...).
    title, producer : str
        For the docs table and for reasons ("RemLogic text export: ...").
    extensions : tuple[str, ...]
        File-name endings the producer uses (lower case, with the dot).
    out_extension : str
        Extension of the anonymised object.
    sniff, parse_fn, anonymise_fn
        The format module's functions; ``anonymise_fn`` is None for EDF+ label files (the EDF
        anonymiser rewrites those).
    reads, anonymised, assumptions : str
        One line each for docs/label-formats.md.
    """

    kind: str
    title: str
    producer: str
    extensions: tuple[str, ...]
    out_extension: str
    sniff: Sniff
    parse_fn: Parse
    anonymise_fn: Anonymise | None
    reads: str = ""
    anonymised: str = ""
    assumptions: str = ""
    is_text: bool = True

    def parse(self, data: bytes) -> LabelSet:
        """Parse to the canonical ``LabelSet``; a file with no stage and no event is an error."""
        if self.is_text:
            check_text(data, self.title)
        else:
            check_size(len(data))
        ls = self.parse_fn(data)
        ls.source_kind = self.kind
        n_epochs = len(ls.hypnogram.stages) if ls.hypnogram is not None else 0
        if n_epochs == 0 and not ls.events and ls.empty_export:
            # Recorded on the night (psg_prep's warnings), never a silent empty result.
            ls.warnings.append(f"{self.title}: the export lists no event (a night without scored events)")
        elif n_epochs == 0 and not ls.events:
            raise LabelError(
                "no_labels",
                f"{self.title}: no sleep stage and no scored event found "
                f"(expected {self.reads or 'stages or events'})",
            )
        return ls

    def anonymise(self, data: bytes) -> AnonymisedLabel:
        """Anonymise one file of this format and check the result reads the same.

        The original is parsed first (so an unreadable or empty file is refused here, at upload,
        with the parser's reason), then anonymised, then the output is parsed again: the number
        of epochs, the stages and every event's onset and duration must be unchanged.
        """
        if self.anonymise_fn is None:
            raise LabelError("not_text_label", f"{self.title}: anonymised by the EDF anonymiser")
        before = self.parse(data)
        out, start = self.anonymise_fn(data)
        after = self.parse(out)
        _same(self, before, after)
        only_time = start is None and before.start_time is not None
        return AnonymisedLabel(out, start, self.kind, self.out_extension, list(before.warnings), only_time,
                               before.start_time, after)


def _same(fmt: Format, a: LabelSet, b: LabelSet) -> None:
    sa = a.hypnogram.stages if a.hypnogram else []
    sb = b.hypnogram.stages if b.hypnogram else []
    oa = a.hypnogram.onset_s if a.hypnogram else 0.0
    ob = b.hypnogram.onset_s if b.hypnogram else 0.0
    ea = [(round(e.onset_s, 3), round(e.duration_s, 3), e.type) for e in a.events]
    eb = [(round(e.onset_s, 3), round(e.duration_s, 3), e.type) for e in b.events]
    if sa != sb or abs(oa - ob) > 1e-3 or ea != eb or (a.lights_off_s, a.lights_on_s) != (b.lights_off_s, b.lights_on_s):
        raise LabelError(
            "anonymisation_changed_labels",
            f"{fmt.title}: the anonymised file reads differently ({len(sa)}/{len(sb)} epochs, "
            f"{len(ea)}/{len(eb)} events): refused rather than stored",
        )


# Detection order (ties go to the earlier module): binary and XML first, then text formats with
# unmistakable headers, the bare one-stage-per-line format last.
_MODULES = (
    "edf_hypnogram",
    "domino",
    "nsrr_xml",
    "profusion_xml",
    "alice_rml",
    "embla_xml",
    "luna_xml",
    "yasa_json",
    "remlogic_txt",
    "sandman_txt",
    "respironics_csv",
    "alice_staging_csv",
    "mne_annotations",
    "wsc_txt",
    "bids_events",
    "luna_annot",
    "visbrain",
    "stage_per_line",
)


def _formats() -> tuple[Format, ...]:
    import importlib  # noqa: PLC0415 - the format modules import this module's Format

    out: list[Format] = []
    for name in _MODULES:
        mod = importlib.import_module(f"{__package__}.{name}")
        out.extend(getattr(mod, "FORMATS", None) or (mod.FORMAT,))
    return tuple(out)


FORMATS: tuple[Format, ...] = ()
KINDS: tuple[str, ...] = ()


def _load() -> None:
    global FORMATS, KINDS  # noqa: PLW0603 - filled once, after the format modules are importable
    FORMATS = _formats()
    KINDS = tuple(f.kind for f in FORMATS)


def by_kind(kind: str) -> Format:
    """The format of a recorded kind."""
    for f in FORMATS:
        if f.kind == kind:
            return f
    raise LabelError("unknown_label_format", f"unknown label kind; expected one of {len(KINDS)} registered kinds")


def detect(head: bytes, name: str = "") -> Format:
    """The format of a file from its first bytes (``HEAD_BYTES``) and, second, its name.

    Raises
    ------
    LabelError
        ``empty_label_file``; a format's own refusal (an EDF recording with signals, a plain
        EDF...); ``unknown_label_format`` when no format recognises the content.
    """
    if not head.strip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n"):
        raise LabelError("empty_label_file", "the label file is empty")
    best: Format | None = None
    best_score = 0
    for f in FORMATS:
        score = f.sniff(head, name)
        if score > best_score:
            best, best_score = f, score
    if best is None:
        raise LabelError(
            "unknown_label_format",
            f"no label format recognises the content ({len(head)} bytes read; "
            f"{len(FORMATS)} formats tried: see docs/label-formats.md)",
        )
    return best


def name_has(name: str, extensions: tuple[str, ...]) -> bool:
    """True when ``name`` ends with one of ``extensions`` (case-insensitive)."""
    low = name.lower()
    return any(low.endswith(e) for e in extensions)


def docs_table() -> str:
    """The Markdown table of docs/label-formats.md, generated from ``FORMATS`` (a test keeps the
    page in step with the registry)."""
    head = "| kind | format | producer | extensions | what is read | what is anonymised | assumptions |\n"
    head += "|---|---|---|---|---|---|---|\n"
    rows = []
    for f in FORMATS:
        cells = (f"`{f.kind}`", f.title, f.producer, ", ".join(f"`{e}`" for e in f.extensions), f.reads,
                 f.anonymised, f.assumptions)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return head + "\n".join(rows) + "\n"

