"""EDF+/BDF+ annotation-only label files (Sleep-EDF ``*Hypnogram.edf`` style).

Each stage annotation (``Sleep stage W/1/2/3/4/R/?``, ``Movement time``; AASM spellings such as
``Sleep stage N2`` too) has an onset and a duration in seconds from the file's start; it is
expanded into ``duration / 30`` epochs (R&K 3 and 4 -> N3; ``?`` and movement time -> UNS).
A stage annotation without a duration lasts until the next stage annotation (one epoch for the
last one). Any other annotation becomes an ``Event`` (type from ``map_event``, usually ``other``).
The annotations are read with :func:`sunrise_common.edf.read_annotations`.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, time

from sunrise_common.edf import EdfError, EdfHeader, parse_header, read_annotations

from .canonical import EPOCH_S, LabelEvent, LabelSet, map_event
from .common import expand_spans, lights_word, stage_of_text
from .errors import LabelError
from .registry import Format

_TIME_RAW = re.compile(r"(\d{2})[.:](\d{2})[.:](\d{2})")


def header_time_of_day(header: EdfHeader) -> time | None:
    """Local time of day of the recording start, even when the date is invalid (``00.00.00``)."""
    if header.start is not None:
        return header.start.time()
    m = _TIME_RAW.fullmatch(header.starttime_raw.strip())
    if m is None:
        return None
    h, mi, s = (int(g) for g in m.groups())
    if h > 23 or mi > 59 or s > 59:
        return None
    return time(h, mi, s)


def parse(data: bytes, epoch_s: float = EPOCH_S) -> LabelSet:
    """Parse the bytes of an EDF+/BDF+ annotation file into a hypnogram and events."""
    try:
        header = parse_header(io.BytesIO(data), len(data))
        annotations = read_annotations(io.BytesIO(data), header)
    except EdfError as exc:
        raise LabelError("bad_edf_annotations", f"{exc.reason}: {exc.detail}") from None
    if not header.annotation_indices:
        raise LabelError("unknown_label_format", "EDF/BDF without an annotation signal")
    warnings: list[str] = []
    stage_anns = [(a, stage_of_text(a.text)) for a in annotations]
    stage_only = [(a, s) for a, s in stage_anns if s is not None]
    spans: list[tuple[float, float, str]] = []
    for i, (a, stage) in enumerate(stage_only):
        duration = a.duration
        if duration is None:
            nxt = stage_only[i + 1][0].onset if i + 1 < len(stage_only) else a.onset + epoch_s
            duration = nxt - a.onset
        spans.append((a.onset, duration, stage, a.text.split("@@")[0].strip()))
    events = []
    lights: dict[str, float] = {}
    for a, s in stage_anns:
        if s is not None:
            continue
        text, _, channel = a.text.partition("@@")  # HMC/MNE: "Lights off@@EEG F4-A1"
        which = lights_word(text)
        if which is not None:
            lights.setdefault(which, a.onset)
            continue
        events.append(LabelEvent(type=map_event(text), onset_s=a.onset, duration_s=a.duration or 0.0,
                            channel=channel.strip(), label=text.strip()))
    hyp = expand_spans(spans, epoch_s, warnings) if spans else None
    start: datetime | None = header.start
    tod = header_time_of_day(header)
    if start is None:
        warnings.append(f"EDF start date unusable ({header.start_problem}): time of day only")
    return LabelSet(
        start=start, hypnogram=hyp, events=events, source_kind="edf_hypnogram", warnings=warnings,
        start_time=tod, lights_off_s=lights.get("off"), lights_on_s=lights.get("on"),
    )


def sniff(head: bytes, name: str) -> int:
    """2 for an EDF+/BDF+ file whose only signal is the annotation signal; refuses recordings."""
    if not (head.startswith(b"0       ") or head.startswith(b"\xffBIOSEMI")):
        return 0
    reserved = head[192:236].decode("ascii", "replace").strip()
    if not reserved.startswith(("EDF+", "BDF+")) and len(head) < 256:
        raise LabelError("unknown_label_format", "EDF/BDF header shorter than 256 bytes")
    try:
        ns = int(head[252:256].decode("ascii").strip())
    except ValueError:
        raise LabelError("unknown_label_format", "EDF header without a signal count (bytes 252-256)") from None
    if len(head) >= 256 + ns * 16:
        labels = [head[256 + i * 16 : 256 + (i + 1) * 16].decode("latin-1").strip() for i in range(ns)]
        ordinary = [lb for lb in labels if lb not in ("EDF Annotations", "BDF Annotations")]
        if len(ordinary) == len(labels):
            raise LabelError(
                "unknown_label_format",
                "EDF/BDF without an annotation signal: a recording, not a label file (upload it as psg)",
            )
        if ordinary:
            raise LabelError(
                "unknown_label_format",
                f"EDF/BDF with {len(ordinary)} ordinary signal(s) besides the annotations: upload it as psg",
            )
        return 2
    if reserved.startswith(("EDF+", "BDF+")):
        return 2
    raise LabelError("unknown_label_format", "plain EDF/BDF (no EDF+ annotations) is not a label file")


FORMAT = Format(
    kind="edf_hypnogram",
    title="EDF+/BDF+ annotation file",
    producer="Sleep-EDF (PhysioNet), HMC, MNE export, most PSG systems",
    extensions=(".edf", ".bdf"),
    out_extension="edf",
    sniff=sniff,
    parse_fn=lambda data: parse(data),
    is_text=False,
    anonymise_fn=None,
    reads="stage runs (Sleep stage W/1-4/R/?, N1-N3, Movement time), events, lights markers "
    "(Lights off@@channel)",
    anonymised="by the EDF anonymiser: patient and recording fields, start date, annotation text",
    assumptions="a stage annotation without a duration lasts until the next one; '@@' separates the channel",
)
