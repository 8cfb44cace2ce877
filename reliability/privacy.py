"""The personal-data scanner of the reliability scenarios (issue 8): the needles (synthetic
personal data, a third-party-written EDF+ with personal data in every header field, the corpus's
known personal strings) and the scan of a stack's stores outside raw."""

from __future__ import annotations


import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable
from reliability.harness import CORPUS, SITE, Harness



# --------------------------------------------------------------------------------------------
# The needles and the scan of scenario 9 (no personal data outside raw)
# --------------------------------------------------------------------------------------------

SYNTH_PERSONAL = [b"Jane_Synthetic", b"12-MAR-1961", b"05-MAR-2024", b"05.03.24", b"05.03.2024", b"Tech_Smith",
                  b"LAB-7", b"SunriseSim", b"Sleep profile - SYN-", b"Flow Events - SYN-", SITE.encode(),
                  b"nuit \xc3\xa9t\xc3\xa9", "psg – ünïcødé".encode()]
SYNTH_PATTERNS = [re.compile(rb"SYN-\d{4}"), re.compile(rb"PATIENT\d{5}")]


# A third-party-written EDF+ (edfio: pyedflib is not installed here) with personal data in every
# free-text header field, in its annotations and in its object name (issue 13).
PERSONAL_EDF_NAME = "Mueller Zofia PSG 2021-03-12.edf"
PERSONAL_EDF_SUBJECT = "MRN4471902"
PERSONAL_EDF_NEEDLES = [b"MRN4471902", b"Mueller", b"Zofia", b"12-MAR-1961", b"Bahnhofstrasse", b"HOSP-ZH-77",
                        b"Dr_Keller", b"Somno-XY-42", b"+41 79 555 01 23", b"555 01 23", b"2021-03-12", b"12.03.21",
                        b"12-MAR-2021"]
# Names put in the per-signal transducer and prefiltering fields. The anonymiser keeps those fields
# only when they pass its allowlist (docs/privacy.md), so these are blanked and scanned for like
# every other needle (tests/reliability/test_personal_edf.py).
SIGNAL_FIELD_NEEDLES = [b"Huber_Anna", b"Brunner_Lea"]


def personal_edf(path: Path, *, minutes: float = 10.0) -> Path:
    """Write a 2-channel EDF+ (256 Hz EEG, 100 Hz EOG) whose patient, recording, transducer and
    prefiltering fields and annotations all carry a (fictional) person's data."""
    import datetime as dt

    import numpy as np
    from edfio import Edf, EdfAnnotation, EdfSignal, Patient, Recording

    rng = np.random.default_rng(13)
    n = int(minutes * 60)
    signals = [
        EdfSignal(rng.normal(0, 20, n * 256), 256, label="EEG C3-A2", transducer_type="AgCl Huber_Anna",
                  physical_dimension="uV", physical_range=(-500, 500), prefiltering="HP:0.1Hz Brunner_Lea"),
        EdfSignal(rng.normal(0, 30, n * 100), 100, label="EOG E1-M2", transducer_type="AgCl Huber_Anna",
                  physical_dimension="uV", physical_range=(-500, 500), prefiltering="HP:0.1Hz Brunner_Lea"),
    ]
    edf = Edf(
        signals,
        patient=Patient(code="MRN4471902", sex="F", birthdate=dt.date(1961, 3, 12), name="Mueller_Zofia",
                        additional=["Bahnhofstrasse_12_Zurich", "+41_79_555_01_23"]),
        recording=Recording(startdate=dt.date(2021, 3, 12), hospital_administration_code="HOSP-ZH-77",
                            investigator_technician_code="Dr_Keller", equipment_code="Somno-XY-42",
                            additional=["Mueller_Zofia_night_1"]),
        starttime=dt.time(22, 41, 5),
        annotations=[EdfAnnotation(5.0, None, "Lights off, Zofia Mueller settled"),
                     EdfAnnotation(60.0, 1.0, "Call +41 79 555 01 23 if awake"),
                     EdfAnnotation(120.0, None, "Patient MRN4471902 born 12-MAR-1961")],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    edf.write(path)
    return path


def _scan_bytes(where: str, data: bytes, needles: Iterable[bytes], patterns: Iterable[re.Pattern]) -> list[str]:
    hits = [f"{where}: contains {n!r}" for n in needles if n in data]
    hits += [f"{where}: matches {p.pattern!r}" for p in patterns if p.search(data)]
    return hits


def privacy_scan(h: Harness, needles: Iterable[bytes] = (), patterns: Iterable[re.Pattern] = ()) -> dict[str, Any]:
    """Every store of one harness outside raw, scanned for personal strings: the non-raw buckets
    (object bytes and names, through the storage port: local folders or fake-gcs-server), the
    state (every document, through the state port: SQLite or the Firestore emulator), every file
    under the data dir but raw (the SQLite files with their WAL, the router's database, the
    storage's staging folder), the dead letters, the service and router logs, and every CLI view
    (``status``, ``status --json``, ``dlq list``, ``dataset stats``...). Run it after the stack stopped."""
    from sunrise_devstack.dead_letters import make_dead_letters

    needles = sorted(set(needles) | set(SYNTH_PERSONAL) | {n[0].encode() for n in h.inputs})
    patterns = list(patterns) or SYNTH_PATTERNS
    hits: dict[str, list[str]] = {}
    counts: Counter = Counter()
    for logical in ("anonymised", "prepped", "results"):
        bucket = h.settings.bucket(logical)
        for info in h.ctx.storage.list(bucket):
            counts["objects"] += 1
            where = f"{bucket}/{info.name}"
            found = _scan_bytes(where, h.ctx.storage.read_bytes(bucket, info.name), needles, patterns)
            found += _scan_bytes(f"name {where}", info.name.encode(), needles, patterns)
            hits.setdefault("buckets", []).extend(found)
    for collection in ("nights", "uploads"):
        for doc_id, doc in h.ctx.state.list(collection):
            counts["documents"] += 1
            hits.setdefault("state", []).extend(
                _scan_bytes(f"{collection}/{doc_id}", json.dumps(doc, default=str).encode(), needles, patterns))
    # Every file under the data dir but raw (tests/privacy.py): SQLite files with their -wal and
    # -shm, the storage's staging folder buckets/.tmp, the local buckets, the gold layer.
    from tests.privacy import files_outside_raw, scan_cli, staging_files

    staging = set(staging_files(h.settings))
    counts["staging_files"] = len(staging)
    for path in files_outside_raw(h.settings):
        counts["data_files"] += 1
        counts["database_files"] += ".db" in path.name
        store = ("router_db" if path.name.startswith("router.db") else "state" if path.name.startswith("state.db")
                 else "staging" if path in staging else "data_files")
        hits.setdefault(store, []).extend(_scan_bytes(path.name, path.read_bytes(), needles, patterns))
    letters = make_dead_letters(h.settings).list(limit=100_000)
    counts["dead_letters"] = len(letters)
    for letter in letters:
        hits.setdefault("dead_letters", []).extend(
            _scan_bytes(f"dead letter {letter.id}", json.dumps(letter.__dict__, default=str).encode(), needles, patterns))
    for path in sorted((h.work / "logs").glob("*.log")):
        counts["log_files"] += 1
        hits.setdefault("logs", []).extend(_scan_bytes(f"logs/{path.name}", path.read_bytes(), needles, patterns))
    # Every CLI view an operator reads: status, status --json, dlq list, dataset stats (tests/privacy.py).
    cli_hits, cli_counts = scan_cli(h.settings, h.ctx.storage, needles, patterns)
    hits.setdefault("cli", []).extend(cli_hits)
    counts.update(cli_counts)
    return {"hits": {k: v[:20] for k, v in hits.items() if v}, "total": sum(len(v) for v in hits.values()),
            "stores": sorted(set(hits)), "scanned": dict(counts), "needles": len(needles)}


def corpus_needles() -> dict[str, list[bytes]]:
    """Personal strings of each corpus EDF (tests/edf: known list + header fields + dropped annotations)."""
    from tests.edf.test_anonymise import KNOWN_PERSONAL, _personal_needles

    found = {}
    for path in sorted((CORPUS / "edf").glob("*")):
        try:
            found[path.name] = _personal_needles(path.name)
        except Exception:  # a file whose header cannot be read: ingest rejects it; the known list applies
            found[path.name] = sorted(n.encode() for n in KNOWN_PERSONAL)
    return found
