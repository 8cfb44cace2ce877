"""The deploy workflow, audited offline: schema validity, zizmor, pinned actions, no injection."""

from __future__ import annotations

import functools
import re
from typing import Any

from .conftest import DEPENDABOT, REPO, WORKFLOW, load_workflow, load_yaml, run_tfcheck


@functools.cache
def steps() -> list[tuple[str, dict[str, Any]]]:
    """(job, step) pairs of the workflow."""
    return [(job, step) for job, body in load_workflow()["jobs"].items() for step in body["steps"]]


def test_the_workflow_is_schema_valid_and_zizmor_finds_nothing() -> None:
    result = run_tfcheck("workflow", timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "No findings to report" in output


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_tag() -> None:
    uses = re.findall(r"uses: (\S+)(.*)", WORKFLOW.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{action}: no tag comment"


def test_scripts_take_values_from_the_environment_not_from_templates() -> None:
    for job, step in steps():
        assert "${{" not in step.get("run", ""), f"{job}: template expansion inside a script"


def test_checkouts_do_not_persist_credentials() -> None:
    checkouts = [s for _, s in steps() if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    assert all(s.get("with", {}).get("persist-credentials") is False for s in checkouts)


def test_the_test_job_installs_what_make_test_needs_and_runs_terraform_check() -> None:
    test_steps = [s for job, s in steps() if job == "test"]
    runs = " ".join(s.get("run", "") for s in test_steps)
    assert "make test" in runs and "make terraform-check" in runs
    assert "openjdk" in runs
    gcloud = [s for s in test_steps if s.get("uses", "").startswith("google-github-actions/setup-gcloud@")]
    components = gcloud[0]["with"]["install_components"]
    assert "pubsub-emulator" in components and "cloud-firestore-emulator" in components
    assert any(s.get("uses", "").startswith("hashicorp/setup-terraform@") for s in test_steps)


def test_dependabot_proposes_updates_of_the_pinned_base_image_and_actions() -> None:
    updates = {u["package-ecosystem"]: u for u in load_yaml(DEPENDABOT)["updates"]}
    assert {"docker", "github-actions"} <= set(updates)
    # Dependabot reads the Dockerfiles of the folder it is given: the one services/Dockerfile.
    docker_folder = REPO / updates["docker"]["directory"].lstrip("/")
    assert (docker_folder / "Dockerfile").is_file(), docker_folder
    assert "@sha256:" in (docker_folder / "Dockerfile").read_text()


def _run_of(job: str, name: str) -> str:
    matches = [s.get("run", "") for j, s in steps() if j == job and s.get("name") == name]
    if len(matches) != 1:
        raise LookupError(f"{job}: {len(matches)} steps named {name!r}")
    return matches[0]


def test_prod_promotes_devs_manifest_unchanged_and_checks_its_digest() -> None:
    # With one single-platform source, `imagetools create` by default wraps the manifest in a new
    # index, whose digest is not dev's (docs.docker.com, buildx imagetools create: --prefer-index);
    # --prefer-index=false copies the manifest as it is, so prod gets dev's digest.
    promote = _run_of("promote", "Copy dev's image of this commit by digest")
    assert re.search(r"imagetools create --prefer-index=false\b", promote), promote
    assert '"${DEV_REGISTRY}/${name}@${digest}"' in promote  # the source is dev's digest, not a tag
    assert '[[ "${copied}" == "${digest}" ]]' in promote  # and prod is checked to hold that digest
    assert not re.search(r"docker (buildx )?build\s", promote)  # nothing is rebuilt
    jobs = load_workflow()["jobs"]
    assert jobs["build"]["if"] == "needs.target.outputs.environment == 'dev'"  # prod never builds


def test_every_environment_deploys_by_digest() -> None:
    deploy = _run_of("deploy", "Deploy the image of this commit by digest")
    assert '--image "${REGISTRY}/${name}@${digest}"' in deploy
    assert ':${GITHUB_SHA}"' in deploy  # the digest of this commit's tag, in this environment's registry
