"""Pairing: the recordings of one subject and night, whatever order they arrive in.

The night document lists each recording with its time range relative to the night's noon anchor
(``start_offset_s``, ``duration_s``); pairing compares those ranges.
"""

from __future__ import annotations

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
