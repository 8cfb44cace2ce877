"""The offline check knows the provider's and the APIs' rules, not today's values.

Each mutant is a copy of terraform/ broken in one way that the real provider or the Google APIs
would refuse (at plan or at apply). ``scripts/tfcheck.sh plan`` (real Terraform, the stand-in
provider with the provider's own validators, then tools/tfcheck/check_plan.py on the plan) must
fail on each, with a message that names the rule. The unmodified module passes (test_plan.py and
``make terraform-check`` plan it); valid changes (another region for both the buckets and the
storage trigger, more instances) still pass, so the check does not pin values.

Each mutant plans the dev environment only, without a separate ``terraform validate`` (the plan
validates): ~10 s per mutant on an idle 2-core machine, ~30 s when it is loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, TFCHECK

pytestmark = pytest.mark.slow

REPLICATION = "  replication {\n    auto {}\n  }"
# name -> (file under terraform/, exact text, replacement, what the failure must say)
MUTANTS = {
    # The nine of issue 26.
    "a role that does not exist": (
        "locals.tf", '"roles/datastore.user"', '"roles/datastore.usr"', "[api/iam/role-exists]",
    ),
    "a storage trigger in another region than its bucket": (
        "eventarc.tf", "location        = lower(google_storage_bucket.buckets[each.value.source].location)",
        'location        = "europe-west4"', "[api/eventarc/storage-trigger-location]",
    ),
    "an ingress value the provider rejects": (
        "run.tf", '"INGRESS_TRAFFIC_INTERNAL_ONLY"', '"INTERNAL_ONLY"',
        "[provider/google_cloud_run_v2_service/ingress/enum]",
    ),
    "an ack deadline out of range": (
        "pubsub.tf", "ack_deadline_seconds       = 60", "ack_deadline_seconds       = 5",
        "[api/pubsub/ack-deadline]",
    ),
    "an uppercase bucket name": (
        "buckets.tf", 'name     = "${var.prefix}-${each.key}"', 'name     = "${var.prefix}-${upper(each.key)}"',
        "[api/storage/bucket-name]",
    ),
    "a secret with two replication modes": (
        "secrets.tf", REPLICATION,
        '  replication {\n    auto {}\n    user_managed {\n      replicas {\n        location = "europe-west1"\n      }\n    }\n  }',
        "[provider/google_secret_manager_secret/replication/exactly-one-of]",
    ),
    "a 41-character service-account id": (
        "deploy.tf", 'account_id   = "${var.prefix}-deploy"', 'account_id   = "${var.prefix}-deploy-account-of-ci-on-github-01"',
        "[provider/google_service_account/account_id/rfc1035]",
    ),
    "a region that does not exist": (
        "environments/dev.tfvars", 'region              = "europe-west1"', 'region              = "europe-west99"',
        "[api/location-exists]",
    ),
    "a string where a number goes": (
        "environments/dev.tfvars", "max_delivery_attempts = 5", 'max_delivery_attempts = "five"',
        "a number is required",
    ),
    # More of our own.
    "two replication blocks": (
        "secrets.tf", REPLICATION, REPLICATION + "\n" + REPLICATION,
        'No more than 1 "replication" blocks are allowed',
    ),
    "more memory than one CPU allows on Cloud Run": (
        "run.tf", 'memory      = "1Gi"\n      concurrency = 4', 'memory      = "8Gi"\n      concurrency = 4', "[api/run/cpu]",
    ),
    "a concurrency above Cloud Run's 1000": (
        "run.tf", "concurrency = 4\n      timeout     = \"60s\"", "concurrency = 1500\n      timeout     = \"60s\"",
        "[api/run/concurrency]",
    ),
    "a request timeout longer than Pub/Sub's longest ack deadline": (
        "run.tf", 'timeout     = "60s"', 'timeout     = "900s"', "[api/pubsub/ack-deadline]",
    ),
    "an index order Firestore does not know": (
        "firestore.tf", 'order      = "ASCENDING"', 'order      = "ASC"',
        "[provider/google_firestore_index/fields.order/enum]",
    ),
    "a grant to a service agent that is not created first": (
        "apis.tf", 'service_agents = ["eventarc.googleapis.com", "pubsub.googleapis.com"]',
        'service_agents = ["eventarc.googleapis.com"]', "[api/iam/service-agent-created]",
    ),
    "a cleanup tag state Artifact Registry does not know": (
        "registry.tf", 'tag_state  = "ANY"', 'tag_state  = "ALL"',
        "[provider/google_artifact_registry_repository/cleanup_policies.condition.tag_state/enum]",
    ),
    "an audit log type that does not exist": (
        "iam.tf", 'log_type = "DATA_WRITE"', 'log_type = "DATA_WRITES"', "[api/logging/audit-log-type]",
    ),
    "an explicit schema on a Parquet external table": (
        "bigquery.tf", '    source_format             = "PARQUET"',
        '    source_format             = "PARQUET"\n    schema                    = jsonencode([{ name = "run_at", type = "TIMESTAMP" }])',
        "[api/bigquery/external-schema]",
    ),
}  # fmt: skip

VALID_CHANGES = {
    "another region for the buckets and the storage trigger": (
        "environments/dev.tfvars", 'region              = "europe-west1"', 'region              = "europe-west4"',
    ),
    "a larger max instance count": (
        "environments/dev.tfvars", "ingest       = { min_instances = 0, max_instances = 2 }",
        "ingest       = { min_instances = 0, max_instances = 200 }",
    ),
}  # fmt: skip


def mutate(target: Path, file_name: str, old: str, new: str) -> Path:
    module = target / "terraform"
    shutil.copytree(REPO / "terraform", module, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    path = module / file_name
    text = path.read_text()
    if text.count(old) != 1:
        raise ValueError(f"expected exactly one {old!r} in {file_name}, found {text.count(old)}")
    path.write_text(text.replace(old, new))
    return module


def plan(module: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TFCHECK), "plan", str(out), str(module)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TFCHECK_ENVIRONMENTS": "dev", "TFCHECK_SKIP_VALIDATE": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_broken_module_fails_the_check_naming_the_rule(tmp_path: Path, name: str) -> None:
    file_name, old, new, message = MUTANTS[name]
    result = plan(mutate(tmp_path, file_name, old, new), tmp_path / "plans")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, f"{name}: the check passed:\n{output[-3000:]}"
    assert message in output, f"{name}: expected {message!r} in:\n{output[-3000:]}"


@pytest.mark.parametrize("name", sorted(VALID_CHANGES))
def test_a_valid_change_still_passes(tmp_path: Path, name: str) -> None:
    result = plan(mutate(tmp_path, *VALID_CHANGES[name]), tmp_path / "plans")
    assert result.returncode == 0, f"{name}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    assert "every provider and API rule holds" in result.stdout
