"""The gold layer: one versioned training dataset across nights, as Parquet in the results bucket.

Two tables, Hive-partitioned so that pyarrow, DuckDB and BigQuery external tables read the same
objects with no copy (``terraform/bigquery.tf``)::

    dataset/training_rows/algo_version={algo_version}/night_id={night_id}/part-{input_key}.parquet
    dataset/night_scores/algo_version={algo_version}/night_id={night_id}/part-{input_key}.parquet

``training_rows``: one row per 30-s Sunrise epoch of a night with PSG labels: ``epoch`` (index
from the Sunrise recording start), ``onset_s`` (s from the Sunrise recording start), sunalgo's
features (float32, each field's metadata carries its ``unit`` and ``description``), ``psg_stage``
(``W N1 N2 N3 REM``, ``UNS`` outside the PSG scoring window or unscored) and ``psg_sleep`` (1
sleep, 0 wake, null unscored). ``night_scores``: one row per night: sunalgo's scores and the
PSG's over the same window, their differences and the epoch agreement (:data:`NIGHT_SCORE_FIELDS`).

Both carry the lineage of the run (:class:`Lineage`) as columns, constant within a file (Parquet
stores them dictionary-encoded: a few bytes per file), and as the file's key-value metadata
(``sunrise.lineage``, JSON). ``algo_version`` and ``night_id`` are the partition keys: they live
in the path only (BigQuery refuses a file column named like a partition key) and readers add them.

Writes are create-only and named by the sunalgo run's input key (which digests the model
version and both preparations' inputs), so a redelivered event writes nothing new and a night
re-run with a new upload adds a file beside the old one. Readers take the newest part per night
(:meth:`Dataset.latest`): the largest ``run_at``, then the largest ``input_key``.

pyarrow is imported lazily: it is a dependency of sunalgo and the CLI, the only users.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from sunrise_common.errors import PreconditionFailed, TransientError

if TYPE_CHECKING:
    import pyarrow as pa

    from sunrise_common.storage import Storage

#: Object prefix of the gold layer in the results bucket.
PREFIX = "dataset/"
TRAINING_ROWS = "training_rows"
NIGHT_SCORES = "night_scores"
TABLES = (TRAINING_ROWS, NIGHT_SCORES)
#: Partition keys, in path order.
PARTITION_KEYS = ("algo_version", "night_id")
#: Bumped when a column changes meaning or type (added columns do not bump it).
SCHEMA_VERSION = 1
LINEAGE_KEY = b"sunrise.lineage"
EPOCH_S = 30.0

_PART = re.compile(r"\Apart-(?P<key>[A-Za-z0-9_.-]{1,80})\.parquet\Z")
_VALUE = re.compile(r"\A[A-Za-z0-9_.+-]{1,120}\Z")  # partition values: no "/", "=", "%" or spaces


def object_name(table: str, algo_version: str, night_id: str, input_key: str) -> str:
    """``dataset/{table}/algo_version={algo_version}/night_id={night_id}/part-{input_key}.parquet``."""
    if table not in TABLES:
        raise ValueError(f"unknown dataset table {table!r}; expected one of {TABLES}")
    for what, value in (("algo_version", algo_version), ("night_id", night_id)):
        if not _VALUE.match(value or ""):
            raise ValueError(f"{what} {value!r} cannot be a Hive partition value")
    name = f"part-{input_key}.parquet"
    if not _PART.match(name):
        raise ValueError(f"input key {input_key!r} cannot name a dataset part")
    return f"{PREFIX}{table}/algo_version={algo_version}/night_id={night_id}/{name}"


def parse_object_name(name: str) -> tuple[str, str, str, str] | None:
    """(table, algo_version, night_id, input_key) of a dataset object name, or None."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] + "/" != PREFIX or parts[1] not in TABLES:
        return None
    if not parts[2].startswith("algo_version=") or not parts[3].startswith("night_id="):
        return None
    m = _PART.match(parts[4])
    if m is None:
        return None
    return parts[1], parts[2].split("=", 1)[1], parts[3].split("=", 1)[1], m["key"]


# --------------------------------------------------------------------------- schema

@dataclass(frozen=True)
class Lineage:
    """Where a night's rows come from. Generations are the anonymised objects' (Cloud Storage
    generations: µs since the epoch; local folders: the later of mtime and ctime in ns), as the
    night document named them when sunalgo ran; ``run_at`` is when that sunalgo run wrote its results (UTC)."""

    night_id: str
    algo_version: str
    input_key: str
    subject_pseudonym: str
    run_at: datetime
    pipeline_version: str
    model_version: str | None = None
    prep_version: str | None = None
    site_pseudonym: str | None = None
    sunrise_prep_input: str | None = None
    psg_prep_input: str | None = None
    sunrise_generation: int | None = None
    psg_generation: int | None = None
    label_generations: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_at"] = self.run_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Lineage":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["run_at"] = datetime.fromisoformat(known["run_at"])
        return cls(**known)


#: Lineage columns in every file of both tables: (name, type, description).
LINEAGE_COLUMNS = (
    ("subject_pseudonym", "string", "keyed pseudonym of the subject (the split key: never split a subject)"),
    ("site_pseudonym", "string", "keyed pseudonym of the site, when the night document records one"),
    ("input_key", "string", "the sunalgo run's input key (names the part file)"),
    ("sunrise_prep_input", "string", "input key of the sunrise_prep run used"),
    ("psg_prep_input", "string", "input key of the psg_prep run used"),
    ("sunrise_generation", "int64", "generation of the anonymised Sunrise recording"),
    ("psg_generation", "int64", "generation of the anonymised PSG recording"),
    ("label_generations", "string", "JSON object: label key -> generation of each anonymised label file"),
    ("prep_version", "string", "sunrise_prep version"),
    ("model_version", "string", "sunalgo model version that scored the night"),
    ("pipeline_version", "string", "version of the pipeline code (sunrise-common package)"),
    ("run_at", "timestamp", "when the sunalgo run wrote its results, UTC"),
)

#: Fixed columns of ``training_rows`` around the feature columns: (name, type, unit, description).
TRAINING_ROW_FIELDS = (
    ("epoch", "int32", "1", "index of the 30-s epoch from the Sunrise recording start"),
    ("onset_s", "float64", "s", "epoch onset from the Sunrise recording start"),
)
TRAINING_LABEL_FIELDS = (
    ("psg_stage", "string", "AASM stage", "PSG stage aligned on the epoch: W N1 N2 N3 REM, UNS unscored"),
    ("psg_sleep", "int8", "1", "1 sleep, 0 wake, null unscored"),
)

_SCORE_UNITS = {"TST": "min", "SOL": "min", "WASO": "min", "SE": "%", "AHI": "1/h", "RDI": "1/h",
                "ORDI": "1/h", "ODI": "1/h"}
#: ``night_scores`` columns: (name, type, unit, description). ``_pred`` and ``_psg`` are over the
#: PSG scoring window; ``_diff`` is prediction minus PSG.
NIGHT_SCORE_FIELDS = (
    ("n_epochs", "int32", "1", "30-s epochs of the Sunrise recording"),
    ("has_spo2", "bool", "1", "the Sunrise recording has oximetry"),
    ("n_epochs_compared", "int32", "1", "epochs scored on both sides"),
    ("n_epochs_unscored", "int32", "1", "epochs unscored on either side"),
    ("accuracy_sw", "float64", "1", "sleep/wake epoch accuracy vs the PSG"),
    ("kappa_sw", "float64", "1", "sleep/wake Cohen's kappa vs the PSG"),
    ("sensitivity_sleep", "float64", "1", "PSG sleep epochs predicted sleep"),
    ("specificity_wake", "float64", "1", "PSG wake epochs predicted wake"),
    *((f"{k}_{side}", "float64", unit, f"{k}, {what}, over the PSG scoring window")
      for k, unit in _SCORE_UNITS.items()
      for side, what in (("pred", "sunalgo"), ("psg", "PSG labels"), ("diff", "sunalgo minus PSG"))),
    ("severity_pred", "string", "class", "AHI class of the whole Sunrise night: normal <5, mild <15, "
                                         "moderate <30, severe"),
    ("severity_psg", "string", "class", "AHI class from the PSG labels"),
)


_LINEAGE_NAMES = frozenset(n for n, _, _ in LINEAGE_COLUMNS)


def _type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {"string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "int8": pa.int8(),
            "float64": pa.float64(), "float32": pa.float32(), "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC")}[name]


def _field(name: str, type_: str, unit: str | None, description: str) -> "pa.Field":
    import pyarrow as pa

    meta = {"description": description, **({"unit": unit} if unit is not None else {})}
    return pa.field(name, _type(type_), nullable=True, metadata=meta)


def lineage_fields() -> list["pa.Field"]:
    return [_field(n, t, None, d) for n, t, d in LINEAGE_COLUMNS]


def training_rows_schema(features: Sequence[tuple[str, str, str]]) -> "pa.Schema":
    """Schema of ``training_rows`` for ``features`` given as (name, unit, description)."""
    import pyarrow as pa

    fields = [_field(*f) for f in TRAINING_ROW_FIELDS]
    fields += [_field(name, "float32", unit, desc) for name, unit, desc in features]
    fields += [_field(*f) for f in TRAINING_LABEL_FIELDS]
    return pa.schema(fields + lineage_fields())


def night_scores_schema() -> "pa.Schema":
    import pyarrow as pa

    return pa.schema([_field(*f) for f in NIGHT_SCORE_FIELDS] + lineage_fields())


def with_lineage(columns: dict[str, Any], n_rows: int, lineage: Lineage, schema: "pa.Schema") -> "pa.Table":
    """A table of ``schema`` from ``columns`` (name -> sequence) plus the lineage columns,
    constant over ``n_rows``; the lineage also goes to the file metadata."""
    import pyarrow as pa

    values = lineage.to_json()
    values["label_generations"] = json.dumps(lineage.label_generations, sort_keys=True)
    values["run_at"] = lineage.run_at.astimezone(timezone.utc)
    arrays = []
    for f in schema:
        if f.name in columns:
            arrays.append(pa.array(columns[f.name], type=f.type))
        elif f.name in _LINEAGE_NAMES:
            arrays.append(pa.array([values[f.name]] * n_rows, type=f.type))
        else:
            arrays.append(pa.nulls(n_rows, type=f.type))
    for a, f in zip(arrays, schema):
        if len(a) != n_rows:
            raise ValueError(f"column {f.name} has {len(a)} values, expected {n_rows}")
    meta = {LINEAGE_KEY: json.dumps(lineage.to_json(), sort_keys=True).encode()}
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(meta))


def to_parquet_bytes(table: "pa.Table") -> bytes:
    """Parquet (zstd, dictionary-encoded constants), whole, in memory (a night is ~100 kB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True, write_statistics=True)
    return sink.getvalue().to_pybytes()


def write_part(storage: "Storage", bucket: str, table_name: str, table: "pa.Table", lineage: Lineage) -> str:
    """Write one part create-only; an existing part (a redelivery, a crashed attempt) is kept.
    Returns its object name."""
    name = object_name(table_name, lineage.algo_version, lineage.night_id, lineage.input_key)
    try:
        storage.write_bytes(bucket, name, to_parquet_bytes(table), if_generation_match=0)
    except PreconditionFailed:
        if storage.stat(bucket, name) is None:
            raise TransientError("storage_race", f"{bucket}/{name} vanished") from None
    return name


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class Part:
    """One Parquet file of the dataset, described by its path and footer (no rows read)."""

    table: str
    path: Path
    lineage: Lineage
    n_rows: int

    @property
    def night_id(self) -> str:
        return self.lineage.night_id

    @property
    def algo_version(self) -> str:
        return self.lineage.algo_version

    @property
    def subject(self) -> str:
        return self.lineage.subject_pseudonym

    def order_key(self) -> tuple:
        return (self.lineage.run_at, self.lineage.input_key)


def read_part_info(path: Path, table: str | None = None) -> Part:
    """A part's lineage and row count from its footer."""
    import pyarrow.parquet as pq

    path = Path(path)
    meta = pq.read_metadata(path)
    raw = (meta.metadata or {}).get(LINEAGE_KEY)
    if raw is None:
        raise ValueError(f"{path} has no {LINEAGE_KEY.decode()} metadata: not a dataset part")
    lineage = Lineage.from_json(json.loads(raw))
    table = table or path.parent.parent.parent.name
    return Part(table=table, path=path, lineage=lineage, n_rows=meta.num_rows)


def read_part(part: Part | Path, columns: Sequence[str] | None = None) -> "pa.Table":
    """One part's rows (``columns`` only, if given) with ``algo_version`` and ``night_id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = part if isinstance(part, Part) else read_part_info(part)
    wanted = [c for c in (columns or []) if c not in PARTITION_KEYS] if columns is not None else None
    t = pq.read_table(part.path, columns=wanted)
    for key in PARTITION_KEYS:
        if columns is None or key in columns:
            t = t.append_column(key, pa.array([getattr(part.lineage, key)] * t.num_rows, pa.string()))
    return t


class Dataset:
    """The dataset under ``root`` (the folder holding ``training_rows/`` and ``night_scores/``:
    the results bucket's ``dataset/`` folder, or a ``sunrise dataset export`` copy).

    Memory: :meth:`parts` and :meth:`latest` read footers only; :meth:`iter_rows` holds one
    night at a time; :meth:`read` holds the requested columns of the newest parts.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def parts(self, table: str) -> list[Part]:
        """Every part of ``table``, in path order."""
        if table not in TABLES:
            raise ValueError(f"unknown dataset table {table!r}; expected one of {TABLES}")
        out = []
        for path in sorted((self.root / table).glob("algo_version=*/night_id=*/part-*.parquet")):
            part = read_part_info(path, table)
            if (f"algo_version={part.algo_version}", f"night_id={part.night_id}") != (path.parent.parent.name,
                                                                                   path.parent.name):
                raise ValueError(f"{path}: its lineage names {part.algo_version}/{part.night_id}, not its folder")
            out.append(part)
        return out

    def latest(self, table: str, algo_versions: Iterable[str] | None = None,
               parts: Sequence[Part] | None = None) -> list[Part]:
        """The newest part per (plug-in, night) (``training_rows``: the rows depend on the plug-in's
        features, not on its model, so one per night across a plug-in's model versions; the
        plug-in is ``algo_version`` up to its ``+``) or per (algo version, night) (``night_scores``),
        sorted by night. ``algo_versions`` keeps those versions only (``mine-1`` matches
        ``sunalgo-1.0+mine-1``). ``parts``: choose among these (default: :meth:`parts`)."""
        wanted = set(algo_versions or ())
        best: dict[tuple, Part] = {}
        for p in self.parts(table) if parts is None else parts:
            if wanted and p.algo_version not in wanted and p.algo_version.rsplit("+", 1)[-1] not in wanted:
                continue
            key = ((p.algo_version.rsplit("+", 1)[0], p.night_id) if table == TRAINING_ROWS
                   else (p.algo_version, p.night_id))
            if key not in best or p.order_key() > best[key].order_key():
                best[key] = p
        return [best[k] for k in sorted(best, key=lambda k: k[::-1])]

    def iter_rows(self, table: str, columns: Sequence[str] | None = None,
                  parts: Sequence[Part] | None = None) -> Iterator[tuple[Part, "pa.Table"]]:
        """(part, rows) of the newest parts, one night at a time."""
        for part in self.latest(table) if parts is None else parts:
            yield part, read_part(part, columns)

    def read(self, table: str, columns: Sequence[str] | None = None,
             parts: Sequence[Part] | None = None) -> "pa.Table":
        """The newest parts' rows as one table (columns missing from older parts are null)."""
        import pyarrow as pa

        tables = [t for _, t in self.iter_rows(table, columns, parts)]
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="default")

    def export(self, out: Path, *, every_part: bool = False) -> list[Path]:
        """Copy the newest parts (every part with ``every_part``) into ``out`` in the same Hive
        layout, for a notebook: ``Dataset(out)`` and ``sunrise_cli.duckdb_views.duckdb_views(out)`` read the copy."""
        written = []
        for table in TABLES:
            for part in self.parts(table) if every_part else self.latest(table):
                dest = Path(out) / part.path.relative_to(self.root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(part.path, dest)
                written.append(dest)
        return written


def newest_view_sql(table: str, source: str) -> str:
    """The newest-part rule as SQL over ``source`` (every part of ``table``): the query of the
    BigQuery views in terraform/bigquery.tf (tests/terraform/test_bigquery.py runs that one)."""
    per = "night_id" if table == TRAINING_ROWS else "algo_version, night_id"
    return (f"SELECT * FROM {source} WHERE TRUE QUALIFY "
            f"DENSE_RANK() OVER (PARTITION BY {per} ORDER BY run_at DESC, input_key DESC) = 1")


# --------------------------------------------------------------------------- splits

SPLITS = ("train", "validation", "test")


def subject_splits(subjects: Iterable[str], *, seed: int = 0, test_fraction: float = 0.25,
                   validation_fraction: float = 0.0) -> dict[str, str]:
    """Assign each subject pseudonym to ``train``, ``validation`` or ``test``.

    Splits are by subject, never by epoch or night: epochs and nights of one person are
    correlated, and splitting them across sets inflates sleep-staging accuracy (the leak described
    by Supratak et al. 2017, DeepSleepNet, and measured across the literature by Banville et al.
    2021). Subjects are ranked by SHA-256 of ``"{seed}/{pseudonym}"`` (the same seed and subjects
    give the same splits, whatever their order); the first ``round(test_fraction * n)`` (at least
    one when n >= 2) go to test, the next ``round(validation_fraction * n)`` (none below three
    subjects) to validation, the rest (at least one) to train.
    """
    for name, frac in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {frac}")
    if test_fraction + validation_fraction >= 1.0:
        raise ValueError(f"test_fraction + validation_fraction must be < 1, got {test_fraction + validation_fraction}")
    ranked = sorted(set(subjects), key=lambda s: hashlib.sha256(f"{seed}/{s}".encode()).hexdigest())
    n = len(ranked)
    n_test = 0 if test_fraction == 0 or n < 2 else max(1, round(test_fraction * n))
    n_val = 0 if validation_fraction == 0 or n < 3 else max(1, round(validation_fraction * n))
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(n_val, max(n - 1 - n_test, 0))
    out = {}
    for i, s in enumerate(ranked):
        out[s] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return out


def subject_of_night(night_id: str) -> str:
    """The subject pseudonym of a night id (``{pseudonym}-n{night key}``, sunrise_common.identity)."""
    return night_id.rsplit("-n", 1)[0]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def pipeline_version() -> str:
    """The installed sunrise-common version (the pipeline's packages are versioned together)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sunrise-common")
    except PackageNotFoundError:
        return "unknown"
