terraform {
  # terraform_data needs 1.4; 1.5 is the oldest release the module is checked with.
  required_version = ">= 1.5"

  required_providers {
    # 6.0 added `deletion_protection` to google_cloud_run_v2_service; 7.0 may break resources
    # this module uses, so the range is bounded on both sides.
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 7"
    }
    # Only for google_project_service_identity (the Eventarc service agent), see apis.tf.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.0, < 7"
    }
  }
}
