locals {
  # Size and concurrency of each service. Eventarc waits for the response (the ack deadline is the
  # request timeout), so a request holds its instance for the whole job: CPU-heavy stages get a
  # low concurrency. No timeout exceeds the stage lease (Settings.lease_s, 120 s): a request can
  # never outlive its lease, so a duplicate event can't take over a night that is still being
  # worked on. The ack deadline of each trigger's subscription is set to the same value
  # (eventarc.tf).
  service_resources = {
    # Streams one upload through the EDF header rewrite and a copy to the anonymised bucket: I/O
    # bound, so a few requests share a vCPU. 2 GiB leaves room for a ~300 MB PSG file in the
    # in-memory /tmp for each of the concurrent requests.
    ingest = {
      cpu         = "1"
      memory      = "2Gi"
      concurrency = 4
      timeout     = "120s"
    }
    # Sunrise IMU nights are a few MB and prepare in well under a second.
    sunrise_prep = {
      cpu         = "1"
      memory      = "1Gi"
      concurrency = 4
      timeout     = "60s"
    }
    # The heaviest stage: a ~300 MB, 20-channel PSG night is filtered and resampled channel by
    # channel on two vCPUs, one night at a time. It streams from and to the buckets (nothing in
    # the in-memory /tmp): a request adds <= ~100 MiB whatever the night's length, the whole
    # process peaks at ~266 MiB on Cloud Storage (docs/limits.md, tests/psg_prep/
    # test_handler_memory.py). Cloud Run sets no memory floor for 2 vCPUs beyond its 128 MiB
    # minimum (floors start at 4 vCPUs: 2 GiB; tools/tfcheck/api_rules.py), so the size is ours:
    # 1 GiB, ~3.8x the measured peak, room for larger label files and the Python allocator.
    psg_prep = {
      cpu         = "2"
      memory      = "1Gi"
      concurrency = 1
      timeout     = "120s"
    }
    # Features, predictions and scores for one night: CPU bound but short, so a low concurrency.
    sunalgo = {
      cpu         = "1"
      memory      = "2Gi"
      concurrency = 2
      timeout     = "120s"
    }
  }

  images = {
    for key, service in local.services :
    key => "${local.registry_url}/${service.name}:${local.image_tag}"
  }
}

resource "google_cloud_run_v2_service" "services" {
  for_each = local.services

  name     = "${var.prefix}-${each.value.name}"
  project  = var.project_id
  location = var.region
  labels   = local.labels

  # Only Eventarc/Pub/Sub (and other internal sources) reach the services, and every request must
  # carry an ID token of an account with run.invoker on the service (iam.tf).
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = local.runtime_emails[each.key]
    timeout                          = local.service_resources[each.key].timeout
    max_instance_request_concurrency = local.service_resources[each.key].concurrency

    scaling {
      min_instance_count = var.service_scaling[each.key].min_instances
      max_instance_count = var.service_scaling[each.key].max_instances
    }

    containers {
      image = local.images[each.key]

      resources {
        limits = {
          cpu    = local.service_resources[each.key].cpu
          memory = local.service_resources[each.key].memory
        }
        # CPU only while a request is being served (request-based billing), plus a boost at
        # start-up to import numpy/scipy faster on a cold start.
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "SUNRISE_BACKEND"
        value = "cloud"
      }
      env {
        name  = "SUNRISE_PREFIX"
        value = var.prefix
      }
      env {
        name  = "SUNRISE_PROJECT"
        value = var.project_id
      }

      # Only ingest pseudonymises, so only ingest sees the key; the value never enters
      # Terraform state (secrets.tf).
      dynamic "env" {
        for_each = each.key == "ingest" ? ["SUNRISE_PSEUDONYM_KEY"] : []
        content {
          name = env.value
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.pseudonym_key.secret_id
              version = "latest"
            }
          }
        }
      }

      # sunalgo calls an external algorithm service when one is configured (docs/algorithms.md).
      dynamic "env" {
        for_each = each.key == "sunalgo" && var.algorithm_url != "" ? { SUNRISE_ALGORITHM_URL = var.algorithm_url } : {}
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  lifecycle {
    # CI deploys new images with `gcloud run deploy --image` (.github/workflows/deploy.yml);
    # Terraform owns everything else about the service.
    ignore_changes = [
      client,
      client_version,
      template[0].containers[0].image,
    ]
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.ingest_pseudonym_key,
  ]
}
