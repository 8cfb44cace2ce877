resource "google_pubsub_topic" "topics" {
  for_each = toset(local.topics)

  name    = "${var.prefix}-${each.key}"
  project = var.project_id
  labels  = local.labels

  # Dead letters carry raw object names (personal data) in their payload: the topic itself keeps
  # no backlog beyond what its subscription keeps (7 days, local.dead_letter_retention).
  message_retention_duration = each.key == local.dead_letter_topic ? local.dead_letter_retention : null

  depends_on = [google_project_service.apis]
}

# Dead-lettered events are only kept if the dead-letter topic has a subscription of its own:
# read it with `gcloud pubsub subscriptions pull` (docs/deploy.md) and replay what is worth it.
resource "google_pubsub_subscription" "dead_letter" {
  name    = "${var.prefix}-${local.dead_letter_topic}"
  project = var.project_id
  topic   = google_pubsub_topic.topics[local.dead_letter_topic].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = local.dead_letter_retention
  retain_acked_messages      = false

  # An empty ttl means the subscription never expires, however long nobody reads it.
  expiration_policy {
    ttl = ""
  }
}
