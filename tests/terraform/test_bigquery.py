"""terraform/bigquery.tf: the gold layer queryable in BigQuery (external tables with Hive
partitioning over the results bucket's dataset/ prefix, views of the newest part per night, a
reader that sees dataset/ and nothing else), checked against sunrise_common.dataset, the code
that writes the files. The text is read with python-hcl2 (test_terraform's helpers); the last
test reads the dev and prod plans Terraform computed (conftest.py)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sunrise_common import dataset as ds
from sunrise_cli.duckdb_views import duckdb_views
from sunrise_common.storage.local import LocalStorage

from .conftest import ENVIRONMENTS
from .test_terraform import one, resource, resources, tf_locals, variables

PREFIX = {"dev": "sunrise-dev", "prod": "sunrise-prod"}  # environments/*.tfvars


def test_there_is_one_external_table_and_one_newest_view_per_dataset_table() -> None:
    tables = tf_locals()["dataset_tables"]
    assert set(tables) == set(ds.TABLES)
    assert tf_locals()["dataset_prefix"] + "/" == ds.PREFIX
    assert tf_locals()["results_bucket"] == '${google_storage_bucket.buckets["results"].name}'
    for name in ("dataset_all", "dataset_newest"):
        table = resource("google_bigquery_table", name)
        assert table["for_each"] == "${local.dataset_tables}"
        assert table["dataset_id"] == "${google_bigquery_dataset.gold.dataset_id}"
    assert resource("google_bigquery_table", "dataset_all")["table_id"] == "${each.key}_all"
    assert resource("google_bigquery_table", "dataset_newest")["table_id"] == "${each.key}"
    gold = resource("google_bigquery_dataset", "gold")
    assert gold["location"] == "${var.region}"  # where the buckets are (buckets.tf): external tables need it
    assert gold["depends_on"] == ["${google_project_service.bigquery}"]
    assert resource("google_project_service", "bigquery")["service"] == "bigquery.googleapis.com"


def test_the_schema_files_terraform_uploads_are_the_dataset_codes_schemas() -> None:
    import pyarrow.parquet as pq

    from .bigquery_reference import SCHEMAS_DIR, code_schemas

    for table, schema in code_schemas().items():
        written = pq.read_schema(SCHEMAS_DIR / f"{table}.parquet")
        # Names, types and order of every column (metadata aside: units and descriptions ride along).
        assert [(f.name, f.type) for f in written] == [(f.name, f.type) for f in schema], (
            f"{table}: run `uv run python -m tests.terraform.bigquery_reference`"
        )
        assert {"run_at", "input_key"} <= set(written.names)  # what the newest-part views order by
        assert not set(ds.PARTITION_KEYS) & set(written.names)  # those come from the path


def test_external_tables_take_their_schema_from_the_reference_file_not_from_the_data() -> None:
    obj = resource("google_storage_bucket_object", "dataset_schema")
    assert obj["for_each"] == "${local.dataset_tables}"
    assert obj["source"] == "${path.module}/schemas/${each.key}.parquet"
    assert not obj["name"].startswith(tf_locals()["dataset_prefix"])  # outside the tables' wildcard
    table = resource("google_bigquery_table", "dataset_all")
    config = one(table["external_data_configuration"])
    assert config["reference_file_schema_uri"] == (
        "gs://${local.results_bucket}/${google_storage_bucket_object.dataset_schema[each.key].name}"
    )
    assert "schema" not in config  # disallowed for Parquet (api/bigquery/external-schema)
    assert one(table["lifecycle"])["replace_triggered_by"] == ["${google_storage_bucket_object.dataset_schema[each.key]}"]


def test_external_tables_read_parquet_with_the_writers_hive_partitioning() -> None:
    config = one(resource("google_bigquery_table", "dataset_all")["external_data_configuration"])
    assert config["source_format"] == "PARQUET"
    base = "gs://${local.results_bucket}/${local.dataset_prefix}/${each.key}"
    assert config["source_uris"] == [base + "/*"]
    hive = one(config["hive_partitioning_options"])
    assert hive["mode"] == "CUSTOM"
    assert hive["source_uri_prefix"] == base + "".join(f"/{{{k}:STRING}}" for k in ds.PARTITION_KEYS)
    # The layout the writer uses is that prefix followed by the part file.
    name = ds.object_name(ds.TRAINING_ROWS, "sunalgo-1.0+m-1", "sabcdefghijkl-nabcdefgh", "k1")
    assert re.fullmatch(r"dataset/training_rows/algo_version=[^/]+/night_id=[^/]+/part-k1\.parquet", name)
    assert ds.parse_object_name(name) == (ds.TRAINING_ROWS, "sunalgo-1.0+m-1", "sabcdefghijkl-nabcdefgh", "k1")


def bigquery_view_sql(table: str) -> str:
    """The view's query as Terraform renders it for ``table``, naming the external table as the
    DuckDB view ``{table}_all`` (BigQuery's backquoted project.dataset.table becomes that name)."""
    query = one(resource("google_bigquery_table", "dataset_newest")["view"])["query"]
    body = query.split("\n", 1)[1].rsplit("\n", 1)[0]  # the heredoc between <<-SQL and SQL
    newest_per = tf_locals()["dataset_tables"][table]["newest_per"]
    body = body.replace("`${var.project_id}.${local.dataset_id}.${each.key}_all`", f"{table}_all")
    body = body.replace("${each.value.newest_per}", newest_per)
    if "${" in body or "`" in body:
        raise AssertionError(f"unrendered interpolation left in the view: {body}")
    return body


def _write(storage: LocalStorage, bucket: str, table: str, night: str, algo: str, key: str, run_at: datetime) -> None:
    from sunrise_algo.dataset import feature_fields

    lineage = ds.Lineage(night_id=night, algo_version=algo, input_key=key, subject_pseudonym=night.split("-n")[0],
                         run_at=run_at, pipeline_version="test")
    if table == ds.TRAINING_ROWS:
        schema, n = ds.training_rows_schema(feature_fields()), 3
        columns = {"epoch": [0, 1, 2], "onset_s": [0.0, 30.0, 60.0], "psg_stage": ["W", "N2", "UNS"],
                   "psg_sleep": [0, 1, None]}
    else:
        schema, n, columns = ds.night_scores_schema(), 1, {"n_epochs": [3]}
    ds.write_part(storage, bucket, table, ds.with_lineage(columns, n, lineage, schema), lineage)


def test_the_bigquery_views_keep_the_newest_part_per_night_as_the_readers_do(tmp_path) -> None:
    """The views' SQL, run by DuckDB over parts the writer made, picks the parts
    ``Dataset.latest`` picks: per night for training rows, per (algo version, night) for scores."""
    storage = LocalStorage(tmp_path)
    storage.ensure_bucket("results")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a, b = "sa" + "a" * 11 + "-naaaaaaaa", "sb" + "b" * 11 + "-nbbbbbbbb"
    for table in ds.TABLES:
        _write(storage, "results", table, a, "sunalgo-1.0+m-1", "k1", t0)
        _write(storage, "results", table, a, "sunalgo-1.0+m-1", "k2", t0 + timedelta(hours=1))  # re-upload
        _write(storage, "results", table, a, "sunalgo-1.0+m-2", "k3", t0 + timedelta(hours=2))  # rerun, new model
        _write(storage, "results", table, b, "sunalgo-1.0+m-1", "k4", t0)
    data = ds.Dataset(tmp_path / "results" / "dataset")
    con = duckdb_views(data.root)
    for table in ds.TABLES:
        sql = bigquery_view_sql(table)
        assert " ".join(sql.split()) == ds.newest_view_sql(table, f"{table}_all")
        got = sorted(set(con.execute(f"SELECT night_id, algo_version, input_key FROM ({sql})").fetchall()))
        want = sorted((p.night_id, p.algo_version, p.lineage.input_key) for p in data.latest(table))
        assert got == want, table
        ours = sorted(set(con.execute(f"SELECT night_id, algo_version, input_key FROM {table}").fetchall()))
        assert ours == want, table
    assert [p.lineage.input_key for p in data.latest(ds.TRAINING_ROWS)] == ["k3", "k4"]
    assert sorted(p.lineage.input_key for p in data.latest(ds.NIGHT_SCORES)) == ["k2", "k3", "k4"]


def test_the_reader_may_query_and_read_the_dataset_prefix_only() -> None:
    reader = variables()["dataset_reader"]
    assert reader["type"] in ("string", "${string}") and reader["default"] is None
    grants = {
        "google_bigquery_dataset_iam_member": "roles/bigquery.dataViewer",
        "google_project_iam_member": "roles/bigquery.jobUser",
        "google_storage_bucket_iam_member": "roles/storage.objectViewer",
    }
    for kind, role in grants.items():
        found = [body for name, body in resources(kind).items() if body.get("member") == "${var.dataset_reader}"]
        assert len(found) == 1, kind
        assert found[0]["role"] == role and found[0]["count"] == "${var.dataset_reader == null ? 0 : 1}"
    bucket = resource("google_storage_bucket_iam_member", "dataset_reader")
    assert bucket["bucket"] == "${local.results_bucket}"
    expression = one(bucket["condition"])["expression"]
    objects = 'resource.name.startsWith("projects/_/buckets/${local.results_bucket}/objects/${local.dataset_prefix}/")'
    listing = 'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("${local.dataset_prefix}/")'
    assert expression == f"{objects} || {listing}"


def planned(plan: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Planned values of one resource type, by address."""
    return {rc["address"]: rc["change"]["after"]
            for rc in plan["resource_changes"] if rc["type"] == resource_type and rc["mode"] == "managed"}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_plan_creates_the_external_tables_with_their_partitioning(plans: dict[str, Any], environment: str) -> None:
    plan = plans[environment]
    tables = planned(plan, "google_bigquery_table")
    dataset_id = PREFIX[environment].replace("-", "_") + "_gold"
    [gold] = planned(plan, "google_bigquery_dataset").values()
    assert gold["dataset_id"] == dataset_id
    bucket = f"{PREFIX[environment]}-results"
    externals = {k: v for k, v in tables.items() if v["table_id"].endswith("_all")}
    assert {v["table_id"] for v in externals.values()} == {f"{t}_all" for t in ds.TABLES}
    for after in externals.values():
        table = after["table_id"].removesuffix("_all")
        [config] = after["external_data_configuration"]
        assert config["source_uris"] == [f"gs://{bucket}/dataset/{table}/*"] and config["source_format"] == "PARQUET"
        [hive] = config["hive_partitioning_options"]
        assert hive["mode"] == "CUSTOM"
        assert hive["source_uri_prefix"] == f"gs://{bucket}/dataset/{table}/{{algo_version:STRING}}/{{night_id:STRING}}"
        # The plan declares the schema: the reference file of this table, in the same bucket.
        assert config["reference_file_schema_uri"] == f"gs://{bucket}/schemas/{table}.parquet"
    objects = planned(plan, "google_storage_bucket_object")
    assert {(o["bucket"], o["name"]) for o in objects.values()} == {(bucket, f"schemas/{t}.parquet") for t in ds.TABLES}
    views = {v["table_id"]: v for v in tables.values() if not v["table_id"].endswith("_all")}
    assert set(views) == set(ds.TABLES)
    for table, after in views.items():
        [view] = after["view"]
        assert f"`{plan['variables']['project_id']['value']}.{dataset_id}.{table}_all`" in view["query"]
        assert view["use_legacy_sql"] is False
