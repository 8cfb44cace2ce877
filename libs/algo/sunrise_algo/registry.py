"""Finding plug-ins (Python entry points, group ``sunrise.algorithms``) and resolving what a run asks for.

A run names either nothing (the active plug-in's active model), a plug-in (its default model) or
a model version. A model version is looked up in the model store first (``model_dir/{version}.json``;
the artifact's ``algorithm`` field names its plug-in, the built-in one when absent, as artifacts
written before plug-ins existed are), then among each plug-in's packaged models.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from sunrise_algo.interface import NAME_PATTERN, Algorithm

GROUP = "sunrise.algorithms"
BUILTIN = "sunalgo"
VERSION_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class UnknownAlgorithm(LookupError):
    """No plug-in or model of that name (the message lists what exists)."""


@cache
def discover() -> dict[str, EntryPoint]:
    """Every registered plug-in class by its ``name`` (an entry point that fails to load is skipped
    by :func:`available` but reported by :func:`load`)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep  # loaded lazily by load()
    return found


def names() -> list[str]:
    """Names of the registered plug-ins."""
    return sorted(discover())


def load(name: str) -> Algorithm:
    """An instance of the plug-in registered as ``name``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UnknownAlgorithm(f"a plug-in name is 1-32 lower-case letters, digits, _ or -; got {len(str(name))} characters")
    entry = discover().get(name)
    if entry is None:
        raise UnknownAlgorithm(f"no plug-in named {name!r}; registered: {names()}")
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)) or cls.name != name:
        raise UnknownAlgorithm(f"entry point {name!r} does not name an Algorithm subclass whose name is {name!r}")
    return cls()


def stored_artifact(version: str, model_dir: Path | None) -> dict | None:
    """The model store's artifact ``model_dir/{version}.json`` (None when the store has none)."""
    if model_dir is None or not VERSION_PATTERN.match(version):
        return None
    listed = {p.stem for p in Path(model_dir).glob("*.json") if p.is_file()} if Path(model_dir).is_dir() else set()
    if version not in listed or version == "ACTIVE":
        return None
    return json.loads((Path(model_dir) / f"{version}.json").read_text())


def resolve(asked: str | None, model_dir: Path | None, *, active: str = BUILTIN) -> tuple[Algorithm, str]:
    """The plug-in and model version a run uses.

    ``asked`` None: the active plug-in (``active``) with the model ``model_dir/ACTIVE.json`` names
    (written by ``sunrise activate``; its ``algorithm`` field, when present, overrides ``active``),
    else its default model. ``asked`` a plug-in name: that plug-in's default model. Otherwise a
    model version, as the module docstring says.
    """
    if asked is None:
        pointer = Path(model_dir) / "ACTIVE.json" if model_dir is not None else None
        if pointer is not None and pointer.is_file():
            doc = json.loads(pointer.read_text())
            version = doc.get("active")
            if version:
                return resolve(version, model_dir, active=doc.get("algorithm") or active)
        plugin = load(active)
        return plugin, plugin.default_model
    if not isinstance(asked, str) or not VERSION_PATTERN.match(asked):
        raise UnknownAlgorithm(f"a version is 1-64 letters, digits, '.', '_' or '-'; got {len(str(asked))} characters")
    if asked in discover():
        plugin = load(asked)
        return plugin, plugin.default_model
    artifact = stored_artifact(asked, model_dir)
    if artifact is not None:
        return load(artifact.get("algorithm") or BUILTIN), asked
    for name in [active, *names()]:
        if name in discover():
            plugin = load(name)
            if asked in plugin.packaged_models():
                return plugin, asked
    raise UnknownAlgorithm(f"unknown model version {asked!r} (nor a plug-in name); plug-ins: {names()}")
