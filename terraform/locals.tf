# The pipeline's wiring. These names are the ones libs/common/sunrise_common/names.py uses
# (BUCKETS, TOPICS, SERVICES, TRIGGERS, PUBLISHES, READS, WRITES); tests/terraform checks that
# both agree, and the local event router reads local.triggers to route events like Eventarc does.
# Physical names are "${var.prefix}-<logical name>", with "_" -> "-" for Cloud Run services.

locals {
  labels = merge(var.labels, {
    application = "sunrise"
    environment = var.environment
  })

  # Logical bucket name -> lifecycle. raw holds personal data and is deleted after
  # var.raw_retention_days; its noncurrent versions go after a day and soft delete is off
  # (0 s instead of Google's default 7 days) so that deletion really deletes. The other buckets
  # keep Google's default 7-day soft delete: they hold no personal data, and it undoes mistakes.
  # parts_prefix: scratch objects deleted after a day (psg_prep's signals.npz pieces, see
  # parts_prefix below), in case a process killed mid-night could not delete them itself.
  buckets = {
    raw = {
      delete_after_days     = var.raw_retention_days
      noncurrent_after_days = 1
      soft_delete_seconds   = 0
      parts_prefix          = null
    }
    anonymised = {
      delete_after_days     = null
      noncurrent_after_days = var.noncurrent_version_retention_days
      soft_delete_seconds   = 604800
      parts_prefix          = null
    }
    prepped = {
      delete_after_days     = null
      noncurrent_after_days = var.noncurrent_version_retention_days
      soft_delete_seconds   = 604800
      parts_prefix          = local.parts_prefix
    }
    results = {
      delete_after_days     = null
      noncurrent_after_days = var.noncurrent_version_retention_days
      soft_delete_seconds   = 604800
      parts_prefix          = null
    }
  }
  # Where psg_prep streams signals.npz's pieces before composing them (services/psg_prep/psg_prep/
  # npzfile.py PIECES, "_parts/TOKEN/..."; the GCS adapter's intermediate compose objects sit
  # beside them). Outside every output prefix, so no reader ever lists them.
  parts_prefix = "_parts/"

  # One topic per event kind: Eventarc Pub/Sub triggers cannot filter on message attributes.
  topics            = ["sunrise-anonymised", "psg-anonymised", "sunrise-prepped", "psg-prepped", "dead-letter"]
  dead_letter_topic = "dead-letter"
  # How long a dead letter is kept, on the topic and its subscription: 7 days, the most a
  # subscription keeps unacked messages, long enough to read and replay after a weekend
  # (docs/deploy.md). Raw object names in dead letters are personal data: the bound is deliberate.
  dead_letter_retention = "604800s"

  # Service key (names.SERVICES) -> Cloud Run name suffix and runtime service account id suffix,
  # read from services.json, which names.service_registry() writes (one registry for the code,
  # Terraform and the deploy workflow; tests/test_services_list.py checks they agree).
  services = {
    for service in jsondecode(file("${path.module}/services.json")).services :
    service.key => { name = service.name, account = service.account }
  }

  # Trigger name (names.TRIGGERS) -> event type, source (logical bucket for storage events,
  # logical topic for Pub/Sub), destination service and the trigger's own service account.
  triggers = {
    "ingest-raw-finalized" = {
      event_type = "google.cloud.storage.object.v1.finalized"
      source     = "raw"
      service    = "ingest"
      account    = "t-ingest"
    }
    "sunrise-prep-anonymised" = {
      event_type = "google.cloud.pubsub.topic.v1.messagePublished"
      source     = "sunrise-anonymised"
      service    = "sunrise_prep"
      account    = "t-sunrise-prep"
    }
    "psg-prep-anonymised" = {
      event_type = "google.cloud.pubsub.topic.v1.messagePublished"
      source     = "psg-anonymised"
      service    = "psg_prep"
      account    = "t-psg-prep"
    }
    "sunalgo-sunrise-prepped" = {
      event_type = "google.cloud.pubsub.topic.v1.messagePublished"
      source     = "sunrise-prepped"
      service    = "sunalgo"
      account    = "t-sunalgo-sun"
    }
    "sunalgo-psg-prepped" = {
      event_type = "google.cloud.pubsub.topic.v1.messagePublished"
      source     = "psg-prepped"
      service    = "sunalgo"
      account    = "t-sunalgo-psg"
    }
  }
  storage_triggers = { for k, t in local.triggers : k => t if t.event_type == "google.cloud.storage.object.v1.finalized" }
  pubsub_triggers  = { for k, t in local.triggers : k => t if t.event_type == "google.cloud.pubsub.topic.v1.messagePublished" }

  # Least privilege for the runtime accounts, one entry per grant (names.READS / WRITES /
  # PUBLISHES). Readers get objectViewer. Writers that only create (if_generation_match=0: the
  # stages' outputs) get objectCreator plus objectViewer to see whether a redelivered event's
  # outputs already exist. ingest replaces nights/{id}/{kind}.edf when a recording is uploaded
  # again with new content (if_generation_match=None), which needs storage.objects.delete:
  # objectUser is the narrowest predefined role with it (objectCreator "does not give permission
  # to view, delete or replace objects"). psg_prep streams signals.npz as pieces under _parts/
  # of prepped (npzfile.PIECES), composes them and deletes them: objectUser there, conditioned on
  # the _parts/ prefix (an IAM condition on the object name, which uniform bucket-level access
  # allows), so its outputs stay create-only. tests/terraform/test_plan.py ties each write mode in
  # the code to these roles. prefix = null: the whole bucket.
  bucket_grants = {
    "ingest/raw/viewer"              = { service = "ingest", bucket = "raw", role = "roles/storage.objectViewer", prefix = null }
    "ingest/anonymised/user"         = { service = "ingest", bucket = "anonymised", role = "roles/storage.objectUser", prefix = null }
    "sunrise_prep/anonymised/viewer" = { service = "sunrise_prep", bucket = "anonymised", role = "roles/storage.objectViewer", prefix = null }
    "sunrise_prep/prepped/creator"   = { service = "sunrise_prep", bucket = "prepped", role = "roles/storage.objectCreator", prefix = null }
    "sunrise_prep/prepped/viewer"    = { service = "sunrise_prep", bucket = "prepped", role = "roles/storage.objectViewer", prefix = null }
    "psg_prep/anonymised/viewer"     = { service = "psg_prep", bucket = "anonymised", role = "roles/storage.objectViewer", prefix = null }
    "psg_prep/prepped/creator"       = { service = "psg_prep", bucket = "prepped", role = "roles/storage.objectCreator", prefix = null }
    "psg_prep/prepped/viewer"        = { service = "psg_prep", bucket = "prepped", role = "roles/storage.objectViewer", prefix = null }
    "psg_prep/prepped/parts"         = { service = "psg_prep", bucket = "prepped", role = "roles/storage.objectUser", prefix = local.parts_prefix }
    "sunalgo/prepped/viewer"         = { service = "sunalgo", bucket = "prepped", role = "roles/storage.objectViewer", prefix = null }
    "sunalgo/results/creator"        = { service = "sunalgo", bucket = "results", role = "roles/storage.objectCreator", prefix = null }
    "sunalgo/results/viewer"         = { service = "sunalgo", bucket = "results", role = "roles/storage.objectViewer", prefix = null }
  }
  publisher_grants = {
    "ingest/sunrise-anonymised"    = { service = "ingest", topic = "sunrise-anonymised" }
    "ingest/psg-anonymised"        = { service = "ingest", topic = "psg-anonymised" }
    "sunrise_prep/sunrise-prepped" = { service = "sunrise_prep", topic = "sunrise-prepped" }
    "psg_prep/psg-prepped"         = { service = "psg_prep", topic = "psg-prepped" }
  }
  # Project-level roles every runtime account needs: Firestore state and structured logs.
  runtime_project_roles = ["roles/datastore.user", "roles/logging.logWriter"]
  runtime_project_grants = {
    for pair in setproduct(keys(local.services), local.runtime_project_roles) :
    "${pair[0]}/${pair[1]}" => { service = pair[0], role = pair[1] }
  }

  image_tag    = coalesce(var.image_tag, var.environment)
  registry_url = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}
