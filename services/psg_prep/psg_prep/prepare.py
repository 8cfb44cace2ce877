"""Prepare one PSG night: filtered, resampled signals, quality flags and aligned label tables.

``prepare_psg(psg, label_paths, out)`` reads the PSG as a seekable stream (a file, or the
bucket object's range reads: nothing downloaded) and writes into ``out`` (a folder, or straight
into the bucket: ``outputs.BucketOutputs``; nothing of the night in ``/tmp``):

- ``signals.npz``: one float32 array per kept channel at its target rate, keyed by canonical
  name (``channels.map_channels``); sample 0 is the first sample of the first data record.
  EDF+D gaps are NaN (segments are processed separately, never joined).
- ``quality.npz``: ``channels`` (names), ``flat`` and ``saturated`` (bool, channels x epochs),
  ``missing`` (bool, epochs: less than half of the epoch recorded, EDF+D gaps).
- ``meta.json``: channels (original label, canonical name and type, unit, source and target
  rates, filter), ``start_offset_s`` (seconds from the night's noon anchor to the recording
  start, from the header's time of day: ``((h*3600 + m*60 + s) - 43200) % 86400`` plus the
  EDF+ sub-second start), ``duration_s``, ``epoch_s`` (30), ``n_epochs``, ``discontinuous``,
  labels (files, kinds, warnings) and ``labels_overlap``.
- ``hypnogram.csv``: ``epoch,onset_s,stage,in_recording`` on 30-s epochs of the PSG grid
  (epoch k starts ``30 k`` s after the recording start; k may be negative or beyond the
  recording: label epochs outside the recording are kept and marked ``in_recording=0``).
- ``events.csv``: ``type,onset_s,duration_s,channel,nadir,label,stage``, onsets in seconds from
  the recording start; ``stage`` is the canonical sleep stage at the event (``W N1 N2 N3 REM
  UNS``) as the scoring software exported it (DOMINO event rows), empty when the label file
  does not say (take it from the hypnogram then).

Labels are checked against the recording (issue 23): when fewer than half of the hypnogram's
scored epochs (stage other than ``UNS``) lie in the recording, the labels are misaligned
(``labels.misaligned`` in meta.json: ``reason`` ``label_misaligned``, ``offset_s`` of the label
hypnogram's first epoch from the recording start, the epoch counts) and no training rows are
made from them (sunalgo); when the scored epochs in the recording cover less than half of it,
a warning says so (``labels.coverage``).

Labels are placed by their start's time of day relative to the PSG's (both anonymised files
keep only the year and the time of day).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from sunrise_common import logs
from sunrise_common.edf import EdfError, EdfHeader, iter_chunks, parse_header, read_record_onsets
from sunrise_common.edf.annotations import parse_tals
from sunrise_common.identity import time_of_day_offset_s, wrap_offset_s
from sunrise_common.jsonsafe import json_safe
from sunrise_common.labels import HEAD_BYTES, LabelError, LabelSet, detect_label_kind, parse_labels
from sunrise_common.labels.edf_hypnogram import header_time_of_day

from .channels import ChannelInfo, load_table, map_channels
from .errors import PrepError
from .limits import check_header, check_plan
from .npzfile import MemberWriter
from .outputs import FolderOutputs, Outputs
from .filters import EPOCH_S, QUALITY_TYPES, ChannelPlan, QualityAccumulator, StreamProcessor, plan_channel

log = logging.getLogger(__name__)

MAX_SPAN_S = 48 * 3600.0
SCHEMA_VERSION = 1


# --------------------------------------------------------------------------------------------
# labels


def _load_labels(labels: list[Path | tuple[str, bytes]], kinds: list[str | None]) -> list[tuple[str, LabelSet]]:
    """(file name, parsed labels) of each label file: a path, or a (name, bytes) pair read by the
    caller (the service reads label objects into memory, bounded by the label limits)."""
    out = []
    for item, kind in zip(labels, kinds, strict=True):
        if isinstance(item, tuple):
            name, data = item
        else:
            name, data = Path(item).name, Path(item).read_bytes()
        try:
            if kind is None:  # a caller without ingest's record of the kind (the CLI, tests)
                kind = detect_label_kind(name, data[:HEAD_BYTES])
            out.append((name, parse_labels(kind, data)))
        except LabelError as exc:
            raise PrepError(exc.reason, f"{name}: {exc.detail}") from None
    return out


def _label_anchor(ls: LabelSet) -> float | None:
    tod = ls.start_time_of_day_s
    return None if tod is None else time_of_day_offset_s(0, 0, tod)


def _hypnogram_rows(ls: LabelSet, offset: float, epoch_s: float) -> list[tuple[int, float, str]]:
    """Stages of the label hypnogram on the 30-s grid anchored at the reference start.

    Grid epoch k takes the label stage whose epoch contains the grid epoch's midpoint.
    """
    hyp = ls.hypnogram
    if hyp is None or not hyp.stages:
        return []
    t_first = offset + hyp.onset_s
    t_end = t_first + len(hyp.stages) * hyp.epoch_s
    k0 = math.floor(t_first / epoch_s + 1e-6)
    k1 = math.ceil(t_end / epoch_s - 1e-6)
    rows = []
    for k in range(k0, k1):
        mid = (k + 0.5) * epoch_s
        i = math.floor((mid - t_first) / hyp.epoch_s)
        if 0 <= i < len(hyp.stages):
            rows.append((k, k * epoch_s, hyp.stages[i]))
    return rows


def _write_labels(
    out: Outputs,
    label_sets: list[tuple[str, LabelSet]],
    ref_anchor: float | None,
    duration_s: float | None,
    missing: np.ndarray | None,
) -> dict[str, Any]:
    """Write hypnogram.csv and events.csv; return the labels part of meta.json."""
    warnings: list[str] = []
    files = []
    hyp_rows: list[tuple[int, float, str]] = []
    events: list[tuple[str, float, float, str, float | None, str, str | None]] = []
    spans: list[tuple[float, float]] = []
    hyp_taken = False
    hyp_start: float | None = None  # s of the taken hypnogram's first epoch from the recording start
    for name, ls in label_sets:
        anchor = _label_anchor(ls)
        if ref_anchor is None or anchor is None:
            offset = 0.0
            if ref_anchor is not None:
                warnings.append(f"{name}: label start unknown, assumed to match the recording start")
        else:
            offset = wrap_offset_s(anchor - ref_anchor)
        files.append(
            {
                "kind": ls.source_kind,
                "start_offset_s": anchor,
                "offset_to_recording_s": offset if ref_anchor is not None else None,
                "n_epochs": len(ls.hypnogram.stages) if ls.hypnogram else 0,
                "n_events": len(ls.events),
                "warnings": list(ls.warnings),
            }
        )
        if ls.hypnogram is not None and ls.hypnogram.stages:
            if hyp_taken:
                warnings.append(f"{name}: a second hypnogram was ignored (the first label file's is used)")
            else:
                hyp_taken = True
                hyp_rows = _hypnogram_rows(ls, offset, EPOCH_S)
                if abs((offset + ls.hypnogram.onset_s) / EPOCH_S - round((offset + ls.hypnogram.onset_s) / EPOCH_S)) > 1e-4:
                    warnings.append(
                        f"{name}: label epochs are not on the recording's 30-s grid "
                        f"(offset {offset + ls.hypnogram.onset_s:.3f} s): stages taken at epoch midpoints"
                    )
                t0 = offset + ls.hypnogram.onset_s
                hyp_start = t0
                spans.append((t0, t0 + len(ls.hypnogram.stages) * ls.hypnogram.epoch_s))
        for ev in ls.events:
            onset = offset + ev.onset_s
            events.append((ev.type, onset, ev.duration_s, ev.channel, ev.nadir, ev.label, ev.stage))
            spans.append((onset, onset + ev.duration_s))
        # Lights markers (LabelSet.lights_off_s/on_s) go to events.csv as ``other`` rows labelled
        # "Lights off"/"Lights on": sunalgo's scoring window reads them there (sunalgo.run._lights).
        for label, t in (("Lights off", ls.lights_off_s), ("Lights on", ls.lights_on_s)):
            if t is not None:
                events.append(("other", offset + t, 0.0, "", None, label, None))
                files[-1][label.lower().replace(" ", "_") + "_s"] = round(offset + t, 3)
    events.sort(key=lambda e: e[1])

    def in_rec(k: int) -> int:
        return _in_recording(k, duration_s, missing)

    _write_label_tables(out, hyp_rows, events, in_rec)
    misaligned, coverage = _check_alignment(hyp_rows, hyp_start, duration_s, warnings)
    overlap = _label_overlap(spans, duration_s, sum(1 for k, _, _ in hyp_rows if not in_rec(k)), warnings)
    return {
        "files": files,
        "hypnogram_epochs": len(hyp_rows),
        "n_events": len(events),
        "warnings": warnings,
        "overlap": overlap,
        "misaligned": misaligned,
        "coverage": coverage,
    }


def _in_recording(k: int, duration_s: float | None, missing: np.ndarray | None) -> int:
    """1 when label epoch ``k`` lies in the recorded signal (not past its end, not in a gap)."""
    if duration_s is None or not 0 <= k * EPOCH_S < duration_s:
        return 0
    if missing is not None and k < len(missing) and missing[k]:
        return 0
    return 1


def _write_label_tables(out: Outputs, hyp_rows: list[tuple[int, float, str]],
                        events: list[tuple[str, float, float, str, float | None, str, str | None]],
                        in_rec: Callable[[int], int]) -> None:
    """hypnogram.csv and events.csv (small: bounded by the label limits; built in memory)."""
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(["epoch", "onset_s", "stage", "in_recording"])
    for k, onset, stage in hyp_rows:
        w.writerow([k, f"{onset:.3f}", stage, in_rec(k)])
    out.write("hypnogram.csv", f.getvalue().encode())
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(["type", "onset_s", "duration_s", "channel", "nadir", "label", "stage"])
    for etype, onset, dur, chan, nadir, label, stage in events:
        w.writerow([etype, f"{onset:.3f}", f"{dur:.3f}", chan, "" if nadir is None else f"{nadir:g}", label,
                    stage or ""])
    out.write("events.csv", f.getvalue().encode())


def _label_overlap(spans: list[tuple[float, float]], duration_s: float | None, epochs_outside: int,
                   warnings: list[str]) -> dict[str, Any] | None:
    """How the labels' time span overlaps the recording (meta.json ``labels.overlap``); a warning
    when not fully."""
    if duration_s is None or not spans:
        return None
    lo = min(s for s, _ in spans)
    hi = max(e for _, e in spans)
    ov = max(0.0, min(hi, duration_s) - max(lo, 0.0))
    tol = 1.0
    if ov <= 0:
        status = "none"
    elif lo >= -tol and hi <= duration_s + tol:
        status = "full"
    else:
        status = "partial"
    if status != "full":
        warnings.append(
            f"labels overlap the recording {'partially' if status == 'partial' else 'not at all'}: "
            f"{ov:.0f} s of {hi - lo:.0f} s "
            "(tables kept whole; out-of-recording epochs marked in_recording=0)"
        )
    return {
        "status": status,
        "overlap_s": round(ov, 3),
        "label_start_s": round(lo, 3),
        "label_end_s": round(hi, 3),
        "before_recording_s": round(max(0.0, min(0.0, hi) - lo), 3),
        "after_recording_s": round(max(0.0, hi - max(duration_s, lo)), 3),
        "hypnogram_epochs_outside": epochs_outside,
    }


#: Below this fraction of scored epochs in the recording, labels are misaligned (no training rows).
MIN_SCORED_IN_RECORDING = 0.5
#: Below this fraction of the recording covered by scored epochs, a warning.
MIN_COVERAGE = 0.5


def _check_alignment(hyp_rows: list[tuple[int, float, str]], hyp_start: float | None, duration_s: float | None,
                     warnings: list[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(misaligned, coverage) of the hypnogram against the recording (see the module docstring).

    ``hyp_start`` is the label hypnogram's first epoch in s from the recording start (the offset
    found from the two start times); epochs are on the recording's 30-s grid."""
    if duration_s is None or not hyp_rows or duration_s <= 0:
        return None, None
    scored = [k for k, _, stage in hyp_rows if stage != "UNS"]
    inside = [k for k in scored if 0 <= k * EPOCH_S < duration_s]
    n_recording = math.ceil(duration_s / EPOCH_S - 1e-9)
    coverage = {"scored_epochs": len(scored), "scored_in_recording": len(inside), "recording_epochs": n_recording,
                "fraction": round(len(inside) / n_recording, 4)}
    misaligned = None
    if scored and len(inside) < MIN_SCORED_IN_RECORDING * len(scored):
        misaligned = {"reason": "label_misaligned", "offset_s": round(hyp_start or 0.0, 3),
                      "scored_epochs": len(scored), "scored_in_recording": len(inside)}
        warnings.append(f"label_misaligned: {len(inside)} of {len(scored)} scored epochs lie in the recording "
                        f"(label hypnogram starts {hyp_start or 0.0:+.0f} s from the recording start): "
                        "no training rows from these labels")
    elif coverage["fraction"] < MIN_COVERAGE:
        warnings.append(f"the hypnogram covers {100 * coverage['fraction']:.0f} % of its PSG "
                        f"({len(inside)} scored of {n_recording} recording epochs)")
    return misaligned, coverage


# --------------------------------------------------------------------------------------------
# signals


def _first_onset(f: BinaryIO, header: EdfHeader) -> float:
    """EDF+ start within the second (first record's time-keeping TAL); 0 for plain EDF. Reads
    one record (its size bounded by the header checks)."""
    if header.plus is None or not header.annotation_indices or header.n_records == 0:
        return 0.0
    f.seek(header.header_bytes)
    record = f.read(header.record_bytes)
    tals = parse_tals(record[header.signal_slice(header.annotation_indices[0])])
    if tals and tals[0].is_timekeeping:
        return float(tals[0].onset_s)
    return 0.0


def _segments(onsets: np.ndarray, record_duration: float) -> list[tuple[int, int, float]]:
    """Contiguous runs of records: (first record, number of records, onset in s)."""
    if len(onsets) == 0:
        return []
    breaks = np.nonzero(np.abs(np.diff(onsets) - record_duration) > 1e-3)[0] + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, len(onsets)]
    return [(int(s), int(e - s), float(onsets[s])) for s, e in zip(starts, ends)]


MAX_WORKERS = 4  # beyond this, per-chunk batches get too small to gain


def default_workers() -> int:
    """Threads for ``prepare_psg``: the CPUs this process may use, 1 to ``MAX_WORKERS``."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_WORKERS))


def _plan_key(plan: ChannelPlan) -> tuple:
    """Channels whose plans have equal keys are processed as one 2-D batch (the unit scale is
    applied per channel before batching)."""
    return (plan.fs_in, plan.up, plan.down, plan.method, plan.margin, plan.block, plan.restore_offset,
            plan.offset_len, None if plan.sos is None else plan.sos.tobytes(),
            None if plan.fir is None else plan.fir.tobytes())


def _tasks(plans: list[ChannelPlan], workers: int) -> list[tuple[ChannelPlan, list[int]]]:
    """Batches of channel indices sharing a filter, each split into up to ``workers`` parts so
    the threads share every kind of work; largest first (the pool hands them out in order)."""
    groups: dict[tuple, list[int]] = {}
    for j, plan in enumerate(plans):
        groups.setdefault(_plan_key(plan), []).append(j)
    tasks = []
    for rows in groups.values():
        for part in np.array_split(np.array(rows), min(workers, len(rows))):
            tasks.append((plans[rows[0]], [int(j) for j in part]))
    cost = [_task_cost(p, rows) for p, rows in tasks]
    return [tasks[i] for i in np.argsort(cost, kind="stable")[::-1]]


def _task_cost(plan: ChannelPlan, rows: list[int]) -> float:
    """Relative cost of a batch: input samples per second times the passes over them."""
    return len(rows) * plan.fs_in * (1 + (plan.sos is not None) + (plan.poly is not None))


@dataclass
class PsgLayout:
    """The PSG's time layout, from its header and record onsets (``open_recording``).

    The recording is read through ``source`` in several passes (header, record onsets for EDF+D,
    then the chunks), each with bounded reads: a seekable binary stream, never a whole copy.
    ``segments``: contiguous runs of records (first record, number of records, onset in s);
    ``t_origin``: onset of the first record (s, EDF+ sub-second start included); ``total_s``:
    first record's start to last record's end.
    """

    source: BinaryIO  # the recording, seekable (a local file or the bucket's range reads)
    header: EdfHeader
    ordinary: list[int]
    segments: list[tuple[int, int, float]]
    t_origin: float
    total_s: float
    n_epochs: int


@dataclass
class PreparedSignals:
    """What ``prepare_signals`` wrote (signals.npz, quality.npz) and its part of meta.json."""

    format: str
    start_offset_s: float | None
    duration_s: float
    recorded_s: float
    n_epochs: int
    channels: list[dict[str, Any]]
    discontinuous: Any
    warnings: list[str]
    missing: np.ndarray  # bool per epoch: less than half of it recorded

    def meta(self) -> dict[str, Any]:
        """The meta.json fields (all but ``missing``)."""
        return {
            "format": self.format,
            "start_offset_s": self.start_offset_s,
            "duration_s": self.duration_s,
            "recorded_s": self.recorded_s,
            "n_epochs": self.n_epochs,
            "channels": self.channels,
            "discontinuous": self.discontinuous,
            "warnings": self.warnings,
        }


def open_recording(source: BinaryIO, *, chunk_seconds: float = 300.0) -> PsgLayout:
    """Read the header and the record onsets from ``source`` (a seekable binary stream: an open
    file, or a bucket object's range reads); split into contiguous segments. A header beyond
    :mod:`psg_prep.limits` (sample rate, samples per chunk) is refused before anything else is read."""
    try:
        size = source.seek(0, os.SEEK_END)
        source.seek(0)
        header = parse_header(source, size)
    except EdfError as exc:
        raise PrepError(exc.reason, exc.detail) from None
    if header.n_records == 0:
        raise PrepError("empty_recording", "the recording has 0 data records")
    ordinary = list(header.ordinary_indices)
    if not ordinary:
        raise PrepError("no_signals", "the recording has only annotation signals (a label file?)")
    check_header(header, ordinary, chunk_seconds)
    try:
        if header.plus == "D":
            onsets = read_record_onsets(source, header)
        else:
            first = _first_onset(source, header)
            onsets = first + np.arange(header.n_records) * header.record_duration
    except EdfError as exc:
        raise PrepError(exc.reason, exc.detail) from None
    if len(onsets) > 1 and np.any(np.diff(onsets) < header.record_duration - 1e-3):
        bad = int(np.argmax(np.diff(onsets) < header.record_duration - 1e-3))
        raise PrepError(
            "overlapping_records",
            f"record {bad + 1} starts at {onsets[bad + 1]:g} s, before record {bad} ends "
            f"({onsets[bad]:g} + {header.record_duration:g} s)",
        )
    t_origin = float(onsets[0])
    total_s = float(onsets[-1] + header.record_duration - t_origin)
    if total_s > MAX_SPAN_S:
        raise PrepError("absurd_gap", f"records span {total_s / 3600:.1f} h (limit {MAX_SPAN_S / 3600:.0f} h)")
    return PsgLayout(
        source=source,
        header=header,
        ordinary=ordinary,
        segments=_segments(onsets, header.record_duration),
        t_origin=t_origin,
        total_s=total_s,
        n_epochs=int(math.ceil(total_s / EPOCH_S - 1e-9)),
    )


def plan_channels(
    rec: PsgLayout, *, chunk_seconds: float, notch_hz: float | None, channel_map: Path | None
) -> tuple[list[ChannelInfo], list[ChannelPlan], list[dict[str, Any]]]:
    """Map each ordinary signal to a canonical channel, plan its processing; per-channel meta."""
    header = rec.header
    infos = map_channels([header.signals[i].label for i in rec.ordinary], load_table(channel_map))
    check_plan(header, rec.ordinary, [info.type for info in infos], rec.total_s)
    plans = []
    channels_meta = []
    for idx, info in zip(rec.ordinary, infos):
        sig = header.signals[idx]
        plan, unit = plan_channel(
            info.type,
            sig.sample_rate,
            dimension=sig.physical_dimension,
            physical_max=sig.physical_max,
            notch_hz=notch_hz,
            block_s=chunk_seconds,
        )
        plans.append(plan)
        channels_meta.append(
            {
                "label": info.label,
                "name": info.name,
                "type": info.type,
                "known": info.type != "UNKNOWN",
                "unit": unit,
                "source_unit": sig.physical_dimension,
                "source_rate_hz": sig.sample_rate,
                "target_rate_hz": plan.fs_out,
                "filter": plan.description,
                # The band actually applied (null: edge not applied) next to the AASM one.
                "band_hz": list(plan.band),
                "aasm_band_hz": list(plan.aasm_band) if plan.aasm_band else None,
                "notch_hz": plan.notch_hz,
                "nyquist_hz": plan.fs_out / 2,
                "notes": plan.notes,
            }
        )
    return infos, plans, channels_meta


def _quality_accumulators(rec: PsgLayout, infos: list[ChannelInfo]) -> list[QualityAccumulator]:
    sigs = [rec.header.signals[i] for i in rec.ordinary]
    return [
        QualityAccumulator(
            fs=sig.sample_rate,
            lsb=abs(sig.gain),
            physical_min=min(sig.physical_min, sig.physical_max),
            physical_max=max(sig.physical_min, sig.physical_max),
            n_epochs=rec.n_epochs,
            enabled=info.type in QUALITY_TYPES,
        )
        for sig, info in zip(sigs, infos)
    ]


def _runs(rec: PsgLayout, chunk_seconds: float):
    """(segment index, onset from the origin in s, per-channel samples) of each contiguous run
    of records in each decoded chunk."""
    header, segments = rec.header, rec.segments
    seg_of_record = np.zeros(header.n_records, dtype=np.int64)
    for s_i, (r0, n, _) in enumerate(segments):
        seg_of_record[r0 : r0 + n] = s_i
    for chunk in iter_chunks(rec.source, header, chunk_seconds, rec.ordinary):
        r = chunk.start_record
        r_end = r + chunk.n_records
        while r < r_end:
            s_i = int(seg_of_record[r])
            seg_r0, seg_n, seg_onset = segments[s_i]
            run_end = min(r_end, seg_r0 + seg_n)
            xs = []
            for idx in rec.ordinary:
                spr = header.signals[idx].samples_per_record
                xs.append(chunk.data[idx][(r - chunk.start_record) * spr : (run_end - chunk.start_record) * spr])
            yield s_i, seg_onset + (r - seg_r0) * header.record_duration - rec.t_origin, xs
            r = run_end


class _Lane:
    """One thread's share of the channel batches (``_tasks``), fed chunk by chunk through a
    bounded queue: lanes run without a barrier between chunks (each batch's stream is still
    processed in order), and at most ``QUEUE_CHUNKS`` decoded chunks wait per lane (memory)."""

    QUEUE_CHUNKS = 2

    def __init__(self, tasks: list[tuple[ChannelPlan, list[int]]], plans: list[ChannelPlan],
                 quality: list[QualityAccumulator], writers: list[MemberWriter]) -> None:
        self.tasks, self.plans, self.quality, self.writers = tasks, plans, quality, writers
        self.procs: list[StreamProcessor] = []
        self.queue: queue.Queue | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def handle(self, item: tuple) -> None:
        """("segment", onset s) | ("data", per-channel samples, onset s) | ("finish",)."""
        kind = item[0]
        if kind == "segment":
            for _, rows in self.tasks:
                for j in rows:
                    self.writers[j].pad_to(int(round(item[1] * self.plans[j].fs_out)))
            self.procs = [StreamProcessor(plan, scales=[self.plans[j].scale for j in rows]) for plan, rows in self.tasks]
            return
        for (_, rows), proc in zip(self.tasks, self.procs):
            if kind == "finish":
                ys = proc.finish()
            else:
                xs, t_run = item[1], item[2]
                for j in rows:
                    self.quality[j].add(xs[j], t_run)
                ys = proc.push(np.stack([xs[j] for j in rows]))
            for j, y in zip(rows, ys):
                self.writers[j].write(y)

    def start(self) -> None:
        self.queue = queue.Queue(self.QUEUE_CHUNKS)
        self.thread = threading.Thread(target=self._loop, name="psg-lane", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        assert self.queue is not None
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after a failure, keep draining so the feeder never blocks
                try:
                    self.handle(item)
                except BaseException as exc:  # re-raised in the calling thread by _ChannelRunner
                    self.error = exc


class _ChannelRunner:
    """Quality flags, filtering/resampling and writing of every channel: the batches of
    channels sharing a filter (``_tasks``) are dealt to ``workers`` lanes of about equal cost,
    each on its own thread (one lane: in the calling thread). Results do not depend on the
    number of lanes (each batch sees the same blocks)."""

    def __init__(self, plans: list[ChannelPlan], quality: list[QualityAccumulator], writers: list[MemberWriter],
                 workers: int) -> None:
        tasks = _tasks(plans, workers)  # largest first
        shares: list[list[tuple[ChannelPlan, list[int]]]] = [[] for _ in range(workers)]
        load = [0.0] * workers
        for plan, rows in tasks:  # greedy: each batch to the least loaded lane
            i = int(np.argmin(load))
            shares[i].append((plan, rows))
            load[i] += _task_cost(plan, rows)
        self.lanes = [_Lane(share, plans, quality, writers) for share in shares if share]
        if len(self.lanes) > 1:
            for lane in self.lanes:
                lane.start()

    def put(self, item: tuple) -> None:
        for lane in self.lanes:
            if lane.queue is None:
                lane.handle(item)
            else:
                lane.queue.put(item)
        self._raise()

    def _raise(self) -> None:
        for lane in self.lanes:
            if lane.error is not None:
                raise lane.error

    def close(self, check: bool) -> None:
        """Stop and join the lane threads; with ``check``, re-raise a lane's error."""
        for lane in self.lanes:
            if lane.queue is not None:
                lane.queue.put(None)
        for lane in self.lanes:
            if lane.thread is not None:
                lane.thread.join()
        if check:
            self._raise()


def process_channels(rec: PsgLayout, plans: list[ChannelPlan], quality: list[QualityAccumulator],
                     writers: list[MemberWriter], *, chunk_seconds: float, workers: int) -> None:
    """Stream the recording through every channel's processing into its writer; EDF+D gaps (and
    a trailing partial output sample) are NaN. The calling thread decodes the chunks while the
    lanes process the previous ones."""
    runner = _ChannelRunner(plans, quality, writers, workers)
    current_seg = -1
    ok = False
    try:
        for s_i, t_run, xs in _runs(rec, chunk_seconds):
            if s_i != current_seg:
                if current_seg >= 0:
                    runner.put(("finish",))
                runner.put(("segment", rec.segments[s_i][2] - rec.t_origin))
                current_seg = s_i
            runner.put(("data", xs, t_run))
        if current_seg >= 0:
            runner.put(("finish",))
        ok = True
    except EdfError as exc:
        raise PrepError(exc.reason, exc.detail) from None
    finally:
        runner.close(check=ok)
    for plan, sp in zip(plans, writers):
        sp.pad_to(int(round(rec.total_s * plan.fs_out)))


def output_lengths(rec: PsgLayout, plans: list[ChannelPlan]) -> list[int]:
    """Samples of each channel in signals.npz, known before processing: per segment, NaN up to
    the segment's onset, then ``ceil(n_in x up / down)`` outputs (polyphase, reducers and 1:1
    alike), and NaN up to the end of the last record."""
    out = []
    for idx, plan in zip(rec.ordinary, plans):
        spr = rec.header.signals[idx].samples_per_record
        n = 0
        for _, n_rec, onset in rec.segments:
            n = max(n, int(round((onset - rec.t_origin) * plan.fs_out)))
            n += -(-n_rec * spr * plan.up // plan.down)
        out.append(max(n, int(round(rec.total_s * plan.fs_out))))
    return out


def missing_epochs(rec: PsgLayout) -> np.ndarray:
    """Bool per epoch: less than half of it covered by records (EDF+D gaps)."""
    covered = np.zeros(rec.n_epochs)
    for _, n, onset in rec.segments:
        a = onset - rec.t_origin
        b = a + n * rec.header.record_duration
        k0, k1 = int(a // EPOCH_S), int(math.ceil(b / EPOCH_S))
        for k in range(k0, min(k1, rec.n_epochs)):
            covered[k] += max(0.0, min(b, (k + 1) * EPOCH_S) - max(a, k * EPOCH_S))
    return covered < 0.5 * EPOCH_S


def write_quality(out: Outputs, rec: PsgLayout, infos: list[ChannelInfo], quality: list[QualityAccumulator],
                  missing: np.ndarray, channels_meta: list[dict[str, Any]]) -> None:
    """quality.npz (bools, channels x epochs: 38 kB for 20 channels and 16 h, built in memory);
    also the per-channel flat/saturated epoch counts into ``channels_meta``."""
    flags = [q.flags() for q in quality]
    buf = io.BytesIO()
    np.savez(
        buf,
        channels=np.array([i.name for i in infos]),
        flat=np.array([f for f, _ in flags], dtype=bool).reshape(len(infos), rec.n_epochs),
        saturated=np.array([s for _, s in flags], dtype=bool).reshape(len(infos), rec.n_epochs),
        missing=missing,
    )
    out.write("quality.npz", buf.getvalue())
    for ch, (f, s) in zip(channels_meta, flags):
        ch["flat_epochs"] = int(f.sum())
        ch["saturated_epochs"] = int(s.sum())


def _start_offset(rec: PsgLayout, warnings: list[str]) -> float | None:
    """Seconds from the night's noon anchor to the first record (None: start time unusable)."""
    header = rec.header
    tod = header_time_of_day(header)
    if tod is None:
        warnings.append(f"recording start time unusable ({header.starttime_raw!r}): start_offset_s unknown")
    if header.start is None:
        warnings.append(f"recording start date unusable: {header.start_problem}")
    return None if tod is None else time_of_day_offset_s(tod.hour, tod.minute, tod.second + rec.t_origin)


def _discontinuity(rec: PsgLayout, missing: np.ndarray) -> Any:
    """False for a contiguous recording, else its segments and gaps (meta.json)."""
    if len(rec.segments) <= 1:
        return False
    duration = rec.header.record_duration
    gaps = []
    for (_, n, onset), (_, _, nxt) in zip(rec.segments, rec.segments[1:]):
        end = onset + n * duration
        gaps.append({"onset_s": round(end - rec.t_origin, 6), "duration_s": round(nxt - end, 6)})
    return {
        "segments": [
            {"onset_s": round(o - rec.t_origin, 6), "duration_s": n * duration, "first_record": r0, "n_records": n}
            for r0, n, o in rec.segments
        ],
        "gaps": gaps,
        "missing_epochs": int(missing.sum()),
        "gap_fill": "NaN",
    }


def prepare_signals(
    source: BinaryIO,
    out: Outputs,
    *,
    chunk_seconds: float,
    notch_hz: float | None,
    channel_map: Path | None,
    workers: int,
) -> PreparedSignals:
    """signals.npz and quality.npz of one PSG (a seekable binary stream) into ``out``."""
    rec = open_recording(source, chunk_seconds=chunk_seconds)
    infos, plans, channels_meta = plan_channels(rec, chunk_seconds=chunk_seconds, notch_hz=notch_hz,
                                                channel_map=channel_map)
    quality = _quality_accumulators(rec, infos)
    # Each channel's output goes straight to signals.npz as it is produced (no spool and copy):
    # to its place in a local file, or in parts to the bucket (outputs.py).
    npz = out.npz("signals.npz", [(i.name, n) for i, n in zip(infos, output_lengths(rec, plans))])
    writers = [npz.member(j) for j in range(len(infos))]
    try:
        process_channels(rec, plans, quality, writers, chunk_seconds=chunk_seconds, workers=workers)
        npz.close()
    except BaseException:
        npz.abort()
        raise
    for ch, w in zip(channels_meta, writers):
        ch["n_samples"] = w.n
    missing = missing_epochs(rec)
    write_quality(out, rec, infos, quality, missing, channels_meta)
    warnings: list[str] = []
    start_offset = _start_offset(rec, warnings)
    header = rec.header
    return PreparedSignals(
        format=f"{header.fmt}{'+' + header.plus if header.plus else ''}",
        start_offset_s=start_offset,
        duration_s=rec.total_s,
        recorded_s=header.duration,
        n_epochs=rec.n_epochs,
        channels=channels_meta,
        discontinuous=_discontinuity(rec, missing),
        warnings=warnings,
        missing=missing,
    )


def prepare_psg(
    psg: Path | BinaryIO | None,
    label_paths: list[Path | tuple[str, bytes]],
    out: Path | Outputs,
    *,
    chunk_seconds: float = 300.0,
    notch_hz: float | None = 50.0,
    channel_map: Path | None = None,
    workers: int | None = None,
    label_kinds: list[str | None] | None = None,
) -> dict[str, Any]:
    """Prepare a PSG recording and/or its label files into ``out_dir``.

    Parameters
    ----------
    psg : Path, binary stream or None
        The (anonymised) EDF/EDF+/BDF recording: a path, or a seekable binary stream (the
        service passes the bucket object's range reads, ``Storage.open_read``: nothing is
        downloaded); None when only labels have arrived. Read in bounded pieces (header, one
        record, chunks of ``chunk_seconds``), never whole.
    label_paths : list of Path or (name, bytes)
        Label files (DOMINO text, EDF+ hypnogram, NSRR XML), as paths or as (file name,
        content) pairs.
    out : Path or Outputs
        An existing or new folder, or an :class:`~psg_prep.outputs.Outputs` (the service's
        :class:`~psg_prep.outputs.BucketOutputs`); the files listed in the module docstring are
        written there.
    chunk_seconds : float
        Seconds of recording read and processed at a time (memory scales with this, not with
        the recording length).
    notch_hz : float or None
        Mains frequency for the notch on EMG/snore (50 Hz; 60 in the Americas; None: off).
    channel_map : Path or None
        Extra channel rules (JSON or CSV, see ``channels``).
    workers : int or None
        Threads processing channels in parallel (scipy's filters and BLAS release the GIL);
        default: the CPUs this process may run on (``os.sched_getaffinity``), at most 4.
        Channels sharing a filter are processed as 2-D batches, dealt to one thread each of
        about equal cost; the threads run without a barrier between chunks while the calling
        thread decodes the next ones. Results do not depend on it (tested).
    label_kinds : list of str or None, optional
        The kind (``labels.LABEL_KINDS``) of each label file, as ingest recorded it in the night
        document: ingest detects it once, from the raw bytes and the raw file name (which the
        anonymised name no longer carries), and the file is parsed as that kind; a file that does
        not parse as its kind is rejected with the parser's reason. None (or a None entry):
        detect from the content, for callers without that record (the CLI, tests).

    Returns
    -------
    dict
        The content of ``meta.json``.

    Raises
    ------
    PrepError
        A permanent failure with a reason (unreadable EDF, empty recording, bad label file).
    """
    if isinstance(out, (str, Path)):
        out = FolderOutputs(Path(out))
    label_paths = [p if isinstance(p, tuple) else Path(p) for p in label_paths]
    label_sets = _load_labels(label_paths, list(label_kinds) if label_kinds is not None else [None] * len(label_paths))
    meta: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "epoch_s": EPOCH_S}
    missing = None
    if psg is not None:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(open(psg, "rb")) if isinstance(psg, (str, Path)) else psg
            sig = prepare_signals(
                source, out,
                chunk_seconds=chunk_seconds, notch_hz=notch_hz, channel_map=channel_map,
                workers=default_workers() if workers is None else max(1, int(workers)),
            )
        missing = sig.missing
        meta["signals"] = {"file": "signals.npz", "quality": "quality.npz", "n_channels": len(sig.channels)}
        meta.update(sig.meta())
        ref_anchor = sig.start_offset_s
        duration = sig.duration_s
    else:
        meta.update({"signals": None, "channels": [], "start_offset_s": None, "duration_s": None,
                     "n_epochs": None, "discontinuous": False, "warnings": []})
        ref_anchor = None
        duration = None
        if label_sets:
            meta["start_offset_s"] = _label_anchor(label_sets[0][1])
            ref_anchor = meta["start_offset_s"]
    labels = _write_labels(out, label_sets, ref_anchor, duration, missing)
    if not label_sets:
        meta["labels"] = "none"
        meta["labels_overlap"] = None
    else:
        meta["labels"] = labels
        meta["labels_overlap"] = labels.pop("overlap")
        if psg is None:
            meta["labels_reference"] = "first label file's start (no PSG yet)"
    if label_sets:
        meta["warnings"] = meta.get("warnings", []) + labels["warnings"]
    out.write("meta.json", json.dumps(json_safe(meta), indent=2).encode())
    logs.event(log, logging.INFO, "psg prepared", channels=len(meta["channels"]), n_epochs=meta.get("n_epochs"), labels=len(label_sets))
    return meta

