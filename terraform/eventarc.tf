# Object finalized in the raw bucket -> ingest. Storage triggers cannot filter on a path prefix,
# so no service ever writes to the raw bucket (no loops).
resource "google_eventarc_trigger" "storage" {
  for_each = local.storage_triggers

  name    = "${var.prefix}-${each.key}"
  project = var.project_id
  # A storage trigger must live in its bucket's location (reported in upper case).
  location        = lower(google_storage_bucket.buckets[each.value.source].location)
  service_account = local.trigger_emails[each.key]
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = each.value.event_type
  }
  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.buckets[each.value.source].name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.services[each.value.service].name
      region  = var.region
    }
  }

  depends_on = [
    google_project_iam_member.storage_agent_publisher,
    google_project_iam_member.eventarc_service_agent,
    google_project_iam_member.trigger_event_receiver,
  ]
}

# Message published on a pipeline topic -> the stage that consumes it.
resource "google_eventarc_trigger" "pubsub" {
  for_each = local.pubsub_triggers

  name            = "${var.prefix}-${each.key}"
  project         = var.project_id
  location        = var.region
  service_account = local.trigger_emails[each.key]
  labels          = local.labels

  matching_criteria {
    attribute = "type"
    value     = each.value.event_type
  }

  transport {
    pubsub {
      # The topic's id, spelt from its name so that a plan shows which topic feeds which service.
      topic = "projects/${var.project_id}/topics/${google_pubsub_topic.topics[each.value.source].name}"
    }
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.services[each.value.service].name
      region  = var.region
    }
  }

  depends_on = [
    google_project_iam_member.eventarc_service_agent,
    google_project_iam_member.trigger_event_receiver,
  ]
}

locals {
  # The push subscription Eventarc creates for each trigger (projects/P/subscriptions/S).
  trigger_subscriptions = merge(
    { for key, trigger in google_eventarc_trigger.storage : key => trigger.transport[0].pubsub[0].subscription },
    { for key, trigger in google_eventarc_trigger.pubsub : key => trigger.transport[0].pubsub[0].subscription },
  )
}

# Eventarc's subscriptions default to a 10 s ack deadline, no dead-letter topic (undelivered
# events vanish after 24 h) and the provider cannot change that (terraform-provider-google#17697,
# #17701). gcloud can: dead-letter after var.max_delivery_attempts, an ack deadline equal to the
# destination's request timeout (so a slow but healthy request is not redelivered meanwhile), and
# Eventarc's own 10 s -> 600 s backoff.
# triggers_replace names every input of the command, so that a change of any of them (a new
# subscription after a trigger is recreated, another dead-letter topic, attempts, timeout or
# backoff) replaces the resource and runs gcloud again: Terraform never reads these settings back.
# tests/terraform/test_plan.py checks that the command references nothing triggers_replace does not.
locals {
  event_retry_delay = { min = "10s", max = "600s" }
}

resource "terraform_data" "event_subscription_policy" {
  for_each = var.configure_event_subscriptions ? local.triggers : {}

  triggers_replace = [
    local.trigger_subscriptions[each.key],
    var.project_id,
    google_pubsub_topic.topics[local.dead_letter_topic].id,
    var.max_delivery_attempts,
    local.service_resources[each.value.service].timeout,
    local.event_retry_delay,
  ]

  provisioner "local-exec" {
    command = join(" ", [
      "gcloud pubsub subscriptions update",
      local.trigger_subscriptions[each.key],
      "--project=${var.project_id}",
      "--dead-letter-topic=${google_pubsub_topic.topics[local.dead_letter_topic].id}",
      "--max-delivery-attempts=${var.max_delivery_attempts}",
      "--ack-deadline=${trimsuffix(local.service_resources[each.value.service].timeout, "s")}",
      "--min-retry-delay=${local.event_retry_delay.min}",
      "--max-retry-delay=${local.event_retry_delay.max}",
    ])
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
    google_pubsub_subscription_iam_member.pubsub_agent_trigger_subscriber,
  ]
}
