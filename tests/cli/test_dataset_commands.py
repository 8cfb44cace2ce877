"""``sunrise dataset build|list|export|stats`` and ``sunrise train`` over the gold layer, on nights
processed by the real pipeline (the four apps in-process, embedded backend): seven nights of five
subjects, two of whom come back for a second night."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sunrise_common import dataset as ds
from sunrise_cli.duckdb_views import duckdb_views
from sunrise_common.service import Context
from sunrise_devstack.settings import DevStackSettings
from sunrise_cli.dataset import open_dataset
from sunrise_cli.main import app
from sunrise_cli.stack import settings_env
from sunrise_cli.train import collect_training_rows, night_of, train_model
from tests.conftest import TEST_KEY
from tests.inprocess import Pipeline, synth

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dataset.md"
#: (subject, first night's date): P1 and P2 have two nights each.
NIGHTS = [("P1", datetime(2024, 3, 5, 22, 30)), ("P1", datetime(2024, 3, 9, 23, 0)),
          ("P2", datetime(2024, 4, 1, 22, 0)), ("P2", datetime(2024, 4, 2, 22, 15)),
          ("P3", datetime(2024, 3, 5, 22, 30)), ("P4", datetime(2024, 5, 5, 21, 45)),
          ("P5", datetime(2024, 6, 1, 23, 30))]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    settings = DevStackSettings(backend="embedded", data_dir=root / "data", pseudonym_key=TEST_KEY,
                        prefix="sunrise-test", project="sunrise-test", lease_s=30)
    pipeline = Pipeline(Context.from_settings(settings))
    for i, (subject, start) in enumerate(NIGHTS):
        pipeline.upload_night(synth(root / f"n{i}", 40 + i, start=start), site="lab", subject=subject)
        pipeline.drain()  # a subject's second night reuses the raw object names of the first
    with pytest.MonkeyPatch.context() as mp:
        for key, value in settings_env(settings).items():
            mp.setenv(key, value)  # the CLI reads the same settings
        yield pipeline, root
    pipeline.close()


def sunrise(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if result.exit_code != 0:
        raise AssertionError(f"sunrise {' '.join(args)} exited {result.exit_code}: {result.output}")
    return result.output


def test_dataset_list_shows_every_night_with_its_rows(stack):
    pipeline, _ = stack
    listed = json.loads(sunrise("dataset", "list", "--json"))
    docs = dict(pipeline.ctx.state.list("nights"))
    assert len(docs) == len(NIGHTS) == len(listed)
    data = open_dataset(pipeline.ctx)
    rows = {p.night_id: p.n_rows for p in data.latest(ds.TRAINING_ROWS)}
    for n in listed:
        doc = docs[n["night_id"]]
        prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
        csv_rows = pipeline.ctx.storage.read_bytes(pipeline.settings.bucket("results"), prefix + "training_rows.csv")
        assert n["rows"] == rows[n["night_id"]] == len(csv_rows.decode().splitlines()) - 1 > 0
        assert n["subject"] == doc["subject"] and n["parts"] == 1
        assert n["algo_version"] == doc["stages"]["sunalgo"]["outputs"]["prefix"].split("/")[2]
    printed = sunrise("dataset", "list")
    assert all(n["night_id"] in printed for n in listed)
    assert f"{len(NIGHTS)} night(s), {sum(rows.values())} training row(s) over 1 algo version(s)" in printed


def test_build_backfills_the_same_parts_from_existing_results_and_is_idempotent(stack):
    pipeline, _ = stack
    storage, bucket = pipeline.ctx.storage, pipeline.settings.bucket("results")
    data = open_dataset(pipeline.ctx)
    before = {p.path.relative_to(data.root): (pq.read_table(p.path), p.lineage) for t in ds.TABLES for p in data.parts(t)}
    for info in list(storage.list(bucket, ds.PREFIX)):  # a dataset written before the gold layer existed
        storage.delete(bucket, info.name)
    assert open_dataset(pipeline.ctx).parts(ds.TRAINING_ROWS) == []

    out = sunrise("dataset", "build")
    assert f"{len(NIGHTS)} sunalgo run(s) with PSG labels: {2 * len(NIGHTS)} part(s) written" in out
    after = {p.path.relative_to(data.root): (pq.read_table(p.path), p.lineage) for t in ds.TABLES for p in data.parts(t)}
    assert sorted(after) == sorted(before)
    docs = dict(pipeline.ctx.state.list("nights"))
    for name, (table, lineage) in after.items():
        old_table, old_lineage = before[name]
        skip = {"run_at", "pipeline_version"}
        assert table.drop_columns(["run_at"]).equals(old_table.drop_columns(["run_at"]))
        assert {k: v for k, v in lineage.to_json().items() if k not in skip} == \
               {k: v for k, v in old_lineage.to_json().items() if k not in skip}
        finished = docs[lineage.night_id]["stages"]["sunalgo"]["finished_at"]
        assert lineage.run_at.timestamp() == pytest.approx(finished, abs=1e-5)  # backfill: the run's finish time
    again = sunrise("dataset", "build")
    assert f"0 part(s) written, {len(NIGHTS)} run(s) already in the dataset" in again


def test_train_reads_the_parquet_dataset_and_records_subject_splits(stack, tmp_path):
    pipeline, _ = stack
    paths = collect_training_rows(pipeline.settings, tmp_path / "mirror")
    data = open_dataset(pipeline.ctx)
    assert sorted(paths) == sorted(p.path for p in data.latest(ds.TRAINING_ROWS))
    assert all(p.suffix == ".parquet" for p in paths) and len(paths) == len(NIGHTS)

    printed = sunrise("train", "--version", "ds-1", "--out", str(tmp_path / "models"))
    assert "held-out accuracy" in printed
    spec = json.loads((tmp_path / "models" / "ds-1.json").read_text())
    splits = spec["splits"]
    assert splits["by"] == "subject_pseudonym"
    nights = {p.night_id: p.subject for p in data.latest(ds.TRAINING_ROWS)}
    assert sorted(n for sp in ds.SPLITS for n in splits["nights"][sp]) == sorted(nights)
    assert spec["held_out"] == splits["nights"]["test"] and spec["trained_on"] == splits["nights"]["train"]
    assert_no_subject_in_two_splits(splits, nights)

    printed = sunrise("train", "--version", "ds-2", "--out", str(tmp_path / "models"), "--validation-fraction", "0.2")
    assert re.search(r"validation accuracy [0-9.]+ on [12] night\(s\)", printed), printed
    splits = json.loads((tmp_path / "models" / "ds-2.json").read_text())["splits"]
    assert [len(splits["subjects"][s]) for s in ds.SPLITS] == [3, 1, 1] and splits["validation_fraction"] == 0.2
    assert_no_subject_in_two_splits(splits, nights)


def assert_no_subject_in_two_splits(splits: dict, subject_of: dict[str, str]) -> None:
    seen: dict[str, str] = {}
    for split in ds.SPLITS:
        assert splits["subjects"][split] == sorted({subject_of[n] for n in splits["nights"][split]})
        for night in splits["nights"][split]:
            subject = subject_of[night]
            assert seen.setdefault(subject, split) == split, f"{subject} is in {seen[subject]} and {split}"


def test_no_subject_appears_in_two_splits_with_a_validation_split(stack, tmp_path):
    """Five subjects, two with two nights: whatever the seed, each subject's nights stay together."""
    pipeline, _ = stack
    paths = collect_training_rows(pipeline.settings, tmp_path / "mirror")
    subject_of = dict(night_of(p) for p in paths)
    assert len(set(subject_of.values())) == 5 and len(subject_of) == 7
    sizes = set()
    for seed in range(6):
        result = train_model(paths, tmp_path / "models", version=f"split-{seed}", seed=seed,
                             holdout_fraction=0.2, validation_fraction=0.2)
        spec = json.loads(Path(result["artifact"]).read_text())
        assert_no_subject_in_two_splits(spec["splits"], subject_of)
        assert [len(spec["splits"]["subjects"][s]) for s in ds.SPLITS] == [3, 1, 1]
        assert result["metrics"]["validation"]["n_epochs"] > 0 and result["metrics"]["model"]["n_epochs"] > 0
        sizes.add(tuple(len(spec["splits"]["nights"][s]) for s in ds.SPLITS))
    assert any(max(s[1:]) == 2 for s in sizes)  # some seed held out a two-night subject, whole


def test_export_copies_the_newest_parts_for_a_notebook(stack, tmp_path):
    pipeline, _ = stack
    out = tmp_path / "copy"
    printed = sunrise("dataset", "export", "--out", str(out))
    assert f"{2 * len(NIGHTS)} file(s) in" in printed
    copy, source = ds.Dataset(out), open_dataset(pipeline.ctx)
    for table in ds.TABLES:
        assert [p.lineage for p in copy.latest(table)] == [p.lineage for p in source.latest(table)]
        assert copy.read(table).equals(source.read(table))
    con = duckdb_views(out)
    assert con.execute("SELECT count(*) FROM training_rows").fetchone()[0] == source.read(ds.TRAINING_ROWS).num_rows


def test_stats_gives_class_balance_sites_subjects_and_missing_features(stack):
    pipeline, _ = stack
    s = json.loads(sunrise("dataset", "stats", "--json"))
    rows = open_dataset(pipeline.ctx).read(ds.TRAINING_ROWS)
    assert s["nights"] == len(NIGHTS) and s["epochs"] == rows.num_rows and s["subjects"] == 5
    stages = rows.column("psg_stage").to_pylist()
    assert s["stages"] == {k: stages.count(k) for k in sorted(set(stages))}
    sleep = rows.column("psg_sleep").to_pylist()
    assert s["sleep"] == {k: n for k, n in (("sleep", sleep.count(1)), ("wake", sleep.count(0)),
                                            ("unscored", sleep.count(None))) if n}
    from sunrise_common.identity import site_pseudonym

    # ingest records the site's keyed pseudonym in the night document; every night here is "lab"
    assert s["sites"] == {site_pseudonym(pipeline.ctx.settings.key_bytes(), "lab"): len(NIGHTS)}
    assert s["nights_per_subject"] == {"1": 3, "2": 2}
    from sunrise_algo.builtin.features import FEATURE_NAMES

    assert sorted(s["missing"]) == sorted(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        assert s["missing"][name] == pytest.approx(rows.column(name).null_count / rows.num_rows)
    printed = sunrise("dataset", "stats")
    assert f"{len(NIGHTS)} night(s), 5 subject(s), {rows.num_rows} epoch(s) of 30 s" in printed


def documented_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_documented_duckdb_queries_run_over_the_pipelines_dataset(stack):
    """docs/dataset.md's three example queries, verbatim, against the views of ``duckdb_views``
    over the dataset the pipeline wrote; each answer is checked against pyarrow's reading."""
    pipeline, _ = stack
    queries = documented_queries()
    assert len(queries) == 3
    data = open_dataset(pipeline.ctx)
    con = duckdb_views(data.root)
    rows = data.read(ds.TRAINING_ROWS)
    scores = data.read(ds.NIGHT_SCORES)

    # 1. class balance per night
    balance = con.execute(queries[0]).fetchall()
    assert len(balance) == len(NIGHTS)
    for night_id, n_epochs, wake, sleep, unscored in balance:
        mine = [s for n, s in zip(rows.column("night_id").to_pylist(), rows.column("psg_sleep").to_pylist())
                if n == night_id]
        assert (n_epochs, wake, sleep, unscored) == (len(mine), mine.count(0), mine.count(1), mine.count(None))

    # 2. agreement per model version
    [(algo, n_nights, mean_acc, mean_kappa, tst_bias)] = con.execute(queries[1]).fetchall()
    assert algo == scores.column("algo_version")[0].as_py() and n_nights == len(NIGHTS)
    acc = [a for a in scores.column("accuracy_sw").to_pylist() if a is not None]
    assert mean_acc == pytest.approx(sum(acc) / len(acc))
    diffs = [d for d in scores.column("TST_diff").to_pylist() if d is not None]
    assert tst_bias == pytest.approx(sum(diffs) / len(diffs))

    # 3. a feature by PSG stage, one row per stage
    by_stage = con.execute(queries[2]).fetchall()
    stages = rows.column("psg_stage").to_pylist()
    assert {r[0] for r in by_stage} == set(stages) - {"UNS"}
    for stage, n, *_ in by_stage:
        assert n == stages.count(stage)
