# An external algorithm service (docs/algorithms.md, "An algorithm that already runs as its own
# service"): sunalgo may invoke it, and signs V4 URLs of the prepared night for it with its own
# identity through the IAM signBlob API (no key file). Both exist only when configured.

resource "google_cloud_run_v2_service_iam_member" "algorithm_invoker" {
  count = var.algorithm_service != "" ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = var.algorithm_service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.runtime["sunalgo"].email}"
}

resource "google_service_account_iam_member" "sunalgo_signs_urls" {
  count = var.algorithm_url != "" ? 1 : 0

  service_account_id = google_service_account.runtime["sunalgo"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.runtime["sunalgo"].email}"
}
