"""``sunrise forget``: erase one subject's data everywhere the pipeline keeps it (GDPR Art. 17).

What a subject leaves behind, and how each is found (docs/privacy.md, "Forgetting a subject"):

- ``raw``: ``{kind}/{site}/{subject}/…``. With ``--site/--subject`` a prefix listing; with
  ``--pseudonym`` every raw object whose site and subject folders hash (with the pseudonym key)
  to the pseudonym.
- ``anonymised``, ``prepped``, ``results``: ``nights/{pseudonym}-n…/…`` (every derived object is
  named after the night id, which starts with the subject pseudonym, ``identity.night_id``).
- the gold layer (``results/dataset/…``): a part holds the rows of one night (its lineage is
  constant per file and names the night, ``sunrise_common.dataset``), so the parts in the
  subject's ``night_id=`` partitions hold every row of the subject and nothing else: rewriting
  them without the subject's rows leaves no row, and they are removed (create-only parts are
  never edited in place). A local mirror of the dataset (``data/dataset-mirror``) loses them too.
- date-less label files waiting for their PSG: ``anonymised/waiting/{pseudonym}/…`` and the
  subject's pairing document ``pairing/{pseudonym}`` (``ingest.pairing``).
- Firestore/SQLite ``nights/{pseudonym}-n…`` and the ``uploads/{id}`` documents of the subject's
  raw objects (ids from the raw names, from the night documents' recordings, and any upload
  document naming one of the nights).
- dead letters (the local router's, or the cloud dead-letter subscription) whose request names a
  raw object of the subject or one of its nights (Pub/Sub message data is base64: decoded first).

Where the storage keeps old versions (Cloud Storage with versioning), every version is deleted,
noncurrent ones included (``list_versions``/``delete_version`` of the adapter, when it has them).

Resumable: the plan's document ids (keyed digests and pseudonymous night ids, no name) are
recorded in the audit document ``forgets/{pseudonym}`` before anything is deleted, and progress
after each batch; a run killed at any point is finished by running it again, which lists what is
left and adds the recorded ids (the raw objects, whose names gave the upload ids, may be gone by
then). The order keeps every item findable until its turn: dead letters, raw objects, derived
objects and dataset parts, upload documents, night documents. The audit document holds the
pseudonym, counts and times, never a name, site or subject code or object name.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from sunrise_common import dataset as ds
from sunrise_common import identity, names

if TYPE_CHECKING:
    from sunrise_common.settings import Settings
    from sunrise_common.state import StateStore
    from sunrise_common.storage import Storage
    from sunrise_devstack.dead_letters import DeadLetters

AUDIT_COLLECTION = "forgets"
#: What a forget removes, in the order it removes them.
CATEGORIES = ("dead_letters", "raw", "anonymised", "prepped", "results", "dataset_parts",
              "dataset_mirror", "uploads", "nights", "pairing")
#: ``ingest.pairing.PAIRING``: one document per subject pseudonym.
PAIRING_COLLECTION = "pairing"
OBJECT_BUCKETS = ("raw", "anonymised", "prepped", "results")
#: The raw layout's site and subject folders (``ingest.layout``): what ``--site``/``--subject`` accept.
_FOLDER = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_RAW_PATH = re.compile(r"(?<![A-Za-z0-9._-])(?:sunrise|psg|labels)/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/"
                       r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})/")
_PSEUDONYM = re.compile(r"\As[a-z2-7]{12}\Z")
_B64 = re.compile(r"\A[A-Za-z0-9+/=_-]{16,}\Z")
#: Progress reaches the audit document at least this often (deletions, seconds).
FLUSH_EVERY = 10
FLUSH_EVERY_S = 2.0
DEAD_LETTER_LIMIT = 100_000


class ForgetError(ValueError):
    """A forget request that cannot be acted on (bad site/subject/pseudonym, nothing to name it by)."""


@dataclass(frozen=True)
class Subject:
    """Whom to forget: the pseudonym always; the site and subject codes when the operator gave them
    (kept in memory only: they are personal data)."""

    pseudonym: str
    site: str | None = None
    subject: str | None = None

    @property
    def night_prefix(self) -> str:
        """Night ids of the subject start with this (``{pseudonym}-n``)."""
        return f"{self.pseudonym}-n"


def subject_of(key: bytes, *, site: str | None = None, subject: str | None = None,
               pseudonym: str | None = None) -> Subject:
    """The :class:`Subject` named by ``--site/--subject`` or ``--pseudonym`` (both: they must agree)."""
    if (site is None) != (subject is None):
        raise ForgetError("--site and --subject go together")
    if site is None and pseudonym is None:
        raise ForgetError("name the subject: --site S --subject X, or --pseudonym P")
    if site is not None:
        for what, value in (("site", site), ("subject", subject)):
            if not _FOLDER.match(value or ""):
                raise ForgetError(f"--{what} must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a "
                                  "letter or digit (the raw layout's folder names)")
        derived = identity.subject_pseudonym(key, site, subject)
        if pseudonym is not None and pseudonym != derived:
            raise ForgetError("--pseudonym does not match --site/--subject under this pseudonym key")
        return Subject(derived, site, subject)
    if not _PSEUDONYM.match(pseudonym or ""):
        raise ForgetError("--pseudonym must be 's' and 12 base32 characters (a-z, 2-7), as `sunrise status` shows")
    return Subject(pseudonym)


@dataclass
class Plan:
    """Everything of one subject that a forget removes (names in memory only)."""

    subject: Subject
    objects: dict[str, list[tuple[str, int | None]]] = field(default_factory=lambda: {b: [] for b in OBJECT_BUCKETS})
    dataset_parts: list[tuple[str, int | None]] = field(default_factory=list)
    part_rows: dict[str, int] = field(default_factory=dict)  # rows of each live part (footer)
    mirror_files: list[Path] = field(default_factory=list)
    upload_ids: set[str] = field(default_factory=set)
    night_ids: set[str] = field(default_factory=set)
    dead_letters: list[str] = field(default_factory=list)
    busy_nights: int = 0  # nights with a stage still running or retrying (it may write after the listing)
    pairing: bool = False  # the subject has a pairing/{pseudonym} document

    def counts(self) -> dict[str, int]:
        """Items per category (objects count every stored version)."""
        return {
            "dead_letters": len(self.dead_letters),
            **{b: len(self.objects[b]) for b in OBJECT_BUCKETS},
            "dataset_parts": len(self.dataset_parts),
            "dataset_mirror": len(self.mirror_files),
            "uploads": len(self.upload_ids),
            "nights": len(self.night_ids),
            "pairing": int(self.pairing),
        }

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    @property
    def dataset_rows(self) -> int:
        return sum(self.part_rows.values())


@dataclass
class Outcome:
    """What a forget did (or, in a dry run, would do)."""

    pseudonym: str
    applied: bool
    planned: dict[str, int]
    removed: dict[str, int]
    dataset_rows: int
    remaining: dict[str, int]
    resumed: bool = False
    busy_nights: int = 0

    @property
    def complete(self) -> bool:
        return self.applied and not any(self.remaining.values())


# --------------------------------------------------------------------------- finding

def _versions(storage: Storage, bucket: str, prefix: str) -> Iterator[tuple[str, int | None]]:
    """(name, generation) of every stored version under ``prefix``: noncurrent ones too where the
    adapter keeps them (Cloud Storage with versioning), else the live objects (generation None:
    delete whatever is there)."""
    lister = getattr(storage, "list_versions", None)
    if lister is not None:
        for info in lister(bucket, prefix):
            yield info.name, info.generation
    else:
        for info in storage.list(bucket, prefix):
            yield info.name, None


def raw_owner(key: bytes, name: str) -> str | None:
    """The subject pseudonym of a raw object name (``{kind}/{site}/{subject}/…``), or None."""
    parts = name.split("/", 3)
    if len(parts) < 4 or parts[0] not in names.UPLOAD_KINDS or not _FOLDER.match(parts[1]) or not _FOLDER.match(parts[2]):
        return None
    return identity.subject_pseudonym(key, parts[1], parts[2])


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, and the text of those that are base64 (Pub/Sub data)."""
    if isinstance(value, str):
        yield value
        if _B64.match(value):
            try:
                yield base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if "-" in value or "_" in value else None,
                                       validate=False).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                pass
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def mentions(key: bytes, subject: Subject, value: Any) -> bool:
    """Does a request (headers, body, message) name the subject: one of its nights or its
    pseudonym, or a raw object whose site/subject folders are the subject's?"""
    for text in _strings(value):
        if subject.pseudonym in text:
            return True
        for m in _RAW_PATH.finditer(text):
            if identity.subject_pseudonym(key, m.group(1), m.group(2)) == subject.pseudonym:
                return True
    return False


def make_plan(settings: Settings, storage: Storage, state: StateStore, dead_letters: DeadLetters, key: bytes,
              subject: Subject,
              *, recorded_uploads: Iterable[str] = (), progress: Callable[[str], None] | None = None) -> Plan:
    """List everything of ``subject`` (see the module docstring). ``recorded_uploads``: upload ids
    a killed run recorded in the audit document (their raw objects may be gone)."""
    say = progress or (lambda _msg: None)
    plan = Plan(subject)
    raw = settings.bucket("raw")
    say("listing the raw bucket")
    if subject.site is not None:
        for kind in names.UPLOAD_KINDS:
            plan.objects["raw"].extend(_versions(storage, raw, f"{kind}/{subject.site}/{subject.subject}/"))
    else:
        plan.objects["raw"].extend(v for v in _versions(storage, raw, "") if raw_owner(key, v[0]) == subject.pseudonym)
    plan.upload_ids.update(identity.upload_id(key, raw, name) for name, _ in plan.objects["raw"])
    plan.upload_ids.update(recorded_uploads)
    for logical in ("anonymised", "prepped", "results"):
        say(f"listing the {logical} bucket")
        plan.objects[logical].extend(_versions(storage, settings.bucket(logical), f"nights/{subject.night_prefix}"))
    plan.objects["anonymised"].extend(_versions(storage, settings.bucket("anonymised"), f"waiting/{subject.pseudonym}/"))
    say("listing the dataset")
    results = settings.bucket("results")
    for table in ds.TABLES:
        for name, generation in _versions(storage, results, f"{ds.PREFIX}{table}/"):
            parsed = ds.parse_object_name(name)
            if parsed is not None and parsed[2].startswith(subject.night_prefix):
                plan.dataset_parts.append((name, generation))
    plan.part_rows = _rows(storage, results, sorted({n for n, _ in plan.dataset_parts}))
    mirror = Path(settings.data_dir) / "dataset-mirror" / ds.PREFIX.rstrip("/")
    if mirror.is_dir():
        plan.mirror_files = sorted(p for p in mirror.glob(f"*/*/night_id={subject.night_prefix}*/*") if p.is_file())
    say("reading the state")
    for night, doc in state.list("nights"):
        if night.startswith(subject.night_prefix):
            plan.night_ids.add(night)
            plan.upload_ids.update(_recording_uploads(doc))
            states = {(s or {}).get("state") for s in (doc.get("stages") or {}).values() if isinstance(s, dict)}
            plan.busy_nights += bool(states & {"running", "retrying", "pending"})
    for upload, doc in state.list("uploads"):
        if upload not in plan.upload_ids and subject.night_prefix in json.dumps(doc, default=str):
            plan.upload_ids.add(upload)
    plan.upload_ids = {u for u in plan.upload_ids if state.get("uploads", u) is not None}
    plan.pairing = state.get(PAIRING_COLLECTION, subject.pseudonym) is not None
    say("reading the dead letters")
    plan.dead_letters = [d.id for d in dead_letters.list(limit=DEAD_LETTER_LIMIT)
                         if mentions(key, subject, [d.body, d.subject, d.error])]
    return plan


def _recording_uploads(doc: dict[str, Any]) -> set[str]:
    """``upload_id`` of every recording a night document lists, however deeply."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            u = v.get("upload_id")
            if isinstance(u, str):
                found.add(u)
            for w in v.values():
                walk(w)
        elif isinstance(v, list):
            for w in v:
                walk(w)

    walk(doc.get("recordings", {}))
    return found


def _rows(storage: Storage, bucket: str, parts: list[str]) -> dict[str, int]:
    """Rows of the live version of each dataset part (from its footer)."""
    import io

    import pyarrow.parquet as pq

    from sunrise_common.errors import NotFound

    rows = {}
    for name in parts:
        try:
            rows[name] = pq.ParquetFile(io.BytesIO(storage.read_bytes(bucket, name))).metadata.num_rows
        except NotFound:  # only noncurrent versions left: their rows were counted when the live one went
            continue
    return rows


# --------------------------------------------------------------------------- erasing

class _Audit:
    """The audit document ``forgets/{pseudonym}``: counts and times, flushed as work goes on."""

    def __init__(self, state: StateStore, pseudonym: str, *, pause_after: int | None = None) -> None:
        self.state = state
        self.pseudonym = pseudonym
        self.removed = {c: 0 for c in CATEGORIES}
        self.rows = 0
        self.pause_after = pause_after
        self._since_flush = 0
        self._flushed_at = time.monotonic()
        self._deleted = 0

    def start(self, plan: Plan) -> bool:
        """Record the plan (counts and pending document ids); True when a previous run was cut short."""
        now = time.time()
        previous = self.state.get(AUDIT_COLLECTION, self.pseudonym) or {}
        resumed = previous.get("state") == "running"

        def fn(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = dict(doc or {})
            running = doc.get("state") == "running"
            doc.update({
                "pseudonym": self.pseudonym,
                "state": "running",
                "runs": int(doc.get("runs", 0)) + 1,
                "started_at": doc.get("started_at") if running else now,
                "updated_at": now,
                "planned": plan.counts() if not running else doc.get("planned", plan.counts()),
                "replanned": plan.counts(),
                "removed": doc.get("removed", {}) if running else {},
                "dataset_rows": int(doc.get("dataset_rows", 0)) if running else 0,
                # Ids only (keyed digests, pseudonymous night ids): what a re-run cannot list again.
                "pending_upload_ids": sorted(set(doc.get("pending_upload_ids", []) if running else []) | plan.upload_ids),
                "finished_at": None,
            })
            return doc

        doc = self.state.transact(AUDIT_COLLECTION, self.pseudonym, fn)
        self.removed = {c: int((doc.get("removed") or {}).get(c, 0)) for c in CATEGORIES}
        self.rows = int(doc.get("dataset_rows", 0))
        return resumed

    def count(self, category: str, rows: int = 0, n: int = 1, *, flush: bool = False) -> None:
        """``n`` items of ``category`` removed (``flush``: record it at once)."""
        self.removed[category] += n
        self.rows += rows
        self._since_flush += n
        before, self._deleted = self._deleted, self._deleted + n
        if flush or self._since_flush >= FLUSH_EVERY or time.monotonic() - self._flushed_at > FLUSH_EVERY_S:
            self.flush()
        if self.pause_after is not None and before < self.pause_after <= self._deleted:
            self.flush()
            # A test hook (``--pause-after``): stop here, with progress recorded, until killed.
            threading.Event().wait()

    def flush(self, **extra: Any) -> None:
        removed, rows = dict(self.removed), self.rows
        self.state.transact(AUDIT_COLLECTION, self.pseudonym,
                            lambda d: {**d, "removed": removed, "dataset_rows": rows, "updated_at": time.time(), **extra})
        self._since_flush = 0
        self._flushed_at = time.monotonic()


def _delete_object(storage: Storage, bucket: str, name: str, generation: int | None) -> None:
    delete_version = getattr(storage, "delete_version", None)  # versioned buckets only (Cloud Storage)
    if generation is not None and delete_version is not None:
        delete_version(bucket, name, generation)
    else:
        storage.delete(bucket, name)


def _prune_folders(storage: Storage, settings: Settings, subject: Subject, key: bytes) -> None:
    """Local folders (embedded backend): the subject's empty folders, whoever emptied them (a
    killed run too). Their names are personal data (``raw/psg/{site}/{subject}/``) or night ids."""
    import os

    bucket_path = getattr(storage, "bucket_path", None)
    if bucket_path is None:
        return
    roots = {logical: Path(bucket_path(settings.bucket(logical))) for logical in OBJECT_BUCKETS}
    folders = [f for logical in ("anonymised", "prepped", "results")
               for f in roots[logical].glob(f"nights/{subject.night_prefix}*")]
    folders += list(roots["results"].glob(f"{ds.PREFIX}*/*/night_id={subject.night_prefix}*"))
    folders += [f for f in roots["raw"].glob("*/*/*") if f.is_dir()
                and raw_owner(key, f"{f.relative_to(roots['raw']).as_posix()}/x") == subject.pseudonym]
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for below, _, _ in os.walk(folder, topdown=False):
            try:
                os.rmdir(below)  # only when empty
            except OSError:
                pass
        root = next(r for r in roots.values() if r in folder.parents)
        parent = folder.parent
        while parent != root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def _remove_empty_partitions(mirror: Path, subject: Subject) -> None:
    """The mirror's ``night_id={night}`` folders of the subject, once empty (their names are night ids)."""
    if mirror.is_dir():
        for folder in mirror.glob(f"*/*/night_id={subject.night_prefix}*"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _compact_embedded(settings: Settings) -> None:
    """Embedded and emulators backends: fold the SQLite write-ahead logs into their databases and truncate them,
    so that deleted documents and dead letters are gone from the ``-wal`` files too (both databases
    zero what they delete: ``secure_delete``). A reader holding the log open may delay it: the
    services and the router truncate their logs too (docs/privacy.md)."""
    import sqlite3

    files = {"embedded": ("state.db", "router.db"), "emulators": ("router.db",)}.get(settings.backend, ())
    for path in (Path(settings.data_dir) / f for f in files):
        if path.is_file():
            with sqlite3.connect(path, timeout=30) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()


def forget(settings: Settings, storage: Storage, state: StateStore, dead_letters: DeadLetters, subject: Subject, *,
           apply: bool = False,
           key: bytes | None = None, progress: Callable[[str, int, int], None] | None = None,
           pause_after: int | None = None, say: Callable[[str], None] | None = None) -> Outcome:
    """Plan, and with ``apply`` erase, everything of ``subject``; ``progress(step, done, total)``
    is called as items go. A dry run (``apply=False``) changes nothing and writes no audit."""
    key = settings.key_bytes() if key is None else key
    audit_doc = state.get(AUDIT_COLLECTION, subject.pseudonym) or {}
    recorded = audit_doc.get("pending_upload_ids", []) if audit_doc.get("state") == "running" else []
    plan = make_plan(settings, storage, state, dead_letters, key, subject, recorded_uploads=recorded, progress=say)
    if not apply:
        return Outcome(subject.pseudonym, False, plan.counts(), {c: 0 for c in CATEGORIES}, plan.dataset_rows,
                       plan.counts(), resumed=audit_doc.get("state") == "running", busy_nights=plan.busy_nights)
    audit = _Audit(state, subject.pseudonym, pause_after=pause_after)
    resumed = audit.start(plan)
    tick = progress or (lambda *_: None)
    total, done = plan.total, 0

    def step(category: str, rows: int = 0, n: int = 1, *, flush: bool = False) -> None:
        nonlocal done
        audit.count(category, rows, n, flush=flush)
        done += n
        tick(category, done, total)

    if plan.dead_letters:
        # One call (the cloud subscription settles what it pulled in one go), recorded at once.
        purged = dead_letters.purge(list(plan.dead_letters))
        step("dead_letters", n=purged, flush=True)
    for logical in OBJECT_BUCKETS:
        bucket = settings.bucket(logical)
        for name, generation in plan.objects[logical]:
            _delete_object(storage, bucket, name, generation)
            step(logical)
    results = settings.bucket("results")
    for name, generation in plan.dataset_parts:
        _delete_object(storage, results, name, generation)
        # A part's rows count once: with its live version (noncurrent versions hold copies).
        step("dataset_parts", plan.part_rows.pop(name, 0))
    _prune_folders(storage, settings, subject, key)
    for path in plan.mirror_files:
        path.unlink(missing_ok=True)
        step("dataset_mirror")
    _remove_empty_partitions(Path(settings.data_dir) / "dataset-mirror" / ds.PREFIX.rstrip("/"), subject)
    for upload in sorted(plan.upload_ids):
        state.delete("uploads", upload)
        step("uploads")
    for night in sorted(plan.night_ids):
        state.delete("nights", night)
        step("nights")
    if plan.pairing:
        state.delete(PAIRING_COLLECTION, subject.pseudonym)
        step("pairing")
    audit.flush()
    _compact_embedded(settings)
    # What is left (a stage that wrote while this ran, an item that reappeared): reported, and
    # the audit stays "running" so that the next run picks it up.
    left = make_plan(settings, storage, state, dead_letters, key, subject, progress=say)
    remaining = left.counts()
    finished = not any(remaining.values())
    audit.flush(state="done" if finished else "running", remaining=remaining,
                finished_at=time.time() if finished else None,
                **({"pending_upload_ids": []} if finished else {"pending_upload_ids": sorted(left.upload_ids)}))
    return Outcome(subject.pseudonym, True, plan.counts(), dict(audit.removed), audit.rows, remaining, resumed=resumed,
                   busy_nights=plan.busy_nights)
