"""Images that boot: each service's runtime environment, built exactly as its Dockerfile builds it.

No Docker engine exists here, so the Dockerfile is executed by hand: its build stage's ENV,
WORKDIR, COPY and ``uv sync`` steps are replayed into a fresh folder (``/src`` and ``/app`` mapped
under it), and its CMD is run from the resulting ``/app/.venv`` alone: working directory
``/app``, no workspace sources on the path, only the image's PATH. The four services started
that way then process a night end to end on the embedded backend, delivered by the local router
(the stand-in for Eventarc). What this proves: each image's dependency set and entry point. What it
does not: the base image's system libraries (python:3.11.14-slim-bookworm, pinned by digest), which only a real build shows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from sunrise_cli.runner import upload_example
from sunrise_cli.stack import Stack, wait_until
from sunrise_common import names
from sunrise_devstack import status
from sunrise_common.service import Context
from tests.e2e.conftest import stack_settings
from tests.terraform.test_terraform import service_instructions

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Distributions only the CLI needs (training, reports, the dev stack): no service image may carry them.
CLI_ONLY = {"scikit-learn", "matplotlib", "sunrise-cli", "sunrise-devstack"}
# Science libraries a service imports only if its own code does (ingest copies bytes: it needs neither).
NOT_IMPORTED = {"ingest": {"scipy", "pyarrow"}, "sunrise_prep": {"pyarrow"}, "psg_prep": {"pyarrow"}, "sunalgo": set()}


def uv_binary() -> str:
    """The uv on PATH (make install puts it there from PyPI)."""
    found = shutil.which("uv")
    if found is None:
        raise FileNotFoundError("uv is not on PATH: pip install uv==0.13.9")
    return found


def build_stage(service: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The build stage's and the runtime stage's instructions of services/Dockerfile for
    ``--build-arg SERVICE=service`` (the argument substituted where Docker substitutes it)."""
    steps = service_instructions(service)
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    if len(starts) != 2:
        raise ValueError(f"services/Dockerfile: expected a build and a runtime stage, found {len(starts)} FROM")
    return steps[starts[0] + 1 : starts[1]], steps[starts[1] + 1 :]


def env_pairs(arguments: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(arguments))


def build_image_env(service: str, root: Path) -> Path:
    """Replay the Dockerfile's build stage under ``root``; returns the mapped ``/app/.venv``."""
    build, _ = build_stage(service)

    def mapped(path: str) -> Path:
        if not path.startswith("/"):
            raise ValueError(f"{service}: relative container path {path!r}")
        return root / path.lstrip("/")

    # This machine's settings for reaching PyPI (index, certificates), as a build host would
    # have them; not the workspace's virtualenv.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    env["SERVICE"] = service  # the build argument, which RUN sees as a variable
    workdir = root
    for keyword, arguments in build:
        if keyword == "ENV":
            for key, value in env_pairs(arguments).items():
                env[key] = str(mapped(value)) if value.startswith("/") else value
        elif keyword == "WORKDIR":
            workdir = mapped(arguments)
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            target = workdir / destination
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    # The build context: what .dockerignore would leave out never reaches the image.
                    shutil.copytree(src, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))  # fmt: skip
                else:
                    dest = target / src.name if destination.endswith("/") else target
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
        elif keyword == "RUN":
            if re.fullmatch(r"pip install (--no-cache-dir )?uv==[\d.]+", arguments):
                # uv is already installed here; check it is the version the image pins.
                pinned = arguments.rsplit("==", 1)[1]
                version = subprocess.run([uv_binary(), "--version"], capture_output=True,
                                         text=True, check=True).stdout.split()[1]  # fmt: skip
                if version != pinned:
                    raise RuntimeError(f"the image pins uv {pinned}, this machine has {version}")
                continue
            command = arguments.replace("uv sync", shlex.quote(uv_binary()) + " sync", 1)
            result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=env,
                                    capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"{service}: RUN {arguments} failed:\n{result.stderr[-3000:]}")
        elif keyword == "SHELL":
            if json.loads(arguments)[:3] != ["/bin/bash", "-o", "pipefail"]:
                raise ValueError(f"{service}: SHELL {arguments} is not replayed here")
        elif keyword not in {"ARG", "LABEL"}:
            raise ValueError(f"{service}: build-stage instruction {keyword} is not replayed here")
    venv = Path(env["UV_PROJECT_ENVIRONMENT"])
    if not (venv / "bin" / "python").exists():
        raise RuntimeError(f"{service}: no environment at {venv}")
    return venv


def runtime_command(service: str, root: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    """The image's CMD, PATH and WORKDIR, mapped under ``root`` (bound to loopback, not 0.0.0.0)."""
    _, runtime = build_stage(service)
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    workdir = root
    cmd: list[str] = []
    for keyword, arguments in runtime:
        if keyword == "ENV":
            for key, value in env_pairs(arguments).items():
                value = value.replace("$PATH", env["PATH"]).replace("/app/", f"{root}/app/")
                env[key] = value
        elif keyword == "WORKDIR":
            workdir = root / arguments.lstrip("/")
        elif keyword == "CMD":

            cmd = json.loads(arguments)
    if not cmd:
        raise ValueError(f"{service}: no CMD")
    cmd = [part.replace("0.0.0.0", "127.0.0.1") for part in cmd]
    env["PORT"] = str(port)
    return cmd, env, workdir


@pytest.fixture(scope="module")
def image_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for service in names.SERVICES:
        root = tmp_path_factory.mktemp(f"image-{service}")
        build_image_env(service, root)
        roots[service] = root
    return roots


def distributions(venv: Path) -> set[str]:
    site = next((venv / "lib").glob("python3.*/site-packages"))
    found = set()
    for meta in site.glob("*.dist-info"):
        name = meta.name[: -len(".dist-info")].rsplit("-", 1)[0]
        found.add(re.sub(r"[-_.]+", "-", name).lower())
    return found


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


@pytest.mark.parametrize("service", names.SERVICES)
def test_each_image_holds_its_service_and_none_of_the_clis_dependencies(
    image_roots: dict[str, Path], service: str
) -> None:
    root = image_roots[service]
    venv = root / "app" / ".venv"
    dists = distributions(venv)
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]["name"]
    assert {project, "sunrise-common", "uvicorn", "fastapi"} <= dists
    assert not dists & CLI_ONLY, f"{service} carries {sorted(dists & CLI_ONLY)}"
    assert not dists & NOT_IMPORTED[service], f"{service} carries {sorted(dists & NOT_IMPORTED[service])}, never imported"
    others = {f"sunrise-{s.replace('_', '-')}" for s in names.SERVICES} - {project}
    assert not dists & others, f"{service} carries other services: {sorted(dists & others)}"
    # Installed as wheels, imported from the image's site-packages, from /app, in isolated mode.
    cmd, env, workdir = runtime_command(service, root, 0)
    where = subprocess.run(
        ["python", "-I", "-c", f"import {service}, sunrise_common; print({service}.__file__); print(sunrise_common.__file__)"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    for line in where.stdout.split():
        assert line.startswith(str(venv)), f"{service} imports {line}, not from its image"
    print(f"\n{service}: environment {size_mib(venv):.0f} MiB, {len(dists)} distributions")


class ImageStack(Stack):
    """The local stack with each service started from its image environment and CMD."""

    def __init__(self, settings, log_dir: Path, roots: dict[str, Path]) -> None:  # noqa: ANN001
        super().__init__(settings, log_dir)
        self.roots = roots

    def start_service(self, service: str) -> None:
        from urllib.parse import urlparse

        port = urlparse(self.settings.service_url(service)).port
        cmd, env, workdir = runtime_command(service, self.roots[service], port)
        # The image's environment plus the deployment's settings, nothing of this process.
        env.update({k: v for k, v in self._env().items() if k.startswith("SUNRISE_")})
        env["HOME"] = str(workdir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{service}.log", "ab")
        self.procs[service] = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_the_four_images_process_a_night_end_to_end(image_roots: dict[str, Path], tmp_path: Path) -> None:
    settings = stack_settings(tmp_path)
    ctx = Context.from_settings(settings)
    for logical in names.BUCKETS:
        ctx.storage.ensure_bucket(settings.bucket(logical))
    stack = ImageStack(settings, tmp_path / "logs", image_roots)
    stack.start(timeout=120)
    try:
        upload_example(ctx, tmp_path / "example", hours=1.0, seed=5)
        ((night_id, doc),) = wait_until(
            lambda: (list(ctx.state.list("nights")) if status.all_done(ctx.state) and list(ctx.state.list("nights")) else None),
            240, "the night to be processed by the four image environments",
        )  # fmt: skip
    finally:
        stack.stop()
    for stage in ("ingest", "sunrise_prep", "psg_prep", "sunalgo"):
        assert doc["stages"][stage]["state"] == "done", (stage, doc["stages"][stage])
    prefix = doc["stages"]["sunalgo"]["outputs"]["prefix"]
    results = {info.name for info in ctx.storage.list(settings.bucket("results"))}
    assert {prefix + "scores.json", prefix + "_MANIFEST.json"} <= results
