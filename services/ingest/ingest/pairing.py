"""Pairing: the recordings of one subject and night, whatever order they arrive in.

The night document lists each recording with its time range relative to the night's noon anchor
(``start_offset_s``, ``duration_s``); pairing compares those ranges.
"""

from __future__ import annotations

import copy
from typing import Any


def overlap_s(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Seconds during which two recordings (``start_offset_s`` + ``duration_s``) overlap."""
    start = max(a["start_offset_s"], b["start_offset_s"])
    end = min(a["start_offset_s"] + a["duration_s"], b["start_offset_s"] + b["duration_s"])
    return max(0.0, end - start)


def pairing_status(recordings: dict[str, Any]) -> dict[str, Any]:
    """Which halves are present and whether the Sunrise and PSG recordings overlap in time."""
    sunrise, psg = recordings.get("sunrise"), recordings.get("psg")
    labels = recordings.get("labels", {})
    status: dict[str, Any] = {"sunrise": sunrise is not None, "psg": psg is not None, "labels": len(labels)}
    if sunrise and psg:
        ov = overlap_s(sunrise, psg)
        status["overlap_s"] = round(ov, 3)
        status["state"] = "paired" if ov > 0 else "no_overlap"
    else:
        status["state"] = "sunrise_only" if sunrise else ("psg_only" if psg else "labels_only")
    return status


# --------------------------------------------------------------------------------------------
# Label files without a date (NSRR XML "00.00.00 HH.MM.SS", time-only exports)
#
# A night id needs the recording date, which such a file does not have. Its night is the
# subject's PSG night whose recording overlaps the label file by time of day; until such a PSG
# arrives the label file waits, as a Sunrise recording waits for its PSG. Both sides meet in one
# document per subject, ``pairing/{subject pseudonym}``, changed only in transactions: the PSG
# side registers its night and takes the waiting label files it overlaps, the label side pairs
# with a registered night or registers itself as waiting. Whichever transaction commits second
# sees the other's write, so a label file and its PSG arriving together cannot miss each other.

#: Collection of the per-subject pairing documents (keyed by subject pseudonym).
PAIRING = "pairing"

#: What a label file paired by time of day records about its date (on its recording entry).
ASSUMED = ("the label file carries no date: paired by time of day with the subject's PSG "
           "recording that overlaps it")
#: ... and one without any time (one stage per line, Profusion, Visbrain: epoch 1 = recording start).
ASSUMED_TIMELESS = ("the label file carries no date and no time: assumed to start with the subject's "
                    "PSG recording (its only PSG night when it arrived)")


def waiting_object(subject: str, label_key: str, ext: str, version: str | None = None) -> str:
    """Where a date-less label file waits in the anonymised bucket (no night yet); ``version``
    (``identity.generation_token`` of the raw generation) names one object per raw generation, so
    an older generation's ingest never overwrites a newer one's, as ``names.anonymised_object``."""
    return f"waiting/{subject}/labels/{label_key}{'-' + version if version else ''}.{ext}"


def label_range(start_offset_s: float, span: tuple[float, float]) -> tuple[float, float]:
    """(first, last) s from the noon anchor covered by a label file that starts at
    ``start_offset_s`` (its time of day) and scores ``span`` s relative to that start."""
    return start_offset_s + span[0], start_offset_s + span[1]


def _meets(rng: tuple[float, float], night: dict[str, Any]) -> bool:
    """A label range and a PSG recording touch (closed intervals: a label file of events only,
    all at one instant, still pairs with the recording that instant falls in)."""
    start = float(night["start_offset_s"])
    end = start + float(night.get("duration_s") or 0.0)
    return max(rng[0], start) <= min(rng[1], end)


def candidate_nights(doc: dict[str, Any] | None, rng: tuple[float, float] | None) -> list[str]:
    """The subject's registered PSG nights that a label range meets (every one for a label file
    without any time, ``rng`` None), sorted."""
    nights = (doc or {}).get("psg_nights", {})
    return sorted(n for n, rec in nights.items() if rng is None or _meets(rng, rec))


def register_psg(doc: dict[str, Any] | None, night: str, psg: dict[str, Any], now: float, *,
                 take: bool = True) -> dict[str, Any]:
    """Transaction body (PSG side): note the PSG of ``night`` and (``take``) give it every waiting
    label file it meets that no other night took (a redelivery finds its own label files again).

    The night's entry is the newest raw generation of its PSG upload: a PSG of another upload
    (a duplicate) or an older generation of the same one (superseded) changes nothing, whatever
    order the ingests finish in (issue 22)."""
    doc = copy.deepcopy(doc) if doc else {}
    before = doc.setdefault("psg_nights", {}).get(night)
    if before is not None and not _newer(psg, before):
        return doc
    doc["psg_nights"][night] = {"start_offset_s": psg["start_offset_s"], "duration_s": psg.get("duration_s") or 0.0,
                                "year": psg.get("year"), "upload_id": psg.get("upload_id"),
                                "raw_generation": psg.get("raw_generation")}
    for entry in doc.setdefault("waiting_labels", {}).values() if take else ():
        if entry.get("paired_night") is None and (entry.get("range_start_s") is None or _meets(
                (entry["range_start_s"], entry["range_end_s"]), doc["psg_nights"][night])):
            entry["paired_night"] = night
            entry["paired_at"] = now
    doc["updated_at"] = now
    return doc


def _newer(psg: dict[str, Any], before: dict[str, Any]) -> bool:
    """``psg`` replaces the registered ``before``: same upload (or one registered without its
    upload id) and a newer raw generation (or one of them unknown: registered before raw
    generations were kept)."""
    if before.get("upload_id") not in (None, psg.get("upload_id")):
        return False
    old, new = before.get("raw_generation"), psg.get("raw_generation")
    return old is None or new is None or int(new) >= int(old)


def taken_by(doc: dict[str, Any] | None, night: str) -> dict[str, dict[str, Any]]:
    """The waiting label files (by label key) that ``night``'s PSG took."""
    return {k: e for k, e in ((doc or {}).get("waiting_labels") or {}).items() if e.get("paired_night") == night}


def still_waiting(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The label files of a subject that no PSG has taken yet (by label key)."""
    return {k: e for k, e in ((doc or {}).get("waiting_labels") or {}).items() if e.get("paired_night") is None}
