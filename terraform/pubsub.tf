resource "google_pubsub_topic" "topics" {
  for_each = toset(local.topics)

  name    = "${var.prefix}-${each.key}"
  project = var.project_id
  labels  = local.labels

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
  message_retention_duration = "604800s" # 7 days, the most Pub/Sub keeps unacked messages
  retain_acked_messages      = false

  # An empty ttl means the subscription never expires, however long nobody reads it.
  expiration_policy {
    ttl = ""
  }
}
