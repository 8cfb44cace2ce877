# The gold layer in BigQuery (docs/dataset.md): external tables over the results bucket's
# dataset/ prefix, Hive-partitioned by algo_version and night_id as sunalgo writes it
# (libs/common/sunrise_common/dataset.py), so that an analyst can SELECT across every night with
# no copy; and one view per table that keeps the newest part per night, the rule of
# sunrise_common.dataset.Dataset.latest and of the DuckDB views the tests run the documented
# queries on.

locals {
  # Table -> the key a newer part replaces an older one on (a re-upload or a rerun adds a part).
  # Training rows do not depend on the model that scored the night: one set per night.
  dataset_tables = {
    training_rows = {
      description = "One row per 30-s Sunrise epoch of every night with PSG labels: sunalgo features (units in docs/dataset.md), PSG stage and sleep flag, lineage."
      newest_per  = "night_id"
    }
    night_scores = {
      description = "One row per night and algo version: sunalgo's and the PSG's scores over the PSG scoring window, their differences, epoch agreement, lineage."
      newest_per  = "algo_version, night_id"
    }
  }
  dataset_id     = "${replace(var.prefix, "-", "_")}_gold"
  dataset_prefix = "dataset" # sunrise_common.dataset.PREFIX without its slash
  results_bucket = google_storage_bucket.buckets["results"].name
}

resource "google_project_service" "bigquery" {
  project = var.project_id
  service = "bigquery.googleapis.com"
  # Other workloads in the project may use BigQuery.
  disable_on_destroy = false
}

resource "google_bigquery_dataset" "gold" {
  #checkov:skip=CKV_GCP_81:the dataset stores no data: its tables are external (the Parquet files stay in the results bucket, encrypted as the bucket is) and views
  project     = var.project_id
  dataset_id  = local.dataset_id
  location    = var.region # external tables must live where their bucket is
  description = "Sunrise gold layer: external tables over gs://${local.results_bucket}/${local.dataset_prefix}/ (Parquet, Hive-partitioned) and views of the newest part per night."
  labels      = local.labels
  # The tables hold no data of their own (the Parquet files stay in the bucket).
  delete_contents_on_destroy = false

  depends_on = [google_project_service.bigquery]
}

# The tables' schema, before the first night: BigQuery takes no explicit schema for a Parquet
# external table, only a reference file whose schema becomes the table's. schemas/*.parquet are
# empty Parquet files written from sunrise_common.dataset's own schemas (the ones sunalgo writes
# its parts with: tests/terraform/bigquery_reference.py; tests/terraform/test_bigquery.py checks
# that they agree). They live outside dataset/, so the tables' wildcard never reads them.
resource "google_storage_bucket_object" "dataset_schema" {
  for_each = local.dataset_tables

  bucket       = local.results_bucket
  name         = "schemas/${each.key}.parquet"
  source       = "${path.module}/schemas/${each.key}.parquet"
  content_type = "application/vnd.apache.parquet"
  # The provider compares the file's MD5 with the object's at plan time: a new schema file is a
  # new object, and (below) a new table.
}

resource "google_bigquery_table" "dataset_all" {
  #checkov:skip=CKV_GCP_80:an external table stores nothing in BigQuery: its rows are the results bucket's Parquet files, encrypted as the bucket is
  for_each = local.dataset_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.gold.dataset_id
  table_id            = "${each.key}_all"
  description         = "${each.value.description} Every part, including those a newer upload or rerun replaced."
  labels              = local.labels
  deletion_protection = var.deletion_protection

  external_data_configuration {
    # The schema is the reference file's (every column of the code's schema, run_at and input_key
    # included), not what autodetect would make of the parts that happen to exist.
    autodetect                = true
    reference_file_schema_uri = "gs://${local.results_bucket}/${google_storage_bucket_object.dataset_schema[each.key].name}"
    source_format             = "PARQUET"
    source_uris               = ["gs://${local.results_bucket}/${local.dataset_prefix}/${each.key}/*"]

    hive_partitioning_options {
      # CUSTOM: the prefix names the partition keys and their types, in path order.
      mode                     = "CUSTOM"
      source_uri_prefix        = "gs://${local.results_bucket}/${local.dataset_prefix}/${each.key}/{algo_version:STRING}/{night_id:STRING}"
      require_partition_filter = false
    }
  }

  lifecycle {
    # The reference file is read when the table is created: a new schema needs a new table.
    replace_triggered_by = [google_storage_bucket_object.dataset_schema[each.key]]
  }
}

resource "google_bigquery_table" "dataset_newest" {
  #checkov:skip=CKV_GCP_80:a view stores nothing: it queries the external tables above
  for_each = local.dataset_tables

  project             = var.project_id
  dataset_id          = google_bigquery_dataset.gold.dataset_id
  table_id            = each.key
  description         = "${each.value.description} The newest part per ${each.value.newest_per} (largest run_at, then input_key)."
  labels              = local.labels
  deletion_protection = var.deletion_protection

  view {
    use_legacy_sql = false
    query          = <<-SQL
      SELECT * FROM `${var.project_id}.${local.dataset_id}.${each.key}_all`
      WHERE TRUE
      QUALIFY DENSE_RANK() OVER (PARTITION BY ${each.value.newest_per} ORDER BY run_at DESC, input_key DESC) = 1
    SQL
  }

  depends_on = [google_bigquery_table.dataset_all]
}

# The reader (a group or service account, var.dataset_reader): query the dataset and, because
# external tables read the bucket with the querying identity, read the objects under dataset/
# of the results bucket, nothing else there (nights/ holds per-night results).
resource "google_bigquery_dataset_iam_member" "dataset_reader" {
  count = var.dataset_reader == null ? 0 : 1

  project    = var.project_id
  dataset_id = google_bigquery_dataset.gold.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = var.dataset_reader
}

resource "google_project_iam_member" "dataset_reader_jobs" {
  count = var.dataset_reader == null ? 0 : 1

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = var.dataset_reader
}

resource "google_storage_bucket_iam_member" "dataset_reader" {
  count = var.dataset_reader == null ? 0 : 1

  bucket = local.results_bucket
  role   = "roles/storage.objectViewer"
  member = var.dataset_reader

  condition {
    title       = "gold-layer-only"
    description = "Objects under ${local.dataset_prefix}/ and listings of that prefix."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.results_bucket}/objects/${local.dataset_prefix}/\") || api.getAttribute(\"storage.googleapis.com/objectListPrefix\", \"\").startsWith(\"${local.dataset_prefix}/\")"
  }
}
