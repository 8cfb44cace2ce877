"""Personal strings of the inputs, and scans of what must be free of them: the buckets
(:func:`leaks`), and every store of a stack outside raw (:func:`scan_outside_raw`: buckets, state,
SQLite WAL files, the storage's staging folder, logs and every CLI view)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
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


# -- the whole privacy boundary: every store of a stack outside raw (issue 22, Must show 3) --

# Every CLI view an operator reads (issue 22 names status, status --json, dlq list, dataset stats).
CLI_VIEWS = (("status",), ("status", "--json"), ("dlq", "list"), ("dlq", "list", "--json"),
             ("dataset", "stats"), ("dataset", "stats", "--json"), ("dataset", "list", "--json"))
# The one documented exception (docs/privacy.md, "upload records"): the human ``sunrise status``
# names a refused upload as ``raw/<object name>``, looked up in the raw bucket when it prints
# (it needs read access to raw and the key). Exactly those names are taken out of that view
# before it is scanned; anything else in it (a reason quoting the file, a name part elsewhere)
# is a finding.
RAW_NAMES_SHOWN_IN = {("status",)}


def files_outside_raw(settings) -> Iterator[Path]:  # noqa: ANN001 - Settings
    """Every regular file under the data dir but the raw bucket's folder: the SQLite files with
    their ``-wal`` and ``-shm``, the storage's staging folder ``buckets/.tmp``, the other buckets'
    folders, the gold layer, models, checkpoints. Links are not followed."""
    data = Path(settings.data_dir)
    raw = data / "buckets" / settings.bucket("raw")
    for dirpath, dirnames, filenames in os.walk(data):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != raw]
        for fn in filenames:
            path = here / fn
            if path.is_file() and not path.is_symlink():
                yield path


def staging_files(settings) -> list[Path]:  # noqa: ANN001 - Settings
    """Files in the local storage's staging folder: a write in progress, or one that failed and
    left raw bytes outside raw."""
    tmp = Path(settings.data_dir) / "buckets" / ".tmp"
    return sorted(p for p in tmp.iterdir() if p.is_file()) if tmp.is_dir() else []


def cli_outputs(settings, views: Iterable[tuple[str, ...]] = CLI_VIEWS) -> Iterator[tuple[str, int, bytes]]:  # noqa: ANN001
    """``(command, exit code, stdout + stderr)`` of each ``sunrise`` view, run as an operator
    would on the same settings (a wide terminal: no line wrapping splits a string)."""
    from sunrise_cli.stack import settings_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNRISE_")}
    env.update(settings_env(settings))
    env.update({"SUNRISE_FAULT_RATE": "0", "COLUMNS": "500", "NO_COLOR": "1"})
    for view in views:
        out = subprocess.run([sys.executable, "-m", "sunrise_cli.main", *view], env=env, capture_output=True,
                             timeout=300)
        yield "sunrise " + " ".join(view), out.returncode, out.stdout + out.stderr


def _hits(where: str, data: bytes, needles: Iterable[bytes], patterns: Iterable[re.Pattern]) -> list[str]:
    found = [f"{where}: contains {n!r}" for n in needles if n in data]
    return found + [f"{where}: matches {p.pattern!r}" for p in patterns if p.search(data)]


def scan_cli(settings, storage, needles: Iterable[bytes], patterns: Iterable[re.Pattern] = (),  # noqa: ANN001
             views: Iterable[tuple[str, ...]] = CLI_VIEWS) -> tuple[list[str], dict[str, int]]:
    """Findings in every CLI view (a view that fails is one too) and counts: ``cli`` views run,
    ``raw_names_shown_by_status`` (the documented exception, :data:`RAW_NAMES_SHOWN_IN`)."""
    needles, patterns, views = list(needles), list(patterns), list(views)
    shown = sorted((f"raw/{o.name}".encode() for o in storage.list(settings.bucket("raw"))), key=len, reverse=True)
    found: list[str] = []
    counts = {"cli": 0, "cli_bytes": 0, "status_json_bytes": 0, "raw_names_shown_by_status": 0}
    for view, (command, code, output) in zip(views, cli_outputs(settings, views)):
        counts["cli"] += 1
        counts["cli_bytes"] += len(output)
        if view == ("status", "--json"):
            counts["status_json_bytes"] += len(output)
        if code != 0:
            found.append(f"{command}: exit code {code}: {output[-300:]!r}")
        if view in RAW_NAMES_SHOWN_IN:
            for name in shown:
                counts["raw_names_shown_by_status"] += output.count(name)
                output = output.replace(name, b"raw/<name>")
        found += _hits(command, output, needles, patterns)
    return found, counts


def scan_outside_raw(ctx: Context, needles: Iterable[bytes], patterns: Iterable[re.Pattern] = (),
                     logs: Iterable[Path] = (), views: Iterable[tuple[str, ...]] = CLI_VIEWS) -> dict:
    """Scan every store of a stack outside raw for personal strings: the non-raw buckets through
    the storage port (bytes, names, ``.npz`` members), the state documents through the state
    port, every file under the data dir but raw (:func:`files_outside_raw`: SQLite WAL and shm,
    ``buckets/.tmp`` staging), the given log files, and every CLI view (:data:`CLI_VIEWS`; a
    view that fails is a finding too). Returns ``{"hits": {store: [...]}, "total", "scanned":
    {store: count}, "staging_files"}``; run it once the stack has stopped."""
    needles = sorted({n for n in needles if n})
    patterns = list(patterns)
    hits: dict[str, list[str]] = {}
    scanned: dict[str, int] = {}

    def add(store: str, found: list[str], count: int = 1) -> None:
        scanned[store] = scanned.get(store, 0) + count
        if found:
            hits.setdefault(store, []).extend(found)

    for logical in ("anonymised", "prepped", "results"):
        for name, data in objects(ctx, logical):
            add("buckets", _hits(f"{logical}/{name}", data, needles, patterns)
                + _hits(f"name {logical}/{name}", name.encode(), needles, patterns))
    for collection in ("nights", "uploads"):
        for doc_id, doc in ctx.state.list(collection):
            add("state", _hits(f"{collection}/{doc_id}", json.dumps(doc, default=str).encode(), needles, patterns))
    staging = staging_files(ctx.settings)
    for path in files_outside_raw(ctx.settings):
        store = "staging" if path in staging else "wal" if path.name.endswith(("-wal", "-shm")) else "files"
        rel = path.relative_to(ctx.settings.data_dir).as_posix()
        add(store, _hits(rel, path.read_bytes(), needles, patterns)
            + _hits(f"name {rel}", rel.encode(), needles, patterns))
    for path in logs:
        add("logs", _hits(f"log {Path(path).name}", Path(path).read_bytes(), needles, patterns))
    found, counts = scan_cli(ctx.settings, ctx.storage, needles, patterns, views)
    add("cli", found, 0)
    for key, n in counts.items():
        scanned[key] = scanned.get(key, 0) + n
    return {"hits": hits, "total": sum(len(v) for v in hits.values()), "scanned": scanned,
            "staging_files": len(staging)}
