"""The gold layer as the pipeline writes it: a night with PSG labels, through the four services
in-process on the embedded backend, leaves Parquet parts with the declared schema and lineage; a
re-uploaded night adds a part and the reader returns only the newest."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sunrise_algo.builtin.features import FEATURES
from sunrise_common import dataset as ds
from sunrise_cli.duckdb_views import duckdb_views
from sunrise_common.service import Context
from sunrise_common.settings import Settings
from tests.conftest import TEST_KEY
from tests.inprocess import Pipeline, synth


@pytest.fixture
def pipeline(tmp_path):
    settings = Settings(backend="embedded", data_dir=tmp_path / "data", pseudonym_key=TEST_KEY,
                        prefix="sunrise-test", project="sunrise-test", lease_s=30)
    p = Pipeline(Context.from_settings(settings))
    yield p
    p.close()


def dataset_of(p: Pipeline) -> ds.Dataset:
    return ds.Dataset(p.ctx.storage.bucket_path(p.settings.bucket("results")) / "dataset")


def only_night(p: Pipeline) -> tuple[str, dict]:
    [(night_id, doc)] = list(p.ctx.state.list("nights"))
    return night_id, doc


def test_a_night_with_psg_labels_writes_both_tables_with_schema_and_lineage(pipeline, tmp_path):
    pipeline.upload_night(synth(tmp_path / "n", 3), site="lab", subject="P1")
    pipeline.drain()
    night_id, doc = only_night(pipeline)
    run = doc["stages"]["sunalgo"]
    assert run["state"] == "done"
    names = {o.name for o in pipeline.ctx.storage.list(pipeline.settings.bucket("results"), ds.PREFIX)}
    assert set(run["outputs"]["dataset"]) == names and len(names) == 2
    algo = run["outputs"]["prefix"].split("/")[2]
    for table in ds.TABLES:
        assert ds.object_name(table, algo, night_id, run["input_key"]) in names

    data = dataset_of(pipeline)
    [part] = data.latest(ds.TRAINING_ROWS)
    schema = pq.read_schema(part.path)
    for f in FEATURES:  # every feature, float32, with its unit and description
        field = schema.field(f.name)
        assert field.type == pa.float32()
        assert field.metadata[b"unit"].decode() == f.unit and field.metadata[b"description"].decode() == f.description
    assert schema.field("epoch").type == pa.int32() and schema.field("onset_s").metadata[b"unit"] == b"s"
    assert schema.field("psg_stage").type == pa.string() and schema.field("psg_sleep").type == pa.int8()
    assert schema.field("run_at").type == pa.timestamp("us", tz="UTC")
    assert "night_id" not in schema.names and "algo_version" not in schema.names  # partition keys: path only

    rec = doc["recordings"]
    lin = part.lineage
    assert (lin.night_id, lin.algo_version, lin.input_key) == (night_id, algo, run["input_key"])
    assert lin.subject_pseudonym == night_id.rsplit("-n", 1)[0] == doc["subject"]
    assert lin.sunrise_generation == rec["sunrise"]["generation"]
    assert lin.psg_generation == rec["psg"]["generation"]
    assert lin.label_generations == {k: v["generation"] for k, v in rec["labels"].items()} and lin.label_generations
    assert (lin.sunrise_prep_input, lin.psg_prep_input) == (run["outputs"]["sunrise_input"], run["outputs"]["psg_input"])
    assert lin.prep_version == "sunrise_prep-1.1" and lin.model_version == algo.split("+")[1]
    assert lin.pipeline_version == ds.pipeline_version() != "unknown"

    # The rows are the run's training_rows.csv, to float32 precision, with the lineage on every row.
    csv_name = run["outputs"]["prefix"] + "training_rows.csv"
    text = pipeline.ctx.storage.read_bytes(pipeline.settings.bucket("results"), csv_name).decode()
    rows = list(csv.DictReader(text.splitlines()))
    table = data.read(ds.TRAINING_ROWS)
    assert table.num_rows == len(rows) == part.n_rows > 0
    for name in ("onset_s", "act_count", "br_regularity", "spo2_mean"):
        want = np.array([float(r[name]) if r[name] else np.nan for r in rows])
        got = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert table.column("psg_stage").to_pylist() == [r["psg_stage"] for r in rows]
    assert table.column("psg_sleep").to_pylist() == [int(r["psg_sleep"]) if r["psg_sleep"] else None for r in rows]
    assert set(table.column("night_id").to_pylist()) == {night_id}
    assert set(table.column("sunrise_generation").to_pylist()) == {rec["sunrise"]["generation"]}

    [scores] = data.read(ds.NIGHT_SCORES).to_pylist()
    agreement = json.loads(pipeline.ctx.storage.read_bytes(pipeline.settings.bucket("results"),
                                                           run["outputs"]["prefix"] + "agreement.json"))
    assert scores["accuracy_sw"] == pytest.approx(agreement["accuracy_sw"])
    assert scores["TST_psg"] == pytest.approx(agreement["TST_psg"]) and scores["n_epochs"] == len(rows)
    assert scores["night_id"] == night_id and scores["model_version"] == lin.model_version


def test_a_redelivered_event_adds_no_part_and_keeps_the_first(pipeline, tmp_path):
    pipeline.upload_night(synth(tmp_path / "n", 4), site="lab", subject="P2")
    pipeline.drain()
    bucket = pipeline.settings.bucket("results")
    before = {o.name: o.generation for o in pipeline.ctx.storage.list(bucket, ds.PREFIX)}
    night_id, doc = only_night(pipeline)
    # The same prepped event again: the sunalgo run is done, so the handler answers "duplicate".
    from sunrise_common.events import pubsub_event

    headers, body = pubsub_event(pipeline.settings.project, pipeline.settings.topic("psg-prepped"),
                                 json.dumps({"night_id": night_id, "kind": "psg"}).encode())
    resp = pipeline.clients["sunalgo"].post("/", headers=headers, content=json.dumps(body))
    assert resp.json()["status"] == "duplicate"
    # And the writer itself, asked again for the same run, keeps the object it finds.
    from sunrise_algo.dataset import write_night

    part = dataset_of(pipeline).latest(ds.TRAINING_ROWS)[0]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
    for name in ("training_rows.csv", "scores.json", "agreement.json"):
        (run_dir / name).write_bytes(pipeline.ctx.storage.read_bytes(bucket, prefix + name))
    assert set(write_night(pipeline.ctx.storage, bucket, run_dir, part.lineage)) == set(before)
    assert {o.name: o.generation for o in pipeline.ctx.storage.list(bucket, ds.PREFIX)} == before


def test_a_reuploaded_night_adds_a_part_and_the_reader_returns_only_the_newest(pipeline, tmp_path):
    night = synth(tmp_path / "n", 5)
    pipeline.upload_night(night, site="lab", subject="P3")
    pipeline.drain()
    night_id, doc = only_night(pipeline)
    first_gen = doc["recordings"]["sunrise"]["generation"]
    [first] = dataset_of(pipeline).latest(ds.TRAINING_ROWS)

    # The site re-exports the Sunrise recording (one sample changed): a new generation of the same night.
    edf = bytearray(night.sunrise.read_bytes())
    edf[int(edf[184:192]) + 1] ^= 0x01  # high byte of the first sample of the first data record
    again = tmp_path / "again" / night.sunrise.name
    again.parent.mkdir()
    again.write_bytes(bytes(edf))
    pipeline.upload(again, kind="sunrise", site="lab", subject="P3")
    pipeline.drain()
    night_id2, doc = only_night(pipeline)
    assert night_id2 == night_id and doc["recordings"]["sunrise"]["generation"] != first_gen

    data = dataset_of(pipeline)
    every = data.parts(ds.TRAINING_ROWS)
    assert len(every) == 2 and len(data.parts(ds.NIGHT_SCORES)) == 2
    [newest] = data.latest(ds.TRAINING_ROWS)
    assert newest.path != first.path and first.path.exists()  # the old part stays, create-only
    assert newest.lineage.sunrise_generation == doc["recordings"]["sunrise"]["generation"]
    assert newest.lineage.run_at > first.lineage.run_at
    rows = data.read(ds.TRAINING_ROWS)
    assert rows.num_rows == newest.n_rows
    assert set(rows.column("input_key").to_pylist()) == {newest.lineage.input_key}
    [scores] = data.latest(ds.NIGHT_SCORES)
    assert scores.lineage.input_key == newest.lineage.input_key

    # DuckDB's views pick the same part.
    con = duckdb_views(data.root)
    assert con.execute("SELECT count(*) FROM training_rows_all").fetchone()[0] == sum(p.n_rows for p in every)
    assert con.execute("SELECT DISTINCT input_key FROM training_rows").fetchall() == [(newest.lineage.input_key,)]
    assert con.execute("SELECT count(*) FROM night_scores").fetchone()[0] == 1


def test_lineage_for_reads_the_typed_night_document():
    from datetime import datetime, timezone

    from sunrise_algo.dataset import lineage_for
    from sunrise_common.contracts import NightDoc

    night = "s" + "a" * 12 + "-n" + "b" * 8
    doc = NightDoc.model_validate({
        "night_id": night, "subject": "subj", "site_pseudonym": "site",
        "recordings": {"sunrise": {"object": "o1", "generation": 11}, "psg": {"object": "o2", "generation": 22},
                       "labels": {"hyp-x": {"object": "o3", "generation": 33}}},
        "stages": {"psg_prep": {"state": "done", "input_key": "kpsg"}},
        "runs": {"sunrise_prep": {"ksun": {"state": "done", "outputs": {"generation": 11}}}},
    })
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    kw = dict(algo_version="v", input_key="kalgo", scores={"model_version": "m"}, run_at=at)
    lin = lineage_for(night, doc, sunrise_input="ksun", psg_input="kpsg", **kw)
    assert (lin.subject_pseudonym, lin.site_pseudonym, lin.model_version) == ("subj", "site", "m")
    assert (lin.sunrise_generation, lin.psg_generation, lin.label_generations) == (11, 22, {"hyp-x": 33})
    # a legacy g{generation} key; a psg_prep run that is not the night's latest: no PSG generations
    old = lineage_for(night, doc, sunrise_input="g77r1", psg_input="kolder", **kw)
    assert (old.sunrise_generation, old.psg_generation, old.label_generations) == (77, None, {})
    bare = lineage_for(night, NightDoc(), sunrise_input=None, psg_input=None, **kw)
    assert bare.sunrise_generation is None and bare.subject_pseudonym is not None
