resource "google_storage_bucket" "buckets" {
  for_each = local.buckets

  name     = "${var.prefix}-${each.key}"
  project  = var.project_id
  location = var.region
  labels   = local.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Emptying a bucket that holds patient data must be a deliberate act, not a side effect of destroy.
  force_destroy = false

  # Versioning guards against an accidental overwrite or delete; the lifecycle rules below bound
  # what the old versions cost and how long they keep data.
  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = each.value.soft_delete_seconds
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.delete_after_days == null ? [] : [each.value.delete_after_days]
    content {
      action {
        type = "Delete"
      }
      condition {
        age = lifecycle_rule.value
      }
    }
  }

  # Scratch pieces a killed process left behind: gone after a day (age counts from creation, and
  # a night's pieces live for one request, at most the 120 s timeout). The deleted piece becomes a
  # noncurrent version, which the rule below removes after noncurrent_after_days.
  dynamic "lifecycle_rule" {
    for_each = each.value.parts_prefix == null ? [] : [each.value.parts_prefix]
    content {
      action {
        type = "Delete"
      }
      condition {
        age            = 1
        matches_prefix = [lifecycle_rule.value]
      }
    }
  }

  lifecycle_rule {
    action {
      type = "Delete"
    }
    condition {
      days_since_noncurrent_time = each.value.noncurrent_after_days
      with_state                 = "ARCHIVED"
    }
  }

  depends_on = [google_project_service.apis]
}
