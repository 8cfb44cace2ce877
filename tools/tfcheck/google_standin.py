"""A schema-faithful stand-in for the hashicorp/google (and google-beta) Terraform provider.

FAKE, named as such: the real provider binary cannot be downloaded on these machines. This
plugin speaks Terraform's plugin protocol 6 (gRPC, through the PyPI package ``tf``'s generated
stubs and handshake) and answers with the *published* schema of hashicorp/google 6.50.0
(``shared/reference/terraform/google-6.50.0.schema.json.gz``, the output of
``terraform providers schema -json``). Terraform core then does what it does with the real
provider: it checks every attribute name, type, required attribute, block nesting and
``min_items``/``max_items`` of ``terraform/`` against that schema, resolves references,
``for_each`` and ``dynamic`` blocks, and plans.

What the stand-in decides itself, and how:

- ``PlanResourceChange`` (create on an empty state): the planned value is Terraform's proposed
  value with every *computed* attribute that the configuration leaves null marked unknown — what
  the real provider reports as "(known after apply)". Provider-side defaults, diffs suppressed by
  the provider and plan-time API look-ups are not reproduced.
- ``ReadDataSource``: ``google_project`` answers project number ``123456789012`` and
  ``google_storage_project_service_account`` the Cloud Storage service agent of that number;
  other computed attributes stay null.
- ``ApplyResourceChange`` and ``ImportResourceState`` refuse: only the real provider can apply.
- ``ValidateResourceConfig``: the provider's own validators (enums, regexes, lengths,
  ``ExactlyOneOf``/``ConflictsWith``/``RequiredWith``) for the resource types terraform/ uses,
  written as data in ``provider_rules.py`` from the provider's v6.50.0 source; values unknown at
  that point are skipped, as the provider does. Each error names its rule. What only the API
  enforces is checked on the plan afterwards (``api_rules.py``, ``check_plan.py``).

The provider's own configuration block is not part of the published schema file: its attributes
are written here from the provider's documentation ("Provider reference", all optional). The
google-beta provider is served with the same schema plus ``google_project_service_identity``,
which exists only in google-beta; that one schema is written from its documentation
(arguments ``service`` required, ``project`` optional; attributes ``id``, ``email``, ``member``;
a ``timeouts`` block with ``create``).

Usage (Terraform starts it; the make target installs a wrapper into a filesystem mirror)::

    python google_standin.py --schema google-6.50.0.schema.json.gz --flavour google
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import sys
import tempfile
from concurrent import futures
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provider_rules  # noqa: E402  (beside this file, not a package)

PROVIDER_KEY = "registry.terraform.io/hashicorp/google"
UNKNOWN = msgpack.ExtType(0, b"")

# From the provider documentation's "Provider reference" page (6.x): every argument is optional.
PROVIDER_CONFIG_ATTRIBUTES: dict[str, Any] = {
    "access_token": "string",
    "add_terraform_attribution_label": "bool",
    "billing_project": "string",
    "credentials": "string",
    "default_labels": ["map", "string"],
    "impersonate_service_account": "string",
    "impersonate_service_account_delegates": ["list", "string"],
    "project": "string",
    "region": "string",
    "request_reason": "string",
    "request_timeout": "string",
    "scopes": ["list", "string"],
    "terraform_attribution_label_addition_strategy": "string",
    "universe_domain": "string",
    "user_project_override": "bool",
    "zone": "string",
}
PROVIDER_CONFIG_BLOCKS = {"batching": {"send_after": "string", "enable_batching": "bool"}}

# google-beta only, from the documentation of google_project_service_identity.
PROJECT_SERVICE_IDENTITY = {
    "version": 0,
    "block": {
        "attributes": {
            "email": {"type": "string", "computed": True},
            "id": {"type": "string", "optional": True, "computed": True},
            "member": {"type": "string", "computed": True},
            "project": {"type": "string", "optional": True, "computed": True},
            "service": {"type": "string", "required": True},
        },
        "block_types": {
            "timeouts": {
                "nesting_mode": "single",
                "block": {"attributes": {"create": {"type": "string", "optional": True}}},
            }
        },
    },
}

PROJECT_NUMBER = "123456789012"

# Nested blocks that the provider declares Optional + Computed (mmv1 `default_from_api: true`).
# The protocol's schema cannot say that a block is computed, so the published schema does not
# either; SDKv2 plans such a block, when the configuration omits it, as unknown ("known after
# apply"). Listed per resource type, for the resources terraform/ uses and reads back.
COMPUTED_BLOCKS = {
    # Eventarc fills in the Pub/Sub transport (topic, subscription) of every trigger.
    "google_eventarc_trigger": {"transport"},
}


def load_schemas(schema_file: Path, flavour: str) -> dict[str, Any]:
    """The provider's resource and data source schemas, as in ``terraform providers schema -json``."""
    with gzip.open(schema_file, "rt") as handle:
        published = json.load(handle)
    try:
        google = published["provider_schemas"][PROVIDER_KEY]
    except KeyError as exc:
        raise ValueError(f"{schema_file} has no schema for {PROVIDER_KEY}") from exc
    provider = {
        "version": 0,
        "block": {
            "attributes": {
                name: {"type": cty, "optional": True}
                for name, cty in PROVIDER_CONFIG_ATTRIBUTES.items()
            },
            "block_types": {
                name: {
                    "nesting_mode": "list",
                    "max_items": 1,
                    "block": {
                        "attributes": {
                            a: {"type": t, "optional": True} for a, t in attrs.items()
                        }
                    },
                }
                for name, attrs in PROVIDER_CONFIG_BLOCKS.items()
            },
        },
    }
    resources = dict(google["resource_schemas"])
    if flavour == "google-beta":
        resources["google_project_service_identity"] = PROJECT_SERVICE_IDENTITY
    elif flavour != "google":
        raise ValueError(f"flavour must be google or google-beta, not {flavour!r}")
    return {
        "provider": provider,
        "resources": resources,
        "data_sources": dict(google["data_source_schemas"]),
    }


# ------------------------------------------------------------------------------------------
# Schema JSON -> protocol messages
# ------------------------------------------------------------------------------------------


def _block_pb(pb: Any, block: dict[str, Any]) -> Any:
    nesting = {
        "single": pb.Schema.NestedBlock.SINGLE,
        "list": pb.Schema.NestedBlock.LIST,
        "set": pb.Schema.NestedBlock.SET,
        "map": pb.Schema.NestedBlock.MAP,
        "group": pb.Schema.NestedBlock.GROUP,
    }
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(spec["type"]).encode(),
            required=bool(spec.get("required")),
            optional=bool(spec.get("optional")),
            computed=bool(spec.get("computed")),
            sensitive=bool(spec.get("sensitive")),
            deprecated=bool(spec.get("deprecated")),
        )
        for name, spec in sorted(block.get("attributes", {}).items())
    ]
    block_types = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_pb(pb, spec["block"]),
            nesting=nesting[spec["nesting_mode"]],
            min_items=int(spec.get("min_items", 0)),
            max_items=int(spec.get("max_items", 0)),
        )
        for name, spec in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=block_types)


def _schema_pb(pb: Any, schema: dict[str, Any]) -> Any:
    return pb.Schema(version=int(schema.get("version", 0)), block=_block_pb(pb, schema["block"]))


def schema_response(pb: Any, schemas: dict[str, Any]) -> Any:
    """The GetProviderSchema response (plan_destroy: Terraform may plan deletions with us)."""
    return pb.GetProviderSchema.Response(
        provider=_schema_pb(pb, schemas["provider"]),
        resource_schemas={k: _schema_pb(pb, v) for k, v in schemas["resources"].items()},
        data_source_schemas={k: _schema_pb(pb, v) for k, v in schemas["data_sources"].items()},
        server_capabilities=pb.ServerCapabilities(plan_destroy=True),
    )


# ------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------


def decode(value: Any) -> Any:
    """A DynamicValue as Python data; unknowns stay msgpack ExtType values and round-trip."""
    if value.msgpack:
        return msgpack.unpackb(value.msgpack, raw=False, strict_map_key=False)
    if value.json:
        return json.loads(value.json)
    return None


def encode(pb: Any, value: Any) -> Any:
    return pb.DynamicValue(msgpack=msgpack.packb(value, use_bin_type=True))


def plan_block(
    block: dict[str, Any], proposed: Any, prior: Any, computed_blocks: frozenset[str] = frozenset()
) -> Any:
    """Planned value of one block: computed attributes left null by the config become unknown.

    On an update a computed attribute keeps its prior value, as the real provider reports it.
    ``computed_blocks`` names the Optional + Computed nested blocks of this block
    (COMPUTED_BLOCKS): left empty by the configuration, they are planned unknown.
    """
    if proposed is None or isinstance(proposed, msgpack.ExtType):
        return proposed
    planned = dict(proposed)
    previous = prior if isinstance(prior, dict) else {}
    for name, spec in block.get("attributes", {}).items():
        if planned.get(name) is None and spec.get("computed"):
            planned[name] = previous.get(name) if previous.get(name) is not None else UNKNOWN
    for name, spec in block.get("block_types", {}).items():
        nested = spec["block"]
        value = planned.get(name)
        if name in computed_blocks and not value:
            planned[name] = previous.get(name) if previous.get(name) else UNKNOWN
        elif spec["nesting_mode"] == "single":
            planned[name] = plan_block(nested, value, None)
        elif isinstance(value, list):
            planned[name] = [plan_block(nested, element, None) for element in value]
    return planned


def read_data_source(type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Plausible answers of the two data sources terraform/ reads (project 123456789012)."""
    state = dict(config)
    if type_name == "google_project":
        project_id = config.get("project_id") or "standin-project"
        state.update(
            id=f"projects/{project_id}",
            number=PROJECT_NUMBER,
            project_id=project_id,
            name=project_id,
        )
    elif type_name == "google_storage_project_service_account":
        email = f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
        state.update(
            id=email,
            email_address=email,
            member=f"serviceAccount:{email}",
            project=config.get("project") or "standin-project",
        )
    else:
        state["id"] = state.get("id") or f"standin-{type_name}"
    return state


# ------------------------------------------------------------------------------------------
# The gRPC service
# ------------------------------------------------------------------------------------------


def make_servicer(pb: Any, rpc: Any, schemas: dict[str, Any], response_bytes: bytes) -> Any:
    def error(summary: str, detail: str = "") -> Any:
        return pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)

    class Servicer(rpc.ProviderServicer):
        def GetMetadata(self, request, context):  # noqa: N802 (protocol method names)
            return pb.GetMetadata.Response(
                server_capabilities=pb.ServerCapabilities(plan_destroy=True),
                resources=[
                    pb.GetMetadata.ResourceMetadata(type_name=name)
                    for name in schemas["resources"]
                ],
                data_sources=[
                    pb.GetMetadata.DataSourceMetadata(type_name=name)
                    for name in schemas["data_sources"]
                ],
            )

        def GetProviderSchema(self, request, context):  # noqa: N802
            return pb.GetProviderSchema.Response.FromString(response_bytes)

        def GetFunctions(self, request, context):  # noqa: N802
            return pb.GetFunctions.Response()

        def ValidateProviderConfig(self, request, context):  # noqa: N802
            return pb.ValidateProviderConfig.Response()

        def ValidateResourceConfig(self, request, context):  # noqa: N802
            config = decode(request.config)
            violations = provider_rules.validate(request.type_name, request.type_name, config)
            return pb.ValidateResourceConfig.Response(
                diagnostics=[error(f"[{v.rule}]", v.message) for v in violations]
            )

        def ValidateDataResourceConfig(self, request, context):  # noqa: N802
            return pb.ValidateDataResourceConfig.Response()

        def ConfigureProvider(self, request, context):  # noqa: N802
            return pb.ConfigureProvider.Response()

        def UpgradeResourceState(self, request, context):  # noqa: N802
            # Prior state written by this stand-in (or a real provider) is kept as it is.
            state = json.loads(request.raw_state.json) if request.raw_state.json else None
            return pb.UpgradeResourceState.Response(upgraded_state=encode(pb, state))

        def ReadResource(self, request, context):  # noqa: N802
            return pb.ReadResource.Response(
                new_state=request.current_state, private=request.private
            )

        def PlanResourceChange(self, request, context):  # noqa: N802
            proposed = decode(request.proposed_new_state)
            prior = decode(request.prior_state)
            block = schemas["resources"][request.type_name]["block"]
            computed = frozenset(COMPUTED_BLOCKS.get(request.type_name, ()))
            planned = plan_block(block, proposed, prior, computed)
            # As SDKv2 providers do: lets Terraform accept an unknown computed block.
            return pb.PlanResourceChange.Response(
                planned_state=encode(pb, planned), legacy_type_system=bool(computed)
            )

        def ApplyResourceChange(self, request, context):  # noqa: N802
            return pb.ApplyResourceChange.Response(
                diagnostics=[
                    error(
                        "stand-in provider cannot apply",
                        "This google provider is a schema-only stand-in for offline checks "
                        "(tools/tfcheck); run terraform apply with the real provider.",
                    )
                ]
            )

        def ImportResourceState(self, request, context):  # noqa: N802
            return pb.ImportResourceState.Response(
                diagnostics=[error("stand-in provider cannot import")]
            )

        def ReadDataSource(self, request, context):  # noqa: N802
            config = decode(request.config) or {}
            return pb.ReadDataSource.Response(
                state=encode(pb, read_data_source(request.type_name, config))
            )

        def StopProvider(self, request, context):  # noqa: N802
            return pb.StopProvider.Response()

    return Servicer()


def cached_schema_bytes(pb: Any, schema_file: Path, flavour: str, cache_dir: Path) -> bytes:
    """The serialized schema response, cached: converting 1,469 schemas takes seconds, and
    Terraform starts the plugin several times per command."""
    digest = hashlib.sha256(
        schema_file.read_bytes() + Path(__file__).read_bytes() + flavour.encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"schema-{flavour}-{digest}.pb"
    if cache.is_file():
        return cache.read_bytes()
    data = schema_response(pb, load_schemas(schema_file, flavour)).SerializeToString()
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename: two plugin processes may build the cache at the same time.
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, cache)
    return data


def serve(schema_file: Path, flavour: str, cache_dir: Path) -> None:
    """Serve the provider over a unix socket and print go-plugin's handshake line."""
    import grpc
    from tf.gen import grpc_controller_pb2 as controller_pb
    from tf.gen import grpc_controller_pb2_grpc as controller_rpc
    from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc
    from tf.gen import tfplugin_pb2 as pb
    from tf.gen import tfplugin_pb2_grpc as rpc
    from tf.runner import _self_signed_cert

    response_bytes = cached_schema_bytes(pb, schema_file, flavour, cache_dir)
    # Planning needs the JSON form of the resource blocks; loaded once per process.
    schemas = load_schemas(schema_file, flavour)

    stopped = {"flag": False}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_ProviderServicer_to_server(make_servicer(pb, rpc, schemas, response_bytes), server)

    class Controller(controller_rpc.GRPCControllerServicer):
        def Shutdown(self, request, context):  # noqa: N802
            stopped["flag"] = True
            return controller_pb.Empty()

    class Stdio(stdio_rpc.GRPCStdioServicer):
        def StreamStdio(self, request, context):  # noqa: N802
            return iter([])

    controller_rpc.add_GRPCControllerServicer_to_server(Controller(), server)
    stdio_rpc.add_GRPCStdioServicer_to_server(Stdio(), server)

    with tempfile.TemporaryDirectory() as tmp:
        socket_path = f"{tmp}/plugin.sock"
        chain, credentials = _self_signed_cert()
        server.add_secure_port(f"unix://{socket_path}", credentials)
        server.start()
        certificate = base64.b64encode(chain).decode().rstrip("=")
        print(f"1|6|unix|{socket_path}|grpc|{certificate}", flush=True)
        # Terraform ends a plugin with GRPCController.Shutdown (or by killing it).
        # wait_for_termination returns True when it timed out, i.e. the server still runs.
        while server.wait_for_termination(0.05):
            if stopped["flag"]:
                server.stop(grace=0)
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, required=True, help="google-6.50.0.schema.json.gz")
    parser.add_argument("--flavour", choices=("google", "google-beta"), required=True)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "tfcheck-schema-cache",
        help="where the serialized schema response is cached",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.schema.is_file():
        print(f"schema file {args.schema} does not exist", file=sys.stderr)
        return 2
    serve(args.schema, args.flavour, args.cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
