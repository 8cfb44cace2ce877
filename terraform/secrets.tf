# The HMAC key that turns site + subject into a pseudonym. Only the secret is declared here: its
# value is added out of band (`gcloud secrets versions add`, docs/deploy.md) so that it never
# lands in Terraform state. Losing it changes every pseudonym: keep a copy outside the project.
resource "google_secret_manager_secret" "pseudonym_key" {
  project   = var.project_id
  secret_id = "${var.prefix}-pseudonym-key"
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
