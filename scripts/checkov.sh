#!/usr/bin/env bash
# Static security scan of terraform/ with checkov, in its own virtualenv.
#
# checkov depends on bc-python-hcl2, which installs the same top-level `hcl2` package as
# python-hcl2 (used by tests/terraform). Installed side by side, `import hcl2` silently becomes
# the wrong library, so checkov lives in .checkov-venv and never in the uv workspace's .venv.
#
# Usage: scripts/checkov.sh            (from anywhere; exits non-zero on any failed check)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CHECKOV_VENV:-${repo_root}/.checkov-venv}"
checkov_version="3.*"

if [[ ! -x "${venv}/bin/checkov" ]]; then
  python3 -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==${checkov_version}"
fi

# Every skipped check, and why. Keep this list short; prefer fixing the resource, or an inline
# `#checkov:skip=ID:reason` next to the one resource it concerns.
skips=(
  # Bucket access logging (Cloud Storage usage logs written to another bucket). Data access is
  # audited through Cloud Audit Logs instead: DATA_READ and DATA_WRITE for storage and Firestore
  # (google_project_iam_audit_config.data_access, terraform/iam.tf), the current recommendation;
  # a dedicated log bucket would itself need logging, which never ends.
  CKV_GCP_62
  # Customer-managed keys for Pub/Sub topics. The pipeline topics carry night ids and anonymised
  # object names only. The dead-letter topic does carry personal data: a dead-lettered storage
  # event holds the raw object name (docs/privacy.md). It is accepted with Google-managed
  # encryption at rest because its exposure is bounded otherwise: 7 days of retention on the topic
  # and its subscription (terraform/pubsub.tf), no IAM grant on it beyond the Pub/Sub service agent
  # (publisher) and the project's owners, and data-access audit logs. CMEK would add a KMS key
  # ring and its own service-agent grants; revisit if dead letters must outlive 7 days.
  CKV_GCP_83
  # Customer-managed keys for the Artifact Registry repository: images hold code only, no data.
  CKV_GCP_84
)

skip_csv="$(IFS=,; echo "${skips[*]}")"

cd "${repo_root}"
exec "${venv}/bin/checkov" -d terraform --framework terraform --skip-download --compact --quiet \
  --skip-check "${skip_csv}"
