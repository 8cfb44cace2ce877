# The identity CI deploys with (.github/workflows/deploy.yml): GitHub's OIDC token is exchanged
# through Workload Identity Federation for a short-lived token of the deploy account. No key
# exists. The account may push images to this module's repository, roll a new image out to the
# four services and act as their runtime accounts (which `gcloud run deploy` requires), nothing
# more: no IAM administration, no access to buckets, state or secrets.

resource "google_service_account" "deploy" {
  project      = var.project_id
  account_id   = "${var.prefix}-deploy"
  display_name = "Sunrise CI deployer (${var.environment})"
  description  = "Pushes images and deploys them to the Cloud Run services from GitHub Actions (${var.github_repository})."
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = "${var.prefix}-github"
  display_name              = "GitHub Actions (${var.environment})"
  description               = "OIDC tokens of GitHub Actions runs of ${var.github_repository}."

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:The condition pins assertion.sub to repo:OWNER/NAME:environment:ENV, but through var.github_repository, which has no default, so checkov sees an unresolved name and cannot match owner/name; tests/terraform/test_plan.py checks the condition as Terraform evaluates it.
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"

  attribute_mapping = {
    "google.subject"         = "assertion.sub"
    "attribute.repository"   = "assertion.repository"
    "attribute.ref"          = "assertion.ref"
    "attribute.environment"  = "assertion.environment"
    "attribute.workflow_ref" = "assertion.job_workflow_ref"
  }
  # Only jobs of this repository that run in this environment's GitHub environment (the deploy
  # workflow's build and deploy jobs declare `environment:`, and GitHub then issues the subject
  # "repo:OWNER/NAME:environment:ENV"), so a pull request job, a fork or another repository of
  # the same owner cannot obtain a token.
  attribute_condition = "assertion.sub == \"repo:${var.github_repository}:environment:${var.environment}\" && assertion.repository == \"${var.github_repository}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "deploy_workload_identity" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${local.deploy_email}"
  role               = "roles/iam.workloadIdentityUser"
  # The pool's resource name, spelt out so that the plan shows it (the provider knows `name`
  # only after apply).
  member = "principalSet://iam.googleapis.com/projects/${data.google_project.project.number}/locations/global/workloadIdentityPools/${google_iam_workload_identity_pool.github.workload_identity_pool_id}/attribute.repository/${var.github_repository}"
}

resource "google_artifact_registry_repository_iam_member" "deploy_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.repository_id
  role       = "roles/artifactregistry.writer"
  member     = local.deploy_member
}

# run.developer on each service rather than on the project: the deployer can update these four
# services and no other Cloud Run service of the project.
resource "google_cloud_run_v2_service_iam_member" "deploy_developer" {
  for_each = local.services

  project  = var.project_id
  location = google_cloud_run_v2_service.services[each.key].location
  name     = google_cloud_run_v2_service.services[each.key].name
  role     = "roles/run.developer"
  member   = local.deploy_member
}

# A new revision runs as the service's runtime account: deploying needs actAs on it, granted on
# the four runtime accounts only (not project-wide serviceAccountUser).
resource "google_service_account_iam_member" "deploy_act_as_runtime" {
  for_each = local.services

  service_account_id = "projects/${var.project_id}/serviceAccounts/${local.runtime_emails[each.key]}"
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}

locals {
  deploy_email  = "${google_service_account.deploy.account_id}@${var.project_id}.iam.gserviceaccount.com"
  deploy_member = "serviceAccount:${local.deploy_email}"
}
