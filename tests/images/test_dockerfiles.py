"""Static check that no service image installs the dev stack (libs/devstack) or the CLI (issue 17,
"Must show" 2), from the Dockerfiles' install steps and the lock file they install from.

A service image installs what its Dockerfile copies and ``uv sync --package <service>`` installs:
that service's dependency closure in uv.lock. So: no Dockerfile copies libs/devstack, cli/ or the
whole repository, every ``uv sync`` is of its own service only, and that service's closure in
uv.lock holds neither ``sunrise-devstack`` nor ``sunrise-cli``. tests/images/test_images_boot.py
builds the environments and checks the installed distributions too (slow).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sunrise_common import names
from tests.terraform.test_terraform import service_instructions

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_DISTS = {"sunrise-devstack", "sunrise-cli"}
FORBIDDEN_PATHS = ("libs/devstack", "cli")


def _project(service: str) -> str:
    return tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["name"]


def _closure(lock: dict, root: str) -> set[str]:
    """Distributions ``uv sync --no-dev --package root`` installs: root and its dependencies,
    transitively (optional extras and dev groups left out, as --no-dev does)."""
    deps = {p["name"]: {d["name"] for d in p.get("dependencies", [])} for p in lock["package"]}
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return seen


@pytest.fixture(scope="module")
def lock() -> dict:
    return tomllib.loads((REPO / "uv.lock").read_text())


def test_the_lock_file_knows_the_dev_stack_and_the_cli_needs_it(lock: dict) -> None:
    assert FORBIDDEN_DISTS <= {p["name"] for p in lock["package"]}
    assert "sunrise-devstack" in _closure(lock, "sunrise-cli")  # the check below is not vacuous
    assert "sunrise-common" in _closure(lock, "sunrise-devstack")


@pytest.mark.parametrize("service", names.SERVICES)
def test_no_service_image_installs_the_dev_stack_or_the_cli(service: str, lock: dict) -> None:
    steps = service_instructions(service)
    copied = {src.rstrip("/") for keyword, args in steps if keyword == "COPY" and "--from=" not in args
              for src in args.split()[:-1]}  # fmt: skip
    assert not {src for src in copied if src in {".", "libs"} or src.startswith(FORBIDDEN_PATHS)}, copied
    syncs = [args for keyword, args in steps if keyword == "RUN" and args.startswith("uv sync")]
    assert syncs, "no uv sync step"
    project = _project(service)
    for command in syncs:
        words = command.split()
        assert "--all-packages" not in words and words.count("--package") == 1, command
        assert words[words.index("--package") + 1] == project, command
    installed = _closure(lock, project)
    assert {project, "sunrise-common"} <= installed
    assert not installed & FORBIDDEN_DISTS, f"{service}'s image would install {sorted(installed & FORBIDDEN_DISTS)}"


def test_the_build_context_leaves_out_every_local_virtualenv_and_tool_state() -> None:
    # The context is the repository root: each of these holds thousands of files (or state) that
    # no image needs, and .tfcheck-venv alone is hundreds of MB.
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".checkov-venv", ".tfcheck-venv", ".tfcheck", ".git", "data"} <= ignored
