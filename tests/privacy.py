"""Personal strings of the inputs, and a scan of the buckets that must be free of them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

from sunrise_common.edf import is_allowed, read_annotations, read_header
from sunrise_common.service import Context

DOMINO_PERSONAL = [b"Unbekannt", b"23.09.2020", b"9/23/2020", b"test1"]


GENERIC = {"patient", "recording", "description", "test", "file", "unit test file", "onset"}


def _useful(value: str | None) -> bool:
    value = (value or "").strip()
    return len(value) >= 4 and value.lower() not in GENERIC and set(value) - set("X,._-") != set()


def edf_personal_strings(path: Path) -> set[bytes]:
    """Names, codes, birthdates, start dates, technician and equipment text, and annotation texts
    outside the scoring vocabulary, as found in one EDF/BDF file."""
    header = read_header(path)
    found: set[str] = set()
    patient, recording = header.patient_fields(), header.recording_fields()
    if patient is not None:
        found |= {patient.code, patient.name, patient.additional}
        if patient.birthdate:
            found.add(patient.birthdate.strftime("%d-%b-%Y").upper())
    elif header.patient.strip():
        found.add(header.patient.strip())
    if recording is not None:
        found |= {recording.admin_code, recording.technician, recording.equipment, recording.additional}
        if recording.startdate:
            found.add(recording.startdate.strftime("%d-%b-%Y").upper())
    elif header.recording.strip():
        found.add(header.recording.strip())
    raw_date = path.read_bytes()[168:176].decode("ascii")
    if raw_date not in ("00.00.00", "01.01.85"):
        found.add(raw_date)  # dd.mm.yy
    for ann in read_annotations(path, header):
        text = (ann.text or "").strip()
        if text and not is_allowed(text) and not text.lstrip("+-").replace(".", "").isdigit():
            found.add(text)
    # 1 January of the recording year is what the anonymiser writes (year only): not a leak.
    found = {v for v in found if v and not v.startswith(("01-JAN-", "01.01."))}
    return {v.encode("utf-8") for v in found if _useful(v) or any(ord(c) > 127 for c in v)}


def objects(ctx: Context, logical: str) -> Iterator[tuple[str, bytes]]:
    """Every object of a bucket; members of .npz archives are scanned decompressed."""
    bucket = ctx.settings.bucket(logical)
    for info in ctx.storage.list(bucket):
        data = ctx.storage.read_bytes(bucket, info.name)
        yield info.name, data
        if info.name.endswith(".npz"):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for member in z.namelist():
                    yield f"{info.name}:{member}", z.read(member)


def leaks(ctx: Context, needles: Iterable[bytes], buckets=("anonymised", "prepped", "results")) -> list[str]:
    needles = [n for n in set(needles) if n]
    found = []
    for logical in buckets:
        for name, data in objects(ctx, logical):
            for needle in needles:
                if needle in data or needle in name.encode():
                    found.append(f"{logical}/{name}: {needle!r}")
    return found
