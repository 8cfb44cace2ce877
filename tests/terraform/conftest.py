"""Fixtures of the Terraform tests: the plans Terraform itself computed for dev and prod.

``scripts/tfcheck.sh plan`` runs the real Terraform binary (init, validate, plan on an empty
state, show -json) against a stand-in google provider that serves the published schema of
hashicorp/google 6.50.0 (tools/tfcheck/google_standin.py, a fake named as such: the real
provider cannot be downloaded here). ``make terraform-check`` computes the plans once and points
``SUNRISE_TFCHECK_PLANS`` at them; otherwise the fixture computes them into a temporary folder.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TFCHECK = REPO / "scripts" / "tfcheck.sh"
ENVIRONMENTS = ("dev", "prod")
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"


def run_tfcheck(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TFCHECK), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


DEPENDABOT = REPO / ".github" / "dependabot.yml"


def load_workflow() -> dict[str, Any]:
    """The deploy workflow as a document (see :func:`load_yaml`)."""
    return load_yaml(WORKFLOW)


@functools.cache
def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML file of .github as a document, parsed by ruamel.yaml (YAML 1.2: ``on`` stays a string)
    from the tool environment: the workspace has no YAML parser, and check-jsonschema brings one."""
    result = run_tfcheck("env")
    if result.returncode != 0:
        raise RuntimeError(f"scripts/tfcheck.sh env failed: {result.stderr[-2000:]}")
    python = Path(os.environ.get("TFCHECK_VENV", REPO / ".tfcheck-venv")) / "bin" / "python"
    dump = subprocess.run(
        [str(python), "-c",
         "import json, sys; from ruamel.yaml import YAML; "
         "print(json.dumps(YAML(typ='safe').load(open(sys.argv[1]))))", str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(dump.stdout)


@pytest.fixture(scope="session")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("SUNRISE_TFCHECK_PLANS")
    if given:
        folder = Path(given)
        missing = [e for e in ENVIRONMENTS if not (folder / f"plan-{e}.json").is_file()]
        if missing:
            raise FileNotFoundError(f"SUNRISE_TFCHECK_PLANS={given} has no plan for {missing}")
        return folder
    folder = tmp_path_factory.mktemp("plans")
    result = run_tfcheck("plan", str(folder))
    if result.returncode != 0:
        pytest.fail(f"scripts/tfcheck.sh plan failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return folder


@pytest.fixture(scope="session")
def plans(plan_dir: Path) -> dict[str, dict[str, Any]]:
    """``terraform show -json`` of each environment's plan, by environment."""
    return {e: json.loads((plan_dir / f"plan-{e}.json").read_text()) for e in ENVIRONMENTS}
