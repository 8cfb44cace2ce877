"""psg_prep's bounds on what a PSG header may make it allocate, checked before any sample is read.

The EDF header library bounds each field (signals, samples per record, record bytes); these
bounds are about what psg_prep *plans* from them, which a hostile but field-valid header can
make absurd: a 19 MB EDF declaring 2·10⁸ Hz (0.05-s records of 10⁷ samples) drove psg_prep to
3,005 MB RSS and 37 s designing a 2·10⁶-fold decimation filter (issue 22, defect 4). Each limit
is far beyond a real recording and is checked from the header (and the channel mapping) alone:

- ``MAX_SAMPLE_RATE_HZ``: 16,384 Hz per signal. Clinical PSG amplifiers record at 100-2,048 Hz,
  research ones (BioSemi ActiveTwo) at up to 16,384 Hz. The EDF header layer is getting the same
  bound (issue 22); psg_prep keeps its own so that its promise holds whatever the reader accepts.
- ``MAX_CHUNK_SAMPLES``: 8·10⁶ samples decoded per processing chunk, all channels together
  (the reader's records per chunk times the samples of one record): the decoded chunk and its
  float64 working copies are what psg_prep holds per chunk. The 8-h, 20-channel, 256-Hz night
  decodes 1.5·10⁶ per 300-s chunk.
- ``MAX_FIR_TAPS``: 2·10⁶ taps for one channel's anti-aliasing FIR (the filter and its polyphase
  matrix are each that many float64). A rate whose ratio to the target is irregular (997.003 Hz
  -> 100 Hz is 100,000/997,003) needs a FIR proportional to the ratio's numerator: 1001.001 Hz
  (0.999-s records of 1,000 samples) to SpO2's 1 Hz needs 2.2·10⁷ taps (a 1.2 MB file drove
  psg_prep past 19 GB RSS). 256 -> 100 Hz EEG needs 1,385; 16,384 Hz EMG 177,027.
- ``MAX_OUTPUT_SAMPLES``: 10⁹ samples in signals.npz (float32: a 4 GB object for the next stage
  to read; psg_prep streams it to the bucket, issue 26). The 8-h night writes 1.1·10⁸.

Reasons use the header's numbers and these limits only, never a signal label (free text).
"""

from __future__ import annotations

import math
from fractions import Fraction

from scipy.signal import kaiserord

from sunrise_common.dsp import AA_DESIGN_DB, anti_alias_edges
from sunrise_common.edf import EdfHeader

from .errors import PrepError
from .filters import TYPE_SPECS

MAX_SAMPLE_RATE_HZ = 16_384.0
MAX_CHUNK_SAMPLES = 8_000_000
MAX_FIR_TAPS = 2_000_000
MAX_OUTPUT_SAMPLES = 1_000_000_000
#: The EDF reader's own cap on one block of raw records (``sunrise_common.edf.reader``).
_READER_BLOCK_BYTES = 256 << 20


def records_per_chunk(header: EdfHeader, chunk_seconds: float) -> int:
    """Records the reader decodes at a time for ``chunk_seconds`` (``edf.reader.iter_chunks``)."""
    by_bytes = max(1, _READER_BLOCK_BYTES // max(1, header.record_bytes))
    by_time = max(1, int(chunk_seconds // header.record_duration)) if header.record_duration > 0 else by_bytes
    return max(1, min(by_time, by_bytes, header.n_records))


def check_header(header: EdfHeader, ordinary: list[int], chunk_seconds: float) -> None:
    """Refuse (``PrepError``) a header whose sample rates or chunk size are beyond the limits."""
    for i in ordinary:
        fs = header.signals[i].sample_rate
        if fs > MAX_SAMPLE_RATE_HZ:
            raise PrepError("sample_rate_too_high", f"signal {i} is sampled at {fs:g} Hz "
                            f"({header.signals[i].samples_per_record} samples per {header.record_duration:g}-s "
                            f"record); psg_prep takes at most {MAX_SAMPLE_RATE_HZ:g} Hz")
    per_record = sum(header.signals[i].samples_per_record for i in ordinary)
    chunk = records_per_chunk(header, chunk_seconds) * per_record
    if chunk > MAX_CHUNK_SAMPLES:
        raise PrepError("chunk_too_large", f"one processing chunk would decode {chunk} samples "
                        f"({per_record} per record); the limit is {MAX_CHUNK_SAMPLES}")


def planned_fir_taps(ctype: str, fs_in: float) -> int:
    """Taps of the anti-aliasing FIR ``filters.plan_channel`` designs for a ``ctype`` channel at
    ``fs_in`` Hz (0 when it resamples without one), from ``kaiserord`` alone: nothing allocated."""
    spec = TYPE_SPECS[ctype]
    fs_out = min(spec.target_hz, fs_in)
    ratio = Fraction(fs_out).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    method = "poly" if spec.method in ("mean", "pick", "absmax") and up != 1 else spec.method
    if method != "poly" or up == down:
        return 0
    fs_out = fs_in * up / down
    taps = 0
    for keep_hz in {None, spec.band[1] if spec.band[1] is not None and spec.band[1] < 0.45 * fs_out else None}:
        try:
            keep, stop = anti_alias_edges(fs_in, fs_out, keep_hz)
        except ValueError:
            continue  # plan_channel reports this design problem itself
        numtaps, _ = kaiserord(AA_DESIGN_DB, (stop - keep) / (fs_in * up / 2.0))
        taps = max(taps, int(numtaps) | 1)
    return taps


def check_plan(header: EdfHeader, ordinary: list[int], ctypes: list[str], total_s: float) -> None:
    """Refuse a recording whose planned filters or output are beyond the limits (before the
    filters are designed: designing them is the allocation)."""
    out = 0
    for i, ctype in zip(ordinary, ctypes):
        fs = header.signals[i].sample_rate
        taps = planned_fir_taps(ctype, fs)
        if taps > MAX_FIR_TAPS:
            raise PrepError("resampler_too_large", f"signal {i} at {fs:g} Hz would need a {taps}-tap "
                            f"anti-aliasing filter (limit {MAX_FIR_TAPS}): an irregular rate")
        out += math.ceil(min(TYPE_SPECS[ctype].target_hz, fs) * total_s)
    if out > MAX_OUTPUT_SAMPLES:
        raise PrepError("output_too_large", f"the prepared signals would hold {out} samples "
                        f"(limit {MAX_OUTPUT_SAMPLES})")
