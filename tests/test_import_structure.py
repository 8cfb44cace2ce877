"""The import structure, read from the imports themselves (AST of every .py under services/,
libs/ and cli/; issue 17, "Must show" 1; issue 25, item 3):

- a service imports only the libraries (``sunrise_common``, ``sunrise_algo``, ``sunrise_night``), its
  own package and third-party distributions;
- ``sunrise_algo`` (the algorithm interface and the built-in algorithm) and ``sunrise_night`` (the
  Sunrise night preparation) import ``sunrise_common`` only;
- ``sunrise_common`` imports no service, no ``sunrise_cli`` and no ``sunrise_devstack`` (the dev
  stack never ships in a service image: tests/images/test_dockerfiles.py checks the images);
- ``sunrise_devstack`` imports ``sunrise_common`` only (no service, no CLI);
- nothing imports a service but the tests and the measurement harnesses (benchmarks, science,
  reliability, scripts), which exist to run the services' code: not the libraries, not the CLI
  (those harnesses are outside services/, libs/ and cli/, so every import scanned here counts);
- no library declares a service as a dependency (its pyproject.toml). The CLI does, and the root
  project: ``sunrise run`` starts the services with the CLI's interpreter (tests/test_services_list.py);
- no import cycle among first-party modules.

How an import is counted: for the direction rules above, every import anywhere in a file counts,
at module level or inside a function (a lazy import still needs the package in the image), but
not one under ``if TYPE_CHECKING:`` (never executed). For the cycle rule only imports executed
when the module loads count: module level, including ``try``/``if`` blocks at module level, but
not inside functions or classes' methods (a function-level import runs after every module
involved has loaded, which is how a lazy import legitimately breaks a load-time cycle).
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("services", "libs", "cli")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name of the importing file
    target: str  # dotted module (or package) imported
    at_load: bool  # executed when the importer loads (module level, not under TYPE_CHECKING)
    where: str  # path:line, for messages


def _packages() -> dict[str, Path]:
    """First-party import packages of the workspace: top-level name -> its folder."""
    found = {}
    for pyproject in sorted(REPO.glob("*/*/pyproject.toml")) + sorted(REPO.glob("cli/pyproject.toml")):
        for init in pyproject.parent.glob("*/__init__.py"):
            found[init.parent.name] = init.parent
    return found


PACKAGES = _packages()
COMMON, DEVSTACK, CLI, ALGO, NIGHT = "sunrise_common", "sunrise_devstack", "sunrise_cli", "sunrise_algo", "sunrise_night"
SERVICES = {name for name, path in PACKAGES.items() if path.parent.parent.name == "services"}
LIBRARIES = {name for name, path in PACKAGES.items() if path.parent.parent.name == "libs"}
# Top-level first-party names outside the workspace packages (they may import services).
HARNESSES = {"tests", "benchmarks", "science", "reliability", "scripts", "tools"}


def _module_name(path: Path) -> str:
    for name, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = (name, *path.relative_to(folder).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is in no workspace package")


def _is_module(dotted: str) -> bool:
    top, *rest = dotted.split(".")
    folder = PACKAGES.get(top)
    if folder is None:
        return False
    base = folder.joinpath(*rest)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(path: Path) -> list[Import]:
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if node.level:  # relative: resolve against this module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # ``from pkg import sub`` imports the submodule when there is one, else a name of pkg.
        subs = [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")]
        return subs + ([base] if len(subs) < len(node.names) else [])

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in targets(child):
                    found.append(Import(module, target, at_load, f"{path.relative_to(REPO)}:{child.lineno}"))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the else branch runs; the body never does
                    visit(ast.Module(body=[stmt], type_ignores=[]), at_load)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            else:
                visit(child, at_load)

    visit(tree, True)
    return found


def _files() -> list[Path]:
    files = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            if ".venv" in path.parts or "__pycache__" in path.parts:
                continue
            files.append(path)
    return files


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for path in _files() for imp in _imports_of(path)]


def _top(dotted: str) -> str:
    return dotted.split(".")[0]


def _first_party(dotted: str) -> bool:
    return _top(dotted) in PACKAGES or _top(dotted) in HARNESSES


def test_the_scan_sees_every_package_and_resolves_imports(imports: list[Import]) -> None:
    assert {COMMON, DEVSTACK, CLI, ALGO, NIGHT} <= set(PACKAGES)
    assert SERVICES == {"ingest", "sunrise_prep", "psg_prep", "sunalgo"}
    assert LIBRARIES == {COMMON, ALGO, NIGHT, DEVSTACK}
    importers = {_top(i.importer) for i in imports}
    assert importers >= {COMMON, DEVSTACK, CLI, ALGO, NIGHT, *SERVICES}
    # Imports are resolved to modules: the local publisher imports the queue's publishing side.
    assert any(i.importer == f"{COMMON}.publisher.local" and i.target == f"{COMMON}.publisher.queue" for i in imports)
    # Function-level imports are seen (the publisher factory imports its adapters lazily; the
    # CLI's `algo check` imports the night preparation inside its function).
    assert any(i.importer == f"{COMMON}.publisher" and not i.at_load for i in imports)
    assert any(i.importer == f"{CLI}.algo_commands" and i.target == f"{NIGHT}.prepare" and not i.at_load
               for i in imports)


def test_services_import_only_the_shared_library_and_themselves(imports: list[Import]) -> None:
    bad = [
        f"{i.where}: {i.importer} imports {i.target}"
        for i in imports
        if _top(i.importer) in SERVICES and _first_party(i.target)
        and _top(i.target) not in {COMMON, ALGO, NIGHT, _top(i.importer)}
    ]
    assert bad == []


@pytest.mark.parametrize("library", [ALGO, NIGHT])
def test_the_algorithm_and_night_libraries_import_only_the_shared_library(imports: list[Import], library: str) -> None:
    bad = [
        f"{i.where}: {i.importer} imports {i.target}"
        for i in imports
        if _top(i.importer) == library and _first_party(i.target) and _top(i.target) not in {COMMON, library}
    ]
    assert bad == []


def test_the_shared_library_imports_no_service_cli_or_dev_stack(imports: list[Import]) -> None:
    bad = [
        f"{i.where}: {i.importer} imports {i.target}"
        for i in imports
        if _top(i.importer) == COMMON and _first_party(i.target) and _top(i.target) != COMMON
    ]
    assert bad == []


def test_the_dev_stack_imports_only_the_shared_library(imports: list[Import]) -> None:
    bad = [
        f"{i.where}: {i.importer} imports {i.target}"
        for i in imports
        if _top(i.importer) == DEVSTACK and _first_party(i.target) and _top(i.target) not in {COMMON, DEVSTACK}
    ]
    assert bad == []


def test_no_library_and_not_the_cli_imports_a_service(imports: list[Import]) -> None:
    bad = [
        f"{i.where}: {i.importer} imports {i.target}"
        for i in imports
        if _top(i.target) in SERVICES and _top(i.importer) != _top(i.target)
    ]
    assert bad == []


def test_nothing_imports_the_cli_and_only_the_cli_imports_the_dev_stack(imports: list[Import]) -> None:
    bad = [f"{i.where}: {i.importer} imports {i.target}" for i in imports if _top(i.target) == CLI and _top(i.importer) != CLI]
    assert bad == []
    # The CLI is the one workspace package above the dev stack (the direction CLI -> devstack).
    users = {_top(i.importer) for i in imports if _top(i.target) == DEVSTACK} - {DEVSTACK}
    assert users <= {CLI}, users


def test_no_package_reaches_into_the_harnesses(imports: list[Import]) -> None:
    bad = [f"{i.where}: {i.importer} imports {i.target}" for i in imports if _top(i.target) in HARNESSES]
    assert bad == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in edges.get(node, ()):
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_first_party_modules(imports: list[Import]) -> None:
    edges: dict[str, set[str]] = {}
    for i in imports:
        if i.at_load and _top(i.target) in PACKAGES and i.target != i.importer:
            edges.setdefault(i.importer, set()).add(i.target)
    assert _cycles(edges) == []


def test_no_cycle_through_lazy_imports_either_but_a_ports_factory(imports: list[Import]) -> None:
    """Counting function-level imports too, the one cycle allowed is a port's factory in a
    package's ``__init__`` importing its own adapters lazily (``sunrise_common.state`` ->
    ``.state.sqlite`` -> ``Doc`` from ``.state``). A lazy import between two modules that are
    not parent and child (``emulators`` <-> ``router.pubsub_source`` before issue 17) is a cycle."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        factory = not i.at_load and i.target.startswith(i.importer + ".")
        if _top(i.target) in PACKAGES and i.target != i.importer and not factory:
            edges.setdefault(i.importer, set()).add(i.target)
    assert _cycles(edges) == []


def _dependencies(pyproject: Path) -> set[str]:
    """Distribution names a pyproject.toml depends on (its extras and version bounds dropped)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    names = set()
    for requirement in project.get("dependencies", []):
        name = requirement
        for stop in "[<>=!~; ":
            name = name.split(stop)[0]
        names.add(name.strip())
    return names


def test_no_library_declares_a_service_as_a_dependency() -> None:
    service_dists = {tomllib.loads((path.parent / "pyproject.toml").read_text())["project"]["name"]
                     for name, path in PACKAGES.items() if name in SERVICES}
    assert service_dists == {"sunrise-ingest", "sunrise-sunrise-prep", "sunrise-psg-prep", "sunrise-sunalgo"}
    declared = {name: _dependencies(PACKAGES[name].parent / "pyproject.toml") & service_dists for name in LIBRARIES}
    assert declared == {name: set() for name in LIBRARIES}
