"""What only the Google Cloud APIs enforce, checked on a plan (``terraform show -json``).

The provider passes these values through and the API refuses them at apply time (or, worse,
accepts a configuration that cannot work). Each rule is named ``api/<service>/<rule>``, says its
source, and reports the value and the bound it breaks. Data kept beside this file:

- ``predefined_roles.txt``: the predefined roles of the services granted on (source in its header);
- ``locations.json``: regions, Cloud Storage multi- and dual-regions, Firestore multi-regions.

Rules (sources: the Google Cloud documentation pages named):

- ``api/iam/role-exists``: a granted predefined role exists (IAM "Roles and permissions").
- ``api/iam/service-agent-created``: every Google service agent the plan grants to
  (``service-N@gcp-sa-X.iam.gserviceaccount.com``) is created in the same plan by a
  ``google_project_service_identity`` of that service, so that no grant races the agent's lazy
  creation on a fresh project.
- ``api/storage/bucket-name``: Cloud Storage "Bucket naming rules".
- ``api/location-exists``: the location of a bucket, Cloud Run service, Artifact Registry
  repository, Eventarc trigger, BigQuery dataset and Firestore database exists.
- ``api/eventarc/storage-trigger-location``: a Cloud Storage trigger lives in its bucket's
  location ("Eventarc locations": "the trigger location must match the bucket's").
- ``api/eventarc/destination-region``: a trigger's Cloud Run destination names the region the
  service is in.
- ``api/pubsub/ack-deadline``: 10–600 s, for a subscription and for the deadline the
  dead-letter setup gives each trigger's subscription (its destination's request timeout,
  terraform/eventarc.tf) (Pub/Sub "Subscription properties").
- ``api/pubsub/retention``: message retention 10 min – 31 days.
- ``api/run/cpu``, ``api/run/memory``, ``api/run/concurrency``, ``api/run/timeout``,
  ``api/run/scaling``: Cloud Run "CPU limits", "Memory limits", "Maximum concurrent requests per
  instance" (1–1000), "Request timeout" (≤ 3600 s), min ≤ max instances.
- ``api/logging/audit-log-type``: DATA_READ, DATA_WRITE or ADMIN_READ (IAM AuditLogConfig).
- ``api/bigquery/external-schema``: no explicit schema on an external table of a self-describing
  format ("Schema is disallowed for Google Cloud Bigtable, Cloud Datastore backups, Avro, Iceberg,
  ORC and Parquet formats", BigQuery ExternalDataConfiguration); such a table takes its schema
  from a reference file (``reference_file_schema_uri``), which must then be a gs:// URI.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from provider_rules import Violation, values_at

HERE = Path(__file__).resolve().parent
STORAGE_FINALIZED_PREFIX = "google.cloud.storage.object."
IAM_ROLE_TYPES = frozenset({
    "google_project_iam_member", "google_storage_bucket_iam_member", "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member", "google_secret_manager_secret_iam_member",
    "google_cloud_run_v2_service_iam_member", "google_service_account_iam_member",
    "google_artifact_registry_repository_iam_member", "google_bigquery_dataset_iam_member",
})  # fmt: skip
# Service agent domain (gcp-sa-X) -> the API whose google_project_service_identity creates it.
AGENT_SERVICES = {
    "pubsub": "pubsub.googleapis.com",
    "eventarc": "eventarc.googleapis.com",
    "serverless-robot-prod": "run.googleapis.com",
    "artifactregistry": "artifactregistry.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "firestore": "firestore.googleapis.com",
    "bigquery": "bigquery.googleapis.com",
}
AGENT = re.compile(r"^serviceAccount:service-\d+@gcp-sa-([a-z-]+)\.iam\.gserviceaccount\.com$")


@cache
def predefined_roles() -> tuple[frozenset[str], frozenset[str]]:
    """(role names, services the list covers) from predefined_roles.txt."""
    roles, services = set(), set()
    for line in (HERE / "predefined_roles.txt").read_text().splitlines():
        if line.startswith("# SERVICES:"):
            services.update(line.split(":", 1)[1].split())
        elif line.strip() and not line.startswith("#"):
            roles.add(line.strip())
    return frozenset(roles), frozenset(services)


@cache
def locations() -> dict[str, Any]:
    return json.loads((HERE / "locations.json").read_text())


def resources(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every managed resource of the plan's planned values (root module and children)."""

    def walk(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for resource in module.get("resources", []):
            if resource.get("mode") == "managed":
                yield resource
        for child in module.get("child_modules", []):
            yield from walk(child)

    yield from walk(plan.get("planned_values", {}).get("root_module", {}))


def seconds(duration: Any) -> float | None:
    """Seconds of a protobuf Duration string ("600s", "1.5s"); None if it is not one."""
    if isinstance(duration, str) and re.fullmatch(r"\d+(\.\d+)?s", duration):
        return float(duration[:-1])
    return None


def cpu_count(cpu: Any) -> float | None:
    """vCPUs of a Kubernetes quantity ("1", "2", "1000m", "0.5")."""
    if isinstance(cpu, str) and re.fullmatch(r"\d+m", cpu):
        return int(cpu[:-1]) / 1000
    try:
        return float(cpu)
    except (TypeError, ValueError):
        return None


MEMORY_UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "k": 1000 / 1024**2, "M": 1e6 / 1024**2, "G": 1e9 / 1024**2}


def memory_mib(memory: Any) -> float | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)", memory) if isinstance(memory, str) else None
    return float(match.group(1)) * MEMORY_UNITS[match.group(2)] if match else None


# ------------------------------------------------------------------------------------------
# The rules
# ------------------------------------------------------------------------------------------


def check_roles(resource: dict[str, Any]) -> Iterator[Violation]:
    role = resource["values"].get("role")
    if resource["type"] not in IAM_ROLE_TYPES or not isinstance(role, str):
        return
    if role.startswith(("projects/", "organizations/")):
        return  # a custom role: its existence is the project's, not a predefined list's
    roles, services = predefined_roles()
    service = role.removeprefix("roles/").split(".")[0]
    if not role.startswith("roles/"):
        yield Violation("api/iam/role-exists", resource["address"], f"role {role!r} is neither roles/... nor a custom role")
    elif service not in services:
        yield Violation("api/iam/role-exists", resource["address"],
                        f"role {role!r} is of service {service!r}, which tools/tfcheck/predefined_roles.txt does not cover: add that service's roles")  # fmt: skip
    elif role not in roles:
        yield Violation("api/iam/role-exists", resource["address"], f"role {role!r} is not a predefined role of {service}")


def bucket_name_problems(name: str) -> list[str]:
    """Cloud Storage bucket naming rules (cloud.google.com/storage/docs/buckets#naming)."""
    problems = []
    if not re.fullmatch(r"[a-z0-9._-]+", name):
        problems.append("may contain only lowercase letters, digits, '-', '_' and '.'")
    if not re.match(r"^[a-z0-9]", name) or not re.search(r"[a-z0-9]$", name):
        problems.append("must start and end with a letter or digit")
    limit = 222 if "." in name else 63
    if not 3 <= len(name) <= limit:
        problems.append(f"must be 3-{limit} characters long (is {len(name)})")
    if any(len(part) > 63 for part in name.split(".")):
        problems.append("each dot-separated part must be at most 63 characters")
    if name.startswith("goog"):
        problems.append("cannot begin with 'goog'")
    if re.search(r"g[o0][o0]g[l1]e", name):
        problems.append("cannot contain 'google' or a close misspelling")
    try:
        ipaddress.IPv4Address(name)
        problems.append("cannot be an IP address")
    except ValueError:
        pass
    return problems


def region_ok(location: str) -> bool:
    return location in locations()["regions"]


def location_problem(resource_type: str, location: Any) -> str | None:
    if not isinstance(location, str):
        return None
    known = locations()
    if resource_type == "google_storage_bucket":
        ok = location.lower() in known["regions"] or location.upper() in known["storage_multi_regions"] + known["storage_dual_regions"]
    elif resource_type == "google_eventarc_trigger":
        # global, a region, or (storage triggers) the lower-case multi- or dual-region of the bucket.
        lowered = [loc.lower() for loc in known["storage_multi_regions"] + known["storage_dual_regions"]]
        ok = location == "global" or region_ok(location) or location in lowered
    elif resource_type == "google_bigquery_dataset":
        ok = region_ok(location.lower()) or location.upper() in known["bigquery_multi_regions"]
    elif resource_type == "google_firestore_database":
        ok = region_ok(location) or location in known["firestore_multi_regions"]
    else:
        ok = region_ok(location)
    return None if ok else f"location {location!r} does not exist for {resource_type} (tools/tfcheck/locations.json)"


LOCATION_ATTRIBUTE = {
    "google_storage_bucket": "location",
    "google_cloud_run_v2_service": "location",
    "google_artifact_registry_repository": "location",
    "google_eventarc_trigger": "location",
    "google_bigquery_dataset": "location",
    "google_firestore_database": "location_id",
}

# Cloud Run: the memory a CPU count needs at least, and the CPUs a memory size needs at least.
RUN_CPUS = (1, 2, 4, 6, 8)
RUN_MIN_MEMORY_MIB = {4: 2048, 6: 4096, 8: 4096}
RUN_MEMORY_NEEDS_CPU = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))


def check_run_service(resource: dict[str, Any]) -> Iterator[Violation]:
    address, values = resource["address"], resource["values"]
    for where, template in values_at(values, "template"):
        concurrency = template.get("max_instance_request_concurrency")
        if isinstance(concurrency, int) and not 1 <= concurrency <= 1000:
            yield Violation("api/run/concurrency", address, f"{where}.max_instance_request_concurrency is {concurrency}, outside 1-1000")
        timeout = seconds(template.get("timeout"))
        if timeout is not None and not 1 <= timeout <= 3600:
            yield Violation("api/run/timeout", address, f"{where}.timeout is {timeout:g} s, outside 1-3600 s")
        for scaling_where, scaling in values_at(template, "scaling"):
            low, high = scaling.get("min_instance_count"), scaling.get("max_instance_count")
            if isinstance(low, int) and isinstance(high, int) and low > high:
                yield Violation("api/run/scaling", address, f"{where}.{scaling_where}: min_instance_count {low} exceeds max_instance_count {high}")
        for limits_where, limits in values_at(template, "containers.resources.limits"):
            cpu, memory = cpu_count(limits.get("cpu")), memory_mib(limits.get("memory"))
            label = f"{where}.{limits_where}"
            if limits.get("cpu") is not None and (cpu is None or not (0.08 <= cpu < 1 or cpu in RUN_CPUS)):
                yield Violation("api/run/cpu", address, f"{label}.cpu {limits.get('cpu')!r} is not 0.08-1 or one of {list(RUN_CPUS)}")
                continue
            if limits.get("memory") is not None and (memory is None or not 128 <= memory <= 32 * 1024):
                yield Violation("api/run/memory", address, f"{label}.memory {limits.get('memory')!r} is not 128Mi-32Gi")
                continue
            if cpu is None or memory is None:
                continue
            if memory < RUN_MIN_MEMORY_MIB.get(int(cpu), 0) and cpu in RUN_MIN_MEMORY_MIB:
                yield Violation("api/run/memory", address, f"{label}: {cpu:g} CPU needs at least {RUN_MIN_MEMORY_MIB[int(cpu)]} MiB, has {memory:g} MiB")
            for above, needed in RUN_MEMORY_NEEDS_CPU:
                if memory > above and cpu < needed:
                    yield Violation("api/run/cpu", address, f"{label}: {memory:g} MiB of memory needs at least {needed} CPU, has {cpu:g}")
                    break
            if cpu < 1:
                if memory > (512 if cpu < 0.5 else 1024):
                    yield Violation("api/run/memory", address, f"{label}: {cpu:g} CPU allows at most {512 if cpu < 0.5 else 1024} MiB, has {memory:g} MiB")
                if isinstance(concurrency, int) and concurrency != 1:
                    yield Violation("api/run/concurrency", address, f"{label}: less than 1 CPU requires a concurrency of 1, has {concurrency}")


def check_pubsub(resource: dict[str, Any]) -> Iterator[Violation]:
    address, values = resource["address"], resource["values"]
    if resource["type"] == "google_pubsub_subscription":
        deadline = values.get("ack_deadline_seconds")
        if isinstance(deadline, int) and not 10 <= deadline <= 600:
            yield Violation("api/pubsub/ack-deadline", address, f"ack_deadline_seconds is {deadline}, outside 10-600 s")
    retention = seconds(values.get("message_retention_duration"))
    if retention is not None and not 600 <= retention <= 31 * 86400:
        yield Violation("api/pubsub/retention", address, f"message_retention_duration is {retention:g} s, outside 10 min-31 days")


def check_triggers(plan_resources: list[dict[str, Any]]) -> Iterator[Violation]:
    buckets = {r["values"].get("name"): r for r in plan_resources if r["type"] == "google_storage_bucket"}
    services = {r["values"].get("name"): r for r in plan_resources if r["type"] == "google_cloud_run_v2_service"}
    for trigger in (r for r in plan_resources if r["type"] == "google_eventarc_trigger"):
        address, values = trigger["address"], trigger["values"]
        criteria = {c.get("attribute"): c.get("value") for c in values.get("matching_criteria") or []}
        if str(criteria.get("type", "")).startswith(STORAGE_FINALIZED_PREFIX):
            bucket = buckets.get(criteria.get("bucket"))
            location = bucket and bucket["values"].get("location")
            if isinstance(location, str) and values.get("location") != location.lower():
                yield Violation("api/eventarc/storage-trigger-location", address,
                                f"trigger location {values.get('location')!r} differs from its bucket's location {location!r} (must be {location.lower()!r})")  # fmt: skip
        for _, destination in values_at(values, "destination.cloud_run_service"):
            service = services.get(destination.get("service"))
            if service is None:
                continue
            region, where = destination.get("region"), service["values"].get("location")
            if isinstance(region, str) and isinstance(where, str) and region != where:
                yield Violation("api/eventarc/destination-region", address,
                                f"destination region {region!r} is not the region of service {destination.get('service')!r} ({where!r})")  # fmt: skip
            # The dead-letter setup gives the trigger's subscription an ack deadline equal to the
            # service's request timeout (terraform/eventarc.tf): Pub/Sub allows 10-600 s.
            for _, timeout in values_at(service["values"], "template.timeout"):
                deadline = seconds(timeout)
                if deadline is not None and not 10 <= deadline <= 600:
                    yield Violation("api/pubsub/ack-deadline", address,
                                    f"the subscription's ack deadline is the destination's timeout, {deadline:g} s, outside 10-600 s")  # fmt: skip


def check_service_agents(plan_resources: list[dict[str, Any]]) -> Iterator[Violation]:
    created = {r["values"].get("service") for r in plan_resources if r["type"] == "google_project_service_identity"}
    for resource in plan_resources:
        match = AGENT.match(str(resource["values"].get("member", "")))
        if not match:
            continue
        service = AGENT_SERVICES.get(match.group(1), f"{match.group(1)}.googleapis.com")
        if service not in created:
            yield Violation("api/iam/service-agent-created", resource["address"],
                            f"grants to the {match.group(1)} service agent, which no google_project_service_identity (service {service!r}) creates first")  # fmt: skip


def check_audit_config(resource: dict[str, Any]) -> Iterator[Violation]:
    if resource["type"] != "google_project_iam_audit_config":
        return
    for where, log_type in values_at(resource["values"], "audit_log_config.log_type"):
        if log_type not in ("DATA_READ", "DATA_WRITE", "ADMIN_READ"):
            yield Violation("api/logging/audit-log-type", resource["address"], f"{where} is {log_type!r}, not DATA_READ, DATA_WRITE or ADMIN_READ")


SELF_DESCRIBING = frozenset({"PARQUET", "AVRO", "ORC", "ICEBERG", "DATASTORE_BACKUP", "BIGTABLE"})


def check_external_table(resource: dict[str, Any]) -> Iterator[Violation]:
    if resource["type"] != "google_bigquery_table":
        return
    for where, config in values_at(resource["values"], "external_data_configuration"):
        if config.get("source_format") in SELF_DESCRIBING and config.get("schema"):
            yield Violation("api/bigquery/external-schema", resource["address"],
                            f"{where}.schema is set, but BigQuery disallows a schema for {config['source_format']} external tables (use reference_file_schema_uri)")  # fmt: skip
        reference = config.get("reference_file_schema_uri")
        if isinstance(reference, str) and not re.fullmatch(r"gs://[a-z0-9._-]+/.+", reference):
            yield Violation("api/bigquery/external-schema", resource["address"], f"{where}.reference_file_schema_uri {reference!r} is not a gs://bucket/object URI")


def check(plan: dict[str, Any]) -> list[Violation]:
    """Every API-rule violation of a plan."""
    planned = list(resources(plan))
    found: list[Violation] = []
    for resource in planned:
        found.extend(check_roles(resource))
        found.extend(check_audit_config(resource))
        found.extend(check_external_table(resource))
        if resource["type"] == "google_storage_bucket" and isinstance(resource["values"].get("name"), str):
            for problem in bucket_name_problems(resource["values"]["name"]):
                found.append(Violation("api/storage/bucket-name", resource["address"], f"bucket name {resource['values']['name']!r} {problem}"))
        attribute = LOCATION_ATTRIBUTE.get(resource["type"])
        if attribute:
            problem = location_problem(resource["type"], resource["values"].get(attribute))
            if problem:
                found.append(Violation("api/location-exists", resource["address"], problem))
        if resource["type"] == "google_cloud_run_v2_service":
            found.extend(check_run_service(resource))
        if resource["type"] in ("google_pubsub_subscription", "google_pubsub_topic"):
            found.extend(check_pubsub(resource))
    found.extend(check_triggers(planned))
    found.extend(check_service_agents(planned))
    return found
