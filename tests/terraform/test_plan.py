"""terraform/ as Terraform evaluated it: the dev and prod plans (``terraform show -json``).

The plans come from the real Terraform binary and a schema-faithful stand-in for the google
provider (conftest.py). Every value read here was computed by Terraform: ``for_each`` expanded,
``dynamic`` blocks built, references resolved, tfvars applied. Values the provider only knows
after apply (ids, emails it reports) are "unknown" in a plan and are not relied upon.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sunrise_common import names

from .conftest import ENVIRONMENTS, REPO

# Values an environment chooses (retention days, delivery attempts, region, ...) are read from the
# plan's variables, never pinned: the tests check that the plan applies them, and the rules
# (tools/tfcheck, test_mutants.py) check that they are values the provider and the APIs accept.
# Pinned below are only values that are requirements themselves (least-privilege roles, the
# 7-day bound on dead letters and raw soft delete off, docs/privacy.md).
PREFIX = {"dev": "sunrise-dev", "prod": "sunrise-prod"}
PROJECT = {"dev": "sunrise-dev-project", "prod": "sunrise-prod-project"}  # scripts/tfcheck.sh
REPOSITORY = "example-org/sunrise"
STORAGE_AGENT = "serviceAccount:(the Cloud Storage service agent, known after apply)"  # scripts/tfcheck.sh passes it as var.github_repository

# Storage permissions of the predefined roles this module grants (cloud.google.com/storage/docs/
# access-control/iam-roles; object permissions only, which is what the code exercises).
ROLE_PERMISSIONS = {
    "roles/storage.objectViewer": {"storage.objects.get", "storage.objects.list"},
    "roles/storage.objectCreator": {"storage.objects.create"},
    "roles/storage.objectUser": {
        "storage.objects.create", "storage.objects.delete", "storage.objects.get",
        "storage.objects.list", "storage.objects.restore", "storage.objects.update",
    },
}  # fmt: skip
# What each way of writing needs. Replacing an existing object (no precondition, or a
# precondition on a non-zero generation) needs storage.objects.delete besides create: Google
# documents that objectCreator "does not give permission to view, delete or replace objects".
WRITE_MODE_PERMISSIONS = {
    "create-only": {"storage.objects.create"},
    "replace": {"storage.objects.create", "storage.objects.delete"},
    "rewrite": {"storage.objects.create", "storage.objects.delete", "storage.objects.get"},
    "delete": {"storage.objects.delete"},
    # Storage.compose writes the destination (create-only here) from sources it reads.
    "compose": {"storage.objects.create", "storage.objects.get"},
}
# Scratch objects a service deletes itself, by the file that writes them and the prefix they all
# live under: psg_prep's signals.npz pieces (npzfile.PIECES, "_parts/TOKEN/..."), and the
# intermediate objects the GCS adapter composes beside them (SOURCE.compose-TOKEN-LEVEL-I) and
# deletes. A delete there needs storage.objects.delete under that prefix only: a grant
# conditioned on it (terraform/locals.tf), never delete on the whole bucket.
SCRATCH = {"psg_prep": {"npzfile.py": "_parts/"}}
SCRATCH_DELETE = {"storage.objects.delete"}
# Every stage also looks its inputs up (stat) and reads them.
READ_PERMISSIONS = {"storage.objects.get", "storage.objects.list"}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def changes(plan: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Planned values (``change.after``) of one resource type, by for_each key (or, for a
    resource without for_each, by its name)."""
    return {
        str(rc["index"]) if "index" in rc else rc["name"]: rc["change"]["after"]
        for rc in plan["resource_changes"]
        if rc["type"] == resource_type and rc["mode"] == "managed"
    }


def unknown(plan: dict[str, Any], address: str) -> dict[str, Any]:
    for rc in plan["resource_changes"]:
        if rc["address"] == address:
            return rc["change"]["after_unknown"]
    raise KeyError(address)


def config_expressions(plan: dict[str, Any], address: str) -> dict[str, Any]:
    for res in plan["configuration"]["root_module"]["resources"]:
        if res["address"] == address:
            return res["expressions"]
    raise KeyError(address)


def bindings_by_member(plan: dict[str, Any]) -> dict[str, set[tuple[str, str, str]]]:
    """Every IAM member binding in the plan: member -> {(kind, target, role)}."""
    targets = {
        "google_project_iam_member": "project",
        "google_storage_bucket_iam_member": "bucket",
        "google_pubsub_topic_iam_member": "topic",
        "google_pubsub_subscription_iam_member": "subscription",
        "google_secret_manager_secret_iam_member": "secret_id",
        "google_cloud_run_v2_service_iam_member": "name",
        "google_service_account_iam_member": "service_account_id",
        "google_artifact_registry_repository_iam_member": "repository",
    }
    found: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for rc in plan["resource_changes"]:
        if rc["type"] in targets:
            after = rc["change"]["after"]
            if "member" not in after:
                # Only the Cloud Storage agent is known after apply: its data source is read once
                # the APIs are on (iam.tf), as the real provider does on a fresh project.
                if rc["address"] != "google_project_iam_member.storage_agent_publisher":
                    raise ValueError(f"{rc['address']}: the member is unknown at plan time")
                after = {**after, "member": STORAGE_AGENT}
            target = after.get(targets[rc["type"]])
            found[after["member"]].add((rc["type"], str(target), after["role"]))
    return found


def var(plan: dict[str, Any], name: str) -> Any:
    """The value of a variable as the plan was made with (tfvars applied)."""
    return plan["variables"][name]["value"]


def sa(environment: str, account: str) -> str:
    return f"serviceAccount:{PREFIX[environment]}-{account}@{PROJECT[environment]}.iam.gserviceaccount.com"


def runtime_account(service: str) -> str:
    return "r-" + service.replace("_", "-")


TRIGGERS = {t.name: t for t in names.TRIGGERS}


def bucket(environment: str, logical: str) -> str:
    return f"{PREFIX[environment]}-{logical}"


def cloud_run_name(environment: str, service: str) -> str:
    return f"{PREFIX[environment]}-{service.replace('_', '-')}"


# --------------------------------------------------------------------------------------------
# The plan itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_plan_creates_every_resource_from_an_empty_state(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    assert plan["errored"] is False and plan["applyable"] is True
    actions = {tuple(rc["change"]["actions"]) for rc in plan["resource_changes"] if rc["mode"] == "managed"}
    assert actions == {("create",)}, actions
    # The storage agent's data source waits for the APIs (iam.tf): read during apply.
    deferred = {rc["address"] for rc in plan["resource_changes"] if rc["mode"] == "data"}
    assert deferred == {"data.google_storage_project_service_account.gcs"}, deferred
    assert plan["variables"]["environment"]["value"] == environment
    # The two data sources answered (the stand-in's plausible values), so their users are known.
    reads = {
        rc["type"]
        for rc in plan["prior_state"]["values"]["root_module"].get("resources", [])
        if rc["mode"] == "data"
    }
    assert "google_project" in reads
    # Computed attributes the configuration does not set are unknown until apply, as with the
    # real provider; set ones are known.
    raw_bucket = unknown(plan, 'google_storage_bucket.buckets["raw"]')
    assert raw_bucket["self_link"] is True and raw_bucket["url"] is True
    assert "name" not in raw_bucket and "location" not in raw_bucket


def test_the_first_targeted_apply_creates_only_what_the_images_and_key_need(plan_dir: Path) -> None:
    # docs/deploy.md step 2, planned by scripts/tfcheck.sh with the doc's -target addresses: on an
    # empty project it must create the APIs, the repository the images are pushed to (step 4) and
    # the secret the key goes into (step 3), and nothing that needs an image or the key.
    plan = json.loads((plan_dir / "plan-dev-first-apply.json").read_text())
    created = {
        rc["address"].split("[", 1)[0]
        for rc in plan["resource_changes"]
        if rc["mode"] == "managed" and rc["change"]["actions"] == ["create"]
    }
    assert created == {
        "google_project_service.apis",
        "google_artifact_registry_repository.images",
        "google_secret_manager_secret.pseudonym_key",
    }, created
    apis = {rc["change"]["after"]["service"] for rc in plan["resource_changes"] if rc["type"] == "google_project_service"}
    # The repository's and the secret's APIs are among those enabled before them.
    assert {"artifactregistry.googleapis.com", "secretmanager.googleapis.com"} <= apis


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_services_are_created_from_the_tag_the_first_deploy_pushes(
    plans: dict[str, Any], environment: str
) -> None:
    # docs/deploy.md step 4 pushes (dev) or promotes (prod) REGION-docker.pkg.dev/PROJECT/
    # PREFIX-images/NAME:ENVIRONMENT before step 5 creates the services from it.
    variables = {k: v["value"] for k, v in plans[environment]["variables"].items()}
    registry = f"{variables['region']}-docker.pkg.dev/{variables['project_id']}/{PREFIX[environment]}-images"
    services = changes(plans[environment], "google_cloud_run_v2_service")
    for key, service in services.items():
        name = cloud_run_name(environment, key).removeprefix(f"{PREFIX[environment]}-")
        assert service["template"][0]["containers"][0]["image"] == f"{registry}/{name}:{environment}", key


def test_dev_and_prod_declare_the_same_resources(plans: dict[str, Any]) -> None:
    addresses = {
        e: sorted(rc["address"] for rc in plans[e]["resource_changes"]) for e in ENVIRONMENTS
    }
    assert addresses["dev"] == addresses["prod"]


# --------------------------------------------------------------------------------------------
# IAM as evaluated
# --------------------------------------------------------------------------------------------


def _write_modes_in(tree: ast.AST, scratch: bool = False) -> set[str]:
    """Storage write modes of the calls in a module or function body.

    ``upload_file``/``write_bytes`` default to ``if_generation_match=0`` (create-only,
    sunrise_common.storage.Storage); ``None`` or any other value replaces an existing object.
    ``compose`` reads its sources and creates the destination; with more than 32 sources the GCS
    adapter also creates and deletes intermediate objects beside the sources. In a file that
    writes only scratch objects (``scratch``), deletes are "scratch-delete": under its prefix.
    """
    modes: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        # Only calls on a storage port (ctx.storage.X): Path.write_bytes is a local file.
        on_storage = any(
            isinstance(a, ast.Attribute) and a.attr == "storage" for a in ast.walk(node.func.value)
        )
        if not on_storage:
            continue
        method = node.func.attr
        delete = "scratch-delete" if scratch else "delete"
        if method in {"upload_file", "write_bytes", "compose"}:
            match = next((k.value for k in node.keywords if k.arg == "if_generation_match"), None)
            create_only = match is None or (isinstance(match, ast.Constant) and match.value == 0)
            modes.add("create-only" if create_only else "replace")
            if method == "compose":
                modes |= {"compose", delete}
        elif method == "rewrite":
            modes.add("rewrite")
        elif method == "delete":
            modes.add(delete)
    return modes


def shared_writers() -> dict[str, set[str]]:
    """Functions of sunrise_common (outside the storage adapters) that write objects."""
    writers: dict[str, set[str]] = {}
    root = REPO / "libs" / "common" / "sunrise_common"
    for path in root.rglob("*.py"):
        if "storage" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and (modes := _write_modes_in(node)):
                writers[node.name] = modes
    return writers


def service_write_modes(service: str) -> set[str]:
    """Every way the service's code writes to its buckets: its own calls and the shared helpers
    (e.g. ``upload_folder``) it calls."""
    helpers = shared_writers()
    modes: set[str] = set()
    for path in (REPO / "services" / service / service).rglob("*.py"):
        tree = ast.parse(path.read_text())
        modes |= _write_modes_in(tree, scratch=path.name in SCRATCH.get(service, {}))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                modes |= helpers.get(name, set())
    return modes


def test_the_scan_finds_the_write_modes_the_code_uses() -> None:
    # Guards the scan itself: if it stopped finding these, the next test would pass vacuously.
    assert "upload_folder" in shared_writers()
    # ingest writes each raw generation's anonymised object create-only and deletes the one a
    # generation that lost wrote (issue 22: the newest raw generation wins).
    assert service_write_modes("ingest") == {"create-only", "delete"}
    for service in ("sunrise_prep", "sunalgo"):
        assert service_write_modes(service) == {"create-only"}, service
    # psg_prep streams signals.npz as pieces under _parts/, composes them and deletes them.
    assert service_write_modes("psg_prep") == {"create-only", "compose", "scratch-delete"}


def test_the_scratch_prefix_is_the_one_the_code_writes_its_pieces_under() -> None:
    from psg_prep import npzfile

    assert SCRATCH["psg_prep"]["npzfile.py"] == npzfile.PIECES


def scoped_bucket_grants(plan: dict[str, Any], member: str) -> dict[str, dict[str, set[str]]]:
    """A member's conditioned bucket grants: bucket -> {object prefix: permissions}. A grant's
    condition must be exactly ``resource.name.startsWith("projects/_/buckets/B/objects/P")``
    (Cloud Storage's IAM condition on object names, which needs uniform bucket-level access)."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for after in changes(plan, "google_storage_bucket_iam_member").values():
        if after.get("member") != member or not after.get("condition"):
            continue
        (condition,) = after["condition"]
        match = re.fullmatch(
            r'resource\.name\.startsWith\("projects/_/buckets/([a-z0-9._-]+)/objects/([^"]+)"\)',
            condition["expression"],
        )
        assert match and match.group(1) == after["bucket"], condition
        assert condition["title"], "a condition needs a title"
        found[after["bucket"]][match.group(2)] |= ROLE_PERMISSIONS[after["role"]]
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("service", names.SERVICES)
def test_each_storage_write_mode_in_the_code_has_the_role_it_needs(
    plans: dict[str, Any], environment: str, service: str
) -> None:
    member = sa(environment, runtime_account(service))
    scoped = scoped_bucket_grants(plans[environment], member)
    per_bucket: dict[str, set[str]] = defaultdict(set)
    for after in changes(plans[environment], "google_storage_bucket_iam_member").values():
        if after.get("member") == member and not after.get("condition"):
            per_bucket[after["bucket"]] |= ROLE_PERMISSIONS[after["role"]]
    modes = service_write_modes(service)
    assert modes, f"no storage write found in services/{service}"
    for logical in names.WRITES[service]:
        target = bucket(environment, logical)
        bucket_modes = modes - {"scratch-delete"}
        needed = set().union(*(WRITE_MODE_PERMISSIONS[m] for m in bucket_modes)) | READ_PERMISSIONS
        missing = needed - per_bucket[target]
        assert not missing, (
            f"{service} writes {logical} with {sorted(modes)} but lacks {sorted(missing)} there "
            f"(unconditioned grants give {sorted(per_bucket[target])})"
        )
        if "scratch-delete" in modes:
            # Deletes its scratch objects: delete under their prefix (a grant on a prefix of it).
            for prefix in SCRATCH[service].values():
                under = set().union(
                    per_bucket[target],
                    *(p for g, p in scoped.get(target, {}).items() if prefix.startswith(g)),
                )
                missing = SCRATCH_DELETE - under
                assert not missing, f"{service} deletes {target}/{prefix}... but lacks {sorted(missing)} there"
    # A conditioned grant exists only for a scratch prefix the code deletes under.
    for target, grants in scoped.items():
        assert "scratch-delete" in modes, (service, target)
        assert set(grants) <= set(SCRATCH[service].values()), (service, target, set(grants))
    for logical in names.READS[service]:
        assert READ_PERMISSIONS <= per_bucket[bucket(environment, logical)], (service, logical)
    # And nothing on buckets the code does not touch, and nothing it does not need.
    touched = {bucket(environment, b) for b in (*names.READS[service], *names.WRITES[service])}
    assert set(per_bucket) == touched
    for target, permissions in per_bucket.items():
        writes = target in {bucket(environment, b) for b in names.WRITES[service]}
        if not writes:
            assert permissions == READ_PERMISSIONS, (service, target, permissions)
        elif "replace" not in modes and "rewrite" not in modes and "delete" not in modes:
            assert "storage.objects.delete" not in permissions, (service, target)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_runtime_accounts_hold_exactly_what_their_code_uses(
    plans: dict[str, Any], environment: str
) -> None:
    members = bindings_by_member(plans[environment])
    for service in names.SERVICES:
        granted = members[sa(environment, runtime_account(service))]
        project_roles = {r for k, _, r in granted if k == "google_project_iam_member"}
        assert project_roles == {"roles/datastore.user", "roles/logging.logWriter"}, service
        topics = {t for k, t, r in granted if k == "google_pubsub_topic_iam_member"}
        assert topics == {f"{PREFIX[environment]}-{t}" for t in names.PUBLISHES[service]}
        assert all(
            r == "roles/pubsub.publisher" for k, _, r in granted if k == "google_pubsub_topic_iam_member"
        )
        secrets = {(t, r) for k, t, r in granted if k == "google_secret_manager_secret_iam_member"}
        expected = (
            {(f"{PREFIX[environment]}-pseudonym-key", "roles/secretmanager.secretAccessor")}
            if service == "ingest" else set()
        )  # fmt: skip
        assert secrets == expected, service
        other = {k for k, _, _ in granted} - {
            "google_project_iam_member", "google_pubsub_topic_iam_member",
            "google_storage_bucket_iam_member", "google_secret_manager_secret_iam_member",
        }  # fmt: skip
        assert not other, f"{service}'s runtime account also gets {other}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_trigger_accounts_invoke_only_their_destination(
    plans: dict[str, Any], environment: str
) -> None:
    members = bindings_by_member(plans[environment])
    triggers = changes(plans[environment], "google_eventarc_trigger")
    for key, trigger in triggers.items():
        destination = trigger["destination"][0]["cloud_run_service"][0]
        account = trigger["service_account"]
        granted = members[f"serviceAccount:{account}"]
        invokes = {(t, r) for k, t, r in granted if k == "google_cloud_run_v2_service_iam_member"}
        assert invokes == {(destination["service"], "roles/run.invoker")}, key
        assert {r for k, _, r in granted if k == "google_project_iam_member"} == {
            "roles/eventarc.eventReceiver"
        }
        assert {k for k, _, _ in granted} == {
            "google_cloud_run_v2_service_iam_member", "google_project_iam_member",
        }, key  # fmt: skip


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_nothing_is_granted_to_the_public_or_project_wide_beyond_the_service_agents(
    plans: dict[str, Any], environment: str
) -> None:
    members = bindings_by_member(plans[environment])
    assert not [m for m in members if m in {"allUsers", "allAuthenticatedUsers"}]
    agents = {m for m in members if "gcp-sa-" in m or "gs-project-accounts" in m}
    # Service agents of project 123456789012, the number the stand-in's google_project answers.
    assert all("123456789012" in m for m in agents), agents
    # The Cloud Storage agent (read after apply) may publish on the project, nothing else.
    assert members[STORAGE_AGENT] == {
        ("google_project_iam_member", PROJECT[environment], "roles/pubsub.publisher")
    }


# --------------------------------------------------------------------------------------------
# Deploy identity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_deploy_account_can_push_and_roll_out_and_nothing_else(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    deployer = sa(environment, "deploy")
    granted = bindings_by_member(plan)[deployer]
    repository = f"{PREFIX[environment]}-images"
    expected = {("google_artifact_registry_repository_iam_member", repository, "roles/artifactregistry.writer")}
    expected |= {
        ("google_cloud_run_v2_service_iam_member", cloud_run_name(environment, s), "roles/run.developer")
        for s in names.SERVICES
    }
    expected |= {
        (
            "google_service_account_iam_member",
            f"projects/{PROJECT[environment]}/serviceAccounts/{sa(environment, runtime_account(s)).split(':', 1)[1]}",
            "roles/iam.serviceAccountUser",
        )
        for s in names.SERVICES
    }
    assert granted == expected


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_only_this_repositorys_jobs_in_this_environment_can_become_the_deployer(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    (provider,) = changes(plan, "google_iam_workload_identity_pool_provider").values()
    assert provider["oidc"][0]["issuer_uri"] == "https://token.actions.githubusercontent.com"
    condition = provider["attribute_condition"]
    assert f'assertion.sub == "repo:{REPOSITORY}:environment:{environment}"' in condition
    assert f'assertion.repository == "{REPOSITORY}"' in condition
    assert "&&" in condition and "||" not in condition
    assert provider["attribute_mapping"]["attribute.repository"] == "assertion.repository"
    (pool,) = changes(plan, "google_iam_workload_identity_pool").values()
    identity_users = {
        member: roles
        for member, roles in bindings_by_member(plan).items()
        if any(r == "roles/iam.workloadIdentityUser" for _, _, r in roles)
    }
    principal = (
        "principalSet://iam.googleapis.com/projects/123456789012/locations/global/"
        f"workloadIdentityPools/{pool['workload_identity_pool_id']}/attribute.repository/{REPOSITORY}"
    )
    deploy_email = sa(environment, "deploy").split(":", 1)[1]
    assert identity_users == {
        principal: {(
            "google_service_account_iam_member",
            f"projects/{PROJECT[environment]}/serviceAccounts/{deploy_email}",
            "roles/iam.workloadIdentityUser",
        )}
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# Services, buckets, triggers, subscriptions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_services_are_internal_and_run_as_their_own_account(
    plans: dict[str, Any], environment: str
) -> None:
    services = changes(plans[environment], "google_cloud_run_v2_service")
    assert set(services) == set(names.SERVICES)
    for key, service in services.items():
        assert service["name"] == cloud_run_name(environment, key)
        assert service["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
        assert service["deletion_protection"] is (environment == "prod")
        template = service["template"][0]
        assert f"serviceAccount:{template['service_account']}" == sa(environment, runtime_account(key))
        env = {e["name"]: e for e in template["containers"][0]["env"]}
        assert env["SUNRISE_BACKEND"]["value"] == "cloud"
        assert ("SUNRISE_PSEUDONYM_KEY" in env) is (key == "ingest")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_buckets_are_private_versioned_and_raw_really_deletes(
    plans: dict[str, Any], environment: str
) -> None:
    buckets = changes(plans[environment], "google_storage_bucket")
    assert set(buckets) == set(names.BUCKETS)
    for key, value in buckets.items():
        assert value["name"] == bucket(environment, key)
        assert value["uniform_bucket_level_access"] is True
        assert value["public_access_prevention"] == "enforced"
        assert value["force_destroy"] is False
        assert value["versioning"] == [{"enabled": True}]
        rules = [(r["action"][0]["type"], r["condition"][0]) for r in value["lifecycle_rule"]]
        ages = [
            c["age"] for t, c in rules
            if t == "Delete" and c.get("age") is not None and not c.get("matches_prefix")
        ]  # fmt: skip
        noncurrent = [
            c["days_since_noncurrent_time"] for t, c in rules
            if t == "Delete" and c.get("days_since_noncurrent_time") is not None
        ]  # fmt: skip
        soft_delete = value["soft_delete_policy"][0]["retention_duration_seconds"]
        if key == "raw":
            assert ages == [var(plans[environment], "raw_retention_days")]
            assert noncurrent == [1]
            # Personal data: no 7-day soft-delete copy on top of the lifecycle deletion.
            assert soft_delete == 0
        else:
            assert ages == []
            assert noncurrent == [var(plans[environment], "noncurrent_version_retention_days")]
            assert soft_delete == 7 * 24 * 3600


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_scratch_pieces_left_by_a_killed_process_are_deleted_after_a_day(
    plans: dict[str, Any], environment: str
) -> None:
    # psg_prep deletes its pieces itself; a process killed mid-night cannot. A piece the rule
    # deletes becomes a noncurrent version (versioning), which the noncurrent rule above removes
    # after noncurrent_version_retention_days, then soft delete's 7 days.
    scratch = {prefix for files in SCRATCH.values() for prefix in files.values()}
    for key, value in changes(plans[environment], "google_storage_bucket").items():
        prefixed = [
            (r["action"][0]["type"], r["condition"][0]["matches_prefix"], r["condition"][0]["age"])
            for r in value["lifecycle_rule"] if r["condition"][0].get("matches_prefix")
        ]  # fmt: skip
        if key == "prepped":
            assert prefixed == [("Delete", sorted(scratch), 1)], prefixed
        else:
            assert prefixed == [], (key, prefixed)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_triggers_route_each_event_kind_to_the_service_the_code_expects(
    plans: dict[str, Any], environment: str
) -> None:
    triggers = changes(plans[environment], "google_eventarc_trigger")
    assert set(triggers) == set(TRIGGERS)
    for key, trigger in triggers.items():
        spec = TRIGGERS[key]
        assert trigger["name"] == f"{PREFIX[environment]}-{key}"
        destination = trigger["destination"][0]["cloud_run_service"][0]
        assert destination["service"] == cloud_run_name(environment, spec.service)
        assert destination["region"] == var(plans[environment], "region")
        criteria = {c["attribute"]: c["value"] for c in trigger["matching_criteria"]}
        assert criteria["type"] == spec.event_type
        if spec.event_type == names.STORAGE_FINALIZED:
            assert criteria == {"type": spec.event_type, "bucket": bucket(environment, spec.source)}
            # In its bucket's location (api/eventarc/storage-trigger-location checks the rule).
            buckets = changes(plans[environment], "google_storage_bucket")
            assert trigger["location"] == buckets[spec.source]["location"].lower()
        else:
            assert criteria == {"type": spec.event_type}
            topic = trigger["transport"][0]["pubsub"][0]["topic"]
            assert topic == f"projects/{PROJECT[environment]}/topics/{PREFIX[environment]}-{spec.source}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_trigger_subscription_gets_the_dead_letter_policy_and_its_services_timeout(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    policies = changes(plan, "terraform_data")
    services = changes(plan, "google_cloud_run_v2_service")
    assert set(policies) == set(TRIGGERS)
    for key, policy in policies.items():
        # The subscription and the dead-letter topic's id exist only after apply.
        subscription, project, dead_letter_topic, attempts, ack_deadline, retry = unknown_aware(
            policy["triggers_replace"], unknown(plan, f'terraform_data.event_subscription_policy["{key}"]')
        )
        assert subscription is None and dead_letter_topic is None
        assert project == var(plan, "project_id")
        assert attempts == var(plan, "max_delivery_attempts")
        assert set(retry) == {"min", "max"}
        # The ack deadline equals the destination's request timeout (at most Pub/Sub's 600 s).
        timeout = services[TRIGGERS[key].service]["template"][0]["timeout"]
        assert ack_deadline == timeout and int(timeout.rstrip("s")) <= 600
    provisioners = next(
        r for r in plan["configuration"]["root_module"]["resources"]
        if r["address"] == "terraform_data.event_subscription_policy"
    )["provisioners"]  # fmt: skip
    resource_config = next(
        r for r in plan["configuration"]["root_module"]["resources"]
        if r["address"] == "terraform_data.event_subscription_policy"
    )  # fmt: skip
    references = set(provisioners[0]["expressions"]["command"]["references"])
    assert {"var.max_delivery_attempts", "local.dead_letter_topic"} <= references
    # Drift: the command runs once per replacement, so every input it reads must be one of the
    # values whose change replaces it.
    replaced_on = set(resource_config["expressions"]["triggers_replace"]["references"])

    def covered(reference: str) -> bool:  # named itself, or a part of a value that is
        return any(reference == t or reference.startswith((t + ".", t + "[")) for t in replaced_on)

    missing = sorted(r for r in references if not r.startswith("each.") and not covered(r))
    assert not missing, f"the command reads {missing}, which triggers_replace does not name"


def unknown_aware(values: list[Any], after_unknown: dict[str, Any]) -> list[Any]:
    """``triggers_replace`` with the elements unknown at plan time as None."""
    flags = after_unknown.get("triggers_replace", [])
    return [None if i < len(flags) and flags[i] is True else v for i, v in enumerate(values)]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_dead_letters_are_kept_seven_days_and_no_longer(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    (subscription,) = changes(plan, "google_pubsub_subscription").values()
    assert subscription["name"] == f"{PREFIX[environment]}-dead-letter"
    assert subscription["ack_deadline_seconds"] == 60
    assert subscription["message_retention_duration"] == "604800s"
    assert subscription["retain_acked_messages"] is False
    assert subscription["expiration_policy"] == [{"ttl": ""}]
    topics = changes(plan, "google_pubsub_topic")
    assert topics["dead-letter"]["message_retention_duration"] == "604800s"
    assert all(topics[t].get("message_retention_duration") is None for t in topics if t != "dead-letter")


# --------------------------------------------------------------------------------------------
# Alerts and dashboard
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_alerts_cover_dead_letters_stuck_events_and_5xx_per_service(
    plans: dict[str, Any], environment: str
) -> None:
    plan = plans[environment]
    by_address = {
        rc["address"]: rc["change"]["after"]
        for rc in plan["resource_changes"]
        if rc["type"] == "google_monitoring_alert_policy"
    }
    dead = by_address["google_monitoring_alert_policy.dead_letters"]
    condition = dead["conditions"][0]["condition_threshold"][0]
    assert f'subscription_id = "{PREFIX[environment]}-dead-letter"' in condition["filter"]
    assert "subscription/num_undelivered_messages" in condition["filter"]
    assert (condition["comparison"], condition["threshold_value"]) == ("COMPARISON_GT", 0)

    stuck = by_address["google_monitoring_alert_policy.oldest_unacked"]
    condition = stuck["conditions"][0]["condition_threshold"][0]
    assert "subscription/oldest_unacked_message_age" in condition["filter"]
    assert f'starts_with("eventarc-{var(plan, "region")}-{PREFIX[environment]}-")' in condition["filter"]
    assert condition["threshold_value"] == var(plan, "oldest_unacked_alert_minutes") * 60

    errors = {
        key: after
        for key, after in changes(plan, "google_monitoring_alert_policy").items()
        if key not in {"dead_letters", "oldest_unacked"}
    }
    assert set(errors) == set(names.SERVICES)
    for key, policy in errors.items():
        condition = policy["conditions"][0]["condition_threshold"][0]
        name = cloud_run_name(environment, key)
        assert f'service_name = "{name}"' in condition["filter"]
        assert 'response_code_class = "5xx"' in condition["filter"]
        assert f'service_name = "{name}"' in condition["denominator_filter"]
        assert "response_code_class" not in condition["denominator_filter"]
        assert 0 < condition["threshold_value"] < 1  # a ratio of requests

    for address, policy in by_address.items():
        assert policy["notification_channels"] == [], address  # the variable's default
        expressions = config_expressions(plan, address.split("[")[0])
        assert expressions["notification_channels"]["references"] == ["var.notification_channels"]


def permanent_failure_log_line(tmp_path: Path) -> str:
    """The message a service logs for a permanent failure: a service whose handler raises one,
    sent an event, with its log records caught."""
    import logging

    from fastapi.testclient import TestClient
    from sunrise_common.errors import PermanentError
    from sunrise_common.events import pubsub_event
    from sunrise_common.service import create_app
    from sunrise_common.settings import Settings

    def handle(event, ctx):  # noqa: ANN001, ANN202 - the handler signature of create_app
        raise PermanentError("not_edf", "psg uploads must be EDF/EDF+/BDF files")

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    settings = Settings(backend="embedded", data_dir=tmp_path, prefix="sunrise-test", project="sunrise-test")
    keep, service_logger = Keep(), logging.getLogger("sunrise_common.service")
    service_logger.addHandler(keep)
    try:
        with TestClient(create_app("psg_prep", handle, settings=settings)) as client:
            headers, body = pubsub_event("p", settings.topic(names.TOPIC_PSG_ANONYMISED), b"{}")
            assert client.post("/", headers=headers, content=json.dumps(body).encode()).status_code == 200
    finally:
        service_logger.removeHandler(keep)
    (line,) = [m for m in keep.messages if "not_edf" in m]
    return line


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_permanent_failures_are_counted_per_stage_and_reason_from_the_services_logs(
    plans: dict[str, Any], environment: str, tmp_path: Path
) -> None:
    metrics = {m["name"]: m for m in changes(plans[environment], "google_logging_metric").values()}
    metric = metrics[f"{PREFIX[environment]}-permanent-failures"]
    assert metric["label_extractors"]["stage"] == "EXTRACT(jsonPayload.stage)"
    line = permanent_failure_log_line(tmp_path)
    (filter_regex,) = re.findall(r'jsonPayload\.message =~ "([^"]+)"', metric["filter"])
    assert re.search(filter_regex, line)
    (extract_regex,) = re.findall(r'REGEXP_EXTRACT\(jsonPayload\.message, "(.+)"\)', metric["label_extractors"]["reason"])
    assert re.search(extract_regex, line).group(1) == "not_edf"
    labels = {label["key"] for label in metric["metric_descriptor"][0]["labels"]}
    assert labels == {"stage", "reason"}
    wall = metrics[f"{PREFIX[environment]}-stage-wall-time"]
    assert wall["value_extractor"] == "EXTRACT(jsonPayload.wall_s)"
    assert wall["metric_descriptor"][0]["value_type"] == "DISTRIBUTION"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_one_dashboard_shows_nights_failures_by_reason_and_stage_latency(
    plans: dict[str, Any], environment: str
) -> None:
    (dashboard,) = changes(plans[environment], "google_monitoring_dashboard").values()
    layout = json.loads(dashboard["dashboard_json"])
    filters = [
        ds["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for tile in layout["mosaicLayout"]["tiles"]
        for ds in tile["widget"]["xyChart"]["dataSets"]
    ]
    prefix = f"logging.googleapis.com/user/{PREFIX[environment]}"
    assert any(f"{prefix}-stage-runs" in f and 'stage = "sunalgo"' in f for f in filters)
    assert any(f"{prefix}-permanent-failures" in f for f in filters)
    assert any(f"{prefix}-stage-wall-time" in f for f in filters)

