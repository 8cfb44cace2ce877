# Development: small, cheap, easy to tear down. Pass the project on the command line:
#   terraform -chdir=terraform apply -var-file=environments/dev.tfvars -var project_id=MY-PROJECT
environment         = "dev"
prefix              = "sunrise-dev"
region              = "europe-west1"
firestore_location  = "eur3"
deletion_protection = false

# Uploads are test data here: keep them a week.
raw_retention_days                = 7
noncurrent_version_retention_days = 7

# Fail fast into the dead-letter topic while developing.
max_delivery_attempts = 5

# Scale to zero; a few instances are enough for test uploads.
service_scaling = {
  ingest       = { min_instances = 0, max_instances = 2 }
  sunrise_prep = { min_instances = 0, max_instances = 2 }
  psg_prep     = { min_instances = 0, max_instances = 2 }
  sunalgo      = { min_instances = 0, max_instances = 2 }
}
