resource "google_firestore_database" "default" {
  project     = var.project_id
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"

  # Night state is the record of what happened to patient data: recoverable for 7 days.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

# `sunrise status` lists the nights of one stage in one state, most recent first, e.g. every
# night whose psg_prep failed: an equality on the stage's state plus an order on updated_at,
# which Firestore serves only from a composite index.
resource "google_firestore_index" "nights_by_stage_state" {
  for_each = local.services

  project    = var.project_id
  database   = google_firestore_database.default.name
  collection = "nights"

  fields {
    field_path = "stages.${each.key}.state"
    order      = "ASCENDING"
  }
  fields {
    field_path = "updated_at"
    order      = "DESCENDING"
  }
}
