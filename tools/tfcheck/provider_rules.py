"""The google provider's own validators for the resources terraform/ uses, as data.

The published provider schema says only types and nesting; the provider binary also runs a
validator per attribute (``ValidateFunc``) and checks ``ConflictsWith``/``ExactlyOneOf``/
``RequiredWith`` between attributes before it plans. Those facts are written here from the
source of hashicorp/terraform-provider-google at tag v6.50.0 (file and attribute named in each
entry's ``source``), not copied code: the stand-in provider (google_standin.py) answers
``ValidateResourceConfig`` with them, so ``terraform validate`` and ``terraform plan`` fail as
they would with the real provider, and ``check_plan.py`` runs them again on the planned values
(where variables are known).

Each rule is named ``provider/<resource type>/<attribute path>/<kind>``; its message says what
the provider expects and what it got. Only the resource types of terraform/ are covered: a new
resource type gets its validators added here (``tests/terraform/test_rules.py`` fails on a type
without an entry).

Paths are dotted names through nested blocks (``template.containers.resources.limits``); a block
is a list of objects in Terraform's value model, and every element is checked. Unknown values
(``(known after apply)``: ``None`` or msgpack's extension type) are skipped, as the provider does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

V650 = "hashicorp/terraform-provider-google v6.50.0"


@dataclass(frozen=True)
class Violation:
    """One broken rule: its name, the resource address and a message in the rule's terms."""

    rule: str
    address: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.address}: {self.message}"


def _known(value: Any) -> bool:
    return value is not None and type(value).__name__ != "ExtType"


def values_at(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) of every instance of a dotted path; blocks are lists of objects."""

    def walk(node: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
        if not _known(node):
            return
        # A block is a list of objects: descend into each (a list of scalars is a value).
        if isinstance(node, list) and (parts or all(isinstance(e, dict) for e in node)):
            for index, element in enumerate(node):
                yield from walk(element, parts, f"{where}[{index}]")
            return
        if not parts:
            yield where, node
            return
        if not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        yield from walk(node.get(head), rest, f"{where}.{head}" if where else head)

    yield from walk(obj, path.split("."), "")


def _set(value: Any) -> bool:
    """Set in the configuration: SDKv2 treats null, "", false-less empty lists as unset."""
    return _known(value) and value != [] and value != "" and value != {}


@dataclass(frozen=True)
class Rule:
    resource: str
    path: str
    kind: str
    source: str
    check: Callable[[str, Any], str | None]

    @property
    def name(self) -> str:
        return f"provider/{self.resource}/{self.path}/{self.kind}"


def enum(values: list[str]) -> Callable[[str, Any], str | None]:
    # validation.StringInSlice(values, false): case-sensitive membership.
    def check(where: str, value: Any) -> str | None:
        if value in values:
            return None
        return f"expected {where} to be one of {values}, got {value!r}"

    return check


def regexp(pattern: str, wording: str | None = None) -> Callable[[str, Any], str | None]:
    compiled = re.compile(pattern)

    def check(where: str, value: Any) -> str | None:
        if isinstance(value, str) and compiled.search(value):
            return None
        return wording.format(where=where, value=value) if wording else (
            f"{where} ({value!r}) must match regex {pattern!r}"
        )

    return check


def rfc1035(low: int, high: int) -> Callable[[str, Any], str | None]:
    # verify.ValidateRFC1035Name(min, max): length bounds and ^[a-z]([-a-z0-9]*[a-z0-9])?$.
    pattern = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

    def check(where: str, value: Any) -> str | None:
        problems = []
        if not low <= len(value) <= high:
            problems.append(f"must be between {low} and {high} characters long (is {len(value)})")
        if not pattern.match(value):
            problems.append(f"must match regex {pattern.pattern!r}")
        return f"{where} ({value!r}) " + " and ".join(problems) if problems else None

    return check


def length(low: int, high: int) -> Callable[[str, Any], str | None]:
    def check(where: str, value: Any) -> str | None:
        if low <= len(value) <= high:
            return None
        return f"expected length of {where} to be in the range ({low} - {high}), got {len(value)}"

    return check


def _label_keys(where: str, value: Any) -> str | None:
    # storage labelKeyValidator: every key matches ^[a-z0-9_-]{1,63}$.
    bad = [key for key in value if not re.match(r"^[a-z0-9_-]{1,63}$", key)]
    return f"{where}: invalid label keys {bad} (must match ^[a-z0-9_-]{{1,63}}$)" if bad else None


def _iam_member(where: str, value: Any) -> str | None:
    # tpgiamresource validateIAMMember.
    if value.startswith("deleted"):
        return f"invalid value for {where} (Terraform does not support IAM members for deleted principals)"
    if not re.search(r"(.+:.+|projectOwners|projectReaders|projectWriters|allUsers|allAuthenticatedUsers)", value):
        return f"invalid value {value!r} for {where} (IAM members must be type:id)"
    return None


def _project_service(where: str, value: Any) -> str | None:
    # resourcemanager validateProjectServiceService.
    if value == "bigquery-json.googleapis.com":
        return f"{where}: {value} is banned by the provider (use bigquery.googleapis.com)"
    if "." not in value:
        return f"expected {where} ({value!r}) to be a domain like serviceusage.googleapis.com"
    return None


def _pool_id(where: str, value: Any) -> str | None:
    # iambeta ValidateWorkloadIdentityPoolId / ...ProviderId (same rules).
    problems = []
    if value.startswith("gcp-"):
        problems.append('can not start with "gcp-"')
    if not re.match(r"^[0-9a-z-]+$", value):
        problems.append("must contain only lowercase letters (a-z), numbers (0-9), or dashes (-)")
    if len(value) < 4:
        problems.append("cannot be smaller than 4 characters")
    if len(value) > 32:
        problems.append("cannot be greater than 32 characters")
    return f"{where} ({value!r}) " + "; ".join(problems) if problems else None


def _dataset_id(where: str, value: Any) -> str | None:
    # bigquery validateDatasetId: ^[0-9A-Za-z_]+$ and at most 1,024 characters.
    if not re.match(r"^[0-9A-Za-z_]+$", value):
        return f"{where} must contain only letters (a-z, A-Z), numbers (0-9), or underscores (_)"
    if len(value) > 1024:
        return f"{where} cannot be greater than 1,024 characters"
    return None


def _json(where: str, value: Any) -> str | None:
    # validation.StringIsJSON.
    try:
        json.loads(value)
    except ValueError as exc:
        return f"{where} contains an invalid JSON: {exc}"
    return None


def _table_schema(where: str, value: Any) -> str | None:
    # bigquery validateBigQueryTableSchema: JSON, an array, no null element.
    problem = _json(where, value)
    if problem:
        return problem
    parsed = json.loads(value)
    if not isinstance(parsed, list):
        return f'{where}: "schema" is not a JSON array'
    if any(element is None for element in parsed):
        return f'{where}: "schema" contains a nil element'
    return None


def _int_at_least(low: int) -> Callable[[str, Any], str | None]:
    def check(where: str, value: Any) -> str | None:
        return None if value >= low else f"{where} cannot be less than {low} (got {value})"

    return check


IAM_MEMBER_TYPES = (
    "google_project_iam_member", "google_storage_bucket_iam_member", "google_pubsub_topic_iam_member",
    "google_pubsub_subscription_iam_member", "google_secret_manager_secret_iam_member",
    "google_cloud_run_v2_service_iam_member", "google_service_account_iam_member",
    "google_artifact_registry_repository_iam_member", "google_bigquery_dataset_iam_member",
)  # fmt: skip
REDUCERS = ["REDUCE_NONE", "REDUCE_MEAN", "REDUCE_MIN", "REDUCE_MAX", "REDUCE_SUM", "REDUCE_STDDEV", "REDUCE_COUNT", "REDUCE_COUNT_TRUE", "REDUCE_COUNT_FALSE", "REDUCE_FRACTION_TRUE", "REDUCE_PERCENTILE_99", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_05", ""]  # fmt: skip
ALIGNERS = ["ALIGN_NONE", "ALIGN_DELTA", "ALIGN_RATE", "ALIGN_INTERPOLATE", "ALIGN_NEXT_OLDER", "ALIGN_MIN", "ALIGN_MAX", "ALIGN_MEAN", "ALIGN_COUNT", "ALIGN_SUM", "ALIGN_STDDEV", "ALIGN_COUNT_TRUE", "ALIGN_COUNT_FALSE", "ALIGN_FRACTION_TRUE", "ALIGN_PERCENTILE_99", "ALIGN_PERCENTILE_95", "ALIGN_PERCENTILE_50", "ALIGN_PERCENTILE_05", "ALIGN_PERCENT_CHANGE", ""]  # fmt: skip
COMPARISONS = ["COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE", "COMPARISON_EQ", "COMPARISON_NE"]  # fmt: skip
MISSING_DATA = ["EVALUATION_MISSING_DATA_INACTIVE", "EVALUATION_MISSING_DATA_ACTIVE", "EVALUATION_MISSING_DATA_NO_OP", ""]  # fmt: skip

_S = "google/services/"
# (resource type, attribute path, kind, check, source file at v6.50.0)
_TABLE: list[tuple[str, str, str, Callable[[str, Any], str | None], str]] = [
    ("google_storage_bucket", "labels", "label-keys", _label_keys, _S + "storage/resource_storage_bucket.go labelKeyValidator"),
    ("google_storage_bucket", "lifecycle_rule.condition.with_state", "enum", enum(["LIVE", "ARCHIVED", "ANY", ""]), _S + "storage/resource_storage_bucket.go"),
    ("google_storage_bucket", "retention_policy.retention_period", "int-between", _int_at_least(1), _S + "storage/resource_storage_bucket.go IntBetween(1, MaxInt32)"),
    ("google_pubsub_subscription", "filter", "regexp", regexp(r"^[\s\S]{0,256}$"), _S + "pubsub/resource_pubsub_subscription.go"),
    ("google_pubsub_topic", "schema_settings.encoding", "enum", enum(["ENCODING_UNSPECIFIED", "JSON", "BINARY", ""]), _S + "pubsub/resource_pubsub_topic.go"),
    ("google_cloud_run_v2_service", "ingress", "enum", enum(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "launch_stage", "enum", enum(["UNIMPLEMENTED", "PRELAUNCH", "EARLY_ACCESS", "ALPHA", "BETA", "GA", "DEPRECATED", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "scaling.scaling_mode", "enum", enum(["AUTOMATIC", "MANUAL", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "template.execution_environment", "enum", enum(["EXECUTION_ENVIRONMENT_GEN1", "EXECUTION_ENVIRONMENT_GEN2", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "template.timeout", "regexp", regexp(r"^[0-9]+(?:\.[0-9]{1,9})?s$"), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "template.vpc_access.egress", "enum", enum(["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "template.volumes.empty_dir.medium", "enum", enum(["MEMORY", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_cloud_run_v2_service", "traffic.type", "enum", enum(["TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", ""]), _S + "cloudrunv2/resource_cloud_run_v2_service.go"),
    ("google_service_account", "account_id", "rfc1035", rfc1035(6, 30), _S + "resourcemanager/resource_google_service_account.go ValidateRFC1035Name(6, 30)"),
    ("google_service_account", "description", "length", length(0, 256), _S + "resourcemanager/resource_google_service_account.go StringLenBetween(0, 256)"),
    ("google_project_service", "service", "service-name", _project_service, _S + "resourcemanager/resource_google_project_service.go validateProjectServiceService"),
    ("google_artifact_registry_repository", "mode", "enum", enum(["STANDARD_REPOSITORY", "VIRTUAL_REPOSITORY", "REMOTE_REPOSITORY", ""]), _S + "artifactregistry/resource_artifact_registry_repository.go"),
    ("google_artifact_registry_repository", "cleanup_policies.action", "enum", enum(["DELETE", "KEEP", ""]), _S + "artifactregistry/resource_artifact_registry_repository.go"),
    ("google_artifact_registry_repository", "cleanup_policies.condition.tag_state", "enum", enum(["TAGGED", "UNTAGGED", "ANY", ""]), _S + "artifactregistry/resource_artifact_registry_repository.go"),
    ("google_artifact_registry_repository", "vulnerability_scanning_config.enablement_config", "enum", enum(["INHERITED", "DISABLED", ""]), _S + "artifactregistry/resource_artifact_registry_repository.go"),
    ("google_firestore_database", "type", "enum", enum(["FIRESTORE_NATIVE", "DATASTORE_MODE"]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_database", "app_engine_integration_mode", "enum", enum(["ENABLED", "DISABLED", ""]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_database", "concurrency_mode", "enum", enum(["OPTIMISTIC", "PESSIMISTIC", "OPTIMISTIC_WITH_ENTITY_GROUPS", ""]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_database", "database_edition", "enum", enum(["STANDARD", "ENTERPRISE", ""]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_database", "delete_protection_state", "enum", enum(["DELETE_PROTECTION_STATE_UNSPECIFIED", "DELETE_PROTECTION_ENABLED", "DELETE_PROTECTION_DISABLED", ""]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_database", "point_in_time_recovery_enablement", "enum", enum(["POINT_IN_TIME_RECOVERY_ENABLED", "POINT_IN_TIME_RECOVERY_DISABLED", ""]), _S + "firestore/resource_firestore_database.go"),
    ("google_firestore_index", "fields.array_config", "enum", enum(["CONTAINS", ""]), _S + "firestore/resource_firestore_index.go"),
    ("google_firestore_index", "fields.order", "enum", enum(["ASCENDING", "DESCENDING", ""]), _S + "firestore/resource_firestore_index.go"),
    ("google_firestore_index", "api_scope", "enum", enum(["ANY_API", "DATASTORE_MODE_API", "MONGODB_COMPATIBLE_API", ""]), _S + "firestore/resource_firestore_index.go"),
    ("google_firestore_index", "density", "enum", enum(["SPARSE_ALL", "SPARSE_ANY", "DENSE", ""]), _S + "firestore/resource_firestore_index.go"),
    ("google_firestore_index", "query_scope", "enum", enum(["COLLECTION", "COLLECTION_GROUP", "COLLECTION_RECURSIVE", ""]), _S + "firestore/resource_firestore_index.go"),
    ("google_iam_workload_identity_pool", "workload_identity_pool_id", "pool-id", _pool_id, _S + "iambeta/resource_iam_workload_identity_pool.go ValidateWorkloadIdentityPoolId"),
    ("google_iam_workload_identity_pool_provider", "workload_identity_pool_provider_id", "provider-id", _pool_id, _S + "iambeta/resource_iam_workload_identity_pool_provider.go ValidateWorkloadIdentityPoolProviderId"),
    ("google_bigquery_dataset", "dataset_id", "dataset-id", _dataset_id, _S + "bigquery/resource_bigquery_dataset.go validateDatasetId"),
    ("google_bigquery_dataset", "default_table_expiration_ms", "min", _int_at_least(3600000), _S + "bigquery/resource_bigquery_dataset.go validateDefaultTableExpirationMs"),
    ("google_bigquery_table", "schema", "schema-json", _table_schema, _S + "bigquery/resource_bigquery_table.go validateBigQueryTableSchema"),
    ("google_bigquery_table", "external_data_configuration.schema", "schema-json", _table_schema, _S + "bigquery/resource_bigquery_table.go validateBigQueryTableSchema"),
    ("google_bigquery_table", "external_data_configuration.source_format", "enum", enum(["CSV", "GOOGLE_SHEETS", "NEWLINE_DELIMITED_JSON", "AVRO", "ICEBERG", "DATASTORE_BACKUP", "PARQUET", "ORC", "BIGTABLE", "DELTA_LAKE"]), _S + "bigquery/resource_bigquery_table.go"),
    ("google_bigquery_table", "external_data_configuration.compression", "enum", enum(["NONE", "GZIP"]), _S + "bigquery/resource_bigquery_table.go"),
    ("google_bigquery_table", "external_data_configuration.metadata_cache_mode", "enum", enum(["AUTOMATIC", "MANUAL"]), _S + "bigquery/resource_bigquery_table.go"),
    ("google_bigquery_table", "time_partitioning.type", "enum", enum(["DAY", "HOUR", "MONTH", "YEAR"]), _S + "bigquery/resource_bigquery_table.go"),
    ("google_logging_metric", "metric_descriptor.metric_kind", "enum", enum(["DELTA", "GAUGE", "CUMULATIVE"]), _S + "logging/resource_logging_metric.go"),
    ("google_logging_metric", "metric_descriptor.value_type", "enum", enum(["BOOL", "INT64", "DOUBLE", "STRING", "DISTRIBUTION", "MONEY"]), _S + "logging/resource_logging_metric.go"),
    ("google_logging_metric", "metric_descriptor.labels.value_type", "enum", enum(["BOOL", "INT64", "STRING", ""]), _S + "logging/resource_logging_metric.go"),
    ("google_monitoring_alert_policy", "combiner", "enum", enum(["AND", "OR", "AND_WITH_MATCHING_RESOURCE"]), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "severity", "enum", enum(["CRITICAL", "ERROR", "WARNING", ""]), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_threshold.comparison", "enum", enum(COMPARISONS), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_threshold.aggregations.per_series_aligner", "enum", enum(ALIGNERS), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_threshold.aggregations.cross_series_reducer", "enum", enum(REDUCERS), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_threshold.evaluation_missing_data", "enum", enum(MISSING_DATA), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_absent.aggregations.per_series_aligner", "enum", enum(ALIGNERS), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_monitoring_alert_policy", "conditions.condition_absent.aggregations.cross_series_reducer", "enum", enum(REDUCERS), _S + "monitoring/resource_monitoring_alert_policy.go"),
    ("google_storage_bucket_object", "deletion_policy", "enum", enum(["ABANDON"]), _S + "storage/resource_storage_bucket_object.go"),
    ("google_monitoring_dashboard", "dashboard_json", "json", _json, _S + "monitoring/resource_monitoring_dashboard.go StringIsJSON"),
] + [
    (kind, "member", "iam-member", _iam_member, "google/tpgiamresource/resource_iam_member.go validateIAMMember")
    for kind in IAM_MEMBER_TYPES
]  # fmt: skip

RULES: dict[str, list[Rule]] = {}
for _resource, _path, _kind, _check, _source in _TABLE:
    RULES.setdefault(_resource, []).append(Rule(_resource, _path, _kind, f"{V650} {_source}", _check))

# Block-level constraints: (resource, block path or "" for the top, kind, names, source).
# ExactlyOneOf: exactly one of the names is set in each instance of the block; ConflictsWith: at
# most one; RequiredWith: all or none.
GROUPS: list[tuple[str, str, str, tuple[str, ...], str]] = [
    ("google_secret_manager_secret", "replication", "exactly-one-of", ("auto", "user_managed"), _S + "secretmanager/resource_secret_manager_secret.go"),
    ("google_secret_manager_secret", "", "required-with", ("rotation", "topics"), _S + "secretmanager/resource_secret_manager_secret.go"),
    ("google_iam_workload_identity_pool_provider", "", "exactly-one-of", ("aws", "oidc", "saml", "x509"), _S + "iambeta/resource_iam_workload_identity_pool_provider.go"),
    ("google_pubsub_subscription", "", "conflicts-with", ("push_config", "bigquery_config", "cloud_storage_config"), _S + "pubsub/resource_pubsub_subscription.go"),
    ("google_artifact_registry_repository", "", "conflicts-with", ("remote_repository_config", "virtual_repository_config"), _S + "artifactregistry/resource_artifact_registry_repository.go"),
    ("google_storage_bucket_object", "", "exactly-one-of", ("content", "source"), _S + "storage/resource_storage_bucket_object.go"),
    ("google_storage_bucket_object", "", "conflicts-with", ("content_type", "force_empty_content_type"), _S + "storage/resource_storage_bucket_object.go"),
    ("google_storage_bucket_object", "", "conflicts-with", ("kms_key_name", "customer_encryption"), _S + "storage/resource_storage_bucket_object.go"),
    ("google_storage_bucket_object", "", "conflicts-with", ("retention", "event_based_hold"), _S + "storage/resource_storage_bucket_object.go"),
    ("google_bigquery_table", "", "conflicts-with", ("require_partition_filter", "time_partitioning.require_partition_filter"), _S + "bigquery/resource_bigquery_table.go"),
    ("google_bigquery_table", "external_data_configuration", "conflicts-with", ("object_metadata", "source_format"), _S + "bigquery/resource_bigquery_table.go"),
]  # fmt: skip

# Resource types with no validator in the provider beyond the schema (checked at v6.50.0), so that
# a type missing from both tables is noticed rather than silently unchecked.
NO_VALIDATORS = frozenset({
    "google_eventarc_trigger", "google_project_service_identity", "google_project_iam_audit_config",
    "google_pubsub_topic", "google_secret_manager_secret", "google_bigquery_dataset_iam_member",
})  # fmt: skip


def covered_types() -> frozenset[str]:
    return frozenset(RULES) | {g[0] for g in GROUPS} | NO_VALIDATORS


def _group_set(instance: dict[str, Any], name: str) -> bool:
    return any(_set(value) for _, value in values_at(instance, name))


def validate(resource_type: str, address: str, config: Any) -> list[Violation]:
    """Every provider-validator violation in one resource's configuration (or planned value)."""
    if not isinstance(config, dict):
        return []
    found: list[Violation] = []
    for rule in RULES.get(resource_type, ()):
        for where, value in values_at(config, rule.path):
            problem = rule.check(where, value)
            if problem:
                found.append(Violation(rule.name, address, problem))
    for kind_type, block, kind, group, _source in GROUPS:
        if kind_type != resource_type:
            continue
        instances = [config] if not block else [value for _, value in values_at(config, block)]
        for instance in instances:
            if not isinstance(instance, dict):
                continue
            if any(type(instance.get(name)).__name__ == "ExtType" for name in group):
                continue  # not known yet (validate before plan): the provider decides later too
            present = [name for name in group if _group_set(instance, name)]
            rule = f"provider/{resource_type}/{block or '.'}/{kind}"
            where = block or "the resource"
            if kind == "exactly-one-of" and len(present) != 1:
                found.append(Violation(rule, address, f"{where}: exactly one of {list(group)} must be set, found {present}"))
            elif kind == "conflicts-with" and len(present) > 1:
                found.append(Violation(rule, address, f"{where}: {present} conflict, set at most one of them"))
            elif kind == "required-with" and 0 < len(present) < len(group):
                found.append(Violation(rule, address, f"{where}: {list(group)} must be set together, found only {present}"))
    return found
