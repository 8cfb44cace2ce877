locals {
  apis = [
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    # Workload Identity Federation for the deploy workflow (deploy.tf).
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = toset(local.apis)

  project = var.project_id
  service = each.value
  # Other workloads in the project may use the same APIs.
  disable_on_destroy = false
}

data "google_project" "project" {
  project_id = var.project_id
}

# The Eventarc service agent is created lazily and propagates slowly: on a fresh project the first
# apply often fails with "Permission denied while using the Eventarc Service Agent". Creating the
# identity up front and granting its role explicitly makes that rarer (docs/deploy.md: re-apply).
resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project = var.project_id
  service = "eventarc.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "eventarc_service_agent" {
  #checkov:skip=CKV_GCP_49:Google's own Eventarc service agent needs its predefined role (which can mint tokens for trigger accounts) to deliver events; Google grants the same binding itself, this only makes it exist before the triggers.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  # The agent's documented address, so that the plan shows it; depends_on keeps the order.
  member = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-eventarc.iam.gserviceaccount.com"

  depends_on = [google_project_service_identity.eventarc]
}
