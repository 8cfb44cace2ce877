"""The BigQuery tables' schema, from the dataset code's own schemas, as the files Terraform uploads.

BigQuery does not accept an explicit schema for a Parquet external table ("Schema is disallowed
for ... Parquet formats", ExternalDataConfiguration.schema in the BigQuery REST reference, and
the provider's documentation of ``external_data_configuration.schema``). What it accepts is a
*reference file*: ``reference_file_schema_uri`` names a Parquet file whose schema becomes the
table's. So the one source is ``sunrise_common.dataset``: this module writes, per table, an empty
Parquet file of exactly the schema sunalgo writes its parts with (``training_rows_schema`` over
sunalgo's features, ``night_scores_schema``), with the dataset code's own writer
(``to_parquet_bytes``); ``terraform/bigquery.tf`` uploads it and points the external table at it,
so the table has every column, ``run_at`` and ``input_key`` included, before the first night.
``tests/terraform/test_bigquery.py`` checks that the committed files equal the code's schemas.

Write them with ``uv run python -m tests.terraform.bigquery_reference`` (it imports sunalgo for
its feature list, which is why this lives with the tests: nothing but tests imports a service).
"""

from __future__ import annotations

from pathlib import Path

from sunrise_common import dataset as ds

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "terraform" / "schemas"


def code_schemas() -> dict[str, object]:
    """Table name -> the pyarrow schema the dataset code writes that table's parts with."""
    from sunrise_algo.dataset import feature_fields

    return {
        ds.TRAINING_ROWS: ds.training_rows_schema(feature_fields()),
        ds.NIGHT_SCORES: ds.night_scores_schema(),
    }


def write(folder: Path = SCHEMAS_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for table, schema in code_schemas().items():
        path = folder / f"{table}.parquet"
        path.write_bytes(ds.to_parquet_bytes(schema.empty_table()))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
