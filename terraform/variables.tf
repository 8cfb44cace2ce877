variable "algorithm_service" {
  description = "Name of the Cloud Run service (same project and region) of an external algorithm that sunalgo calls (docs/algorithms.md); empty: none. Grants sunalgo's runtime account run.invoker on it."
  type        = string
  default     = ""
}

variable "algorithm_url" {
  description = "URL of an external algorithm service (SUNRISE_ALGORITHM_URL on sunalgo, docs/algorithms.md); empty: the built-in plug-in. sunalgo then signs URLs of the prepared night with its own identity."
  type        = string
  default     = ""

  validation {
    condition     = var.algorithm_url == "" || can(regex("^https://", var.algorithm_url))
    error_message = "algorithm_url is empty or an https:// URL."
  }
}

variable "configure_event_subscriptions" {
  description = "Run `gcloud pubsub subscriptions update` on the Eventarc-managed subscriptions after apply to give them the dead-letter topic, an ack deadline equal to the destination's timeout and a retry backoff (the google provider cannot set these, hashicorp/terraform-provider-google#17697). Needs gcloud where terraform runs."
  type        = bool
  default     = true
  nullable    = false
}

variable "dataset_reader" {
  description = "IAM member (group:analysts@example.org or serviceAccount:...) that may query the gold layer in BigQuery (bigquery.tf): dataViewer on the dataset, jobUser on the project, objectViewer on the results bucket's dataset/ prefix only. null: nobody beyond the project's owners."
  type        = string
  default     = null
  validation {
    condition     = var.dataset_reader == null || can(regex("^(group|serviceAccount|user|domain):[^ ]+$", var.dataset_reader))
    error_message = "dataset_reader must be an IAM member such as group:analysts@example.org, or null."
  }
}

variable "deletion_protection" {
  description = "Protect Cloud Run services and the Firestore database against `terraform destroy` (true in production)."
  type        = bool
  default     = true
  nullable    = false
}

variable "environment" {
  description = "Deployment environment; also the moving image tag CI pushes (dev on main, prod on releases)."
  type        = string
  nullable    = false
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore (default) database, a multi-region such as eur3 or nam5, or a region. Cannot be changed after creation."
  type        = string
  default     = "eur3"
  nullable    = false
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose deploy workflow may act as the deploy service account through Workload Identity Federation (deploy.tf)."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, e.g. acme/sunrise."
  }
}

variable "image_tag" {
  description = "Tag of the service images in Artifact Registry that the Cloud Run services are created with (defaults to var.environment). Later deploys replace the image with `gcloud run deploy`, which Terraform then ignores."
  type        = string
  default     = null
}

variable "images_kept" {
  description = "Versions of each service image Artifact Registry keeps however old (registry.tf): the newest ones, what a rollback reaches for. Older images are deleted after 30 days, tagged or not."
  type        = number
  default     = 10
  nullable    = false
  validation {
    condition     = var.images_kept >= 1
    error_message = "images_kept must be at least 1."
  }
}

variable "labels" {
  description = "Extra labels for every resource that takes labels."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "max_delivery_attempts" {
  description = "Delivery attempts of one event before Pub/Sub moves it to the dead-letter topic (Pub/Sub allows 5 to 100)."
  type        = number
  default     = 10
  nullable    = false
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept in the anonymised, prepped and results buckets."
  type        = number
  default     = 30
  nullable    = false
  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) every alert policy notifies (monitoring.tf). Empty: alerts open incidents in the console only."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "oldest_unacked_alert_minutes" {
  description = "Alert when a trigger subscription's oldest unacknowledged event is older than this many minutes (events are stuck or retried in a loop)."
  type        = number
  default     = 30
  nullable    = false
  validation {
    condition     = var.oldest_unacked_alert_minutes >= 1
    error_message = "oldest_unacked_alert_minutes must be at least 1."
  }
}

variable "prefix" {
  description = "Prefix of every resource name (buckets are global, so make it unique, e.g. acme-sr-dev). 4 to 15 characters so that service account ids stay within 30."
  type        = string
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,13}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 4-15 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into."
  type        = string
  nullable    = false
}

variable "raw_retention_days" {
  description = "Days an upload is kept in the raw bucket (it holds personal data) before lifecycle deletion."
  type        = number
  default     = 30
  nullable    = false
  validation {
    condition     = var.raw_retention_days >= 1
    error_message = "raw_retention_days must be at least 1."
  }
}

variable "region" {
  description = "Region of Cloud Run, Eventarc, Artifact Registry and the buckets (the storage trigger must be in the bucket's location)."
  type        = string
  default     = "europe-west1"
  nullable    = false
}

variable "service_scaling" {
  description = "Instances per Cloud Run service. max_instances x the service's concurrency (run.tf) is the pipeline's throttle: events beyond it get 429 and are redelivered later by Pub/Sub."
  type = map(object({
    min_instances = number
    max_instances = number
  }))
  default = {
    ingest       = { min_instances = 0, max_instances = 5 }
    sunrise_prep = { min_instances = 0, max_instances = 5 }
    psg_prep     = { min_instances = 0, max_instances = 5 }
    sunalgo      = { min_instances = 0, max_instances = 5 }
  }
  nullable = false
  # The keys are those of services.json (names.SERVICES).
  validation {
    condition     = toset(keys(var.service_scaling)) == toset(keys(local.services))
    error_message = "service_scaling must have exactly the keys of services.json (names.SERVICES)."
  }
  validation {
    condition     = alltrue([for s in values(var.service_scaling) : s.min_instances >= 0 && s.max_instances >= 1 && s.min_instances <= s.max_instances])
    error_message = "Each service needs 0 <= min_instances <= max_instances and max_instances >= 1."
  }
}
