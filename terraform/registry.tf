resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.prefix}-images"
  description   = "Container images of the Sunrise pipeline services."
  format        = "DOCKER"
  labels        = local.labels

  # Untagged images (superseded by a newer push of the same tag) are removed after 30 days.
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}
