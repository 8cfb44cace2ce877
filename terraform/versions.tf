terraform {
  # 1.9: a variable's validation may read other values (var.service_scaling checks its keys
  # against local.services, read from services.json). Checked with 1.11 (make terraform-check).
  required_version = ">= 1.9"

  # One state per environment, in a GCS bucket of that environment's project: a partial backend,
  # completed at init by environments/ENV.gcs.tfbackend and the bucket name (docs/deploy.md).
  backend "gcs" {}

  required_providers {
    # 6.0 added `deletion_protection` to google_cloud_run_v2_service; 7.0 may break resources
    # this module uses, so the range is bounded on both sides.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7"
    }
    # Only for google_project_service_identity (the service agents), see apis.tf.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.0, < 7"
    }
  }
}
