"""docs/deploy.md's commands name things that exist: the resources it targets, the outputs it reads,
the per-environment files it passes, the Workload Identity ids it undeletes and imports, and a
promotion that keeps dev's digests. The walk itself needs a cloud; these are what a reader pastes."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
TERRAFORM = REPO / "terraform"
TF = "\n".join(path.read_text(encoding="utf-8") for path in sorted(TERRAFORM.glob("*.tf")))


def test_every_targeted_address_is_a_resource_of_the_module():
    targets = re.findall(r"-target=([\w.]+)", DOC)
    assert len(targets) >= 3
    for address in targets:
        kind, name = address.split(".")
        assert re.search(rf'resource "{kind}" "{name}"', TF), address


def test_every_output_the_doc_reads_is_declared():
    outputs = set(re.findall(r"output -raw (\w+)", DOC))
    assert {"workload_identity_provider", "deploy_service_account"} <= outputs
    for name in outputs:
        assert re.search(rf'output "{name}"', TF), name


def test_each_environment_has_the_tfvars_and_backend_the_commands_pass():
    assert '-var-file="environments/$DEPLOY_ENV.tfvars"' in DOC
    assert '-backend-config="environments/$DEPLOY_ENV.gcs.tfbackend"' in DOC
    for env in ("dev", "prod"):
        assert (TERRAFORM / "environments" / f"{env}.tfvars").is_file()
        backend = (TERRAFORM / "environments" / f"{env}.gcs.tfbackend").read_text()
        assert re.search(rf'^prefix\s*=\s*"sunrise/{env}"', backend, re.M), env
    # A var file of one environment is never hard-coded into a command meant for both.
    assert "environments/dev.tfvars -var" not in DOC


def test_the_workload_identity_ids_the_doc_undeletes_are_the_modules():
    assert 'workload_identity_pool_id = "${var.prefix}-github"' in TF
    assert 'workload_identity_pool_provider_id = "github-actions"' in TF
    assert 'undelete "$PREFIX-github"' in DOC
    assert "providers undelete github-actions" in DOC
    assert "workloadIdentityPools/$PREFIX-github/providers/github-actions" in DOC


def test_the_api_count_in_the_walk_is_that_of_apis_tf():
    apis = re.search(r"apis = \[(.*?)\]", (TERRAFORM / "apis.tf").read_text(), re.S).group(1)
    count = len(re.findall(r'"[a-z]+\.googleapis\.com"', apis))
    assert f"the {count} APIs of `apis.tf`" in DOC


def test_prod_images_are_promoted_with_devs_digest_never_rebuilt():
    # Every command that copies an image (not the prose that explains the flag).
    promotions = re.findall(r"docker buildx imagetools create[^\n]*", DOC)
    assert len(promotions) >= 2
    assert all("--prefer-index=false" in line for line in promotions)


def test_the_image_names_the_doc_pushes_are_those_the_services_are_created_with():
    # run.tf: "${local.registry_url}/${service.name}:${local.image_tag}"; the doc's dev loop names
    # images by key with "_" -> "-", its prod loop by name: both must be services.json's name.
    assert "${local.registry_url}/${service.name}:${local.image_tag}" in TF
    services = json.loads((TERRAFORM / "services.json").read_text())["services"]
    assert all(s["name"] == s["key"].replace("_", "-") for s in services)
    assert 'image="$REGISTRY/${service//_/-}"' in DOC
    assert "jq -r '.services[].name' terraform/services.json" in DOC


def test_the_walk_table_closes_the_doc_and_covers_every_step():
    table = DOC.split("## Walked on paper", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    steps = {row.split("|")[1].strip().split()[0].rstrip("abcd") for row in rows[1:]}
    assert {"0", "1", "2", "3", "4", "5", "6", "7"} <= steps


def test_the_doc_targets_what_the_offline_check_plans_as_the_first_apply():
    # scripts/tfcheck.sh plans docs/deploy.md step 2 (tests/terraform/test_plan.py reads that plan).
    script = (REPO / "scripts" / "tfcheck.sh").read_text(encoding="utf-8")
    def targets(text: str) -> list[str]:
        return list(dict.fromkeys(re.findall(r"-target=([\w.]+)", text)))  # in order, each once

    assert targets(DOC) == targets(script)
