locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Account emails built from the account ids Terraform sets, so that every binding's member is
  # known at plan time and a plan shows who gets what (the provider knows .email only after
  # apply). Referencing the account keeps the dependency: a binding is made after its account.
  runtime_emails = { for key, account in google_service_account.runtime : key => "${account.account_id}@${var.project_id}.iam.gserviceaccount.com" }
  trigger_emails = { for key, account in google_service_account.trigger : key => "${account.account_id}@${var.project_id}.iam.gserviceaccount.com" }
}

# ---------------------------------------------------------------------------------------------
# Runtime accounts: one per Cloud Run service, each allowed only what its code does
# (local.bucket_grants and local.publisher_grants mirror names.READS/WRITES/PUBLISHES).
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "runtime" {
  for_each = local.services

  project      = var.project_id
  account_id   = "${var.prefix}-${each.value.account}"
  display_name = "Sunrise ${each.key} runtime (${var.environment})"
  description  = "Runs the ${var.prefix}-${each.value.name} Cloud Run service."
}

resource "google_storage_bucket_iam_member" "runtime" {
  for_each = local.bucket_grants

  bucket = google_storage_bucket.buckets[each.value.bucket].name
  role   = each.value.role
  member = "serviceAccount:${local.runtime_emails[each.value.service]}"

  # A grant on part of a bucket: objects whose name starts with the prefix (IAM Conditions on
  # Cloud Storage need uniform bucket-level access, which every bucket enforces: buckets.tf).
  dynamic "condition" {
    for_each = each.value.prefix == null ? [] : [each.value.prefix]
    content {
      title       = "objects-under-${trimsuffix(replace(condition.value, "_", ""), "/")}"
      description = "Objects under ${condition.value} only."
      expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.buckets[each.value.bucket].name}/objects/${condition.value}\")"
    }
  }
}

resource "google_pubsub_topic_iam_member" "runtime_publisher" {
  for_each = local.publisher_grants

  project = var.project_id
  topic   = google_pubsub_topic.topics[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.runtime_emails[each.value.service]}"
}

# Firestore has no per-collection IAM: datastore.user on the project is the narrowest grant.
resource "google_project_iam_member" "runtime" {
  for_each = local.runtime_project_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${local.runtime_emails[each.value.service]}"
}

resource "google_secret_manager_secret_iam_member" "ingest_pseudonym_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.pseudonym_key.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.runtime_emails["ingest"]}"
}

# ---------------------------------------------------------------------------------------------
# Trigger accounts: one per Eventarc trigger; each may invoke only its own destination service.
# ---------------------------------------------------------------------------------------------

resource "google_service_account" "trigger" {
  for_each = local.triggers

  project      = var.project_id
  account_id   = "${var.prefix}-${each.value.account}"
  display_name = "Sunrise trigger ${each.key} (${var.environment})"
  description  = "Identity of the ${var.prefix}-${each.key} Eventarc trigger."
}

resource "google_cloud_run_v2_service_iam_member" "trigger_invoker" {
  for_each = local.triggers

  project  = var.project_id
  location = google_cloud_run_v2_service.services[each.value.service].location
  name     = google_cloud_run_v2_service.services[each.value.service].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.trigger_emails[each.key]}"
}

resource "google_project_iam_member" "trigger_event_receiver" {
  for_each = local.triggers

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${local.trigger_emails[each.key]}"
}

# ---------------------------------------------------------------------------------------------
# Google service agents.
# ---------------------------------------------------------------------------------------------

# Storage triggers are Cloud Storage Pub/Sub notifications underneath: the Cloud Storage service
# agent publishes them.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  # Reading it creates the agent, which needs the Storage API on (as cloud-foundation-fabric's
  # project module does).
  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "storage_agent_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# Pub/Sub signs each push with an ID token of the trigger's account. Projects whose Pub/Sub agent
# predates April 2021 lack this right by default (GoogleCloudPlatform/docker-clamav-malware-scanner#47);
# granted per trigger account rather than on the whole project.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  for_each = local.triggers

  service_account_id = "projects/${var.project_id}/serviceAccounts/${local.trigger_emails[each.key]}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service_identity.agents]
}

# Dead-lettering is done by the Pub/Sub service agent: it must publish to the dead-letter topic
# and acknowledge the message on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.topics[local.dead_letter_topic].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent

  depends_on = [google_project_service_identity.agents]
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_trigger_subscriber" {
  for_each = local.triggers

  project      = var.project_id
  subscription = local.trigger_subscriptions[each.key]
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent

  depends_on = [google_project_service_identity.agents]
}

# ---------------------------------------------------------------------------------------------
# Data-access audit logs: who read or wrote which object of the buckets (patient data in raw) and
# which night state in Firestore. Cloud Storage usage logs (checkov CKV_GCP_62) are not used:
# these are the record (scripts/checkov.sh).
# ---------------------------------------------------------------------------------------------

resource "google_project_iam_audit_config" "data_access" {
  for_each = toset(["storage.googleapis.com", "firestore.googleapis.com"])

  project = var.project_id
  service = each.value

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
