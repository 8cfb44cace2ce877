# Production. Pass the project on the command line:
#   terraform -chdir=terraform apply -var-file=environments/prod.tfvars -var project_id=MY-PROJECT
environment         = "prod"
prefix              = "sunrise-prod"
region              = "europe-west1"
firestore_location  = "eur3"
deletion_protection = true

# Raw uploads hold personal data: kept only long enough to re-run ingest after a fix.
raw_retention_days                = 30
noncurrent_version_retention_days = 30

max_delivery_attempts = 10

# Max instances x concurrency (terraform/run.tf) is the throttle: ingest 20 x 4 = 80 uploads,
# psg_prep 20 x 1 = 20 PSG nights at once; a backfill of 2,000 nights queues in Pub/Sub and
# drains at that rate. One warm ingest instance avoids a cold start on the first upload.
service_scaling = {
  ingest       = { min_instances = 1, max_instances = 20 }
  sunrise_prep = { min_instances = 0, max_instances = 10 }
  psg_prep     = { min_instances = 0, max_instances = 20 }
  sunalgo      = { min_instances = 0, max_instances = 10 }
}
