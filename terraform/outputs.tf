output "buckets" {
  description = "Bucket names by logical name (raw, anonymised, prepped, results)."
  value       = { for key, bucket in google_storage_bucket.buckets : key => bucket.name }
}

output "dead_letter_subscription" {
  description = "Pull subscription that keeps dead-lettered events for 7 days."
  value       = google_pubsub_subscription.dead_letter.name
}

output "deploy_service_account" {
  description = "Email of the account CI deploys as: the deploy workflow's GCP_DEPLOY_SERVICE_ACCOUNT variable."
  value       = local.deploy_email
}

output "event_subscriptions" {
  description = "Push subscriptions Eventarc created, by trigger name (their ack deadline and dead-letter policy are set by gcloud, see eventarc.tf)."
  value       = local.trigger_subscriptions
}

output "images" {
  description = "Image each service was created with, by service; CI pushes newer tags of the same repositories."
  value       = local.images
}

output "pseudonym_key_secret" {
  description = "Secret Manager secret id of the pseudonym key; add its value with `gcloud secrets versions add`."
  value       = google_secret_manager_secret.pseudonym_key.secret_id
}

output "registry_url" {
  description = "Docker registry prefix for the service images (REGION-docker.pkg.dev/PROJECT/REPOSITORY)."
  value       = local.registry_url
}

output "runtime_service_accounts" {
  description = "Runtime service account email of each Cloud Run service, by service."
  value       = local.runtime_emails
}

output "service_names" {
  description = "Cloud Run service names, by service key (ingest, sunrise_prep, psg_prep, sunalgo)."
  value       = { for key, service in google_cloud_run_v2_service.services : key => service.name }
}

output "service_urls" {
  description = "Cloud Run service URLs (internal ingress: reachable from Eventarc, not from the internet)."
  value       = { for key, service in google_cloud_run_v2_service.services : key => service.uri }
}

output "topics" {
  description = "Pub/Sub topic names by logical name."
  value       = { for key, topic in google_pubsub_topic.topics : key => topic.name }
}

output "trigger_service_accounts" {
  description = "Service account email of each Eventarc trigger, by trigger name."
  value       = local.trigger_emails
}

output "triggers" {
  description = "Eventarc trigger names, by logical trigger name."
  value = merge(
    { for key, trigger in google_eventarc_trigger.storage : key => trigger.name },
    { for key, trigger in google_eventarc_trigger.pubsub : key => trigger.name },
  )
}

output "workload_identity_provider" {
  description = "Full name of the Workload Identity provider: the deploy workflow's GCP_WORKLOAD_IDENTITY_PROVIDER variable."
  value       = google_iam_workload_identity_pool_provider.github.name
}
