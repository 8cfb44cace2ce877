"""The list of services is ``names.SERVICES``; every place that repeats it agrees with it.

Python code takes the list from ``names.SERVICES`` (settings, the CLI's stack launcher, the local
router). Files that cannot import Python repeat it: Terraform (parsed with python-hcl2), the
deploy workflow's build and deploy matrices (parsed as YAML), the workspace's pyproject files and
the ``services/`` folders. docs/adding-a-service.md lists the steps of adding one.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import hcl2
import pytest

from sunrise_common import names
from sunrise_common.settings import DEFAULT_PORTS, Settings
from tests.terraform.conftest import load_workflow

REPO = Path(__file__).resolve().parents[1]
SERVICES = list(names.SERVICES)


def dashed(service: str) -> str:
    return service.replace("_", "-")


def hcl(relative: str) -> dict[str, Any]:
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with (REPO / "terraform" / relative).open() as handle:
        return hcl2.load(handle, serialization_options=options)


def tf_local(file_name: str, name: str) -> Any:
    (value,) = [block[name] for block in hcl(file_name).get("locals", []) if name in block]
    return value


def test_settings_have_a_port_and_a_url_per_service():
    assert list(DEFAULT_PORTS) == SERVICES
    # algorithm_url is not one of ours: an external algorithm service sunalgo may call (docs/algorithms.md).
    assert [name for name in Settings.model_fields if name.endswith("_url") and name != "algorithm_url"] == [
        f"{s}_url" for s in SERVICES]


def test_the_stack_launcher_starts_every_service_and_only_those():
    from sunrise_cli.stack import SERVICE_APPS

    assert list(SERVICE_APPS) == SERVICES
    for service, app in SERVICE_APPS.items():
        module = app.split(":")[0]
        assert (REPO / "services" / service / Path(*module.split("."))).with_suffix(".py").is_file(), app


def test_each_service_is_a_folder_with_a_package_and_a_workspace_entry():
    assert sorted(p.name for p in (REPO / "services").iterdir() if (p / "pyproject.toml").is_file()) == sorted(SERVICES)
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    cli = tomllib.loads((REPO / "cli" / "pyproject.toml").read_text())
    for service in SERVICES:
        folder = REPO / "services" / service
        package = f"sunrise-{dashed(service)}"
        assert tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"] == package
        assert (folder / service / "main.py").is_file()  # one Dockerfile for all: services/Dockerfile
        for project in (root, cli):
            assert package in project["project"]["dependencies"], f"{project['project']['name']} lacks {package}"
            assert project["tool"]["uv"]["sources"][package] == {"workspace": True}


def test_the_service_registry_file_is_names_services_as_data():
    written = json.loads((REPO / "terraform" / "services.json").read_text())
    assert written == names.service_registry(), "run: python -m sunrise_common.names > terraform/services.json"
    assert [s["key"] for s in written["services"]] == SERVICES
    for service in written["services"]:
        folder = REPO / "services" / service["key"]
        assert tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"] == service["package"]
        module, _ = service["app"].split(":")
        assert (folder / Path(*module.split("."))).with_suffix(".py").is_file(), service["app"]


def test_terraform_reads_the_registry_and_sizes_and_scales_each_service():
    assert "jsondecode(file(\"${path.module}/services.json\"))" in tf_local("locals.tf", "services")
    assert set(tf_local("run.tf", "service_resources")) == set(SERVICES)
    (scaling,) = [b["service_scaling"] for b in hcl("variables.tf")["variable"] if "service_scaling" in b]
    assert list(scaling["default"]) == SERVICES
    assert scaling["validation"][0]["condition"] == "${toset(keys(var.service_scaling)) == toset(keys(local.services))}"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_each_environment_scales_every_service(environment):
    assert list(hcl(f"environments/{environment}.tfvars")["service_scaling"]) == SERVICES


def test_the_workflow_reads_the_registry_for_every_matrix():
    # Parsed, so a service named only in a comment does not count.
    jobs = load_workflow()["jobs"]
    (read,) = [s["run"] for s in jobs["services"]["steps"] if "run" in s]
    assert "jq -c '[.services[].key]' terraform/services.json" in read
    for job in ("build", "promote", "deploy"):
        assert jobs[job]["strategy"]["matrix"]["service"] == "${{ fromJSON(needs.services.outputs.services) }}"
        assert "services" in jobs[job]["needs"]


def test_every_file_the_checklist_for_adding_a_service_names_exists():
    text = (REPO / "docs" / "adding-a-service.md").read_text()
    named = {p for p in re.findall(r"`([\w./-]+\.(?:py|toml|tf|tfvars|yml|md)|[\w./-]+/Dockerfile)`", text)
             if "newstage" not in p}
    assert len(named) > 20, sorted(named)
    missing = sorted(p for p in named if not (REPO / p).exists() and not (REPO / "terraform" / p).exists())
    assert not missing, f"docs/adding-a-service.md names files that do not exist: {missing}"
