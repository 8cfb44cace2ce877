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

# Google's service agents are created lazily, on first use of their API, and propagate slowly: on a
# fresh project a grant to an agent that does not exist yet fails ("Service account ... does not
# exist") and the first trigger fails with "Permission denied while using the Eventarc Service
# Agent". Every agent this module grants a role to is created here first, and each grant depends
# on it (tools/tfcheck/api_rules.py: api/iam/service-agent-created checks that none is missing).
# Cloud Storage's agent is the exception: it has no service identity, its data source (iam.tf)
# creates it when read, after the APIs are on.
locals {
  service_agents = ["eventarc.googleapis.com", "pubsub.googleapis.com"]
}

resource "google_project_service_identity" "agents" {
  for_each = toset(local.service_agents)
  provider = google-beta

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.apis]
}

moved {
  from = google_project_service_identity.eventarc
  to   = google_project_service_identity.agents["eventarc.googleapis.com"]
}

resource "google_project_iam_member" "eventarc_service_agent" {
  #checkov:skip=CKV_GCP_49:Google's own Eventarc service agent needs its predefined role (which can mint tokens for trigger accounts) to deliver events; Google grants the same binding itself, this only makes it exist before the triggers.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  # The agent's documented address, so that the plan shows it; depends_on keeps the order.
  member = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-eventarc.iam.gserviceaccount.com"

  depends_on = [google_project_service_identity.agents]
}
