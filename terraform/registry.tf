resource "google_artifact_registry_repository" "images" {
  project       = var.project_id
  location      = var.region
  repository_id = "${var.prefix}-images"
  description   = "Container images of the Sunrise pipeline services."
  format        = "DOCKER"
  labels        = local.labels

  # Every push tags an image with its commit sha (and the environment), so images never become
  # untagged: without a rule for tagged images the repository only grows. Keep the newest
  # var.images_kept versions of each image (what a rollback reaches for); delete any other image
  # older than 30 days, tagged or not. KEEP wins over DELETE, so the rollout tag (dev, prod) is
  # also kept whatever its age.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_kept
    }
  }
  cleanup_policies {
    id     = "keep-rollout-tags"
    action = "KEEP"
    condition {
      tag_state    = "TAGGED"
      tag_prefixes = ["dev", "prod"]
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}
