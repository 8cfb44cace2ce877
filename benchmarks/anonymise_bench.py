"""ingest's anonymiser against ``cp``, both as whole processes, on plain EDF and EDF+ files.

``python benchmarks/anonymise_bench.py anonymise SRC DST`` is the measured process on our side
(run by its path, as a one-file job or a console script runs; ``-m`` works too but adds runpy's
imports): it imports what anonymising needs and anonymises one file, as a one-file job would. It prints
the time spent inside :func:`~sunrise_common.edf.anonymise_edf` so the report can show how much
of the whole process is interpreter start and imports.
"""

from __future__ import annotations

import os
import sys

# The measured process imports only what anonymising needs: not pathlib (the helpers below take
# paths but only annotate them), not json (its one line of output is written by hand).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# An annotated EDF+ record's TAL space (60 bytes): the time-keeping TAL, and in one record a
# minute a scored event plus a text with a name, which the anonymiser drops.
ANNOTATION_BYTES = 60


def _tals(record: int, annotated: bool) -> bytes:
    tals = f"+{record}\x14\x14\x00".encode()
    if annotated:
        tals += f"+{record}.5\x1510\x14Hypopnea\x14\x00+{record}.7\x14Jane Doe\x14\x00".encode()
    if len(tals) > ANNOTATION_BYTES:
        raise ValueError(f"record {record}: {len(tals)} TAL bytes exceed {ANNOTATION_BYTES}")
    return tals.ljust(ANNOTATION_BYTES, b"\x00")


def to_edf_plus(plain: Path, out: Path, every: int = 60, records_per_block: int = 600) -> Path:
    """Rewrite a plain EDF as EDF+C: the same signals plus an ``EDF Annotations`` signal holding
    each record's time-keeping TAL, and one record in ``every`` a scored event and a name."""
    import numpy as np

    from sunrise_common.edf import read_header
    from sunrise_common.edf.header import FIXED_FIELDS, SIGNAL_FIELDS, signal_field_offset

    h = read_header(plain)
    ns = h.ns
    values = {"label": "EDF Annotations", "transducer": "", "physical_dimension": "", "physical_min": "-1",
              "physical_max": "1", "digital_min": "-32768", "digital_max": "32767", "prefiltering": "",
              "samples_per_record": str(ANNOTATION_BYTES // 2), "reserved": ""}
    fixed = bytearray(h.raw[:256])
    for name, text in (("header_bytes", str(256 * (ns + 2))), ("reserved", "EDF+C"), ("ns", str(ns + 1))):
        offset, width = FIXED_FIELDS[name]
        fixed[offset : offset + width] = text.encode().ljust(width)
    header = bytes(fixed)
    for name, width in SIGNAL_FIELDS:
        offset, _ = signal_field_offset(name, 0, ns)
        header += h.raw[offset : offset + ns * width] + values[name].encode().ljust(width)
    with open(plain, "rb") as src, open(out, "wb") as dst:
        dst.write(header)
        src.seek(h.header_bytes)
        for first in range(0, h.n_records, records_per_block):
            k = min(records_per_block, h.n_records - first)
            block = np.frombuffer(src.read(k * h.record_bytes), dtype=np.uint8).reshape(k, h.record_bytes)
            ann = np.frombuffer(b"".join(_tals(r, r % every == every // 2) for r in range(first, first + k)),
                                dtype=np.uint8).reshape(k, ANNOTATION_BYTES)
            dst.write(np.hstack([block, ann]).tobytes())
    return out


def repeat_records(plain: Path, out: Path, target_bytes: int) -> Path:
    """A longer plain EDF: the records of ``plain`` repeated (kernel copy) up to ``target_bytes``."""
    from sunrise_common.edf import read_header
    from sunrise_common.edf.header import FIXED_FIELDS

    h = read_header(plain)
    n_records = max(h.n_records, (target_bytes - h.header_bytes) // h.record_bytes)
    fixed = bytearray(h.raw)
    offset, width = FIXED_FIELDS["n_records"]
    fixed[offset : offset + width] = str(n_records).encode().ljust(width)
    body = h.n_records * h.record_bytes
    with open(plain, "rb") as src, open(out, "wb") as dst:
        dst.write(fixed)
        left = n_records * h.record_bytes
        position = h.header_bytes
        while left:
            n = min(left, body)
            done = 0
            while done < n:
                done += os.copy_file_range(src.fileno(), dst.fileno(), n - done, h.header_bytes + done, position + done)
            position += n
            left -= n
    return out


def _anonymise(src: str, dst: str) -> None:
    import time

    from sunrise_common.edf import anonymise_edf

    t0 = time.perf_counter()
    with open(src, "rb") as f, open(dst, "wb") as g:
        report = anonymise_edf(f, g, os.fstat(f.fileno()).st_size)
    elapsed = time.perf_counter() - t0
    # JSON by hand: a float, an identifier, a boolean and two counts.
    print(f'{{"in_process_s": {elapsed!r}, "copy_method": "{report.copy_method}",'
          f' "numpy_imported": {str("numpy" in sys.modules).lower()},'
          f' "annotations_kept": {report.annotations_kept}, "annotations_dropped": {report.annotations_dropped},'
          f' "modules": {len(sys.modules)}}}')


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "anonymise":
        raise SystemExit("usage: python benchmarks/anonymise_bench.py anonymise SRC DST")
    _anonymise(sys.argv[2], sys.argv[3])
