"""The gold layer from the command line: backfill, list, export, stats (``sunrise dataset ...``).

Reading goes through :class:`sunrise_common.dataset.Dataset` on a local folder: the results
bucket's own ``dataset/`` folder on the embedded backend, a mirror of the bucket's ``dataset/``
prefix (only the parts not mirrored yet are downloaded) on the emulators and in the cloud.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sunrise_common import dataset as ds
from sunrise_common.service import Context

if TYPE_CHECKING:
    from sunrise_common.storage import Storage


def local_root(ctx: Context, cache: Path | None = None) -> Path:
    """A local folder holding the results bucket's ``dataset/`` tree (see the module docstring).
    ``cache`` is where a mirror goes (default ``{data_dir}/dataset-mirror``)."""
    bucket = ctx.settings.bucket("results")
    bucket_path = getattr(ctx.storage, "bucket_path", None)
    if bucket_path is not None:
        return Path(bucket_path(bucket)) / ds.PREFIX.rstrip("/")
    mirror = Path(cache or ctx.settings.data_dir / "dataset-mirror")
    mirror_dataset(ctx.storage, bucket, mirror)
    return mirror / ds.PREFIX.rstrip("/")


def mirror_dataset(storage: Storage, bucket: str, mirror: Path) -> int:
    """Copy the parts of ``bucket``'s ``dataset/`` that ``mirror`` lacks (same object names
    under ``mirror``); returns how many were downloaded. Parts are create-only, so a part already
    mirrored at its size is that part."""
    fetched = 0
    for info in storage.list(bucket, ds.PREFIX):
        if ds.parse_object_name(info.name) is None:
            continue
        dest = Path(mirror) / info.name
        if dest.is_file() and dest.stat().st_size == info.size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        storage.download_to_file(bucket, info.name, tmp)
        tmp.replace(dest)
        fetched += 1
    return fetched


def open_dataset(ctx: Context, cache: Path | None = None) -> ds.Dataset:
    return ds.Dataset(local_root(ctx, cache))


# --------------------------------------------------------------------------- build

@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)
    present: int = 0
    without_rows: int = 0
    runs: int = 0


def _sunalgo_runs(doc: dict[str, Any]) -> Iterable[tuple[str, str, dict]]:
    """(stage, input key, run) of every finished sunalgo run of a night document with PSG labels."""
    seen = set()
    for stage, runs in doc.get("runs", {}).items():
        if stage == "sunalgo" or stage.startswith("sunalgo:"):
            for key, run in runs.items():
                seen.add((stage, key))
                yield stage, key, run
    for stage, run in doc.get("stages", {}).items():  # documents written before runs were kept
        if (stage == "sunalgo" or stage.startswith("sunalgo:")) and (stage, run.get("input_key")) not in seen:
            yield stage, run.get("input_key"), run


def build(ctx: Context, *, progress: Callable[[Iterable], Iterable] = lambda it: it) -> BuildReport:
    """Backfill the dataset from results already in the bucket: every finished sunalgo run with
    PSG labels whose parts are missing gets them, from its own ``training_rows.csv``,
    ``scores.json`` and ``agreement.json`` (the files the handler converts), with ``run_at`` the
    run's finish time. Parts that exist are left alone (create-only), so build is idempotent."""
    from sunrise_algo.dataset import lineage_for, write_night
    from sunrise_common.contracts import NightDoc

    bucket = ctx.settings.bucket("results")
    report = BuildReport()
    todo = []
    for night_id, doc in ctx.state.list("nights"):
        for _stage, key, run in _sunalgo_runs(doc):
            outputs = run.get("outputs") or {}
            if run.get("state") == "done" and outputs.get("with_psg") and outputs.get("prefix") and key:
                todo.append((night_id, doc, key, run))
    for night_id, doc, key, run in progress(todo):
        report.runs += 1
        prefix = run["outputs"]["prefix"]
        algo = prefix.strip("/").split("/")[2]
        names = [ds.object_name(t, algo, night_id, key) for t in ds.TABLES]
        if all(ctx.storage.stat(bucket, n) is not None for n in names):
            report.present += 1
            continue
        if "training_rows.csv" not in (run["outputs"].get("files") or ["training_rows.csv"]):
            report.without_rows += 1
            continue
        with tempfile.TemporaryDirectory(prefix="sunrise-") as tmp:
            run_dir = Path(tmp)
            for name in ("training_rows.csv", "scores.json", "agreement.json"):
                ctx.storage.download_to_file(bucket, prefix + name, run_dir / name)
            scores = json.loads((run_dir / "scores.json").read_text())
            finished = run.get("finished_at")
            run_at = (datetime.fromtimestamp(float(finished), timezone.utc) if finished is not None
                      else ds.now_utc())
            lineage = lineage_for(night_id, NightDoc.model_validate(doc), algo_version=algo, input_key=key,
                                  sunrise_input=run["outputs"].get("sunrise_input"),
                                  psg_input=run["outputs"].get("psg_input"), scores=scores, run_at=run_at)
            report.written += write_night(ctx.storage, bucket, run_dir, lineage)
    return report


# --------------------------------------------------------------------------- list, stats

def night_list(data: ds.Dataset, algo_versions: list[str] | None = None) -> list[dict[str, Any]]:
    """One entry per (night, algo version) of ``night_scores`` (newest part), with the training
    rows' count and how many parts (uploads and reruns) the night has."""
    rows = {p.night_id: p for p in data.latest(ds.TRAINING_ROWS)}
    n_parts = Counter(p.night_id for p in data.parts(ds.TRAINING_ROWS))
    out = []
    for p in data.latest(ds.NIGHT_SCORES, algo_versions):
        lin, tr = p.lineage, rows.get(p.night_id)
        out.append({"night_id": p.night_id, "subject": lin.subject_pseudonym, "site": lin.site_pseudonym,
                    "algo_version": p.algo_version, "model_version": lin.model_version,
                    "prep_version": lin.prep_version, "pipeline_version": lin.pipeline_version,
                    "rows": tr.n_rows if tr else 0, "parts": n_parts[p.night_id],
                    "run_at": lin.run_at.isoformat(timespec="seconds")})
    return out


def stats(data: ds.Dataset) -> dict[str, Any]:
    """Class balance (epochs per PSG stage and sleep/wake/unscored), nights per site and per
    subject pseudonym, and the missing (null) fraction of each feature, over the newest training
    rows of every night. Computed by DuckDB over the Parquet files (it streams them: memory does
    not grow with the number of nights)."""
    from sunrise_cli.duckdb_views import duckdb_views  # duckdb only for the commands that query

    con = duckdb_views(data.root)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if ds.TRAINING_ROWS not in tables:
        return {"nights": 0, "epochs": 0, "stages": {}, "sleep": {}, "sites": {}, "subjects": 0,
                "nights_per_subject": {}, "missing": {}}
    columns = [r[0] for r in con.execute(f"DESCRIBE {ds.TRAINING_ROWS}").fetchall()]
    fixed = {n for n, *_ in ds.TRAINING_ROW_FIELDS + ds.TRAINING_LABEL_FIELDS} | {n for n, *_ in ds.LINEAGE_COLUMNS}
    features = [c for c in columns if c not in fixed and c not in ds.PARTITION_KEYS]
    nights, epochs = con.execute(f"SELECT count(DISTINCT night_id), count(*) FROM {ds.TRAINING_ROWS}").fetchone()
    stages = dict(con.execute(f"SELECT psg_stage, count(*) FROM {ds.TRAINING_ROWS} GROUP BY 1 ORDER BY 1").fetchall())
    sleep = {({1: "sleep", 0: "wake"}.get(k, "unscored")): n for k, n in con.execute(
        f"SELECT psg_sleep, count(*) FROM {ds.TRAINING_ROWS} GROUP BY 1").fetchall()}
    sites = dict(con.execute(f"SELECT coalesce(site_pseudonym, '(not recorded)'), count(DISTINCT night_id) "
                             f"FROM {ds.TRAINING_ROWS} GROUP BY 1 ORDER BY 1").fetchall())
    per_subject = dict(con.execute(
        f"SELECT k, count(*) FROM (SELECT subject_pseudonym, count(DISTINCT night_id) AS k FROM {ds.TRAINING_ROWS} "
        "GROUP BY 1) GROUP BY 1 ORDER BY 1").fetchall())
    missing = {}
    if features and epochs:
        exprs = ", ".join(f'count(*) - count("{f}")' for f in features)
        counts = con.execute(f"SELECT {exprs} FROM {ds.TRAINING_ROWS}").fetchone()
        missing = {f: n / epochs for f, n in zip(features, counts)}
    return {"nights": nights, "epochs": epochs, "stages": stages, "sleep": sleep, "sites": sites,
            "subjects": sum(per_subject.values()), "nights_per_subject": per_subject, "missing": missing}
