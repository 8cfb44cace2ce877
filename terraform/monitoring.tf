# Day-one alerts and one dashboard. Every policy notifies var.notification_channels (empty: an
# incident in the console only). Runbook for each: docs/deploy.md, "Alerts".

locals {
  # Eventarc names the push subscription of trigger T "eventarc-REGION-T-sub-NNN"; trigger names
  # start with the prefix, so this matches exactly this deployment's trigger subscriptions.
  trigger_subscription_filter = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = starts_with(\"eventarc-${var.region}-${var.prefix}-\")"
  service_filter              = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = starts_with(\"${var.prefix}-\")"

  # A service answers 5xx on purpose for transient trouble (the platform retries): alert only
  # when more than this fraction of its requests fail that way for 10 minutes.
  error_ratio_threshold = 0.1

  # The services' JSON log lines (libs/common/sunrise_common/service.py): a permanent failure is
  # logged as "permanent failure, acknowledged: <reason>: <detail>" with the stage in "stage";
  # a finished stage run as a record with "summary": true and its wall time "wall_s" (seconds).
  permanent_failure_prefix = "permanent failure, acknowledged: "
  log_metrics = {
    permanent_failures = "${var.prefix}-permanent-failures"
    stage_runs         = "${var.prefix}-stage-runs"
    stage_wall_time    = "${var.prefix}-stage-wall-time"
  }
  documentation = "Sunrise pipeline (${var.environment}, prefix ${var.prefix}). What to do: docs/deploy.md, section Alerts."
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "${var.prefix}: dead-lettered events"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "the dead-letter subscription holds at least one event"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "${local.documentation} Read them with `sunrise dlq list` (or gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name}), fix the cause, replay."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "oldest_unacked" {
  project               = var.project_id
  display_name          = "${var.prefix}: events waiting longer than ${var.oldest_unacked_alert_minutes} min"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "a trigger subscription's oldest unacked event is older than ${var.oldest_unacked_alert_minutes} min"
    condition_threshold {
      filter          = "${local.trigger_subscription_filter} AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.oldest_unacked_alert_minutes * 60
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.subscription_id"]
      }
    }
  }

  documentation {
    content   = "${local.documentation} A stage is down, throttled or retrying one event in a loop: `sunrise status`, then the service's logs."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "server_errors" {
  for_each = local.services

  project               = var.project_id
  display_name          = "${var.prefix}: ${each.value.name} 5xx rate"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "more than ${local.error_ratio_threshold * 100}% of ${each.value.name}'s requests answered 5xx for 10 min"
    condition_threshold {
      filter             = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloud_run_v2_service.services[each.key].name}\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloud_run_v2_service.services[each.key].name}\" AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = local.error_ratio_threshold
      duration           = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    content   = "${local.documentation} Transient failures (storage, state, Pub/Sub) or a bug in ${each.key}: its error logs say which."
    mime_type = "text/markdown"
  }
}

resource "google_logging_metric" "permanent_failures" {
  project = var.project_id
  name    = local.log_metrics.permanent_failures
  filter  = "${local.service_filter} AND jsonPayload.message =~ \"^${local.permanent_failure_prefix}\""

  label_extractors = {
    stage  = "EXTRACT(jsonPayload.stage)"
    reason = "REGEXP_EXTRACT(jsonPayload.message, \"^${local.permanent_failure_prefix}([a-z0-9_]+)\")"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Sunrise permanent failures (${var.prefix})"
    labels {
      key         = "stage"
      value_type  = "STRING"
      description = "Pipeline stage: ingest, sunrise_prep, psg_prep or sunalgo."
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "The failure's reason code, e.g. not_edf, invalid_start_date."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "stage_runs" {
  project = var.project_id
  name    = local.log_metrics.stage_runs
  filter  = "${local.service_filter} AND jsonPayload.summary = true"

  label_extractors = {
    stage = "EXTRACT(jsonPayload.stage)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Sunrise stage runs completed (${var.prefix})"
    labels {
      key         = "stage"
      value_type  = "STRING"
      description = "Pipeline stage; sunalgo's count is the number of nights processed."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "stage_wall_time" {
  project         = var.project_id
  name            = local.log_metrics.stage_wall_time
  filter          = "${local.service_filter} AND jsonPayload.summary = true"
  value_extractor = "EXTRACT(jsonPayload.wall_s)"

  label_extractors = {
    stage = "EXTRACT(jsonPayload.stage)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "s"
    display_name = "Sunrise stage wall time (${var.prefix})"
    labels {
      key         = "stage"
      value_type  = "STRING"
      description = "Pipeline stage."
    }
  }

  # 10 ms to ~160 s: a duplicate answers in milliseconds, a PSG night in seconds.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 15
      growth_factor      = 2
      scale              = 0.01
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_dashboard" "pipeline" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "Sunrise pipeline (${var.prefix})"
    mosaicLayout = {
      columns = 12
      tiles = [
        {
          xPos = 0, yPos = 0, width = 6, height = 4
          widget = {
            title = "Nights processed (sunalgo runs per hour)"
            xyChart = { dataSets = [{
              plotType = "STACKED_BAR"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.stage_runs.name}\" AND metric.labels.stage = \"sunalgo\""
                aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM" }
              } }
            }] }
          }
        },
        {
          xPos = 6, yPos = 0, width = 6, height = 4
          widget = {
            title = "Permanent failures by stage and reason"
            xyChart = { dataSets = [{
              plotType = "STACKED_BAR"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.permanent_failures.name}\""
                aggregation = { alignmentPeriod = "3600s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM", groupByFields = ["metric.label.stage", "metric.label.reason"] }
              } }
            }] }
          }
        },
        {
          xPos = 0, yPos = 4, width = 12, height = 4
          widget = {
            title = "Stage wall time, p95 (s)"
            xyChart = { dataSets = [{
              plotType = "LINE"
              timeSeriesQuery = { timeSeriesFilter = {
                filter      = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.stage_wall_time.name}\""
                aggregation = { alignmentPeriod = "300s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_95", groupByFields = ["metric.label.stage"] }
              } }
            }] }
          }
        },
      ]
    }
  })

  depends_on = [google_project_service.apis]
}
