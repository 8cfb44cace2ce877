"""The rules the offline check applies, and what a first deploy needs, on the plans Terraform made.

The rules themselves are proven by mutation (test_mutants.py); here: they cover every resource
type the module uses, the unmodified plans satisfy them, and the module has what the first real
``terraform init``/``apply`` needs (a state per environment, the lock file of the checked provider
release, data-access audit logs, an image cleanup that bounds growth).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ENVIRONMENTS, REPO

sys.path.insert(0, str(REPO / "tools" / "tfcheck"))

import api_rules  # noqa: E402
import check_plan  # noqa: E402
import provider_rules  # noqa: E402

TF_DIR = REPO / "terraform"


def planned(plan: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        rc["address"]: rc["change"]["after"]
        for rc in plan["resource_changes"]
        if rc["type"] == resource_type and rc["mode"] == "managed"
    }


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_resource_type_of_the_plan_has_its_provider_validators_written_down(
    plans: dict[str, Any], environment: str
) -> None:
    types = {rc["type"] for rc in plans[environment]["resource_changes"] if rc["mode"] == "managed"}
    types.discard("terraform_data")  # Terraform's own, validated by Terraform
    missing = types - provider_rules.covered_types()
    assert not missing, f"add the v6.50.0 validators of {sorted(missing)} to tools/tfcheck/provider_rules.py"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_plans_satisfy_every_provider_and_api_rule(plans: dict[str, Any], environment: str) -> None:
    assert [str(v) for v in check_plan.check(plans[environment])] == []


def test_each_environment_has_its_own_state_in_gcs() -> None:
    assert re.search(r'backend "gcs" \{\}', (TF_DIR / "versions.tf").read_text())
    prefixes = {}
    for environment in ENVIRONMENTS:
        text = (TF_DIR / "environments" / f"{environment}.gcs.tfbackend").read_text()
        (prefix,) = re.findall(r'^prefix\s*=\s*"([^"]+)"', text, flags=re.M)
        prefixes[environment] = prefix
        assert environment in prefix
    assert len(set(prefixes.values())) == len(ENVIRONMENTS)


def test_the_lock_file_pins_the_checked_provider_release_for_both_flavours() -> None:
    lock = (TF_DIR / ".terraform.lock.hcl").read_text()
    versions = (TF_DIR / "versions.tf").read_text()
    for flavour in ("google", "google-beta"):
        block = re.search(rf'provider "registry.terraform.io/hashicorp/{flavour}" \{{(.*?)\n\}}', lock, re.S)
        assert block, flavour
        assert 'version     = "6.50.0"' in block.group(1)
        (constraint,) = re.findall(rf'{flavour} = \{{\s*source\s*= "hashicorp/{flavour}"\s*version\s*= "([^"]+)"', versions)
        assert f'constraints = "{constraint}"' in block.group(1)
        assert len(re.findall(r'"zh:[0-9a-f]{64}"', block.group(1))) >= 12


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_storage_and_firestore_data_access_is_audited(plans: dict[str, Any], environment: str) -> None:
    configs = planned(plans[environment], "google_project_iam_audit_config").values()
    audited = {(c["service"], entry["log_type"]) for c in configs for entry in c["audit_log_config"]}
    for service in ("storage.googleapis.com", "firestore.googleapis.com"):
        assert {(service, "DATA_READ"), (service, "DATA_WRITE")} <= audited


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_registry_keeps_the_newest_images_and_deletes_older_tagged_ones(
    plans: dict[str, Any], environment: str
) -> None:
    (repository,) = planned(plans[environment], "google_artifact_registry_repository").values()
    assert repository["cleanup_policy_dry_run"] is False
    policies = repository["cleanup_policies"]
    keeps = [p for p in policies if p["action"] == "KEEP" and p["most_recent_versions"]]
    assert keeps and keeps[0]["most_recent_versions"][0]["keep_count"] >= 1
    deletes = [p for p in policies if p["action"] == "DELETE"]
    # A DELETE that reaches tagged images: every push tags its image, so UNTAGGED alone never fires.
    assert any(p["condition"][0]["tag_state"] in {"ANY", "TAGGED"} for p in deletes)


def test_the_checkov_skip_notes_say_what_the_module_does() -> None:
    notes = (REPO / "scripts" / "checkov.sh").read_text()
    assert "google_project_iam_audit_config" in notes  # CKV_GCP_62 cites the audit logs it has
    # CKV_GCP_83 must not claim that no message carries personal data: dead letters do.
    assert "no personal data" not in notes
    assert "raw object name" in notes


# --------------------------------------------------------------------------------------------
# The API rules on values (the mutants prove them through Terraform; these are their edges)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "ok"),
    [("sunrise-dev-raw", True), ("a.b.c", True), ("ab", False), ("Sunrise-raw", False), ("-raw", False),
     ("goog-raw", False), ("my-g00gle-bucket", False), ("192.168.5.4", False), ("x" * 64, False),
     (".".join(["x" * 63] * 3), True), ("under_score", True)],
)  # fmt: skip
def test_bucket_names_follow_cloud_storage_naming_rules(name: str, ok: bool) -> None:
    assert (api_rules.bucket_name_problems(name) == []) is ok, api_rules.bucket_name_problems(name)


def run_service(cpu: str, memory: str, concurrency: int = 1, timeout: str = "60s") -> dict[str, Any]:
    template = {"max_instance_request_concurrency": concurrency, "timeout": timeout,
                "containers": [{"resources": [{"limits": {"cpu": cpu, "memory": memory}}]}]}  # fmt: skip
    return {"address": "run", "type": "google_cloud_run_v2_service", "values": {"template": [template]}}


@pytest.mark.parametrize(
    ("cpu", "memory", "concurrency", "rule"),
    [("1", "4Gi", 80, None), ("1", "4097Mi", 1, "api/run/cpu"), ("2", "8Gi", 1, None),
     ("4", "1Gi", 1, "api/run/memory"), ("3", "2Gi", 1, "api/run/cpu"), ("0.5", "512Mi", 1, None),
     ("0.5", "512Mi", 2, "api/run/concurrency"), ("1000m", "512Mi", 1000, None),
     ("1", "512Mi", 1001, "api/run/concurrency"), ("8", "33Gi", 1, "api/run/memory")],
)  # fmt: skip
def test_cloud_run_accepts_only_its_cpu_memory_pairs_and_concurrency(
    cpu: str, memory: str, concurrency: int, rule: str | None
) -> None:
    rules = {v.rule for v in api_rules.check_run_service(run_service(cpu, memory, concurrency))}
    assert rules == ({rule} if rule else set()), rules


def test_an_unknown_role_of_a_covered_service_and_a_role_of_an_uncovered_service_both_fail() -> None:
    def grant(role: str) -> dict[str, Any]:
        return {"address": "g", "type": "google_project_iam_member", "values": {"role": role}}

    assert list(api_rules.check_roles(grant("roles/storage.objectViewer"))) == []
    assert [v.rule for v in api_rules.check_roles(grant("roles/storage.objectReader"))] == ["api/iam/role-exists"]
    (uncovered,) = api_rules.check_roles(grant("roles/compute.admin"))
    assert "does not cover" in uncovered.message
